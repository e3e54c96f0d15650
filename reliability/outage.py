"""Outage: Telegram answers 5xx, 429 or nothing for a while; X keeps working.

A real Service (scheduler, polling, dispatcher) runs against the sample site, the Telegram
stand-in (broken for `outage` seconds) and the X stand-in (healthy). Articles are published
during the outage. Measured: calls to the broken platform while it was down (no retry storm),
whether its backlog went out afterwards once each and in publication order, at its pacing,
and whether X was slowed.

A 30-minute outage takes 30 minutes; `scale` shrinks time instead: backoff base and cooldown
cap are the defaults (10 s, 5 min) times `scale`, so the outage/backoff ratios, and so the call
counts, are those of the full-length outage.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import tempfile
import time
from typing import Any

from bot.config import validate
from bot.demo.runner import CHANNELS, DEMO_ENV, DEMO_TOKEN, DEMO_X, demo_config
from bot.demo.site import SampleSite, make_sample
from bot.demo.site import create_app as site_app
from bot.httpserver import LoopbackServer
from bot.service import Service
from bot.store import DeliveryStatus
from standins import telegram as tg
from standins import x as xs

TELEGRAM = "telegram-en"
CHAT = CHANNELS["en"]
UNUSED = "http://127.0.0.1:9"  # the Graph API: no Meta target here
PACING = 0.2  # seconds between Telegram posts (the target's min_interval)
MODES: dict[str, dict[str, Any]] = {
    "5xx": {"status": 502, "description": "Bad Gateway"},
    "429": {"status": 429, "retry_after": 1},
    "timeout": {"hang": 3.0},
}


def _config(site: str, tg_url: str, x_url: str, tmp: str, scale: float) -> dict[str, Any]:
    """The demo's configuration, cut to its English Telegram channel and X."""
    raw = demo_config(
        site,
        tg_url,
        x_url,
        graph_url=UNUSED,
        db_url=f"sqlite:///{tmp}/outage.db",
        poll_every=1,
        http_port=0,
        cards_dir=tmp,
    )
    raw["sources"] = [s for s in raw["sources"] if s["name"] == "en"]
    raw["targets"] = [t for t in raw["targets"] if t["name"] in (TELEGRAM, "x")]
    for target in raw["targets"]:
        if target["name"] == TELEGRAM:
            target.update(min_interval=PACING, timeout=1.0)
        else:
            target["with_image"] = False
    raw["dispatch"] = {
        "interval": 0.5,
        "lease": 10,
        "backoff_base": 10 * scale,
        "backoff_max": 3600 * scale,
        "circuit_cooldown_max": 300 * scale,
    }
    raw["http"] = {"enabled": False}
    return raw


async def run(
    mode: str = "5xx", outage: float = 8.0, articles: int = 6, scale: float | None = None
) -> dict[str, Any]:
    """Run one outage; `scale` defaults to outage/1800 (a 30-minute outage, compressed)."""
    scale = scale if scale is not None else outage / 1800
    site = SampleSite(backlog=1)
    tg_state = tg.State(per_chat_interval=PACING / 2)
    tg_state.valid_tokens.add(DEMO_TOKEN)
    tg_state.add_channel(CHAT)
    x_state = xs.State()
    x_state.allow(xs.Credentials(*DEMO_X.values()))
    servers = [
        LoopbackServer(site_app(site)),
        LoopbackServer(tg.create_app(tg_state)),
        LoopbackServer(xs.create_app(x_state)),
    ]
    for server in servers:
        await server.start()
    site.base_url = servers[0].url
    tmp = tempfile.mkdtemp(prefix="newsbot-outage-")
    config = validate(
        _config(servers[0].url, servers[1].url, servers[2].url, tmp, scale), environ=DEMO_ENV
    )
    service = Service(config)
    stop = asyncio.Event()
    runner: asyncio.Task[None] | None = None
    try:
        await service.run_once()  # first run: the backlog is recorded, not posted
        await service.close()
        service = Service(config)
        runner = asyncio.create_task(service.run(stop))
        # A running bot: one article goes out before the outage starts.
        await site.publish(make_sample("outage-warm-up", "Before the outage", lead="Calm."))
        while len(tg_state.in_chat(CHAT)) < 1 or len(x_state.live_posts()) < 1:
            await asyncio.sleep(0.05)
        started = time.time()
        tg_state.outage = tg.Outage(until=started + outage, **MODES[mode])
        published: list[tuple[str, float]] = []
        for i in range(articles):
            # Spread over the first quarter of the outage, so every post meets it.
            sample = make_sample(f"outage-{i:04d}", f"Outage story number {i}", lead=f"Lead {i}.")
            article = await site.publish(sample)
            published.append((f"{site.base_url}{article.path}", article.published.timestamp()))
            await asyncio.sleep(outage / 4 / articles)
        ended = started + outage
        deadline = ended + 300 * scale * 2 + 30
        while time.time() < deadline:
            done = articles + 1  # and the warm-up post
            if len(tg_state.in_chat(CHAT)) >= done and len(x_state.live_posts()) >= done:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # room for a duplicate to show up, if there were one
        rows = await service.store.recent_deliveries(1000)
    finally:
        stop.set()
        if runner is not None:
            await runner
        for server in servers:
            await server.stop()
    return _figures(mode, outage, scale, started, ended, published, tg_state, x_state, rows)


def _figures(
    mode: str,
    outage: float,
    scale: float,
    started: float,
    ended: float,
    published: list[tuple[str, float]],
    tg_state: tg.State,
    x_state: xs.State,
    rows: list[Any],
) -> dict[str, Any]:
    during = [r for r in tg_state.requests if started <= r["at"] < ended]
    # Only the articles published during the outage (not the warm-up post).
    posts = [p for p in tg_state.in_chat(CHAT) if _article_of(p, published)]
    order = [_article_of(p, published) for p in posts]
    stamp = dict(published)
    # The site stamps whole seconds: posts must go out in non-decreasing publication time.
    stamps = [stamp[url] for url in order if url]
    x_posts = [p for p in x_state.live_posts() if any(u in p["text"] for u, _ in published)]
    x_delay = [
        # The site stamps whole seconds: this is an upper bound on the delay.
        min(p["created_at"] for p in x_posts if url in p["text"]) - at
        for url, at in published
        if any(url in p["text"] for p in x_posts)
    ]
    times = sorted(p["recorded_at"] for p in posts)
    # Pacing shows in when the posts were asked for (arrival), not when they were recorded.
    asked = [
        r["at"]
        for r in tg_state.requests
        if r["at"] >= ended and r["method"] in ("sendMessage", "sendPhoto")
    ]
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    urls = {url for url, _ in published}
    tg_rows = [r for r in rows if r.target == TELEGRAM and r.post.article_url in urls]
    return {
        "mode": mode,
        "outage_s": round(outage, 2),
        "represents_s": round(outage / scale),
        "articles": len(published),
        "calls_during_outage": len(during),
        "posts_tried_during_outage": sum(
            r["method"] in ("sendMessage", "sendPhoto") for r in during
        ),
        "health_checks_during_outage": sum(r["method"] == "getMe" for r in during),
        "telegram_posts": len(posts),
        "telegram_duplicates": len(order) - len(set(order)),
        "telegram_in_publication_order": stamps == sorted(stamps),
        "telegram_sent": sum(r.status == DeliveryStatus.SENT for r in tg_rows),
        "telegram_uncertain": sum(r.status == DeliveryStatus.UNCERTAIN for r in tg_rows),
        "telegram_lost": len(published)
        - sum(r.status in (DeliveryStatus.SENT, DeliveryStatus.UNCERTAIN) for r in tg_rows),
        "backlog_done_after_outage_s": round(max(times) - ended, 2) if times else None,
        "min_gap_between_posts_s": round(min(gaps), 3) if gaps else None,
        "mean_gap_between_posts_s": round(sum(gaps) / len(gaps), 3) if gaps else None,
        "pacing_s": PACING,
        "x_posts": len(x_posts),
        "x_max_delay_s": round(max(x_delay), 2) if x_delay else None,
        "x_done_before_outage_ended": bool(x_posts)
        and max(p["created_at"] for p in x_posts) < ended,
    }


def _article_of(post: dict[str, Any], published: list[tuple[str, float]]) -> str | None:
    text = json.dumps(post, ensure_ascii=False)
    # Slugs are zero-padded, so no article URL is a prefix of another.
    return next((url for url, _ in published if url in text), None)


def table_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    f = figures
    return [
        (
            f"Telegram {f['mode']} outage",
            f"{f['outage_s']:g} s (standing for {f['represents_s']} s)",
        ),
        ("articles published during it", str(f["articles"])),
        (
            "calls to the broken platform while down",
            f"{f['calls_during_outage']} ({f['posts_tried_during_outage']} post attempts, "
            f"{f['health_checks_during_outage']} health checks)",
        ),
        (
            "backlog delivered afterwards",
            f"{f['telegram_posts']} posts, {f['telegram_uncertain']} flagged uncertain, "
            f"{f['telegram_duplicates']} duplicates, {f['telegram_lost']} lost; in publication "
            f"order: {'yes' if f['telegram_in_publication_order'] else 'NO'}; last post "
            f"{f['backlog_done_after_outage_s']} s after the outage",
        ),
        (
            "closest posts during the catch-up",
            f"{f['min_gap_between_posts_s']} s apart, {f['mean_gap_between_posts_s']} s on "
            f"average (pacing {PACING} s)",
        ),
        (
            "X meanwhile",
            f"{f['x_posts']} posts, slowest at most {f['x_max_delay_s']} s after publication "
            "(the site stamps whole seconds), all before "
            f"the Telegram outage ended: {'yes' if f['x_done_before_outage_ended'] else 'NO'}",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m reliability.outage")
    parser.add_argument("--mode", choices=sorted(MODES), default="5xx")
    parser.add_argument("--outage", type=float, default=8.0, help="seconds the platform is down")
    parser.add_argument("--articles", type=int, default=6)
    parser.add_argument("--scale", type=float, default=None, help="1 = real time")
    args = parser.parse_args()
    figures = asyncio.run(run(args.mode, args.outage, args.articles, args.scale))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
