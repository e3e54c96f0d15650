"""The web desk's live parts and read-only queries: history filtered and paged by the
database (not in Python), health with today's posts against each target's daily cap, the
fragments the page script polls."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from bot.models import Article, RenderedPost
from bot.store import DeliveryStatus, NewDelivery, Store
from bot.webdesk import queries
from bot.webdesk.accounts import Accounts, Role
from tests.test_webdesk import _Holder, login
from tests.webdesk_world import ARTICLE, World, make_world


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[tuple[TestClient, World]]:
    holder = _Holder()
    client = TestClient(holder, base_url="http://127.0.0.1")
    with client:
        world = client.portal.call(make_world, tmp_path)
        holder.app = world.app
        yield client, world
        client.portal.call(world.store.close)


async def add_articles(world: World, count: int) -> None:
    """`count` more articles, "Story 0".."Story n-1", each with one pending Telegram post."""
    tg = (await world.store.delivery(world.delivery_ids["tg"])).post
    for n in range(count):
        article = replace(ARTICLE, url=f"https://news.example/en/story-{n}", title=f"Story {n}")
        post = replace(tg, article_url=article.url, text=f"Story {n}\n\n{article.url}")
        await world.store.add_article_with_deliveries(
            article, [f"url:{article.url}"], [NewDelivery(post, status=DeliveryStatus.PENDING)]
        )


def test_history_is_filtered_and_paged_by_the_database(desk) -> None:
    client, world = desk
    client.portal.call(add_articles, world, 30)
    tz = world.config.timezone
    engine = world.store.engine
    first = client.portal.call(queries.history, engine, queries.HistoryFilter(), tz, 1, 25)
    assert first.total == 31 and first.pages == 2 and len(first.entries) == 25
    assert first.entries[0].article.title == "Story 29"  # newest first
    second = client.portal.call(queries.history, engine, queries.HistoryFilter(), tz, 2, 25)
    assert [e.article.title for e in second.entries][-1] == ARTICLE.title
    assert not {e.article.url for e in first.entries} & {e.article.url for e in second.entries}
    # Words are matched in the headline, any case; LIKE wildcards in the words are literal.
    found = client.portal.call(
        queries.history, engine, queries.HistoryFilter(words="STORY 12"), tz, 1, 25
    )
    assert [e.article.title for e in found.entries] == ["Story 12"]
    wild = client.portal.call(queries.history, engine, queries.HistoryFilter(words="%"), tz)
    assert wild.total == 0
    # A target filter keeps only that target's deliveries of each article.
    xs = client.portal.call(queries.history, engine, queries.HistoryFilter(target="xmain"), tz)
    assert xs.total == 1 and [d.target for d in xs.entries[0].deliveries] == ["xmain"]

    login(client)
    page = client.get("/desk/history", params={"q": "story"}).text
    assert "30 articles · page 1 of 2" in page and 'rel="next"' in page
    assert 'href="/desk/history?q=story&amp;page=2"' in page
    older = client.get("/desk/history", params={"q": "story", "page": "2"}).text
    assert "Story 0" in older and "Story 29" not in older and 'rel="prev"' in older
    assert "page 1 of 2" in client.get("/desk/history", params={"page": "junk"}).text


def test_history_and_health_pages_refresh_their_live_parts(desk) -> None:
    client, world = desk
    login(client)
    history = client.get("/desk/history", params={"target": "tg"}).text
    assert 'data-refresh="/desk/history/entries?target=tg&amp;page=1"' in history
    before = client.get("/desk/history/entries", params={"target": "tg"}).text
    assert "Story 3" not in before and "<html" not in before  # a fragment, not a page
    client.portal.call(add_articles, world, 4)
    assert "Story 3" in client.get("/desk/history/entries", params={"target": "tg"}).text
    health = client.get("/desk/health").text
    assert 'data-refresh="/desk/health/live"' in health
    assert client.get("/desk/queue/rows").status_code == 200
    assert client.get("/desk/health/live").status_code == 200


def test_health_shows_todays_posts_against_the_daily_cap(desk) -> None:
    client, world = desk
    login(client)
    live = client.get("/desk/health/live").text
    assert _today_cell(live, "tg") == "0 / 5"
    assert _today_cell(live, "xmain") == "0"  # no cap: the count alone
    client.portal.call(add_articles, world, 1)

    async def send_one() -> None:
        claimed = await world.store.claim_next("tg", time.time(), 60, "test")
        assert claimed is not None
        await world.store.begin_publish(claimed.id, time.time() + 60)
        await world.store.mark_sent(claimed.id, "m1", "https://t.me/dailychan/1")

    client.portal.call(send_one)
    assert _today_cell(client.get("/desk/health/live").text, "tg") == "1 / 5"


async def test_queries_and_accounts_run_on_both_databases(store: Store) -> None:
    """The desk's hand-written SQL on SQLite and PostgreSQL: every filter, the LIKE escapes,
    paging, retracted articles, and an account created then replaced."""
    tz = ZoneInfo("Europe/Berlin")  # 23:30 UTC on 6 May is 7 May there
    seen_on = datetime.now(tz).date()
    pending, awaiting = DeliveryStatus.PENDING, DeliveryStatus.AWAITING
    ids: dict[str, int] = {}
    for n, (title, source, published, planned) in enumerate(
        [
            ("Rates rise 100% overnight", "en", datetime(2025, 5, 6, 23, 30, tzinfo=UTC),
             {"tg": awaiting, "x": pending}),
            ("snake_case wins", "de", None, {"tg": pending, "x": pending}),
            ("A back\\slash story", "en", datetime(2025, 5, 7, 8, 0, tzinfo=UTC),
             {"tg": pending}),
            ("Withdrawn story", "en", None, {"tg": pending, "x": pending}),
        ]
    ):  # fmt: skip
        article = Article(f"https://news.example/q{n}", title, source, published=published)
        posts = [
            NewDelivery(RenderedPost(target, "telegram", article.url, title), status=status)
            for target, status in planned.items()
        ]
        added = await store.add_article_with_deliveries(article, [f"url:{article.url}"], posts)
        assert added is not None
        ids[title.split()[0]] = added[0]
    await store.set_retracted(ids["Withdrawn"])

    async def titles(wanted: queries.HistoryFilter, page: int = 1, per_page: int = 25) -> list[str]:
        found = await queries.history(store.engine, wanted, tz, page, per_page)
        return [e.article.title for e in found.entries]

    every = [
        "Withdrawn story",
        "A back\\slash story",
        "snake_case wins",
        "Rates rise 100% overnight",
    ]
    assert await titles(queries.HistoryFilter()) == every  # newest first
    assert await titles(queries.HistoryFilter(words="100%")) == [every[3]]
    assert await titles(queries.HistoryFilter(words="0%")) == [every[3]]
    assert await titles(queries.HistoryFilter(words="%")) == [every[3]]  # literal, not any
    assert await titles(queries.HistoryFilter(words="e_")) == [every[2]]
    assert await titles(queries.HistoryFilter(words="\\")) == [every[1]]
    assert await titles(queries.HistoryFilter(words="STORY back")) == [every[1]]
    assert await titles(queries.HistoryFilter(source="de")) == [every[2]]
    # Published day in the newsroom's zone; first seen (today) when unpublished.
    assert await titles(queries.HistoryFilter(day=date(2025, 5, 7))) == [every[1], every[3]]
    assert await titles(queries.HistoryFilter(day=date(2025, 5, 6))) == []
    if datetime.now(tz).date() == seen_on:  # not across midnight
        assert await titles(queries.HistoryFilter(day=seen_on)) == [every[0], every[2]]
    assert await titles(queries.HistoryFilter(target="x")) == [every[0], every[2], every[3]]
    waiting = queries.HistoryFilter(target="tg", status="awaiting")
    page = await queries.history(store.engine, waiting, tz)
    assert page.total == 1 and [e.article.title for e in page.entries] == [every[3]]
    assert [(d.target, d.status) for d in page.entries[0].deliveries] == [("tg", "awaiting")]
    # Paging by the database; deliveries of each shown article in id order.
    second = await queries.history(store.engine, queries.HistoryFilter(), tz, 2, 3)
    assert second.total == 4 and second.pages == 2
    assert [e.article.title for e in second.entries] == every[3:]
    assert [d.target for d in second.entries[0].deliveries] == ["tg", "x"]
    assert await titles(queries.HistoryFilter(), 3, 3) == []
    first = await queries.history(store.engine, queries.HistoryFilter(), tz, 1, 3)
    assert [e.retracted for e in first.entries] == [True, False, False]
    latest = await queries.latest_articles(store.engine, 2)
    assert [a.title for a in latest] == every[1:3]  # the retracted one left out
    stored = await queries.stored_article(store.engine, ids["snake_case"])
    assert stored is not None and stored.article.source == "de" and stored.retracted is False
    assert await queries.stored_article(store.engine, max(ids.values()) + 1) is None

    accounts = Accounts(store.engine)
    assert await accounts.add("sam", Role.EDITOR, "first password") is True
    assert await accounts.add("sam", Role.ADMIN, "second password") is False
    sam = await accounts.authenticate("sam", "second password")
    assert sam is not None and sam.is_admin
    assert await accounts.authenticate("sam", "first password") is None
    assert await accounts.authenticate("nobody", "second password") is None
    assert await accounts.get("sam") == sam and await accounts.get("nobody") is None


def _today_cell(html: str, target: str) -> str:
    row = html.split(f'id="target-{target}"', 1)[1].split("</tr>", 1)[0]
    cell = row.split('class="today', 1)[1].split(">", 1)[1].split("</td>", 1)[0]
    return " ".join(cell.split())
