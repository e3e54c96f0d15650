"""A state database made by an older newsbot keeps working: the tables as SQLAlchemy's
create_all made them (the store ran on SQLAlchemy until issue 18), from before the outbox had
its `progress` and `idempotency_key` columns, with rows in them. Real SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time

import pytest

from bot.models import Article, RenderedPost
from bot.store import DeliveryStatus, NewDelivery, Store
from bot.store.aio import IntegrityError, create_async_engine

# SQLAlchemy 2.0's DDL for the tables of that release, as it emitted it ({id}: INTEGER on
# SQLite, SERIAL on PostgreSQL).
OLDER_SCHEMA = (
    """CREATE TABLE source_state (name VARCHAR(200) NOT NULL, etag TEXT, last_modified TEXT,
    initialized BOOLEAN NOT NULL, last_polled_at FLOAT, last_status INTEGER, last_error TEXT,
    failures INTEGER NOT NULL, PRIMARY KEY (name))""",
    """CREATE TABLE articles (id {id} NOT NULL, url TEXT NOT NULL, source VARCHAR(200) NOT NULL,
    title TEXT NOT NULL, data TEXT NOT NULL, published_at FLOAT, first_seen_at FLOAT NOT NULL,
    updated_at FLOAT, retracted BOOLEAN NOT NULL, PRIMARY KEY (id), UNIQUE (url))""",
    """CREATE TABLE target_state (name VARCHAR(200) NOT NULL, paused BOOLEAN NOT NULL,
    reason TEXT, changed_at FLOAT, PRIMARY KEY (name))""",
    """CREATE TABLE events (id {id} NOT NULL, at FLOAT NOT NULL, level VARCHAR(10) NOT NULL,
    kind VARCHAR(40) NOT NULL, target VARCHAR(200), delivery_id INTEGER,
    message TEXT NOT NULL, PRIMARY KEY (id))""",
    """CREATE TABLE article_keys ("key" TEXT NOT NULL, article_id INTEGER NOT NULL,
    PRIMARY KEY ("key"), FOREIGN KEY(article_id) REFERENCES articles (id))""",
    """CREATE TABLE deliveries (id {id} NOT NULL, article_id INTEGER NOT NULL,
    target VARCHAR(200) NOT NULL, status VARCHAR(20) NOT NULL, attempts INTEGER NOT NULL,
    next_attempt_at FLOAT NOT NULL, sort_key FLOAT NOT NULL, priority INTEGER NOT NULL,
    rule VARCHAR(200), lease_until FLOAT, claimed_by VARCHAR(200), payload TEXT NOT NULL,
    remote_id TEXT, remote_url TEXT, last_error TEXT, created_at FLOAT NOT NULL,
    sent_at FLOAT, updated_at FLOAT NOT NULL, PRIMARY KEY (id),
    CONSTRAINT uq_delivery_article_target UNIQUE (article_id, target),
    FOREIGN KEY(article_id) REFERENCES articles (id))""",
    "CREATE INDEX ix_deliveries_due ON deliveries (status, target, next_attempt_at)",
)


def _post(url: str) -> RenderedPost:
    return RenderedPost(target="tg", platform="telegram", article_url=url, text=f"News {url}")


async def _older_database(url: str) -> None:
    engine = create_async_engine(url)
    serial = "SERIAL" if engine.dialect_name == "postgresql" else "INTEGER"
    now = time.time()
    old = Article(url="https://e.example/old", title="Old", source="feed")
    async with engine.begin() as conn:
        for statement in OLDER_SCHEMA:
            await conn.execute(statement.replace("{id}", serial))
        await conn.execute(
            "INSERT INTO articles (url, source, title, data, first_seen_at, retracted) "
            "VALUES (:url, 'feed', 'Old', :data, :now, :no)",
            {"url": old.url, "data": json.dumps(old.to_json()), "now": now, "no": False},
        )
        await conn.execute(
            "INSERT INTO article_keys (key, article_id) VALUES ('url:e.example/old', 1)"
        )
        await conn.execute(
            "INSERT INTO deliveries (article_id, target, status, attempts, next_attempt_at, "
            "sort_key, priority, payload, created_at, updated_at) VALUES (1, 'tg', 'pending', 0, "
            ":now, :now, 0, :payload, :now, :now)",
            {"now": now, "payload": json.dumps(_post(old.url).to_json())},
        )
        await conn.execute(
            "INSERT INTO source_state (name, etag, initialized, failures) "
            "VALUES ('feed', 'v1', :yes, 2)",
            {"yes": True},
        )
        await conn.execute(
            "INSERT INTO target_state (name, paused, reason) VALUES ('x', :yes, 'held')",
            {"yes": True},
        )
    await engine.dispose()


async def test_a_database_made_by_an_older_version_is_upgraded_and_used(db_url: str) -> None:
    await _older_database(db_url)
    store = Store(db_url)
    await store.init()  # adds the outbox's newer columns, keeps every row
    await store.init()  # and a second start changes nothing
    try:
        found = await store.find_article(["url:e.example/old"])
        assert found is not None and found.article.title == "Old" and found.retracted is False
        states = await store.source_states()
        assert states["feed"].etag == "v1" and states["feed"].initialized is True
        assert states["feed"].failures == 2
        assert await store.paused_targets() == {"x": "held"}

        claimed = await store.claim_next("tg", time.time() + 1, 60, "new")
        assert claimed is not None and claimed.article_id == 1 and claimed.attempts == 1
        assert claimed.idempotency_key == f"newsbot-{claimed.id}"  # none stored: derived
        await store.begin_publish(claimed.id, time.time() + 60)
        await store.save_progress(claimed.id, {"container": "c1"})
        await store.mark_sent(claimed.id, "r1", "https://t.me/c/1")
        sent = await store.delivery(claimed.id)
        assert sent is not None and sent.status == DeliveryStatus.SENT
        assert sent.progress == {"container": "c1"}

        # New rows get the new columns; ids carry on from the older rows.
        new = Article(url="https://e.example/new", title="New", source="feed")
        stored = await store.add_article_with_deliveries(
            new, ["url:e.example/new"], [NewDelivery(_post(new.url))]
        )
        assert stored is not None and stored[0] == 2
        (delivery,) = await store.deliveries_for_article(stored[0])
        assert len(delivery.idempotency_key) == 32
        # The unique (article, target) constraint of the older table still holds.
        with pytest.raises(IntegrityError):
            await store.add_deliveries(1, [NewDelivery(_post(new.url))])
    finally:
        await store.close()
