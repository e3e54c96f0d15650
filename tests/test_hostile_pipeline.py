"""Issue 15 through the real pipeline: a feed and its pages served on loopback, real SQLite,
the outbox read back. Off-site entries, entry-only posts, the per-poll cap, pushes coalescing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.base import Outlet, TargetSettings
from bot.config import validate
from bot.httpserver import serve
from bot.pipeline import Pipeline
from bot.store import Store
from bot.urls import normalize_url
from tests.test_pipeline import RecordingAdapter, page


@dataclass
class Site:
    """A feed of (title, link-or-slug) items and article pages that exist only when listed."""

    items: list[tuple[str, str]] = field(default_factory=list)
    pages: dict[str, str] = field(default_factory=dict)  # slug -> page title
    hits: dict[str, int] = field(default_factory=dict)
    page_delay: float = 0.0

    def rss(self, base: str) -> bytes:
        body = "".join(
            f"<item><title>{title}</title>"
            f"<link>{link if '://' in link else f'{base}/news/{link}'}</link>"
            f"<guid isPermaLink='false'>g-{link}</guid>"
            f"<description>Feed says {title}.</description></item>"
            for title, link in self.items
        )
        return f"<rss version='2.0'><channel><title>S</title>{body}</channel></rss>".encode()


def _app(site: Site) -> Starlette:
    async def feed(request: Request) -> Response:
        body = site.rss(str(request.base_url).rstrip("/"))
        etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="application/rss+xml", headers={"ETag": etag})

    async def article(request: Request) -> Response:
        slug = request.path_params["slug"]
        site.hits[slug] = site.hits.get(slug, 0) + 1
        if site.page_delay:
            await asyncio.sleep(site.page_delay)
        if slug not in site.pages:
            return Response("not found", status_code=404)
        base = str(request.base_url).rstrip("/")
        return Response(page(base, slug, site.pages[slug]), media_type="text/html")

    return Starlette(routes=[Route("/rss.xml", feed), Route("/news/{slug}", article)])


World = dict[str, Any]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """A factory: world(**source options) -> site, pipeline, store, source."""
    opened: list[tuple[Any, Store, httpx.AsyncClient]] = []

    async def make(**source: Any) -> World:
        site = Site()
        running = serve(_app(site))
        server = await running.__aenter__()
        raw = {
            "database": f"sqlite:///{tmp_path}/{len(opened)}.db",
            "sources": [
                {"name": "own", "url": f"{server.url}/rss.xml", "language": "en", **source}
            ],
            "targets": [
                {"name": "tg", "platform": "telegram", "token": {"env": "T"}, "chat_id": "@chan_c"}
            ],
        }
        config = validate(raw, environ={"T": "1:abcdef"})
        store = Store(config.file.database)
        await store.init()
        client = httpx.AsyncClient()
        settings = TargetSettings(name="tg", platform="recording", api_base="http://127.0.0.1:9")
        adapters = {"tg": RecordingAdapter(settings, {}, Outlet())}
        pipeline = Pipeline(config, store, client, adapters)
        opened.append((running, store, client))
        return {
            "site": site,
            "url": server.url,
            "pipeline": pipeline,
            "store": store,
            "source": config.sources[0],
        }

    yield make
    for running, store, client in opened:
        await client.aclose()
        await store.close()
        await running.__aexit__(None, None, None)


async def posted(store: Store) -> list[str]:
    """The texts in the outbox, oldest first."""
    rows = await store.recent_deliveries(1000)
    return [row.post.text for row in sorted(rows, key=lambda r: r.id)]


async def event_kinds(store: Store) -> list[str]:
    return [e["kind"] for e in await store.recent_events(100)]


async def test_an_entry_linking_off_the_feeds_site_is_skipped_and_logged(
    world: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    w = await world()
    site, pipeline, store = w["site"], w["pipeline"], w["store"]
    await pipeline.poll(w["source"])  # first run: empty feed
    site.items = [
        ("Claimed story", "https://other-newsroom.example/politics/tomorrow"),
        ("Own story", "own-story"),
    ]
    site.pages["own-story"] = "Own story"
    with caplog.at_level(logging.WARNING, logger="newsbot"):
        report = await pipeline.poll(w["source"])
    assert (report.outcome, report.new) == ("ok", 1)
    texts = await posted(store)
    assert len(texts) == 1 and texts[0].startswith("Own story")
    assert "off-site-entry" in await event_kinds(store)
    assert "skipped 1 entr(ies) linking off its site" in caplog.text
    assert "other-newsroom.example/politics/tomorrow" in caplog.text
    # The off-site URL was never taken as known: nothing claims its identity.
    assert (
        await store.find_article(
            [f"url:{normalize_url('https://other-newsroom.example/politics/tomorrow')}"]
        )
        is None
    )


async def test_an_entry_only_post_is_posted_again_properly_when_its_page_differs(
    world: Callable[..., Any],
) -> None:
    w = await world()
    site, pipeline, store, source = w["site"], w["pipeline"], w["store"], w["source"]
    await pipeline.poll(source)
    site.items = [("Fake headline from the feed", "future")]  # its page 404s for now
    assert (await pipeline.poll(source)).new == 1
    first = await posted(store)
    assert len(first) == 1 and first[0].startswith("Fake headline from the feed")
    # The post claimed no URL identity: the page's URL is not known yet.
    assert await store.find_article([f"url:{normalize_url(w['url'] + '/news/future')}"]) is None

    # The page appears with other content; the feed itself is unchanged (no 304 trap).
    site.pages["future"] = "The real story"
    await pipeline.poll(source)
    texts = await posted(store)
    assert len(texts) == 2 and texts[1].startswith("The real story")
    assert f"{w['url']}/news/future" in texts[1]
    assert "entry-only-replaced" in await event_kinds(store)
    assert await store.find_article([f"url:{normalize_url(w['url'] + '/news/future')}"]) is not None

    # Seen again: known, never a third post.
    await pipeline.poll(source)
    await pipeline.poll(source)
    assert len(await posted(store)) == 2


async def test_an_entry_only_post_whose_page_agrees_is_not_posted_again(
    world: Callable[..., Any],
) -> None:
    w = await world()
    site, pipeline, store, source = w["site"], w["pipeline"], w["store"], w["source"]
    await pipeline.poll(source)
    site.items = [("Same story", "same")]
    await pipeline.poll(source)
    site.pages["same"] = "Same  STORY"
    await pipeline.poll(source)
    hits = site.hits["same"]
    await pipeline.poll(source)
    assert len(await posted(store)) == 1
    # Confirmed: it now owns its URL and its page is not read at every poll any more.
    assert await store.find_article([f"url:{normalize_url(w['url'] + '/news/same')}"]) is not None
    assert site.hits["same"] == hits


async def test_entry_only_wait_waits_for_the_page(world: Callable[..., Any]) -> None:
    w = await world(entry_only="wait")
    site, pipeline, store, source = w["site"], w["pipeline"], w["store"], w["source"]
    await pipeline.poll(source)
    site.items = [("Feed headline", "later")]
    report = await pipeline.poll(source)
    assert report.new == 0 and await posted(store) == []
    await pipeline.poll(source)  # still no page: still nothing, and the page was asked again
    assert site.hits["later"] == 2 and await posted(store) == []
    site.pages["later"] = "Page headline"
    assert (await pipeline.poll(source)).new == 1
    await pipeline.poll(source)
    texts = await posted(store)
    assert len(texts) == 1 and texts[0].startswith("Page headline")


async def test_entry_only_wait_gives_up_after_its_bound_and_tells_the_editors(
    world: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    w = await world(entry_only="wait", entry_only_max_wait="2h")
    site, pipeline, store, source = w["site"], w["pipeline"], w["store"], w["source"]
    assert source.entry_only_max_wait == 7200
    now = [1_000_000.0]
    pipeline.clock = lambda: now[0]
    alerts: list[tuple[str, str]] = []

    async def alert(about: str, message: str) -> None:
        alerts.append((about, message))

    pipeline.alert = alert
    await pipeline.poll(source)
    site.items = [("Feed headline", "never"), ("Other", "other")]
    await pipeline.poll(source)  # the wait begins for both
    site.pages["other"] = "Other page"  # this one's page comes in time
    now[0] += 3600
    assert (await pipeline.poll(source)).new == 1
    assert alerts == [] and site.hits["never"] == 2
    now[0] += 3601  # past two hours for "never"
    with caplog.at_level(logging.WARNING, logger="newsbot"):
        await pipeline.poll(source)
    texts = await posted(store)
    assert len(texts) == 1 and texts[0].startswith("Other page")  # nothing posted blind
    ((about, message),) = alerts
    assert about == "source own" and "not posted" in message
    assert f"/post {w['url']}/news/never" in message and "2.0 h" in message
    assert "page-never-came" in await event_kinds(store)
    assert "entry_only_max_wait" in caplog.text
    # Set aside for good: the page is not asked again, nor the editors told again...
    hits = site.hits["never"]
    for _ in range(3):
        now[0] += 3600
        await pipeline.poll(source)
    assert site.hits["never"] == hits and len(alerts) == 1
    # ...but the URL was not claimed: once its page works, an editor's /post (a push) posts it.
    site.pages["never"] = "The page at last"
    result = await pipeline.ingest_url(f"{w['url']}/news/never")
    assert result.kind == "new"
    texts = await posted(store)
    assert len(texts) == 2 and texts[1].startswith("The page at last")
    await pipeline.poll(source)
    assert len(await posted(store)) == 2


def test_entry_only_max_wait_is_a_duration_of_at_least_a_minute() -> None:
    from bot.config import ConfigError

    raw = {
        "sources": [{"name": "s", "url": "https://a.example/rss", "entry_only_max_wait": "10s"}],
        "targets": [
            {"name": "tg", "platform": "telegram", "token": {"env": "T"}, "chat_id": "@chan_c"}
        ],
    }
    with pytest.raises(ConfigError, match=r"entry_only_max_wait.*at least 60 seconds"):
        validate(raw, environ={"T": "1:abc"})
    raw["sources"][0].pop("entry_only_max_wait")
    assert validate(raw, environ={"T": "1:abc"}).sources[0].entry_only_max_wait == 6 * 3600


async def test_max_new_per_poll_caps_a_flood_records_the_rest_and_tells_editors(
    world: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    w = await world(max_new_per_poll=3)
    site, pipeline, store, source = w["site"], w["pipeline"], w["store"], w["source"]
    await pipeline.poll(source)
    site.items = [(f"Flood {n}", f"flood-{n}") for n in range(12)]
    site.pages.update({f"flood-{n}": f"Flood {n}" for n in range(12)})
    with caplog.at_level(logging.WARNING, logger="newsbot"):
        report = await pipeline.poll(source)
    assert (report.new, report.recorded) == (3, 9)
    assert len(await posted(store)) == 3
    assert sum(site.hits.values()) == 3  # the recorded ones cost no page fetch
    assert "poll-cap" in await event_kinds(store)
    assert "9 new article(s) beyond max_new_per_poll (3)" in caplog.text
    # Recorded means known: the next poll posts none of them.
    site.items.append(("One more", "flood-12"))
    site.pages["flood-12"] = "One more"
    assert (await pipeline.poll(source)).new == 1
    assert len(await posted(store)) == 4


async def test_pushes_of_one_url_in_flight_fetch_its_page_once(world: Callable[..., Any]) -> None:
    w = await world()
    site, pipeline, store = w["site"], w["pipeline"], w["store"]
    site.pages["pushed"] = "Pushed story"
    site.page_delay = 0.3
    url = f"{w['url']}/news/pushed"
    results = await asyncio.gather(*(pipeline.ingest_url(url) for _ in range(200)))
    assert site.hits["pushed"] == 1
    assert {r.article_id for r in results} == {results[0].article_id}
    assert len(await posted(store)) == 1
    # Different spellings of the same URL coalesce too; later pushes are simply known.
    again = await asyncio.gather(
        pipeline.ingest_url(url + "?utm_source=x"), pipeline.ingest_url(url + "#top")
    )
    assert {r.kind for r in again} == {"known"} and site.hits["pushed"] == 1
