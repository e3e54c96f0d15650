"""Latency from publication to posted on all seven platforms, all on loopback.

The sample site and the seven platforms' stand-ins run in a child process (`python -m
bench.latency world BOT_PORT`), as a newsroom's site and the platforms run on other machines:
the figure is newsbot's time, not the stand-ins' CPU taken from newsbot's event loop. The
child times each article itself, from the moment the site publishes it to the moment the last
of the seven platforms has it, and answers the parent's control requests:
- GET /fetched: how often the bot has read the feed (it starts measuring after the first);
- POST /publish/{i}: publish a new article and answer, once every platform has it, with the
  seconds that took (or why it did not arrive).

Push: the site calls the bot's /push the moment it publishes. Polling: no push; the feed is
polled every POLL_INTERVAL seconds, so latency should stay within that interval.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.polling import _kill_session, _port, die_with_parent
from bot.config import validate
from bot.demo.runner import (
    CHANNELS,
    DEMO_BLUESKY_HANDLE,
    DEMO_BLUESKY_PASSWORD,
    DEMO_ENV,
    DEMO_IG_USER,
    DEMO_MASTODON_TOKEN,
    DEMO_META_TOKEN,
    DEMO_PAGE_ID,
    DEMO_PUSH_TOKEN,
    DEMO_THREADS_TOKEN,
    DEMO_THREADS_USER,
    DEMO_TOKEN,
    DEMO_X,
    demo_config,
)
from bot.service import Service

POLL_INTERVAL = 5.0
#: An article that has not reached every platform after this long is a failed run.
ARRIVAL_TIMEOUT_S = POLL_INTERVAL * 3
FEED = "/en/rss.xml"
PLATFORMS = ("telegram", "x", "graph", "bluesky", "mastodon", "threads")


async def _world(bot_port: int, push: bool) -> None:
    """The child: the site, the stand-ins and the control app until killed. Their URLs go to
    stdout as one JSON line once they serve."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from bot.demo.site import SampleSite, create_app, make_sample
    from bot.httpserver import LoopbackServer
    from standins import bluesky, graph, mastodon, telegram, threads, x

    site = SampleSite()
    tg = telegram.State(per_chat_burst=1000, per_chat_interval=0.001)
    tg.valid_tokens.add(DEMO_TOKEN)
    tg.add_channel(CHANNELS["en"])
    xs = x.State(user_cap_15min=10_000)
    xs.allow(x.Credentials(*DEMO_X.values()))
    # Instagram's 50 API posts a day (and Threads' 250) would hold a long run's later
    # articles: raised, like the other platforms' rate limits here (the limits have tests of
    # their own).
    gs = graph.State(
        page_id=DEMO_PAGE_ID, ig_user_id=DEMO_IG_USER, in_progress_polls=0, quota_total=10_000
    )
    gs.tokens.add(DEMO_META_TOKEN)
    bs = bluesky.State()
    bs.add_account(DEMO_BLUESKY_HANDLE, DEMO_BLUESKY_PASSWORD)
    ms = mastodon.State(tokens={DEMO_MASTODON_TOKEN}, rate_limit=100_000)
    ts = threads.State(
        tokens={DEMO_THREADS_TOKEN},
        user_id=DEMO_THREADS_USER,
        in_progress_polls=0,
        quota_total=10_000,
    )

    def counts() -> tuple[int, ...]:
        # Facebook's posts and Instagram's media are both the Graph stand-in's.
        posted = (tg.messages, xs.posts, gs.posts, gs.media, bs.posts, ms.statuses, ts.posts)
        return tuple(len(c) for c in posted)

    client = httpx.AsyncClient(timeout=10)
    if push:

        async def hook(url: str) -> None:
            await client.post(
                f"http://127.0.0.1:{bot_port}/push",
                json={"url": url},
                headers={"Authorization": f"Bearer {DEMO_PUSH_TOKEN}"},
            )

        site.on_publish.append(hook)

    async def fetched(_: Request) -> JSONResponse:
        return JSONResponse({"feed_hits": site.hits[FEED]})

    async def publish(request: Request) -> JSONResponse:
        i = int(request.path_params["i"])
        before = counts()
        started = time.perf_counter()
        await site.publish(make_sample(f"bench-{i}", f"Bench article number {i}", image=None))
        while (now := counts()) != tuple(c + 1 for c in before):
            if time.perf_counter() - started > ARRIVAL_TIMEOUT_S:
                return JSONResponse(
                    {"failed": f"article {i} not posted everywhere: {before} -> {now}"}
                )
            await asyncio.sleep(0.002)
        return JSONResponse({"seconds": time.perf_counter() - started})

    control = Starlette(
        routes=[Route("/fetched", fetched), Route("/publish/{i:int}", publish, methods=["POST"])]
    )
    apps = [create_app(site)] + [
        module.create_app(state)
        for module, state in (
            (telegram, tg),
            (x, xs),
            (graph, gs),
            (bluesky, bs),
            (mastodon, ms),
            (threads, ts),
        )
    ]
    servers = [LoopbackServer(app) for app in (*apps, control)]
    for server in servers:
        await server.start()
    site.base_url = servers[0].url
    names = ("site", *PLATFORMS, "control")
    print(json.dumps({name: s.url for name, s in zip(names, servers, strict=True)}), flush=True)
    await asyncio.Event().wait()  # until the parent kills this process


def _start_world(bot_port: int, push: bool) -> tuple[subprocess.Popen[str], dict[str, str]]:
    import ctypes  # noqa: F401  (for die_with_parent: not imported between fork and exec)

    child = subprocess.Popen(
        [sys.executable, "-m", "bench.latency", "world", str(bot_port), "push" if push else "poll"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        _kill_session(child)
        raise RuntimeError(f"the site and stand-ins did not start (exit status {child.returncode})")
    return child, json.loads(line)


async def _measure(push: bool, samples: int) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix="newsbot-bench-"))
    port = _port()
    child, urls = _start_world(port, push)
    try:
        # The demo's configuration, cut to English: one Telegram channel and the six others.
        raw = demo_config(
            urls["site"],
            urls["telegram"],
            urls["x"],
            urls["graph"],
            db_url=f"sqlite:///{tmp}/bench.db",
            poll_every=3600 if push else POLL_INTERVAL,
            http_port=port,
            cards_dir=str(tmp / "cards"),
            bluesky_url=urls["bluesky"],
            mastodon_url=urls["mastodon"],
            threads_url=urls["threads"],
        )
        raw["sources"] = [s for s in raw["sources"] if s["name"] == "en"]
        raw["targets"] = [
            t for t in raw["targets"] if t["name"] not in ("telegram-ru", "telegram-az")
        ]
        for target in raw["targets"]:
            if target["platform"] == "telegram":
                target["min_interval"] = 0
            if target["platform"] in ("instagram", "threads"):
                target["poll_interval"] = 0.02
            if target["platform"] == "instagram":
                target["publishing_limit"] = 100  # its most: the run posts 100 articles
        service = Service(validate(raw, "bench", environ=DEMO_ENV))
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        latencies: list[float] = []
        try:
            async with httpx.AsyncClient(
                base_url=urls["control"], timeout=ARRIVAL_TIMEOUT_S + 10
            ) as control:
                while (await control.get("/fetched")).json()["feed_hits"] < 1:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)
                for i in range(samples):
                    answer = (await control.post(f"/publish/{i}")).json()
                    if "failed" in answer:
                        raise RuntimeError(answer["failed"])
                    latencies.append(answer["seconds"])
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
    finally:
        _kill_session(child)
    return latencies


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "samples": len(values),
        "median_s": statistics.median(values),
        "p95_s": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
    }


def run(push_samples: int = 20, poll_samples: int = 5) -> dict[str, Any]:
    return {
        "push": _summary(asyncio.run(_measure(True, push_samples))),
        "poll": _summary(asyncio.run(_measure(False, poll_samples))),
        "poll_interval_s": POLL_INTERVAL,
    }


if __name__ == "__main__":
    if sys.argv[1:2] != ["world"] or len(sys.argv) != 4:
        sys.exit("usage: python -m bench.latency world BOT_PORT push|poll")
    asyncio.run(_world(int(sys.argv[2]), sys.argv[3] == "push"))
