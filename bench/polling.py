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
validators, and one new entry.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx

NEW_ITEMS = 10
HOSTS = 50
RUNS = 3
READER_WORKERS = 20  # the setting the issue measured reader with (its best on 2 cores)
BIG_ENTRIES = 100_000
PEERS = ("newsbot", "reader", "bare")


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(feeds: int, hosts: int = 1) -> tuple[subprocess.Popen[bytes], int]:
    port = _port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.feed_server", str(port), str(feeds), str(hosts)]
    )
    for _ in range(400):
        try:
            httpx.get(f"http://127.0.0.1:{port}/feed/0", timeout=1)
            return process, port
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("feed server did not start")


def _urls(port: int, feeds: int, hosts: int) -> list[str]:
    return [f"http://127.0.0.{i % hosts + 1}:{port}/feed/{i}" for i in range(feeds)]


def _bump(port: int) -> None:
    httpx.post(f"http://127.0.0.1:{port}/bump", params={"n": NEW_ITEMS})


def _rss_mb(field: str = "VmRSS") -> float:
    """This process's RSS (VmRSS) or peak RSS (VmHWM). VmHWM, not ru_maxrss: Linux carries
    ru_maxrss over from the parent across fork+exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
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
    reader = make_reader(f"{tmp}/reader.sqlite")
    for url in urls:
        reader.add_feed(url)
    started_mb = _rss_mb()
    with _Clock() as one:
        first = list(reader.update_feeds_iter(scheduled=False, workers=READER_WORKERS))
    _bump(port)
    with _Clock() as two:
        second = list(reader.update_feeds_iter(scheduled=False, workers=READER_WORKERS))
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
    with _Clock() as one:
        for url in urls:
            etags[url] = feedparser.parse(url).get("etag", "")
    _bump(port)
    not_modified = 0
    with _Clock() as two:
        for url in urls:
            not_modified += feedparser.parse(url, etag=etags[url]).get("status") == 304
    return {
        "started_mb": started_mb,
        "cycle1": {"cpu_s": one.cpu, "wall_s": one.wall},
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
                httpx.post(f"{server}/big-etag", params={"on": "0"})
            if step == "one_new":
                httpx.post(f"{server}/bump-big")
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


def big_case(entries: int = BIG_ENTRIES) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.polling", "big", str(entries)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _child(peer: str, feeds: int, hosts: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.polling", peer, str(feeds), str(hosts)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _median(rows: list[dict[str, Any]], *path: str) -> float:
    values = []
    for row in rows:
        value: Any = row
        for part in path:
            value = value[part]
        values.append(value)
    return statistics.median(values)


def run(
    sizes: tuple[int, ...] = (1000, 10000, 30000),
    layouts: tuple[int, ...] = (1, HOSTS),
    runs: int = RUNS,
    peers: tuple[str, ...] = PEERS,
) -> list[dict[str, Any]]:
    """Every (size, layout): `runs` interleaved runs of each peer, summarised as medians."""
    summary = []
    for feeds in sizes:
        for hosts in layouts:
            samples: dict[str, list[dict[str, Any]]] = {peer: [] for peer in peers}
            for number in range(runs):
                for peer in peers:
                    print(f"  {feeds} feeds, {hosts} host(s), {peer} run {number + 1}", flush=True)
                    samples[peer].append(_child(peer, feeds, hosts))
            row: dict[str, Any] = {"feeds": feeds, "hosts": hosts, "runs": runs}
            for peer, rows in samples.items():
                row[peer] = {
                    "cycle1_cpu_s": _median(rows, "cycle1", "cpu_s"),
                    "cycle1_wall_s": _median(rows, "cycle1", "wall_s"),
                    "cycle2_cpu_s": _median(rows, "cycle2", "cpu_s"),
                    "cycle2_wall_s": _median(rows, "cycle2", "wall_s"),
                    "started_mb": _median(rows, "started_mb"),
                    "peak_mb": _median(rows, "peak_mb"),
                    "samples": rows,
                }
            summary.append(row)
    return summary


if __name__ == "__main__":
    if sys.argv[1] == "big":
        process, port = _start_server(1)
        try:
            print(json.dumps(asyncio.run(_big(port, int(sys.argv[2])))))
        finally:
            process.kill()
    else:
        print(json.dumps(run_one(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
