"""Articles and every identity key they were reached under ("url:<normalized>",
"guid:<source>:<guid>")."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Sequence

from bot.models import Article
from bot.store.aio import Connection, IntegrityError, in_list
from bot.store.base import StoreBase
from bot.store.batching import Batcher
from bot.store.outbox import insert_deliveries
from bot.store.schema import ARTICLE_COLUMNS
from bot.store.types import DeliveryStatus, NewDelivery, StoredArticle

#: Keys per IN (...) query: well under SQLite's and PostgreSQL's bound-parameter limits.
KEY_BATCH = 500
#: Feeds' identity lookups answered together at most.
LOOKUP_BATCH = 100
#: Articles per multi-row INSERT (nine parameters each).
INSERT_BATCH = 100

_ARTICLE_FIELDS = (
    "url",
    "source",
    "title",
    "data",
    "published_at",
    "first_seen_at",
    "updated_at",
    "retracted",
)
_SELECT_ARTICLES = f"SELECT {ARTICLE_COLUMNS} FROM articles"
_ARTICLES_BY_KEY = (
    "SELECT article_keys.key AS key, "
    + ", ".join(f"articles.{column}" for column in ARTICLE_COLUMNS.split(", "))
    + " FROM article_keys JOIN articles ON article_keys.article_id = articles.id"
    " WHERE article_keys.key IN "
)


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


@functools.cache
def _insert_statement(rows: int) -> str:
    values = ", ".join(
        "(" + ", ".join(f":{field}_{i}" for field in _ARTICLE_FIELDS) + ")" for i in range(rows)
    )
    return f"INSERT INTO articles ({', '.join(_ARTICLE_FIELDS)}) VALUES {values} RETURNING id, url"


def insert_articles(
    conn: Connection, items: Sequence[tuple[Article, Sequence[str]]], now: float
) -> list[int]:
    """Insert articles and their keys within `conn`'s transaction; their ids in order.
    IntegrityError when a key or URL is taken."""
    if not items:
        return []
    # Multi-row INSERTs with RETURNING, not a statement per article (10,000 recorded entries
    # took 8 s one by one). The ids are matched back by URL, which is unique.
    ids_by_url: dict[str, int] = {}
    for start in range(0, len(items), INSERT_BATCH):
        chunk = items[start : start + INSERT_BATCH]
        parameters = {
            f"{field}_{i}": value
            for i, (article, _) in enumerate(chunk)
            for field, value in _article_row(article, now).items()
        }
        for row in conn.execute(_insert_statement(len(chunk)), parameters):
            ids_by_url[row.url] = int(row.id)
    ids = [ids_by_url[article.url] for article, _ in items]
    key_rows = [
        {"key": key, "article_id": article_id}
        for (_, keys), article_id in zip(items, ids, strict=True)
        for key in dict.fromkeys(keys)
    ]
    conn.executemany(
        "INSERT INTO article_keys (key, article_id) VALUES (:key, :article_id)", key_rows
    )
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
        listed, parameters = in_list("key", keys[:KEY_BATCH])
        async with self.engine.connect() as conn:
            row = (await conn.execute(f"{_ARTICLES_BY_KEY}{listed} LIMIT 1", parameters)).first()
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
                listed, parameters = in_list("key", wanted[start : start + KEY_BATCH])
                rows = await conn.execute(_ARTICLES_BY_KEY + listed, parameters)
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
            "UPDATE articles SET url = :url WHERE id = :id", {"url": placeholder, "id": article_id}
        )

    async def add_keys(self, article_id: int, keys: Iterable[str]) -> None:
        """Remember more identities of a known article (aliases, changed GUIDs)."""
        for key in dict.fromkeys(keys):
            try:
                await self._write(
                    "INSERT INTO article_keys (key, article_id) VALUES (:key, :article_id)",
                    {"key": key, "article_id": article_id},
                )
            except IntegrityError:
                continue

    async def update_article(self, article_id: int, article: Article) -> None:
        await self._write(
            "UPDATE articles SET title = :title, data = :data, updated_at = :now WHERE id = :id",
            {
                "title": article.title,
                "data": json.dumps(article.to_json(), ensure_ascii=False),
                "now": time.time(),
                "id": article_id,
            },
        )

    async def set_retracted(self, article_id: int) -> None:
        await self._write("UPDATE articles SET retracted = TRUE WHERE id = :id", {"id": article_id})

    async def articles_sent_since(self, since: float) -> list[StoredArticle]:
        """Articles with at least one post sent after `since` and not retracted."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    f"{_SELECT_ARTICLES} WHERE retracted = FALSE AND id IN ("
                    "SELECT article_id FROM deliveries WHERE status = :sent AND sent_at >= :since"
                    ") ORDER BY id",
                    {"sent": DeliveryStatus.SENT.value, "since": since},
                )
            ).all()
        return [StoredArticle.from_row(r) for r in rows]

    async def count_articles(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute("SELECT count(*) FROM articles")).scalar())

    async def article_by_id(self, article_id: int) -> StoredArticle | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(f"{_SELECT_ARTICLES} WHERE id = :id", {"id": article_id})
            ).first()
        return StoredArticle.from_row(row) if row is not None else None
