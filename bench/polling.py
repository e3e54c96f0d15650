"""Polling scale: N feeds on a loopback server in another process, most answering 304.

newsbot: one asyncio process polling every source (conditional GET, state in SQLite).
Baseline: a plain loop over feedparser.parse(url, etag=...) with feedparser's own fetching.
Both measure the second cycle (after the first has learnt every ETag), with a few feeds
carrying a new item.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import feedparser
import httpx

from bot.config import validate
from bot.service import Service

NEW_ITEMS = 10


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(feeds: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    process = subprocess.Popen([sys.executable, "-m", "bench.feed_server", str(port), str(feeds)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/feed/0", timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("feed server did not start")


async def _newsbot_cycle(url: str, feeds: int) -> dict[str, float]:
    tmp = tempfile.mkdtemp(prefix="newsbot-poll-")
    raw = {
        "database": f"sqlite:///{tmp}/poll.db",
        "sources": [{"name": f"f{i}", "url": f"{url}/feed/{i}"} for i in range(feeds)],
        "targets": [
            {
                "name": "none",
                "platform": "telegram",
                "api_base": "http://127.0.0.1:9",
                "token": {"env": "T"},
                "chat_id": "@chan_x",
                "languages": ["zz"],
            }
        ],
        "http": {"enabled": False},
    }
    service = Service(validate(raw, "bench", environ={"T": "1:bench"}), dispatch_on_new=False)
    await service.start()
    try:
        await service.poll_all()  # first cycle: learns ETags, records the backlog
        httpx.post(f"{url}/bump", params={"n": NEW_ITEMS})
        cpu, wall = time.process_time(), time.perf_counter()
        reports = await service.poll_all()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await service.close()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "not_modified": sum(r.outcome == "not-modified" for r in reports),
        "new": sum(r.new for r in reports),
    }


def _baseline_cycle(url: str, feeds: int) -> dict[str, float]:
    etags: dict[int, str] = {}
    for i in range(feeds):
        etags[i] = feedparser.parse(f"{url}/feed/{i}").get("etag", "")
    httpx.post(f"{url}/bump", params={"n": NEW_ITEMS})
    cpu, wall = time.process_time(), time.perf_counter()
    not_modified = 0
    for i in range(feeds):
        result = feedparser.parse(f"{url}/feed/{i}", etag=etags[i])
        not_modified += result.get("status") == 304
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "not_modified": not_modified,
    }


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the
    parent across fork+exec, so a child started by a big parent would report the parent's."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(feeds: int) -> dict[str, Any]:
    process, url = _start_server(feeds)
    try:
        ours = asyncio.run(_newsbot_cycle(url, feeds))
        peak_mb = _peak_rss_mb()
    finally:
        process.kill()
    process, url = _start_server(feeds)
    try:
        base = _baseline_cycle(url, feeds)
    finally:
        process.kill()
    return {"feeds": feeds, "newsbot": ours, "baseline": base, "peak_rss_mb": peak_mb}


def run(sizes: tuple[int, ...] = (1000, 10000)) -> list[dict[str, Any]]:
    """Each size in a fresh process: peak RSS is per process, and must be this run's alone."""
    results = []
    for feeds in sizes:
        out = subprocess.run(
            [sys.executable, "-m", "bench.polling", str(feeds)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


if __name__ == "__main__":
    print(json.dumps(run_one(int(sys.argv[1]))))
