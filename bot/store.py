"""State database: articles, their identity keys, the outbox of deliveries, per-source and
per-target state. SQLAlchemy 2 (async) over SQLite by default or any SQLAlchemy URL.

Times are stored as UNIX seconds (float) so comparisons behave the same on every backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.models import Article, RenderedPost

metadata = MetaData()

source_state = Table(
    "source_state",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("initialized", Boolean, nullable=False, default=False),
    Column("last_polled_at", Float),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("failures", Integer, nullable=False, default=0),
)

articles = Table(
    "articles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False, unique=True),
    Column("source", String(200), nullable=False),
    Column("title", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("published_at", Float),
    Column("first_seen_at", Float, nullable=False),
    Column("updated_at", Float),
    Column("retracted", Boolean, nullable=False, default=False),
)

# Every identity an article was reached under: "url:<normalized>" and "guid:<source>:<guid>".
article_keys = Table(
    "article_keys",
    metadata,
    Column("key", Text, primary_key=True),
    Column("article_id", Integer, ForeignKey("articles.id"), nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("article_id", Integer, ForeignKey("articles.id"), nullable=False),
    Column("target", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("sort_key", Float, nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("rule", String(200)),
    Column("lease_until", Float),
    Column("claimed_by", String(200)),
    Column("payload", Text, nullable=False),
    Column("remote_id", Text),
    Column("remote_url", Text),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("article_id", "target", name="uq_delivery_article_target"),
    Index("ix_deliveries_due", "status", "target", "next_attempt_at"),
)

target_state = Table(
    "target_state",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("paused", Boolean, nullable=False, default=False),
    Column("reason", Text),
    Column("changed_at", Float),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("level", String(10), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("target", String(200)),
    Column("delivery_id", Integer),
    Column("message", Text, nullable=False),
)

# Delivery statuses.
PENDING = "pending"  # waiting to be sent (possibly backing off)
SENDING = "sending"  # claimed; a send may be in flight
SENT = "sent"
FAILED = "failed"  # terminal: rejected or out of attempts
UNCERTAIN = "uncertain"  # may or may not have been posted: an editor decides, never resent
BACKLOG = "backlog"  # recorded on a first run, deliberately not posted
SKIPPED = "skipped"  # an editor or a rule decided not to post
AWAITING = "awaiting"  # waiting for an editor's approval
STATUSES = (PENDING, SENDING, SENT, FAILED, UNCERTAIN, BACKLOG, SKIPPED, AWAITING)


@dataclass(frozen=True)
class Delivery:
    id: int
    article_id: int
    target: str
    status: str
    attempts: int
    next_attempt_at: float
    post: RenderedPost
    priority: int
    rule: str | None
    sort_key: float
    remote_id: str | None
    remote_url: str | None
    last_error: str | None
    created_at: float
    sent_at: float | None
    updated_at: float


@dataclass(frozen=True)
class NewDelivery:
    """An outbox row to create with its article (see Store.add_article_with_deliveries)."""

    post: RenderedPost
    status: str = PENDING
    sort_key: float | None = None
    priority: int = 0
    rule: str | None = None
    error: str | None = None  # set with status FAILED: why it cannot be posted


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        article_id=row.article_id,
        target=row.target,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        post=RenderedPost.from_json(json.loads(row.payload)),
        priority=row.priority,
        rule=row.rule,
        sort_key=row.sort_key,
        remote_id=row.remote_id,
        remote_url=row.remote_url,
        last_error=row.last_error,
        created_at=row.created_at,
        sent_at=row.sent_at,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True)
class SourceState:
    name: str
    etag: str | None = None
    last_modified: str | None = None
    initialized: bool = False
    failures: int = 0


@dataclass(frozen=True)
class StoredArticle:
    id: int
    article: Article
    retracted: bool


def async_url(url: str) -> str:
    """Map a plain SQLAlchemy URL to its asyncio driver (aiosqlite, psycopg)."""
    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres") and driver in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class Store:
    """All reads and writes of the state database. One instance per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(async_url(url))
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            _private_sqlite_files(self.engine.url.database)
        # SQLite has one writer at a time: queueing writers here, in order, beats letting
        # dozens of pooled connections race for the file lock until busy_timeout fails one.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._leader_conn: AsyncConnection | None = None

    @contextlib.asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (serialised in this process on SQLite)."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    async def init(self) -> None:
        async with self._begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def close(self) -> None:
        await self._drop_leader_conn()
        await self.engine.dispose()

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(1))
            return True
        except Exception:
            return False

    # Replicas (PostgreSQL advisory locks; SQLite means one process: always granted) -------

    def _lock_key(self, name: str) -> int:
        # Advisory locks are per database: the key includes the URL (and so the schema).
        digest = hashlib.sha256(f"newsbot:{self.url}:{name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    async def hold_leadership(self) -> bool:
        """Take or keep the leader lock; False if another replica holds it (or the session
        holding it was lost). The lock lives as long as one dedicated connection."""
        if self.is_sqlite:
            return True
        if self._leader_conn is not None:
            try:
                await self._leader_conn.execute(select(1))
                return True
            except Exception:  # the session, and with it the lock, is gone
                await self._drop_leader_conn()
        conn = await self.engine.connect()
        try:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            got = (
                await conn.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self._lock_key("leader")}
                )
            ).scalar()
        except Exception:
            await conn.close()
            raise
        if got:
            self._leader_conn = conn
            return True
        await conn.close()
        return False

    async def _drop_leader_conn(self) -> None:
        conn, self._leader_conn = self._leader_conn, None
        if conn is not None:
            await _release(conn, self._lock_key("leader"))

    @contextlib.asynccontextmanager
    async def target_turn(self, target: str) -> AsyncIterator[bool]:
        """Whether this replica may drain `target` now: one replica at a time per target, so
        its posts keep their order and pacing. Yields False if another replica is on it."""
        if self.is_sqlite:
            yield True
            return
        key = self._lock_key(f"target:{target}")
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            got = bool(
                (
                    await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
                ).scalar()
            )
            try:
                yield got
            finally:
                if got:
                    await _release(conn, key)

    # Sources ---------------------------------------------------------------------------

    async def source_state(self, name: str) -> SourceState:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(source_state).where(source_state.c.name == name))
            ).first()
        if row is None:
            return SourceState(name)
        return SourceState(
            name, row.etag, row.last_modified, bool(row.initialized), row.failures or 0
        )

    async def save_source_state(
        self,
        name: str,
        *,
        etag: str | None,
        last_modified: str | None,
        initialized: bool,
        status: int | None,
        error: str | None,
    ) -> None:
        values = {
            "etag": etag,
            "last_modified": last_modified,
            "initialized": initialized,
            "last_polled_at": time.time(),
            "last_status": status,
            "last_error": error,
        }
        async with self._begin() as conn:
            current = (
                await conn.execute(
                    select(source_state.c.failures).where(source_state.c.name == name)
                )
            ).first()
            failures = 0 if error is None else ((current.failures or 0) + 1 if current else 1)
            values["failures"] = failures
            if current is None:
                await conn.execute(insert(source_state).values(name=name, **values))
            else:
                await conn.execute(
                    update(source_state).where(source_state.c.name == name).values(**values)
                )

    async def source_overview(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(source_state).order_by(source_state.c.name))).all()
        return [dict(row._mapping) for row in rows]

    # Articles --------------------------------------------------------------------------

    async def find_article(self, keys: Iterable[str]) -> StoredArticle | None:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return None
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(articles)
                    .join(article_keys, article_keys.c.article_id == articles.c.id)
                    .where(article_keys.c.key.in_(keys))
                    .limit(1)
                )
            ).first()
        if row is None:
            return None
        return StoredArticle(row.id, Article.from_json(json.loads(row.data)), row.retracted)

    async def add_article(self, article: Article, keys: Iterable[str]) -> int | None:
        """Insert an article and its keys. Returns None if another writer got there first."""
        stored = await self.add_article_with_deliveries(article, keys, [])
        return stored[0] if stored else None

    async def add_article_with_deliveries(
        self, article: Article, keys: Iterable[str], planned: Sequence[NewDelivery]
    ) -> tuple[int, list[int]] | None:
        """Insert an article, its keys and its outbox rows in one transaction: a crash between
        them would leave an article known as seen whose posts were never queued.
        Returns (article id, delivery ids in `planned` order), or None if another writer
        got there first."""
        now = time.time()
        try:
            async with self._begin() as conn:
                result = await conn.execute(
                    insert(articles).values(
                        url=article.url,
                        source=article.source,
                        title=article.title,
                        data=json.dumps(article.to_json(), ensure_ascii=False),
                        published_at=article.published.timestamp() if article.published else None,
                        first_seen_at=now,
                        updated_at=now,
                        retracted=False,
                    )
                )
                article_id = int(result.inserted_primary_key[0])
                for key in dict.fromkeys(keys):
                    await conn.execute(insert(article_keys).values(key=key, article_id=article_id))
                ids = []
                for item in planned:
                    result = await conn.execute(
                        insert(deliveries).values(
                            article_id=article_id,
                            target=item.post.target,
                            status=item.status,
                            attempts=0,
                            next_attempt_at=now,
                            sort_key=item.sort_key if item.sort_key is not None else now,
                            priority=item.priority,
                            rule=item.rule,
                            payload=json.dumps(item.post.to_json(), ensure_ascii=False),
                            last_error=item.error,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    ids.append(int(result.inserted_primary_key[0]))
            return article_id, ids
        except IntegrityError:
            return None

    async def add_keys(self, article_id: int, keys: Iterable[str]) -> None:
        """Remember more identities of a known article (aliases, changed GUIDs)."""
        for key in dict.fromkeys(keys):
            try:
                async with self._begin() as conn:
                    await conn.execute(insert(article_keys).values(key=key, article_id=article_id))
            except IntegrityError:
                continue

    async def release_url(self, article_id: int, placeholder: str) -> None:
        """Free an article's unique URL column for another article (an article posted from
        its feed entry alone, replaced by the real page): its row keeps `placeholder`."""
        async with self._begin() as conn:
            await conn.execute(
                update(articles).where(articles.c.id == article_id).values(url=placeholder)
            )

    async def update_article(self, article_id: int, article: Article) -> None:
        async with self._begin() as conn:
            await conn.execute(
                update(articles)
                .where(articles.c.id == article_id)
                .values(
                    title=article.title,
                    data=json.dumps(article.to_json(), ensure_ascii=False),
                    updated_at=time.time(),
                )
            )

    async def set_retracted(self, article_id: int) -> None:
        async with self._begin() as conn:
            await conn.execute(
                update(articles).where(articles.c.id == article_id).values(retracted=True)
            )

    async def article(self, article_id: int) -> StoredArticle | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(articles).where(articles.c.id == article_id))).first()
        if row is None:
            return None
        return StoredArticle(row.id, Article.from_json(json.loads(row.data)), row.retracted)

    async def articles_sent_since(self, since: float) -> list[StoredArticle]:
        """Articles with at least one post sent after `since` and not retracted."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(articles)
                    .where(
                        articles.c.retracted.is_(False),
                        articles.c.id.in_(
                            select(deliveries.c.article_id).where(
                                deliveries.c.status == SENT, deliveries.c.sent_at >= since
                            )
                        ),
                    )
                    .order_by(articles.c.id)
                )
            ).all()
        return [
            StoredArticle(r.id, Article.from_json(json.loads(r.data)), r.retracted) for r in rows
        ]

    async def count_articles(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(articles))).scalar())

    # Outbox ----------------------------------------------------------------------------

    async def enqueue(
        self,
        article_id: int,
        post: RenderedPost,
        *,
        status: str = PENDING,
        not_before: float | None = None,
        sort_key: float | None = None,
        priority: int = 0,
        rule: str | None = None,
    ) -> int | None:
        """Add one (article, target) delivery. Returns its id, or None if it already exists."""
        now = time.time()
        try:
            async with self._begin() as conn:
                result = await conn.execute(
                    insert(deliveries).values(
                        article_id=article_id,
                        target=post.target,
                        status=status,
                        attempts=0,
                        next_attempt_at=not_before or now,
                        sort_key=sort_key if sort_key is not None else now,
                        priority=priority,
                        rule=rule,
                        payload=json.dumps(post.to_json(), ensure_ascii=False),
                        created_at=now,
                        updated_at=now,
                    )
                )
                return int(result.inserted_primary_key[0])
        except IntegrityError:
            return None

    async def next_due(self, target: str, now: float) -> float | None:
        """When the target's earliest pending delivery is due (None if nothing is pending)."""
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    select(func.min(deliveries.c.next_attempt_at)).where(
                        deliveries.c.target == target, deliveries.c.status == PENDING
                    )
                )
            ).scalar()

    async def claim_next(
        self, target: str, now: float, lease: float, claimer: str
    ) -> Delivery | None:
        """Atomically take the target's next due delivery, in priority then publication order.

        The status flip pending -> sending is committed before anything is sent, so a crash
        mid-send leaves evidence (status sending) instead of a silent resend.
        """
        order = (
            deliveries.c.priority.desc(),
            deliveries.c.sort_key.asc(),
            deliveries.c.id.asc(),
        )
        async with self._begin() as conn:
            query = (
                select(deliveries.c.id, deliveries.c.next_attempt_at)
                .where(deliveries.c.target == target, deliveries.c.status == PENDING)
                .order_by(*order)
                .limit(1)
            )
            if not self.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            head = (await conn.execute(query)).first()
            # Publication order: the head of the queue blocks the ones behind it.
            if head is None or head.next_attempt_at > now:
                return None
            result = await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == head.id, deliveries.c.status == PENDING)
                .values(
                    status=SENDING,
                    attempts=deliveries.c.attempts + 1,
                    lease_until=now + lease,
                    claimed_by=claimer,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                return None
            row = (await conn.execute(select(deliveries).where(deliveries.c.id == head.id))).one()
        return _delivery(row)

    async def _finish(self, delivery_id: int, **values: Any) -> None:
        values["updated_at"] = time.time()
        values.setdefault("lease_until", None)
        async with self._begin() as conn:
            await conn.execute(
                update(deliveries).where(deliveries.c.id == delivery_id).values(**values)
            )

    async def mark_sent(self, delivery_id: int, remote_id: str, remote_url: str | None) -> None:
        await self._finish(
            delivery_id,
            status=SENT,
            remote_id=remote_id,
            remote_url=remote_url,
            sent_at=time.time(),
            last_error=None,
        )

    async def mark_retry(
        self, delivery_id: int, at: float, error: str, *, count_attempt: bool = True
    ) -> None:
        values: dict[str, Any] = {"status": PENDING, "next_attempt_at": at, "last_error": error}
        if not count_attempt:
            values["attempts"] = deliveries.c.attempts - 1
        await self._finish(delivery_id, **values)

    async def mark_skipped(self, delivery_id: int, reason: str) -> None:
        await self._finish(delivery_id, status=SKIPPED, last_error=reason)

    async def mark_failed(self, delivery_id: int, error: str) -> None:
        await self._finish(delivery_id, status=FAILED, last_error=error)

    async def mark_uncertain(self, delivery_id: int, error: str, report: str) -> None:
        """Flag a delivery uncertain and record the editors' report in the same commit, so no
        crash can leave an uncertain post nobody is told about."""
        now = time.time()
        async with self._begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(status=UNCERTAIN, last_error=error, lease_until=None, updated_at=now)
            )
            target = (
                await conn.execute(
                    select(deliveries.c.target).where(deliveries.c.id == delivery_id)
                )
            ).scalar()
            await conn.execute(_event("warning", "uncertain", report, target, delivery_id, now))

    async def set_status(
        self,
        delivery_id: int,
        status: str,
        note: str | None = None,
        *,
        not_before: float | None = None,
        priority: int | None = None,
        only_from: Sequence[str] | None = None,
    ) -> bool:
        """Editor action on a delivery (skip, retry after review, approve...)."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        values: dict[str, Any] = {"status": status, "updated_at": time.time()}
        if status == PENDING:
            values["next_attempt_at"] = not_before or time.time()
        if priority is not None:
            values["priority"] = priority
        if note:
            values["last_error"] = note
        async with self._begin() as conn:
            condition = deliveries.c.status != SENDING
            if only_from is not None:
                condition = deliveries.c.status.in_(list(only_from))
            result = await conn.execute(
                update(deliveries).where(deliveries.c.id == delivery_id, condition).values(**values)
            )
        return result.rowcount == 1

    async def expire_leases(self, now: float) -> list[Delivery]:
        """Rows left in `sending` past their lease: the sender died mid-send. Flag, never resend;
        each gets its `uncertain` event in the same commit."""
        async with self._begin() as conn:
            rows = (
                await conn.execute(
                    select(deliveries).where(
                        deliveries.c.status == SENDING, deliveries.c.lease_until < now
                    )
                )
            ).all()
            for row in rows:
                await conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id == row.id, deliveries.c.status == SENDING)
                    .values(
                        status=UNCERTAIN,
                        lease_until=None,
                        updated_at=now,
                        last_error="the process stopped while sending; not resent "
                        "(check the channel, then mark sent or retry)",
                    )
                )
                await conn.execute(
                    _event(
                        "warning",
                        "uncertain",
                        abandoned_report(_delivery(row)),
                        row.target,
                        row.id,
                        now,
                    )
                )
        return [_delivery(row) for row in rows]

    async def deliveries_for_article(self, article_id: int) -> list[Delivery]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(deliveries)
                    .where(deliveries.c.article_id == article_id)
                    .order_by(deliveries.c.id)
                )
            ).all()
        return [_delivery(r) for r in rows]

    async def delivery(self, delivery_id: int) -> Delivery | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))
            ).first()
        return _delivery(row) if row else None

    async def recent_deliveries(
        self, limit: int = 20, statuses: Sequence[str] | None = None
    ) -> list[Delivery]:
        query = select(deliveries).order_by(deliveries.c.updated_at.desc(), deliveries.c.id.desc())
        if statuses:
            query = query.where(deliveries.c.status.in_(list(statuses)))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit))).all()
        return [_delivery(r) for r in rows]

    async def counts(self) -> dict[str, dict[str, int]]:
        """target -> status -> number of deliveries."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(deliveries.c.target, deliveries.c.status, func.count()).group_by(
                        deliveries.c.target, deliveries.c.status
                    )
                )
            ).all()
        result: dict[str, dict[str, int]] = {}
        for target, status, count in rows:
            result.setdefault(target, {})[status] = int(count)
        return result

    async def posts_sent_since(self, target: str, since: float) -> list[RenderedPost]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(deliveries.c.payload).where(
                        deliveries.c.target == target,
                        deliveries.c.status == SENT,
                        deliveries.c.sent_at >= since,
                    )
                )
            ).all()
        return [RenderedPost.from_json(json.loads(r.payload)) for r in rows]

    async def last_sent_at(self, target: str) -> float | None:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    select(func.max(deliveries.c.sent_at)).where(
                        deliveries.c.target == target, deliveries.c.status == SENT
                    )
                )
            ).scalar()

    async def awaiting(self) -> list[Delivery]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(deliveries)
                    .where(deliveries.c.status == AWAITING)
                    .order_by(deliveries.c.id)
                )
            ).all()
        return [_delivery(r) for r in rows]

    async def update_payload(self, delivery_id: int, post: RenderedPost) -> None:
        async with self._begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(
                    payload=json.dumps(post.to_json(), ensure_ascii=False), updated_at=time.time()
                )
            )

    async def queue(self, limit: int = 50) -> list[Delivery]:
        """Deliveries not yet settled, in the order they will go."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(deliveries)
                    .where(deliveries.c.status.in_([PENDING, SENDING, AWAITING]))
                    .order_by(
                        deliveries.c.target,
                        deliveries.c.priority.desc(),
                        deliveries.c.sort_key,
                        deliveries.c.id,
                    )
                    .limit(limit)
                )
            ).all()
        return [_delivery(r) for r in rows]

    async def sent_count_since(self, target: str, since: float) -> int:
        async with self.engine.connect() as conn:
            return int(
                (
                    await conn.execute(
                        select(func.count()).where(
                            deliveries.c.target == target,
                            or_(
                                and_(deliveries.c.status == SENT, deliveries.c.sent_at >= since),
                                deliveries.c.status == SENDING,
                            ),
                        )
                    )
                ).scalar()
            )

    # Targets and events ----------------------------------------------------------------

    async def paused_targets(self) -> dict[str, str]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(target_state).where(target_state.c.paused.is_(True)))
            ).all()
        return {row.name: row.reason or "" for row in rows}

    async def set_paused(self, target: str, paused: bool, reason: str = "") -> None:
        values = {"paused": paused, "reason": reason, "changed_at": time.time()}
        async with self._begin() as conn:
            result = await conn.execute(
                update(target_state).where(target_state.c.name == target).values(**values)
            )
            if result.rowcount == 0:
                await conn.execute(insert(target_state).values(name=target, **values))

    async def record_event(
        self,
        level: str,
        kind: str,
        message: str,
        target: str | None = None,
        delivery_id: int | None = None,
    ) -> None:
        async with self._begin() as conn:
            await conn.execute(_event(level, kind, message, target, delivery_id, time.time()))

    async def delivery_ids_with_event(self, kind: str) -> set[int]:
        """Deliveries that have an event of `kind` (e.g. a preview already sent)."""
        query = select(events.c.delivery_id).where(events.c.kind == kind).distinct()
        async with self.engine.connect() as conn:
            return {i for i in (await conn.execute(query)).scalars() if i is not None}

    async def recent_events(self, limit: int = 20) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(events).order_by(events.c.id.desc()).limit(limit))
            ).all()
        return [dict(r._mapping) for r in rows]

    # Monitoring (read-only) ----------------------------------------------------------------

    async def monitoring_snapshot(self, now: float) -> dict[str, dict[Any, Any]]:
        """Outbox, target and source figures for the metrics endpoint, in one connection:
        deliveries {(target, status): n}, due {target: (n pending due now, earliest due)},
        paused {target: bool}, sources {name: (consecutive failures, last polled at)}."""
        snap: dict[str, dict[Any, Any]] = {"deliveries": {}, "due": {}, "paused": {}, "sources": {}}
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(deliveries.c.target, deliveries.c.status, func.count()).group_by(
                    deliveries.c.target, deliveries.c.status
                )
            )
            for target, status, count in rows:
                snap["deliveries"][(target, status)] = int(count)
            rows = await conn.execute(
                select(deliveries.c.target, func.count(), func.min(deliveries.c.next_attempt_at))
                .where(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now)
                .group_by(deliveries.c.target)
            )
            for target, count, earliest in rows:
                snap["due"][target] = (int(count), float(earliest))
            for name, paused in await conn.execute(
                select(target_state.c.name, target_state.c.paused)
            ):
                snap["paused"][name] = bool(paused)
            for name, failures, polled in await conn.execute(
                select(source_state.c.name, source_state.c.failures, source_state.c.last_polled_at)
            ):
                snap["sources"][name] = (int(failures or 0), polled)
        return snap


async def _release(conn: AsyncConnection, key: int) -> None:
    """Give up an advisory lock at once. A session whose unlock failed is closed, never pooled:
    a pooled session still holding the lock would block every replica, this one included."""
    released = False
    with contextlib.suppress(Exception):
        unlock = text("SELECT pg_advisory_unlock(:key)")
        released = bool((await conn.execute(unlock, {"key": key})).scalar())
    with contextlib.suppress(Exception):
        if not released:
            await conn.invalidate()
        await conn.close()


def _event(
    level: str, kind: str, message: str, target: str | None, delivery_id: int | None, at: float
) -> Any:
    return insert(events).values(
        at=at, level=level, kind=kind, target=target, delivery_id=delivery_id, message=message
    )


def abandoned_report(delivery: Delivery) -> str:
    """What editors are told about a delivery its sender left mid-send."""
    return (
        f"delivery {delivery.id} of {delivery.post.article_url} was being sent when its "
        "sender stopped; it may or may not be posted. Not resent: check and decide."
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets `newsbot status` read while the daemon writes; busy_timeout rides out the
    # brief write locks instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _private_sqlite_files(database: str | None) -> None:
    """Create the SQLite file 0600 (owner only) before SQLite does, and tighten an existing
    one: SQLite gives its -wal and -shm files the database file's mode (issue 15)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for file in (
        path,
        Path(f"{database}-wal"),
        Path(f"{database}-shm"),
        Path(f"{database}-journal"),
    ):
        with contextlib.suppress(OSError):
            if file.exists():
                file.chmod(0o600)
