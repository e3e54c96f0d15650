"""The update pipeline against a small site served on loopback: identity, first run, 304s,
bad sources. The Telegram side is covered by the end-to-end tests."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.base import Adapter
from bot import sources
from bot.config import validate
from bot.httpserver import serve
from bot.models import Article, PostLength, RenderedPost, SentPost
from bot.netguard import BlockedURL, Checker
from bot.pipeline import Pipeline
from bot.sources import INCREMENTAL_ITEMS
from bot.store import Store
from bot.targets import Outlet, TargetSettings


@dataclass
class Item:
    slug: str
    title: str
    guid: str
    date: str = "Thu, 04 Sep 2025 13:40:00 +0000"


@dataclass
class MiniSite:
    items: list[Item] = field(default_factory=list)
    feed_status: int = 200
    feed_body: bytes | None = None
    hits: dict[str, int] = field(default_factory=dict)
    not_modified: int = 0
    send_etag: bool = True

    def rss(self, base: str) -> bytes:
        entries = "".join(
            f"<item><title>{i.title}</title><link>{base}/news/{i.slug}?utm_source=rss</link>"
            f"<guid isPermaLink='false'>{i.guid}</guid><pubDate>{i.date}</pubDate></item>"
            for i in self.items
        )
        return (
            f"<?xml version='1.0'?><rss version='2.0'><channel><title>Mini</title>"
            f"<link>{base}/</link>{entries}</channel></rss>"
        ).encode()


def page(base: str, slug: str, title: str) -> str:
    return f"""<!doctype html><html lang="en"><head><title>{title} - Mini</title>
<link rel="canonical" href="{base}/news/{slug}">
<meta property="og:title" content="{title}">
<meta property="og:description" content="Lead of {slug}.">
</head><body><article><h1>{title}</h1><p>Lead of {slug}.</p>
<p>Body text of the article {slug} goes on for a while to look like news.</p></article>
</body></html>"""


def make_app(site: MiniSite) -> Starlette:
    async def feed(request: Request) -> Response:
        site.hits["feed"] = site.hits.get("feed", 0) + 1
        if site.feed_status != 200:
            return Response("oops", status_code=site.feed_status)
        base = str(request.base_url).rstrip("/")
        body = site.feed_body if site.feed_body is not None else site.rss(base)
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if not site.send_etag:
            return Response(body, media_type="application/rss+xml")
        if request.headers.get("if-none-match") == etag:
            site.not_modified += 1
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="application/rss+xml", headers={"ETag": etag})

    async def article(request: Request) -> Response:
        slug = request.path_params["slug"]
        site.hits[slug] = site.hits.get(slug, 0) + 1
        base = str(request.base_url).rstrip("/")
        title = next((i.title for i in site.items if i.slug == slug), slug)
        return Response(page(base, slug, title), media_type="text/html")

    return Starlette(
        routes=[
            Route("/rss.xml", feed),
            Route("/news/{slug}", article),
            Route("/amp/news/{slug}", article),
        ]
    )


class RecordingAdapter(Adapter):
    """Renders a plain post with the link; these tests only look at the outbox."""

    platform: ClassVar[str] = "recording"

    def render(self, article: Article) -> RenderedPost:
        return RenderedPost(self.name, "recording", article.url, f"{article.title} {article.url}")

    def measure(self, post: RenderedPost) -> PostLength:
        return PostLength(len(post.text), 10_000)

    async def send(self, post: RenderedPost, *, idempotency_key: str | None = None) -> SentPost:
        raise AssertionError("not used")


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    site = MiniSite(
        items=[Item("old-1", "Old one", "g-old-1"), Item("old-2", "Old two", "g-old-2")]
    )
    async with serve(make_app(site)) as server:
        raw = {
            "database": f"sqlite:///{tmp_path}/s.db",
            "sources": [{"name": "mini", "url": f"{server.url}/rss.xml", "language": "en"}],
            "targets": [
                {"name": "tg", "platform": "telegram", "token": {"env": "T"}, "chat_id": "@chan_c"}
            ],
        }
        config = validate(raw, environ={"T": "1:abcdef"})
        store = Store(config.file.database)
        await store.init()
        settings = TargetSettings(name="tg", platform="recording", api_base="http://127.0.0.1:9")
        adapters = {"tg": RecordingAdapter(settings, {}, Outlet())}
        async with httpx.AsyncClient(follow_redirects=True) as client:
            pipeline = Pipeline(config, store, client, adapters)
            yield {
                "site": site,
                "url": server.url,
                "pipeline": pipeline,
                "store": store,
                "source": config.sources[0],
            }
        await store.close()


async def deliveries(store: Store) -> int:
    counts = await store.counts()
    return sum(counts.get("tg", {}).values())


async def test_first_run_records_backlog_then_new_article_is_queued_once(env: dict) -> None:
    site, pipeline, store, source = env["site"], env["pipeline"], env["store"], env["source"]
    report = await pipeline.poll(source)
    assert (report.outcome, report.recorded, report.new) == ("ok", 2, 0)
    assert await deliveries(store) == 0
    assert "old-1" not in site.hits  # the backlog is recorded without fetching pages

    site.items.insert(0, Item("fresh", "Fresh news", "g-fresh"))
    report = await pipeline.poll(source)
    assert report.new == 1 and await deliveries(store) == 1

    # Same feed again: a 304, nothing parsed, nothing queued.
    report = await pipeline.poll(source)
    assert report.outcome == "not-modified" and site.not_modified == 1
    assert await deliveries(store) == 1


async def test_same_body_without_validators_is_not_parsed_again(env: dict) -> None:
    """A feed with no ETag or Last-Modified: the same bytes again cost no parsing and no
    database work; a changed body is read in full (issue 18)."""
    site, pipeline, store, source = env["site"], env["pipeline"], env["store"], env["source"]
    site.send_etag = False
    report = await pipeline.poll(source)
    assert (report.outcome, report.recorded) == ("ok", 2)
    assert await store.count_articles() == 2  # the backlog, stored in one transaction
    found = await store.articles_by_key([f"guid:mini:g-old-{n}" for n in (1, 2)])
    assert {stored.article.title for stored in found.values()} == {"Old one", "Old two"}

    report = await pipeline.poll(source)
    assert (report.outcome, report.entries, report.recorded) == ("unchanged", 0, 0)

    site.items.insert(0, Item("fresh", "Fresh news", "g-fresh"))
    report = await pipeline.poll(source)
    assert (report.outcome, report.entries, report.new) == ("ok", 3, 1)
    assert await deliveries(store) == 1 and await store.count_articles() == 3
    report = await pipeline.poll(source)
    assert report.outcome == "unchanged" and await deliveries(store) == 1


async def test_a_body_with_a_failed_entry_is_read_again(env: dict) -> None:
    """An entry whose page is awaited (or that failed) keeps its feed from counting as
    unchanged: the next poll reads it again."""
    site, pipeline, source = env["site"], env["pipeline"], env["source"]
    site.send_etag = False
    await pipeline.poll(source)
    site.items.insert(0, Item("fresh", "Fresh news", "g-fresh"))
    pipeline.guard.checker = lambda policy: RefusingPages(pipeline.guard, policy)
    report = await pipeline.poll(source)
    assert report.outcome == "ok" and report.new == 0
    report = await pipeline.poll(source)
    assert report.outcome == "ok" and report.entries == 3


class RefusingPages(Checker):
    """The SSRF guard refusing every article page (the feed itself passes)."""

    async def __call__(self, url: str) -> None:
        if "/news/" in url:
            raise BlockedURL("refused by the test")
        await super().__call__(url)


async def test_reordered_repeated_and_changed_guid_entries_are_not_new(env: dict) -> None:
    site, pipeline, store, source = env["site"], env["pipeline"], env["store"], env["source"]
    await pipeline.poll(source)
    site.items.insert(0, Item("fresh", "Fresh news", "g-fresh"))
    await pipeline.poll(source)
    # Reorder, repeat, and change the GUID of the fresh item.
    site.items = [
        site.items[2],
        Item("fresh", "Fresh news", "g-fresh-v2"),
        site.items[1],
        site.items[1],
    ]
    report = await pipeline.poll(source)
    assert report.new == 0
    assert await deliveries(store) == 1


async def test_updated_title_is_an_update_not_a_new_post(env: dict) -> None:
    site, pipeline, store, source = env["site"], env["pipeline"], env["store"], env["source"]
    await pipeline.poll(source)
    site.items.insert(0, Item("fresh", "Fresh news", "g-fresh"))
    await pipeline.poll(source)
    site.items[0] = Item(
        "fresh", "Fresh news (updated)", "g-fresh", "Thu, 04 Sep 2025 15:00:00 +0000"
    )
    report = await pipeline.poll(source)
    assert report.updated == 1 and report.new == 0
    assert await deliveries(store) == 1
    events = await store.recent_events()
    assert any(e["kind"] == "article-updated" for e in events)


async def test_same_article_under_another_url_is_an_alias(env: dict) -> None:
    site, pipeline, store, source = env["site"], env["pipeline"], env["store"], env["source"]
    await pipeline.poll(source)
    site.items.insert(0, Item("fresh", "Fresh news", "g-fresh"))
    await pipeline.poll(source)
    result = await pipeline.ingest_url(f"{env['url']}/amp/news/fresh")
    assert result.kind == "alias"
    result = await pipeline.ingest_url(f"{env['url']}/news/fresh/?utm_campaign=x#top")
    assert result.kind == "known"
    assert await deliveries(store) == 1


async def test_pushed_url_is_queued_without_a_poll(env: dict) -> None:
    pipeline, store = env["pipeline"], env["store"]
    result = await pipeline.ingest_url(f"{env['url']}/news/pushed")
    assert result.kind == "new" and len(result.deliveries) == 1
    stored = await store.find_article(
        [f"url:{env['url'].replace('http://', 'https://')}/news/pushed"]
    )
    assert stored is not None and stored.article.lead.startswith("Lead of pushed")


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, None, "HTTP 500"),
        (200, b"<rss><channel><item><title>cut off", "malformed feed"),
        (200, b"<!doctype html><html><body>login</body></html>", "HTML page"),
    ],
)
async def test_broken_feed_is_reported_and_keeps_its_state(
    env: dict, status: int, body: bytes | None, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    site, pipeline, store, source = env["site"], env["pipeline"], env["store"], env["source"]
    await pipeline.poll(source)
    site.feed_status, site.feed_body = status, body
    report = await pipeline.poll(source)
    assert report.outcome == "error" and error in (report.error or "")
    assert error in caplog.text
    state = await store.source_state("mini")
    assert state.initialized and state.failures == 1
    # Recovery: the next good poll works normally.
    site.feed_status, site.feed_body = 200, None
    site.items.insert(0, Item("after", "After the outage", "g-after"))
    report = await pipeline.poll(source)
    assert report.outcome == "ok" and report.new == 1


async def test_state_saved_with_records_is_all_or_nothing(env: dict) -> None:
    """A poll's recorded articles, events and state go in one transaction: when one article
    is already stored (a concurrent writer), nothing of it is saved and the caller is told."""
    store = env["store"]
    first = Article(url="https://mini.example/a", title="A", source="mini")
    second = Article(url="https://mini.example/b", title="B", source="mini")
    state = {"etag": '"e"', "last_modified": None, "initialized": True, "status": 200}
    ids = await store.save_source_state(
        "mini", error=None, records=[(first, ["url:a"])], notes=[("info", "k", "m")], **state
    )
    assert ids is not None and len(ids) == 1
    clash = await store.save_source_state(
        "other", error=None, records=[(second, ["url:b"]), (first, ["url:a2"])], **state
    )
    assert clash is None  # `first`'s URL is taken
    assert await store.count_articles() == 1
    assert (await store.source_state("other")).initialized is False
    assert [e["kind"] for e in await store.recent_events()] == ["k"]


async def test_a_big_feed_parses_only_its_changed_items(env: dict) -> None:
    """A feed of INCREMENTAL_ITEMS or more: after a clean poll, a change parses only the
    items that changed; a new item is still posted once, an edited one still updated."""
    site, pipeline, store, source = env["site"], env["pipeline"], env["store"], env["source"]
    site.items = [Item(f"old-{n}", f"Old {n}", f"g-old-{n}") for n in range(INCREMENTAL_ITEMS)]
    report = await pipeline.poll(source)
    assert (report.entries, report.recorded) == (INCREMENTAL_ITEMS, INCREMENTAL_ITEMS)

    site.items.insert(0, Item("fresh", "Fresh news", "g-fresh"))
    report = await pipeline.poll(source)
    assert (report.outcome, report.entries, report.new) == ("ok", 1, 1)
    assert await deliveries(store) == 1

    site.items[5] = Item("old-4", "Old four, corrected", "g-old-4")
    report = await pipeline.poll(source)
    assert (report.entries, report.new, report.updated) == (1, 0, 1)
    assert await deliveries(store) == 1
    assert await store.count_articles() == INCREMENTAL_ITEMS + 1


async def test_source_states_saved_together_are_group_committed(store: Store) -> None:
    """Saves that arrive while a write runs go out together (SQLite and PostgreSQL): each
    caller gets its own answer, a clash refuses only its own save, failures count up while
    errors last and reset on success, and a second save of one source keeps its order."""
    taken = Article(url="https://mini.example/taken", title="T", source="s0")
    assert await store.save_source_state(
        "s0",
        etag=None,
        last_modified=None,
        initialized=True,
        status=200,
        error=None,
        records=[(taken, ["url:taken"])],
    )
    base = {"last_modified": None, "initialized": True, "status": 200}

    def article(n: int) -> Article:
        return Article(url=f"https://mini.example/{n}", title=f"A{n}", source=f"s{n}")

    saves = [
        store.save_source_state(
            f"s{n}",
            etag=f'"{n}"',
            error=None,
            records=[(article(n), [f"url:{n}"])],
            notes=[("info", "first-run", f"s{n}")],
            **base,
        )
        for n in range(1, 30)
    ]
    clash = store.save_source_state(
        "s99", etag=None, error=None, records=[(taken, ["url:taken-again"])], **base
    )
    failing = [
        store.save_source_state("bad", etag=None, error=f"HTTP {n}", **base) for n in (500, 502)
    ]
    results = await asyncio.gather(*saves, clash, *failing)
    assert all(r is not None and len(r) == 1 for r in results[:29])
    assert results[29] is None  # only the clashing save was refused
    assert await store.count_articles() == 30
    assert (await store.source_state("s7")).etag == '"7"'
    assert (await store.source_state("s99")).initialized is False
    assert (await store.source_state("bad")).failures == 2  # in order, counted twice
    kinds = [e["message"] for e in await store.recent_events(limit=100) if e["kind"] == "first-run"]
    assert sorted(kinds) == sorted(f"s{n}" for n in range(1, 30))
    await store.save_source_state("bad", etag=None, error=None, **base)
    assert (await store.source_state("bad")).failures == 0


async def test_a_big_feed_with_more_changed_items_than_a_poll_reads(
    env: dict, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """More new or changed items than MAX_FEED_ENTRIES after a clean poll (every item's
    bytes changed: a new date, say): the newest are read, with a warning, and the poll is
    clean; the old ones are known, the new one is posted once."""
    site, pipeline, store, source = env["site"], env["pipeline"], env["store"], env["source"]
    limit = INCREMENTAL_ITEMS + 10  # a smaller limit than the real one: the same code, faster
    monkeypatch.setattr(sources, "MAX_FEED_ENTRIES", limit)
    site.items = [Item(f"old-{n}", f"Old {n}", f"g-old-{n}") for n in range(limit + 20)]
    report = await pipeline.poll(source)
    assert (report.outcome, report.entries, report.recorded) == ("ok", limit, limit)

    redated = [replace(i, date="Fri, 05 Sep 2025 13:40:00 +0000") for i in site.items]
    site.items = [Item("fresh", "Fresh news", "g-fresh"), *redated]
    report = await pipeline.poll(source)
    assert (report.outcome, report.entries, report.new, report.updated) == ("ok", limit, 1, 0)
    assert f"lists {limit + 21} new or changed entries; only the newest {limit}" in caplog.text
    assert await deliveries(store) == 1 and await store.count_articles() == limit + 1
