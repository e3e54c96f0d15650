"""The web desk's live parts and read-only queries: history filtered and paged by the
database (not in Python), health with today's posts against each target's daily cap, the
fragments the page script polls."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bot.store import DeliveryStatus, NewDelivery
from bot.webdesk import queries
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


def _today_cell(html: str, target: str) -> str:
    row = html.split(f'id="target-{target}"', 1)[1].split("</tr>", 1)[0]
    cell = row.split('class="today', 1)[1].split(">", 1)[1].split("</td>", 1)[0]
    return " ".join(cell.split())
