"""`newsbot demo`: the whole job on an embedded default, with no accounts.

Serves the bundled sample news site and the platform stand-ins on 127.0.0.1, runs the real
bot against them, publishes a sample article every few seconds (announced through the push
endpoint, as a CMS would), and prints each post as the stand-in received it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import httpx

from bot.config import validate
from bot.demo.desk import DemoDesk
from bot.demo.site import SampleSite, run_publisher
from bot.demo.site import create_app as create_site_app
from bot.httpserver import LoopbackServer
from bot.service import Service
from bot.store import DeliveryStatus
from standins import bluesky as bluesky_standin
from standins import graph as graph_standin
from standins import mastodon as mastodon_standin
from standins import telegram as telegram_standin
from standins import threads as threads_standin
from standins import x as x_standin

DEMO_TOKEN = "100000001:DEMO-token-for-the-local-stand-in"
DEMO_META_TOKEN = "demo-graph-api-page-token"
DEMO_PUSH_TOKEN = "demo-cms-push-token"
DEMO_PAGE_ID = "1000001"
DEMO_IG_USER = "17841400000000001"
DEMO_BLUESKY_HANDLE = "sampletimes.bsky.social"
DEMO_BLUESKY_PASSWORD = "demo-appp-assw-ord0"
DEMO_MASTODON_TOKEN = "demo-mastodon-app-token"
DEMO_THREADS_TOKEN = "demo-threads-user-token"
DEMO_THREADS_USER = "27000000000000001"
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
    "DEMO_BLUESKY_APP_PASSWORD": DEMO_BLUESKY_PASSWORD,
    "DEMO_MASTODON_TOKEN": DEMO_MASTODON_TOKEN,
    "DEMO_THREADS_TOKEN": DEMO_THREADS_TOKEN,
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
    bluesky_url: str | None = None,
    mastodon_url: str | None = None,
    threads_url: str | None = None,
) -> dict[str, Any]:
    """The embedded default configuration (the same shape as config/newsbot.example.yaml).
    Bluesky, Mastodon and Threads targets are there when their stand-in's URL is given."""
    new_urls = {"bluesky": bluesky_url, "mastodon": mastodon_url, "threads": threads_url}
    config = {
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
            {
                # Bluesky and Mastodon posts carry their language: every edition goes there.
                "name": "bluesky",
                "platform": "bluesky",
                "api_base": bluesky_url,
                "identifier": DEMO_BLUESKY_HANDLE,
                "app_password": {"env": "DEMO_BLUESKY_APP_PASSWORD"},
            },
            {
                "name": "mastodon",
                "platform": "mastodon",
                "api_base": mastodon_url,
                "access_token": {"env": "DEMO_MASTODON_TOKEN"},
                "media_poll_interval": 0.2,
            },
            {
                "name": "threads",
                "platform": "threads",
                "api_base": threads_url,
                "user_id": DEMO_THREADS_USER,
                "access_token": {"env": "DEMO_THREADS_TOKEN"},
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
    config["targets"] = [t for t in config["targets"] if new_urls.get(t["name"], "") is not None]
    return config


@dataclass(frozen=True)
class ShownPost:
    """One post as a platform stand-in received it, ready to print."""

    where: str
    text: str
    note: str = ""  # "[photo]", "[link card]", ...
    links: tuple[tuple[str, str], ...] = ()  # (label, target URL) of each hyperlink
    sent_at: float | None = None  # when the platform took it (time.time())


@dataclass(frozen=True)
class PlatformView:
    """How the demo reads one platform's stand-in: its received posts, and how to show one.
    A platform added to the demo is one more row of `platform_views`."""

    name: str
    records: Callable[[], list[dict[str, Any]]]
    show: Callable[[dict[str, Any]], ShownPost]


def _utf16_slice(text: str, offset: int, length: int) -> str:
    # Telegram's entity offsets count UTF-16 code units.
    raw = text.encode("utf-16-le")
    return raw[2 * offset : 2 * (offset + length)].decode("utf-16-le", errors="replace")


def telegram_post(message: dict[str, Any]) -> ShownPost:
    text = message.get("text") or message.get("caption") or ""
    entities = message.get("entities") or message.get("caption_entities") or []
    links = tuple(
        (_utf16_slice(text, e["offset"], e["length"]), e["url"])
        for e in entities
        if e.get("type") == "text_link"
    )
    where = str(message.get("chat_id"))
    if message.get("message_thread_id"):
        where += f" topic {message['message_thread_id']}"
    note = "[photo]" if message.get("photo") else ""
    return ShownPost(where, text, note, links, message.get("recorded_at"))


def x_post(post: dict[str, Any]) -> ShownPost:
    media = f"[{len(post['media_ids'])} image]" if post["media_ids"] else ""
    where = f"({post['weighted_length']}/280)"
    return ShownPost(where, post["text"], media, (), post.get("created_at"))


def facebook_post(post: dict[str, Any]) -> ShownPost:
    if post.get("link"):
        return ShownPost(
            "page", post["message"], "[link card]", (("card", post["link"]),), post.get("created")
        )
    return ShownPost("page", post["message"], "[photo]", (), post.get("created"))


def instagram_post(item: dict[str, Any]) -> ShownPost:
    card = "[generated card]" if "/cards/" in item["image_url"] else "[article photo]"
    return ShownPost("", item["caption"], card, (), item.get("created"))


def _epoch(iso: object) -> float | None:
    try:
        return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def bluesky_post(post: dict[str, Any]) -> ShownPost:
    record = post["record"]
    raw = record["text"].encode("utf-8")
    links = tuple(
        # Facet offsets are UTF-8 byte offsets: the label is the bytes they span.
        (raw[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode("utf-8", "replace"), x["uri"])
        for f in record.get("facets") or []
        for x in f["features"]
        if x.get("$type") == "app.bsky.richtext.facet#link"
    )
    external = (record.get("embed") or {}).get("external") or {}
    note = ""
    if external:
        note = "[link card with thumbnail]" if external.get("thumb") else "[link card]"
    where = f"langs={','.join(record.get('langs') or [])}"
    return ShownPost(where, record["text"], note, links, _epoch(record.get("createdAt")))


def mastodon_post(status: dict[str, Any]) -> ShownPost:
    # Mastodon links each URL in the text and builds the link card from it.
    links = tuple(("link card", url) for url in mastodon_standin._URL.findall(status["text"]))
    note = f"[{len(status['media_ids'])} image]" if status["media_ids"] else ""
    where = f"lang={status.get('language') or '-'}"
    return ShownPost(where, status["text"], note, links, _epoch(status.get("created_at")))


def threads_post(post: dict[str, Any]) -> ShownPost:
    link = post.get("link_attachment")
    links = (("link attachment", link),) if link else ()
    note = "[image]" if post.get("media_type") == "IMAGE" else ""
    return ShownPost("", post["text"], note, links)


def platform_views(
    telegram: telegram_standin.State,
    x: x_standin.State,
    graph: graph_standin.State,
    bluesky: bluesky_standin.State,
    mastodon: mastodon_standin.State,
    threads: threads_standin.State,
) -> list[PlatformView]:
    return [
        PlatformView("Telegram", lambda: telegram.messages, telegram_post),
        PlatformView("X", lambda: x.posts, x_post),
        PlatformView("Facebook", lambda: list(graph.posts.values()), facebook_post),
        PlatformView("Instagram", lambda: list(graph.media.values()), instagram_post),
        PlatformView("Bluesky", lambda: bluesky.posts, bluesky_post),
        PlatformView("Mastodon", lambda: list(mastodon.statuses.values()), mastodon_post),
        PlatformView("Threads", lambda: list(threads.posts.values()), threads_post),
    ]


def print_post(out: TextIO, platform: str, post: ShownPost, latency: float | None) -> None:
    width = 72
    after = f" · {latency:.1f} s after publication" if latency is not None else ""
    header = " ".join(part for part in (platform, post.where, post.note) if part)
    out.write(f"\n┌─ {header}{after}\n")
    for paragraph in post.text.splitlines() or [""]:
        # Links stay whole, so they can be read (and clicked in a terminal).
        wrapped = textwrap.wrap(paragraph, width, break_long_words=False, break_on_hyphens=False)
        for line in wrapped or [""]:
            out.write(f"│ {line}\n")
    for label, url in post.links:
        out.write(f"│ 🔗 {label} → {url}\n")
    out.write("└" + "─" * 40 + "\n")
    out.flush()


class PostPrinter:
    """Prints each new post a stand-in recorded, once, with the time from the article's
    publication; keeps each platform's latencies for the summary."""

    def __init__(self, out: TextIO, views: list[PlatformView]) -> None:
        self.out = out
        self.views = views
        self.seen = dict.fromkeys((v.name for v in views), 0)
        self.latencies: dict[str, list[float]] = {v.name: [] for v in views}
        self.published_at: dict[str, float] = {}  # article path -> when it was published
        self.posted: set[str] = set()  # article paths seen in at least one post

    def published(self, url: str, number: int, total: int) -> None:
        self.published_at[urlsplit(url).path] = time.time()
        self.out.write(f"\n── published {number} of {total}: {url}\n")
        self.out.flush()

    def _latency(self, record: dict[str, Any], post: ShownPost) -> float | None:
        blob = json.dumps(record, ensure_ascii=False, default=str)
        # The longest matching path: one slug may begin with another.
        paths = [p for p in self.published_at if p in blob]
        if not paths:
            return None
        path = max(paths, key=len)
        self.posted.add(path)
        when = post.sent_at if post.sent_at is not None else time.time()
        return max(0.0, when - self.published_at[path])

    def poll(self) -> int:
        printed = 0
        for view in self.views:
            records = view.records()
            for record in records[self.seen[view.name] :]:
                post = view.show(record)
                latency = self._latency(record, post)
                if latency is not None:
                    self.latencies[view.name].append(latency)
                print_post(self.out, view.name, post, latency)
                printed += 1
            self.seen[view.name] = len(records)
        return printed

    def summary(self) -> str:
        lines = ["", "Summary (time from publication to posted):"]
        for view in self.views:
            times = self.latencies[view.name]
            timing = (
                f", median {statistics.median(times):.1f} s, max {max(times):.1f} s"
                if times
                else ""
            )
            lines.append(f"  {view.name:<10} {self.seen[view.name]:>3} posts{timing}")
        return "\n".join(lines) + "\n"


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
    bluesky_state = bluesky_standin.State()
    bluesky_state.add_account(DEMO_BLUESKY_HANDLE, DEMO_BLUESKY_PASSWORD)
    mastodon_state = mastodon_standin.State(tokens={DEMO_MASTODON_TOKEN})
    threads_state = threads_standin.State(tokens={DEMO_THREADS_TOKEN}, user_id=DEMO_THREADS_USER)
    new_servers = [
        LoopbackServer(bluesky_standin.create_app(bluesky_state)),
        LoopbackServer(mastodon_standin.create_app(mastodon_state)),
        LoopbackServer(threads_standin.create_app(threads_state)),
    ]
    for server in new_servers:
        await server.start()
    bluesky_server, mastodon_server, threads_server = new_servers
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
        bluesky_url=bluesky_server.url,
        mastodon_url=mastodon_server.url,
        threads_url=threads_server.url,
    )
    desk = DemoDesk()
    environ = dict(DEMO_ENV)
    desk.configure(raw, environ)
    config = validate(raw, "demo config", environ=environ)
    service = Service(config)
    stop = asyncio.Event()
    bot_task = asyncio.create_task(service.run(stop))
    printer = PostPrinter(
        out,
        platform_views(
            tg_state, x_state, graph_state, bluesky_state, mastodon_state, threads_state
        ),
    )
    total = len(site.queue)
    backlog = len(site.published)
    out.write(
        f"newsbot demo\n  sample site:     {site_server.url}/\n"
        f"  Telegram stand-in: {tg_server.url}\n  X stand-in:      {x_server.url}\n"
        f"  Graph API stand-in (Facebook, Instagram): {graph_server.url}\n"
        f"  Bluesky PDS stand-in: {bluesky_server.url}\n"
        f"  Mastodon stand-in: {mastodon_server.url}\n"
        f"  Threads stand-in: {threads_server.url}\n"
        f"  state database:  {db_path}\n"
        f"The site already lists {len(site.published)} articles: the first poll records them "
        "without posting.\nA new article is published every "
        f"{every:g}s and pushed to the bot ({total} in all). Ctrl-C stops.\n"
    )
    out.flush()
    try:
        while service.web_server is None:
            if bot_task.done():
                bot_task.result()
            await asyncio.sleep(0.05)
        push_url = f"{service.web_server.url}/push"
        out.write(await desk.open(service))
        out.flush()
        # Let the first poll record the backlog before anything new is published.
        await asyncio.sleep(1.5)

        async with httpx.AsyncClient(timeout=5) as client:

            async def push(url: str) -> None:
                printer.published(url, len(site.published) - backlog, total)
                await client.post(
                    push_url,
                    json={"url": url},
                    headers={"Authorization": f"Bearer {DEMO_PUSH_TOKEN}"},
                )

            site.on_publish.append(push)
            publisher_stop = asyncio.Event()
            publisher = asyncio.create_task(run_publisher(site, every, publisher_stop))
            completed = False
            while not stop.is_set():
                printer.poll()
                if until is not None and until():
                    break
                if not forever and publisher.done() and not await _work_left(service):
                    completed = True
                    break
                if bot_task.done():
                    bot_task.result()
                await asyncio.sleep(0.2)
            publisher_stop.set()
            printer.poll()
    finally:
        stop.set()
        await asyncio.wait_for(bot_task, timeout=15)
        await site_server.stop()
        await tg_server.stop()
        await x_server.stop()
        await graph_server.stop()
        for server in new_servers:
            await server.stop()
        tmp.cleanup()
    out.write(printer.summary())
    posts = ", ".join(f"{v.name} {printer.seen[v.name]}" for v in printer.views)
    published = len(printer.published_at)
    out.write(f"Done: {published} of {total} articles published; posts: {posts}.\n")
    unposted = sorted(set(printer.published_at) - printer.posted)
    if completed and unposted:
        # The demo doubles as an install check (CI): an article nobody posted is a failure.
        out.write(f"Not posted anywhere: {', '.join(unposted)}\n")
        return 1
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
