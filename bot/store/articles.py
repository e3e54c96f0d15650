"""Articles and every identity key they were reached under ("url:<normalized>",
"guid:<source>:<guid>")."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Sequence

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.models import Article
from bot.store.base import StoreBase
from bot.store.batching import Batcher
from bot.store.outbox import insert_deliveries
from bot.store.schema import article_keys, articles, deliveries
from bot.store.types import DeliveryStatus, NewDelivery, StoredArticle

#: Keys per IN (...) query: well under SQLite's and PostgreSQL's bound-parameter limits.
KEY_BATCH = 500
#: Feeds' identity lookups answered together at most.
LOOKUP_BATCH = 100


def _article_row(article: Article, now: float) -> dict[str, object]:
    return {
        "url": article.url,
        "source": article.source,
        "title": article.title,
        "data": json.dumps(article.to_json(), ensure_ascii=False),
        "published_at": article.published.timestamp() if article.published else None,
        "first_seen_at": now,
        "updated_at": now,
        "retracted": False,
    }


def insert_articles(
    conn: Connection, items: Sequence[tuple[Article, Sequence[str]]], now: float
) -> list[int]:
    """Insert articles and their keys within `conn`'s transaction; their ids in order.
    IntegrityError when a key or URL is taken."""
    if not items:
        return []
    # One executemany with RETURNING (SQLAlchemy's "insertmanyvalues", in parameter order),
    # not a statement per article: 10,000 recorded entries took 8 s one by one.
    result = conn.execute(
        insert(articles).returning(articles.c.id, sort_by_parameter_order=True),
        [_article_row(article, now) for article, _ in items],
    )
    ids = [int(row[0]) for row in result.all()]
    key_rows = [
        {"key": key, "article_id": article_id}
        for (_, keys), article_id in zip(items, ids, strict=True)
        for key in dict.fromkeys(keys)
    ]
    if key_rows:
        conn.execute(insert(article_keys), key_rows)
    return ids


def _insert_article_with_deliveries(
    conn: Connection,
    article: Article,
    keys: Iterable[str],
    planned: Sequence[NewDelivery],
    now: float,
) -> tuple[int, list[int]]:
    (article_id,) = insert_articles(conn, [(article, tuple(keys))], now)
    return article_id, insert_deliveries(conn, article_id, planned, now)


class ArticlesMixin(StoreBase):
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
        return StoredArticle.from_row(row) if row is not None else None

    async def articles_by_key(self, keys: Iterable[str]) -> dict[str, StoredArticle]:
        """Every known article among `keys`, by key: a feed's identities in one query per
        KEY_BATCH keys instead of one or two per entry (issue 18). Lookups made while one
        runs share the next query (see bot/store/batching.py): a cold start of thousands
        of feeds no longer takes a connection per feed."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        return await self._key_lookups.submit(wanted)

    @functools.cached_property
    def _key_lookups(self) -> Batcher[list[str], dict[str, StoredArticle]]:
        return Batcher(self._look_up_keys, lambda pending: min(len(pending), LOOKUP_BATCH))

    async def _look_up_keys(self, batch: Sequence[list[str]]) -> list[dict[str, StoredArticle]]:
        wanted = list(dict.fromkeys(key for keys in batch for key in keys))
        found: dict[str, StoredArticle] = {}
        decoded: dict[int, StoredArticle] = {}
        async with self.engine.connect() as conn:
            for start in range(0, len(wanted), KEY_BATCH):
                rows = await conn.execute(
                    select(article_keys.c.key, articles)
                    .join(articles, article_keys.c.article_id == articles.c.id)
                    .where(article_keys.c.key.in_(wanted[start : start + KEY_BATCH]))
                )
                for row in rows:
                    stored = decoded.get(row.id)
                    if stored is None:
                        stored = decoded[row.id] = StoredArticle.from_row(row)
                    found[row.key] = stored
        return [{key: found[key] for key in keys if key in found} for keys in batch]

    async def add_articles(
        self, items: Sequence[tuple[Article, Sequence[str]]]
    ) -> list[int] | None:
        """Insert many articles (no deliveries: recorded, not posted) and their keys in one
        transaction. Returns their ids in order, or None, with nothing stored, when any key
        or URL is already taken (the caller then goes one by one)."""
        if not items:
            return []
        try:
            return await self.engine.transaction(insert_articles, items, time.time())
        except IntegrityError:
            return None

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
        got there first (or `planned` names a target twice)."""
        try:
            return await self.engine.transaction(
                _insert_article_with_deliveries, article, keys, planned, time.time()
            )
        except IntegrityError:
            return None

    async def release_url(self, article_id: int, placeholder: str) -> None:
        """Free an article's unique URL column for another article (an article posted from
        its feed entry alone, replaced by the real page): its row keeps `placeholder`."""
        await self._write(
            update(articles).where(articles.c.id == article_id).values(url=placeholder)
        )

    async def add_keys(self, article_id: int, keys: Iterable[str]) -> None:
        """Remember more identities of a known article (aliases, changed GUIDs)."""
        for key in dict.fromkeys(keys):
            try:
                await self._write(insert(article_keys).values(key=key, article_id=article_id))
            except IntegrityError:
                continue

    async def update_article(self, article_id: int, article: Article) -> None:
        await self._write(
            update(articles)
            .where(articles.c.id == article_id)
            .values(
                title=article.title,
                data=json.dumps(article.to_json(), ensure_ascii=False),
                updated_at=time.time(),
            )
        )

    async def set_retracted(self, article_id: int) -> None:
        await self._write(
            update(articles).where(articles.c.id == article_id).values(retracted=True)
        )

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
                                deliveries.c.status == DeliveryStatus.SENT,
                                deliveries.c.sent_at >= since,
                            )
                        ),
                    )
                    .order_by(articles.c.id)
                )
            ).all()
        return [StoredArticle.from_row(r) for r in rows]

    async def count_articles(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(articles))).scalar())

    async def article_by_id(self, article_id: int) -> StoredArticle | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(articles).where(articles.c.id == article_id))).first()
        return StoredArticle.from_row(row) if row is not None else None
