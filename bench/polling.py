"""Polling scale: N feeds on a loopback server in another process, newsbot against two peers.

Peers, each in a fresh process per run (CPU and peak RSS are then that run's alone):
- newsbot: the service with a typical config (four targets, none routed), state in SQLite;
- reader: lemon24/reader (the `bench` extra), update_feeds with READER_WORKERS threads;
- bare: a plain feedparser loop (feedparser's own fetching, ETags kept in a dict, nothing stored).

Each run measures cycle 1 (every feed new: a cold start or a newsroom adding feeds) and
cycle 2 (most feeds answer 304, NEW_ITEMS carry a new item). Feeds sit on one host or are
spread over HOSTS loopback addresses (127.0.0.1 .. 127.0.0.HOSTS). Runs are interleaved
(newsbot, reader, bare, newsbot, ...) and each figure is the median of RUNS runs.
`big_case` polls one feed of BIG_ENTRIES entries: first poll, 304, the same body without
validators, and one new entry. Each child run has a timeout and its result, or why it failed,
is appended to a samples file as it ends (bench.samples); a rerun skips what is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import samples

NEW_ITEMS = 10
HOSTS = 50
RUNS = 3
# reader's lowest-CPU setting on this 2-core machine (1,000 feeds, medians of 3, both layouts):
# cycle 1 took 4.0-4.3 s of CPU with 1 worker, 3.7-4.0 s with 4, 3.0-3.6 s with 20 and
# 3.0-3.3 s with 50; cycle 2 was 1.3-2.0 s for every setting. 20 and 50, run interleaved, were
# within noise of each other; 20 holds less memory.
READER_WORKERS = 20
WORKERS_ENV = "NEWSBOT_BENCH_READER_WORKERS"  # overrides READER_WORKERS in a child run


def reader_workers() -> int:
    return int(os.environ.get(WORKERS_ENV) or READER_WORKERS)


BIG_ENTRIES = 100_000
PEERS = ("newsbot", "reader", "bare")


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies, even by SIGKILL, so a killed benchmark
    leaves no run or feed server behind to load the machine (Linux prctl). Called by a feed
    server itself, and before exec in a run's child. ctypes is imported here, not at the top:
    a measured run should not hold it (it is imported in the parent before forking a run)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(feeds: int, hosts: int = 1) -> tuple[subprocess.Popen[bytes], int]:
    port = _port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.feed_server", str(port), str(feeds), str(hosts)]
    )  # the server calls die_with_parent() itself
    for _ in range(400):
        try:
            _call(port, "GET", "/feed/0")
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("feed server did not start")


def _urls(port: int, feeds: int, hosts: int) -> list[str]:
    return [f"http://127.0.0.{i % hosts + 1}:{port}/feed/{i}" for i in range(feeds)]


def _bump(port: int) -> None:
    _call(port, "POST", f"/bump?n={NEW_ITEMS}")


def _call(port: int, method: str, path: str) -> None:
    """One request to the feed server. http.client, not httpx: httpx's default transport
    (httpcore, h11, a CA bundle) would add its memory to the measured run's."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path)
        connection.getresponse().read()
    finally:
        connection.close()


def _rss_mb(field: str = "VmRSS", pid: int | None = None) -> float:
    """RSS (VmRSS) or peak RSS (VmHWM) of this process, or of child `pid`. VmHWM, not
    ru_maxrss: Linux carries ru_maxrss over from the parent across fork+exec."""
    try:
        with open(f"/proc/{pid or 'self'}/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        if pid is not None:
            raise
    if pid is not None:
        raise LookupError(f"no {field} for process {pid}")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Clock:
    def __enter__(self) -> _Clock:
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.cpu = time.process_time() - self.cpu
        self.wall = time.perf_counter() - self.wall


def typical_config(urls: list[str], database: str) -> dict[str, Any]:
    """Four targets (Telegram, X, Facebook, Instagram) on a dead loopback port; the language
    rule routes no article to them, so the figures are the poll path's alone."""
    dead = "http://127.0.0.1:9"
    common = {"languages": ["zz"], "api_base": dead}
    return {
        "database": database,
        "sources": [{"name": f"f{i}", "url": url} for i, url in enumerate(urls)],
        "targets": [
            {"name": "tg", "platform": "telegram", "token": {"env": "T"}, "chat_id": "@chan_bench"}
            | common,
            {
                "name": "x",
                "platform": "x",
                "upload_base": dead,
                "api_key": {"env": "T"},
                "api_secret": {"env": "T"},
                "access_token": {"env": "T"},
                "access_token_secret": {"env": "T"},
            }
            | common,
            {
                "name": "fb",
                "platform": "facebook",
                "page_id": "123456789012345",
                "page_access_token": {"env": "T"},
            }
            | common,
            {
                "name": "ig",
                "platform": "instagram",
                "ig_user_id": "17841400000000000",
                "access_token": {"env": "T"},
            }
            | common,
        ],
        "http": {"enabled": False},
    }


async def _newsbot(urls: list[str], port: int) -> dict[str, Any]:
    from bot.config import validate
    from bot.service import Service

    tmp = tempfile.mkdtemp(prefix="newsbot-poll-")
    config = validate(typical_config(urls, f"sqlite:///{tmp}/poll.db"), "bench", {"T": "1:b"})
    service = Service(config, dispatch_on_new=False)
    await service.start()
    started_mb = _rss_mb()
    try:
        with _Clock() as one:
            first = await service.poll_all()
        _bump(port)
        with _Clock() as two:
            second = await service.poll_all()
    finally:
        await service.close()
    return {
        "started_mb": started_mb,
        "cycle1": {
            "cpu_s": one.cpu,
            "wall_s": one.wall,
            "ok": sum(r.outcome == "ok" for r in first),
        },
        "cycle2": {
            "cpu_s": two.cpu,
            "wall_s": two.wall,
            "not_modified": sum(r.outcome in ("not-modified", "unchanged") for r in second),
            "new": sum(r.new for r in second),
        },
    }


def _reader(urls: list[str], port: int) -> dict[str, Any]:
    from reader import make_reader

    tmp = tempfile.mkdtemp(prefix="reader-poll-")
    workers = reader_workers()
    reader = make_reader(f"{tmp}/reader.sqlite")
    for url in urls:
        reader.add_feed(url)
    started_mb = _rss_mb()
    with _Clock() as one:
        first = list(reader.update_feeds_iter(scheduled=False, workers=workers))
    _bump(port)
    with _Clock() as two:
        second = list(reader.update_feeds_iter(scheduled=False, workers=workers))
    reader.close()
    return {
        "started_mb": started_mb,
        "cycle1": {
            "cpu_s": one.cpu,
            "wall_s": one.wall,
            "ok": sum(r.updated_feed is not None for r in first),
        },
        "cycle2": {
            "cpu_s": two.cpu,
            "wall_s": two.wall,
            "new": sum(getattr(r.value, "new", 0) or 0 for r in second),
        },
    }


def _bare(urls: list[str], port: int) -> dict[str, Any]:
    import feedparser

    started_mb = _rss_mb()
    etags: dict[str, str] = {}
    ok = 0
    with _Clock() as one:
        for url in urls:
            parsed = feedparser.parse(url)
            ok += parsed.get("status") == 200 and bool(parsed.entries)
            etags[url] = parsed.get("etag", "")
    _bump(port)
    not_modified = 0
    with _Clock() as two:
        for url in urls:
            not_modified += feedparser.parse(url, etag=etags[url]).get("status") == 304
    return {
        "started_mb": started_mb,
        "cycle1": {"cpu_s": one.cpu, "wall_s": one.wall, "ok": ok},
        "cycle2": {"cpu_s": two.cpu, "wall_s": two.wall, "not_modified": not_modified},
    }


def run_one(peer: str, feeds: int, hosts: int) -> dict[str, Any]:
    """One run of one peer, in this (fresh) process."""
    process, port = _start_server(feeds, hosts)
    try:
        urls = _urls(port, feeds, hosts)
        if peer == "newsbot":
            result = asyncio.run(_newsbot(urls, port))
        elif peer == "reader":
            result = _reader(urls, port)
        else:
            result = _bare(urls, port)
    finally:
        process.kill()
    return {"peer": peer, "feeds": feeds, "hosts": hosts, "peak_mb": _rss_mb("VmHWM")} | result


async def _big(port: int, entries: int) -> dict[str, Any]:
    from bot.config import validate
    from bot.service import Service

    tmp = tempfile.mkdtemp(prefix="newsbot-big-")
    server = f"http://127.0.0.1:{port}"
    raw = typical_config([f"{server}/big/{entries}"], f"sqlite:///{tmp}/big.db")
    raw["fetch"] = {"max_bytes": 200_000_000, "timeout": 600}
    service = Service(validate(raw, "bench", {"T": "1:b"}), dispatch_on_new=False)
    await service.start()
    out: dict[str, Any] = {"entries": entries}
    try:
        for step in ("first", "not_modified", "unchanged_no_etag", "one_new"):
            if step == "unchanged_no_etag":
                _call(port, "POST", "/big-etag?on=0")
            if step == "one_new":
                _call(port, "POST", "/bump-big")
            with _Clock() as clock:
                report = await service.pipeline.poll(service.config.sources[0])
            out[step] = {
                "cpu_s": clock.cpu,
                "wall_s": clock.wall,
                "outcome": report.outcome,
                "entries_read": report.entries,
                "new": report.new,
            }
    finally:
        await service.close()
    out["peak_mb"] = _rss_mb("VmHWM")
    return out


def child_timeout(feeds: int) -> float:
    """Seconds one peer's run at `feeds` feeds may take (both cycles and its set-up): 360 s at
    10,000 feeds, where the slowest peer (reader) took about 120 s, so only a hung or runaway
    child hits it."""
    return 60 + 0.03 * feeds


BIG_TIMEOUT_S = 900.0


def _child(arguments: list[str], timeout: float) -> dict[str, Any]:
    """Run `python -m bench.polling ARGUMENTS` in its own session; its last stdout line as JSON,
    or {"failed": why}. On a timeout, or when this process is stopped, the whole session (the
    child and its feed server) is killed, so nothing is left serving or polling."""
    import ctypes  # noqa: F401  (for die_with_parent: not imported between fork and exec)

    child = subprocess.Popen(
        [sys.executable, "-m", "bench.polling", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_session(child)
        return {"failed": f"timed out after {timeout:.0f} s"}
    except BaseException:
        _kill_session(child)
        raise
    _kill_session(child)  # a feed server the child could not stop itself
    if child.returncode != 0:
        last = (err.strip().splitlines() or ["no error output"])[-1]
        return {"failed": f"exit status {child.returncode}: {last[:300]}"}
    try:
        return dict(json.loads(out.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        return {"failed": "no result line on stdout"}


def _kill_session(child: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def problem(sample: dict[str, Any]) -> str | None:
    """Why a finished run's figures do not measure what they claim (feeds that failed to poll,
    a cycle 2 that missed the new items), or None."""
    feeds = sample["feeds"]
    one, two = sample["cycle1"], sample["cycle2"]
    if one.get("ok", feeds) != feeds:
        return f"cycle 1: {one['ok']:,} of {feeds:,} feeds polled ok"
    if "not_modified" in two and two["not_modified"] != feeds - NEW_ITEMS:
        return f"cycle 2: {two['not_modified']:,} of {feeds - NEW_ITEMS:,} unchanged feeds seen so"
    if "new" in two and two["new"] < NEW_ITEMS:
        return f"cycle 2: {two['new']} of {NEW_ITEMS} new items found"
    return None


def plan(
    sizes: tuple[int, ...], layouts: tuple[int, ...], runs: int, peers: tuple[str, ...]
) -> list[tuple[int, int, int, str]]:
    """(feeds, hosts, run, peer) in running order: sizes ascending, then layouts, runs
    interleaved across the peers (newsbot, reader, bare, newsbot, ...)."""
    return [
        (feeds, hosts, number, peer)
        for feeds in sorted(sizes)
        for hosts in layouts
        for number in range(1, runs + 1)
        for peer in peers
    ]


def run(
    store: Path,
    sizes: tuple[int, ...] = (1000, 10000, 30000),
    layouts: tuple[int, ...] = (1, HOSTS),
    runs: int = RUNS,
    peers: tuple[str, ...] = PEERS,
    timeout: float | None = None,
    retry_failed: bool = False,
    after_group: Callable[[], None] | None = None,
) -> None:
    """Every planned run not already in `store` (a JSON-lines file, see bench.samples), each
    appended the moment it ends. `after_group` is called when a (size, layout) is complete,
    so the report can be rewritten as the benchmark goes."""
    existing = samples.load(store)
    skip = samples.done(existing, retry_failed)
    samples.append(
        store,
        {"kind": "plan", "sizes": sorted(sizes), "layouts": list(layouts), "runs": runs}
        | {"peers": list(peers), "at": time.strftime("%Y-%m-%d %H:%M:%S")},
    )
    steps = plan(sizes, layouts, runs, peers)
    began = time.perf_counter()
    for index, (feeds, hosts, number, peer) in enumerate(steps):
        minutes = (time.perf_counter() - began) / 60
        label = f"  [{minutes:5.1f} min] {feeds} feeds, {hosts} host(s), {peer} run {number}"
        key = ("poll", feeds, hosts, peer, number)
        if key in skip:
            print(f"{label}: already in {store}", flush=True)
        else:
            print(label, flush=True)
            limit = timeout or child_timeout(feeds)
            started = time.perf_counter()
            result = _child([peer, str(feeds), str(hosts)], limit)
            sample = {"kind": "poll", "feeds": feeds, "hosts": hosts, "peer": peer}
            sample |= {"run": number, "child_wall_s": time.perf_counter() - started} | result
            if peer == "reader":
                sample["reader_workers"] = reader_workers()
            if not sample.get("failed"):
                why = problem(sample)
                if why:
                    sample["failed"] = why
            if sample.get("failed"):
                print(f"{label}: FAILED, {sample['failed']}", flush=True)
            samples.append(store, sample)
        last_of_group = index + 1 == len(steps) or steps[index + 1][:2] != (feeds, hosts)
        if last_of_group and after_group is not None:
            after_group()


def big_case(store: Path, entries: int = BIG_ENTRIES, retry_failed: bool = False) -> None:
    """The one-feed case, appended to `store` unless it is already there."""
    if ("big", entries) in samples.done(samples.load(store), retry_failed):
        print(f"  big feed: already in {store}", flush=True)
        return
    started = time.perf_counter()
    result = _child(["big", str(entries)], BIG_TIMEOUT_S)
    sample = {"kind": "big", "entries": entries, "child_wall_s": time.perf_counter() - started}
    sample |= result
    if sample.get("failed"):
        print(f"  big feed: FAILED, {sample['failed']}", flush=True)
    samples.append(store, sample)


if __name__ == "__main__":
    if sys.argv[1] == "daemon":
        from bench.daemon import run_one as start_case

        print(json.dumps(start_case(sys.argv[2])))
    elif sys.argv[1] == "big":
        process, port = _start_server(1)
        try:
            print(json.dumps(asyncio.run(_big(port, int(sys.argv[2])))))
        finally:
            process.kill()
    else:
        print(json.dumps(run_one(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
