"""`newsbot demo`: the whole job on an embedded default, with no accounts.

Serves the bundled sample news site and the platform stand-ins on 127.0.0.1, runs the real
bot against them, publishes a sample article every few seconds (announced through the push
endpoint, as a CMS would), and prints each post as the stand-in received it.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import httpx

from bot.config import validate
from bot.demo.site import SampleSite, run_publisher
from bot.demo.site import create_app as create_site_app
from bot.httpserver import LoopbackServer
from bot.service import Service
from bot.store import DeliveryStatus
from standins import graph as graph_standin
from standins import telegram as telegram_standin
from standins import x as x_standin

DEMO_TOKEN = "100000001:DEMO-token-for-the-local-stand-in"
DEMO_META_TOKEN = "demo-graph-api-page-token"
DEMO_PUSH_TOKEN = "demo-cms-push-token"
DEMO_PAGE_ID = "1000001"
DEMO_IG_USER = "17841400000000001"
# Fake X credentials: the X stand-in checks OAuth 1.0a signatures made with them.
DEMO_X = {
    "DEMO_X_KEY": "demo-consumer-key",
    "DEMO_X_SECRET": "demo-consumer-secret",
    "DEMO_X_TOKEN": "demo-access-token",
    "DEMO_X_TOKEN_SECRET": "demo-access-token-secret",
}
#: The environment the demo configuration reads its (stand-in) secrets from.
DEMO_ENV = {
    "DEMO_TELEGRAM_TOKEN": DEMO_TOKEN,
    "DEMO_META_TOKEN": DEMO_META_TOKEN,
    "DEMO_PUSH_TOKEN": DEMO_PUSH_TOKEN,
    **DEMO_X,
}
CHANNELS = {"en": "@sample_times_en", "ru": "@sample_times_ru", "az": "@sample_times_az"}


def demo_config(
    site_url: str,
    telegram_url: str,
    x_url: str,
    graph_url: str,
    db_url: str,
    poll_every: float,
    http_port: int,
    cards_dir: str,
) -> dict[str, Any]:
    """The embedded default configuration (the same shape as config/newsbot.example.yaml)."""
    return {
        "outlet": {"name": "Sample Times", "url": site_url},
        "database": db_url,
        "sources": [
            {
                "name": lang,
                "url": f"{site_url}/{lang}/rss.xml",
                "interval": poll_every,
                "language": lang,
            }
            for lang in CHANNELS
        ],
        "targets": [
            {
                "name": f"telegram-{lang}",
                "platform": "telegram",
                "api_base": telegram_url,
                "token": {"env": "DEMO_TELEGRAM_TOKEN"},
                "chat_id": chat,
                "languages": [lang],
                "min_interval": 1.0,
            }
            for lang, chat in CHANNELS.items()
        ]
        + [
            {
                "name": "x",
                "platform": "x",
                "api_base": x_url,
                "upload_base": x_url,
                "api_key": {"env": "DEMO_X_KEY"},
                "api_secret": {"env": "DEMO_X_SECRET"},
                "access_token": {"env": "DEMO_X_TOKEN"},
                "access_token_secret": {"env": "DEMO_X_TOKEN_SECRET"},
                "languages": ["en"],
            },
            {
                "name": "facebook",
                "platform": "facebook",
                "api_base": graph_url,
                "page_id": DEMO_PAGE_ID,
                "page_access_token": {"env": "DEMO_META_TOKEN"},
            },
            {
                "name": "instagram",
                "platform": "instagram",
                "api_base": graph_url,
                "ig_user_id": DEMO_IG_USER,
                "access_token": {"env": "DEMO_META_TOKEN"},
                "public_base_url": f"http://127.0.0.1:{http_port}",
                "card_dir": cards_dir,
                "poll_interval": 0.2,
                "languages": ["en"],
            },
        ],
        "dispatch": {"interval": 1},
        "http": {
            "host": "127.0.0.1",
            "port": http_port,
            "cards_dir": cards_dir,
            "push_token": {"env": "DEMO_PUSH_TOKEN"},
        },
    }


def print_post(out: TextIO, platform: str, where: str, text: str, extra: str = "") -> None:
    width = 72
    out.write(f"\n┌─ {platform} {where} {extra}".rstrip() + "\n")
    for paragraph in text.splitlines() or [""]:
        for line in textwrap.wrap(paragraph, width) or [""]:
            out.write(f"│ {line}\n")
    out.write("└" + "─" * 40 + "\n")
    out.flush()


class PostPrinter:
    """Prints each new message a stand-in recorded, once."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.seen = 0
        self.seen_x = 0
        self.seen_fb = 0
        self.seen_ig = 0

    def x(self, state: x_standin.State) -> int:
        new = state.posts[self.seen_x :]
        for post in new:
            media = f"[{len(post['media_ids'])} image]" if post["media_ids"] else ""
            print_post(self.out, "X", f"({post['weighted_length']}/280)", post["text"], media)
        self.seen_x += len(new)
        return len(new)

    def meta(self, state: graph_standin.State) -> None:
        posts = list(state.posts.values())
        for post in posts[self.seen_fb :]:
            link = f"[link card: {post['link']}]" if post.get("link") else "[photo]"
            print_post(self.out, "Facebook", "page", post["message"], link)
        self.seen_fb = len(posts)
        media = list(state.media.values())
        for item in media[self.seen_ig :]:
            card = "[generated card]" if "/cards/" in item["image_url"] else "[article photo]"
            print_post(self.out, "Instagram", "", item["caption"], card)
        self.seen_ig = len(media)

    def telegram(self, state: telegram_standin.State) -> int:
        new = state.messages[self.seen :]
        for message in new:
            photo = "[photo]" if message.get("photo") else ""
            print_post(
                self.out,
                "Telegram",
                str(message.get("chat_id")),
                message.get("text") or message.get("caption") or "",
                photo,
            )
        self.seen += len(new)
        return len(new)


async def run_demo(
    every: float = 4.0,
    forever: bool = False,
    db: str | None = None,
    out: TextIO = sys.stdout,
    until: Callable[[], bool] | None = None,
) -> int:
    tmp = tempfile.TemporaryDirectory(prefix="newsbot-demo-")
    db_path = Path(db) if db else Path(tmp.name) / "demo.db"
    site = SampleSite()
    tg_state = telegram_standin.State()
    tg_state.valid_tokens.add(DEMO_TOKEN)
    tg_state.per_chat_interval = 1.0
    for chat in CHANNELS.values():
        tg_state.add_channel(chat)
    site_server = LoopbackServer(create_site_app(site))
    tg_server = LoopbackServer(telegram_standin.create_app(tg_state))
    x_state = x_standin.State()
    x_state.allow(x_standin.Credentials(*DEMO_X.values()))
    x_server = LoopbackServer(x_standin.create_app(x_state))
    await x_server.start()
    graph_state = graph_standin.State(page_id=DEMO_PAGE_ID, ig_user_id=DEMO_IG_USER)
    graph_state.tokens.add(DEMO_META_TOKEN)
    graph_server = LoopbackServer(graph_standin.create_app(graph_state))
    await graph_server.start()
    await site_server.start()
    await tg_server.start()
    site.base_url = site_server.url
    raw = demo_config(
        site_server.url,
        tg_server.url,
        x_server.url,
        graph_server.url,
        f"sqlite:///{db_path}",
        poll_every=30,
        http_port=_free_port(),
        cards_dir=str(Path(tmp.name) / "cards"),
    )
    config = validate(raw, "demo config", environ=DEMO_ENV)
    service = Service(config)
    stop = asyncio.Event()
    bot_task = asyncio.create_task(service.run(stop))
    printer = PostPrinter(out)
    out.write(
        f"newsbot demo\n  sample site:     {site_server.url}/\n"
        f"  Telegram stand-in: {tg_server.url}\n  X stand-in:      {x_server.url}\n"
        f"  Graph API stand-in (Facebook, Instagram): {graph_server.url}\n"
        f"  state database:  {db_path}\n"
        f"The site already lists {len(site.published)} articles: the first poll records them "
        "without posting.\nA new article is published every "
        f"{every:g}s and pushed to the bot. Ctrl-C stops.\n"
    )
    out.flush()
    try:
        while service.web_server is None:
            if bot_task.done():
                bot_task.result()
            await asyncio.sleep(0.05)
        push_url = f"{service.web_server.url}/push"
        # Let the first poll record the backlog before anything new is published.
        await asyncio.sleep(1.5)

        async with httpx.AsyncClient(timeout=5) as client:

            async def push(url: str) -> None:
                await client.post(
                    push_url,
                    json={"url": url},
                    headers={"Authorization": f"Bearer {DEMO_PUSH_TOKEN}"},
                )

            site.on_publish.append(push)
            publisher_stop = asyncio.Event()
            publisher = asyncio.create_task(run_publisher(site, every, publisher_stop))
            while not stop.is_set():
                printer.telegram(tg_state)
                printer.x(x_state)
                printer.meta(graph_state)
                if until is not None and until():
                    break
                if not forever and publisher.done() and not await _work_left(service):
                    break
                if bot_task.done():
                    bot_task.result()
                await asyncio.sleep(0.2)
            publisher_stop.set()
            printer.telegram(tg_state)
            printer.x(x_state)
            printer.meta(graph_state)
    finally:
        stop.set()
        await asyncio.wait_for(bot_task, timeout=15)
        await site_server.stop()
        await tg_server.stop()
        await x_server.stop()
        await graph_server.stop()
        tmp.cleanup()
    out.write(
        f"\nDone: {printer.seen} posts delivered to the Telegram stand-in, "
        f"{printer.seen_x} to the X stand-in, {printer.seen_fb} to Facebook and "
        f"{printer.seen_ig} to Instagram (Graph API stand-in).\n"
    )
    return 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _work_left(service: Service) -> bool:
    if service.busy():
        return True
    counts = await service.store.counts()
    return any(
        row.get(DeliveryStatus.PENDING) or row.get(DeliveryStatus.SENDING)
        for row in counts.values()
    )
