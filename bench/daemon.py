"""Start-up memory of newsbot with a typical config: four targets (Telegram, X, Facebook,
Instagram), three feeds on the loopback feed server, the HTTP endpoint on.

Measured two ways, each in a fresh process, RUNS times interleaved, medians reported:
- `service`: `bot.service.Service` started, before any poll (what the polling runs call
  `start RSS`);
- `newsbot run`: the real command in a child process after its start-up: every target's
  start-up setup check logged and every feed's first poll done. Its VmRSS is read from /proc.

The targets' APIs are a dead loopback port: their setup checks fail at once, after loading what
a real check loads (python-telegram-bot for Telegram's getMe; Facebook's and Instagram's httpx
clients; X's check is off by default, since X bills each read, so tweepy loads at X's first
post). Samples go to the polling samples file as kind "daemon" (resumable, like the rest).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import samples
from bench.polling import _child, _port, _rss_mb, _start_server, typical_config

FEEDS = 3
RUNS = 3
HOWS = ("service", "run")
#: Seconds `newsbot run` may take to start, check its targets and poll its feeds.
START_TIMEOUT_S = 60.0
TIMEOUT_S = 120.0


def config(port: int, tmp: str) -> dict[str, Any]:
    raw = typical_config(
        [f"http://127.0.0.1:{port}/feed/{i}" for i in range(FEEDS)], f"sqlite:///{tmp}/state.db"
    )
    raw["outlet"] = {"name": "Bench", "url": f"http://127.0.0.1:{port}"}
    raw["http"] = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": _port(),
        "push_token": {"env": "T"},
    }
    return raw


async def _service(port: int) -> dict[str, Any]:
    from bot.config import validate
    from bot.service import Service

    tmp = tempfile.mkdtemp(prefix="newsbot-start-")
    service = Service(validate(config(port, tmp), "bench", {"T": "1:b"}), dispatch_on_new=False)
    await service.start()
    try:
        return {"rss_mb": _rss_mb()}
    finally:
        await service.close()


def _newsbot_run(port: int) -> dict[str, Any]:
    """`python -m bot run` until its start-up is done; its VmRSS then."""
    import yaml

    tmp = tempfile.mkdtemp(prefix="newsbot-run-")
    path = Path(tmp) / "newsbot.yaml"
    raw = config(port, tmp)
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "bot", "-c", str(path), "run"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "T": "1:b"},
    )
    assert daemon.stderr is not None
    checks = polled = 0
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while checks < len(raw["targets"]) or polled < FEEDS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not started in {START_TIMEOUT_S:g} s")
            line = daemon.stderr.readline()
            if not line:
                raise RuntimeError(f"newsbot run exited with status {daemon.wait()}")
            checks += "setup check:" in line
            polled += "first run of source" in line
        time.sleep(1.0)  # the last log line is written before its poll's state is saved
        return {
            "rss_mb": _rss_mb("VmRSS", daemon.pid),
            "peak_mb": _rss_mb("VmHWM", daemon.pid),
        }
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def run_one(how: str) -> dict[str, Any]:
    process, port = _start_server(FEEDS)
    try:
        if how == "service":
            return asyncio.run(_service(port))
        return _newsbot_run(port)
    finally:
        process.kill()


def key(how: str, run: int) -> tuple[Any, ...]:
    return ("daemon", how, run)


def measure(store: Path, runs: int = RUNS, retry_failed: bool = False) -> None:
    """RUNS interleaved runs of each way, appended to `store` unless already there."""
    skip = samples.done(samples.load(store), retry_failed)
    for run in range(1, runs + 1):
        for how in HOWS:
            if key(how, run) in skip:
                continue
            result = _child(["daemon", how], TIMEOUT_S)
            sample = {"kind": "daemon", "how": how, "run": run} | result
            shown = sample.get("failed") or f"{sample['rss_mb']:.1f} MB"
            print(f"  typical config, {how}, run {run}: {shown}", flush=True)
            samples.append(store, sample)


def summary(found: list[samples.Sample]) -> dict[str, Any] | None:
    """Per way: the median RSS of the successful runs, their count and the failures."""
    chosen = [s for k, s in samples.latest(found).items() if k[0] == "daemon"]
    if not chosen:
        return None
    out: dict[str, Any] = {}
    for how in HOWS:
        mine = [s for s in chosen if s["how"] == how]
        good = [s["rss_mb"] for s in mine if not s.get("failed")]
        out[how] = {
            "runs": len(good),
            "failures": [s["failed"] for s in mine if s.get("failed")],
            "rss_mb": statistics.median(good) if good else None,
        }
    return out
