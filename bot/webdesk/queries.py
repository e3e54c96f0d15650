"""The web desk's read-only queries over the store's tables: one article, history with filters
and paging done by the database, the latest articles. Nothing here writes a row; every change
of the outbox goes through the Desk and the Store's named moves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.models import Article
from bot.store import Delivery, StoredArticle
from bot.store.aio import AsyncEngine, in_list
from bot.store.schema import ARTICLE_COLUMNS, DELIVERY_COLUMNS


@dataclass(frozen=True)
class HistoryFilter:
    """What an editor narrows history to; empty fields filter nothing."""

    target: str = ""
    status: str = ""
    source: str = ""
    words: str = ""  # every word must appear in the headline (case-insensitive)
    day: date | None = None  # the article's publication day (first seen, if unknown), local


@dataclass(frozen=True)
class HistoryEntry:
    article: Article
    retracted: bool
    deliveries: list[Delivery]


@dataclass(frozen=True)
class HistoryPage:
    entries: list[HistoryEntry]
    page: int
    per_page: int
    total: int  # articles matching the filter

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


async def stored_article(engine: AsyncEngine, article_id: int) -> StoredArticle | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                f"SELECT {ARTICLE_COLUMNS} FROM articles WHERE id = :id", {"id": article_id}
            )
        ).first()
    return StoredArticle.from_row(row) if row is not None else None


async def latest_articles(engine: AsyncEngine, limit: int = 20) -> list[Article]:
    """The newest articles first (by first sight), not retracted: what a rule edit is
    previewed against."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                "SELECT data FROM articles WHERE retracted = FALSE "
                "ORDER BY first_seen_at DESC, id DESC LIMIT :limit",
                {"limit": limit},
            )
        ).all()
    return [Article.from_json(json.loads(row.data)) for row in rows]


def _delivery_conditions(wanted: HistoryFilter) -> tuple[list[str], dict[str, Any]]:
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if wanted.target:
        conditions.append("target = :target")
        params["target"] = wanted.target
    if wanted.status:
        conditions.append("status = :status")
        params["status"] = wanted.status
    return conditions, params


def _article_conditions(wanted: HistoryFilter, tz: ZoneInfo) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (empty, or starting with WHERE) narrowing articles to `wanted`, and
    its parameters."""
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if wanted.source:
        conditions.append("source = :source")
        params["source"] = wanted.source
    for i, word in enumerate(wanted.words.lower().split()[:8]):
        # The words are matched literally: LIKE's wildcards and the escape itself escaped.
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(f"lower(title) LIKE :word_{i} ESCAPE '\\'")
        params[f"word_{i}"] = f"%{escaped}%"
    if wanted.day is not None:
        start = datetime.combine(wanted.day, time(0), tzinfo=tz).timestamp()
        end = datetime.combine(wanted.day + timedelta(days=1), time(0), tzinfo=tz).timestamp()
        conditions.append(
            "COALESCE(published_at, first_seen_at) >= :day_start "
            "AND COALESCE(published_at, first_seen_at) < :day_end"
        )
        params.update(day_start=start, day_end=end)
    delivery_conditions, delivery_params = _delivery_conditions(wanted)
    if delivery_conditions:
        conditions.append(
            "id IN (SELECT article_id FROM deliveries WHERE "
            + " AND ".join(delivery_conditions)
            + ")"
        )
        params.update(delivery_params)
    return ("WHERE " + " AND ".join(conditions) if conditions else ""), params


async def history(
    engine: AsyncEngine, wanted: HistoryFilter, tz: ZoneInfo, page: int = 1, per_page: int = 25
) -> HistoryPage:
    """One page of articles (newest first) matching `wanted`, each with its deliveries (only
    those of the filtered target and status, when given)."""
    page = max(1, page)
    where, params = _article_conditions(wanted, tz)
    async with engine.connect() as conn:
        total = int(
            (await conn.execute(f"SELECT count(*) FROM articles {where}", params)).scalar_one()
        )
        rows = (
            await conn.execute(
                f"SELECT {ARTICLE_COLUMNS} FROM articles {where} "
                "ORDER BY first_seen_at DESC, id DESC LIMIT :limit OFFSET :offset",
                {**params, "limit": per_page, "offset": (page - 1) * per_page},
            )
        ).all()
        found = [StoredArticle.from_row(row) for row in rows]
        shown: dict[int, list[Delivery]] = {stored.id: [] for stored in found}
        if shown:
            ids, delivery_params = in_list("article", list(shown))
            conditions, filter_params = _delivery_conditions(wanted)
            narrowed = " AND ".join([f"article_id IN {ids}", *conditions])
            query = f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {narrowed} ORDER BY id"
            for row in (await conn.execute(query, {**delivery_params, **filter_params})).all():
                shown[row.article_id].append(Delivery.from_row(row))
    entries = [HistoryEntry(s.article, s.retracted, shown[s.id]) for s in found]
    return HistoryPage(entries, page, per_page, total)
