"""Latency from publication to posted on all seven platforms, all on loopback.

Push: the sample site calls the bot's /push the moment it publishes. Polling: no push; the
feed is polled every POLL_INTERVAL seconds, so latency should stay within that interval.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

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
from bot.demo.site import SampleSite, create_app, make_sample
from bot.httpserver import LoopbackServer
from bot.service import Service
from standins import bluesky, graph, mastodon, telegram, threads, x

POLL_INTERVAL = 5.0


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _measure(push: bool, samples: int) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix="newsbot-bench-"))
    site = SampleSite()
    tg = telegram.State(per_chat_burst=1000, per_chat_interval=0.001)
    tg.valid_tokens.add(DEMO_TOKEN)
    tg.add_channel(CHANNELS["en"])
    xs = x.State(user_cap_15min=10_000)
    xs.allow(x.Credentials(*DEMO_X.values()))
    gs = graph.State(page_id=DEMO_PAGE_ID, ig_user_id=DEMO_IG_USER, in_progress_polls=0)
    gs.tokens.add(DEMO_META_TOKEN)
    bs = bluesky.State()
    bs.add_account(DEMO_BLUESKY_HANDLE, DEMO_BLUESKY_PASSWORD)
    ms = mastodon.State(tokens={DEMO_MASTODON_TOKEN}, rate_limit=100_000)
    ts = threads.State(tokens={DEMO_THREADS_TOKEN}, user_id=DEMO_THREADS_USER, in_progress_polls=0)
    servers = [
        LoopbackServer(app)
        for app in (
            create_app(site),
            telegram.create_app(tg),
            x.create_app(xs),
            graph.create_app(gs),
            bluesky.create_app(bs),
            mastodon.create_app(ms),
            threads.create_app(ts),
        )
    ]
    for server in servers:
        await server.start()
    site_url, tg_url, x_url, graph_url, bs_url, ms_url, ts_url = (s.url for s in servers)
    site.base_url = site_url
    port = _port()
    # The demo's configuration, cut to English: one Telegram channel and the six others.
    raw = demo_config(
        site_url,
        tg_url,
        x_url,
        graph_url,
        db_url=f"sqlite:///{tmp}/bench.db",
        poll_every=3600 if push else POLL_INTERVAL,
        http_port=port,
        cards_dir=str(tmp / "cards"),
        bluesky_url=bs_url,
        mastodon_url=ms_url,
        threads_url=ts_url,
    )
    raw["sources"] = [s for s in raw["sources"] if s["name"] == "en"]
    raw["targets"] = [t for t in raw["targets"] if t["name"] not in ("telegram-ru", "telegram-az")]
    for target in raw["targets"]:
        if target["platform"] == "telegram":
            target["min_interval"] = 0
        if target["platform"] in ("instagram", "threads"):
            target["poll_interval"] = 0.02
    service = Service(validate(raw, "bench", environ=DEMO_ENV))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    latencies: list[float] = []
    try:
        while site.hits["/en/rss.xml"] < 1:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient() as client:
            if push:

                async def hook(url: str) -> None:
                    await client.post(
                        f"http://127.0.0.1:{port}/push",
                        json={"url": url},
                        headers={"Authorization": f"Bearer {DEMO_PUSH_TOKEN}"},
                    )

                site.on_publish.append(hook)
            for i in range(samples):

                def counts() -> tuple[int, ...]:
                    seven = (tg.messages, xs.posts, gs.posts, gs.media, bs.posts, ms.statuses)
                    return (*(len(c) for c in seven), len(ts.posts))

                before = counts()
                started = time.perf_counter()
                await site.publish(
                    make_sample(f"bench-{i}", f"Bench article number {i}", image=None)
                )
                while counts() != tuple(c + 1 for c in before):
                    if time.perf_counter() - started > POLL_INTERVAL * 3:
                        raise RuntimeError("an article did not reach every platform")
                    await asyncio.sleep(0.002)
                latencies.append(time.perf_counter() - started)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        for server in servers:
            await server.stop()
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
