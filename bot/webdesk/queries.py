"""The web desk's read-only queries over the store's tables: one article, history with filters
and paging done by the database, the latest articles. Nothing here writes a row; every change
of the outbox goes through the Desk and the Store's named moves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.sql.elements import ColumnElement

from bot.models import Article
from bot.store import Delivery, StoredArticle, articles, deliveries
from bot.store.aio import AsyncEngine


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
        row = (await conn.execute(select(articles).where(articles.c.id == article_id))).first()
    return StoredArticle.from_row(row) if row is not None else None


async def latest_articles(engine: AsyncEngine, limit: int = 20) -> list[Article]:
    """The newest articles first (by first sight), not retracted: what a rule edit is
    previewed against."""
    query = (
        select(articles.c.data)
        .where(articles.c.retracted.is_(False))
        .order_by(articles.c.first_seen_at.desc(), articles.c.id.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [Article.from_json(json.loads(row.data)) for row in rows]


def _article_conditions(wanted: HistoryFilter, tz: ZoneInfo) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if wanted.source:
        conditions.append(articles.c.source == wanted.source)
    for word in wanted.words.lower().split()[:8]:
        escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(func.lower(articles.c.title).like(f"%{escaped}%", escape="\\"))
    if wanted.day is not None:
        start = datetime.combine(wanted.day, time(0), tzinfo=tz).timestamp()
        end = datetime.combine(wanted.day + timedelta(days=1), time(0), tzinfo=tz).timestamp()
        when = func.coalesce(articles.c.published_at, articles.c.first_seen_at)
        conditions.append(and_(when >= start, when < end))
    delivery_conditions: list[ColumnElement[bool]] = []
    if wanted.target:
        delivery_conditions.append(deliveries.c.target == wanted.target)
    if wanted.status:
        delivery_conditions.append(deliveries.c.status == wanted.status)
    if delivery_conditions:
        conditions.append(
            articles.c.id.in_(select(deliveries.c.article_id).where(*delivery_conditions))
        )
    return conditions


async def history(
    engine: AsyncEngine, wanted: HistoryFilter, tz: ZoneInfo, page: int = 1, per_page: int = 25
) -> HistoryPage:
    """One page of articles (newest first) matching `wanted`, each with its deliveries (only
    those of the filtered target and status, when given)."""
    page = max(1, page)
    conditions = _article_conditions(wanted, tz)
    async with engine.connect() as conn:
        total = int(
            (
                await conn.execute(select(func.count()).select_from(articles).where(*conditions))
            ).scalar_one()
        )
        rows = (
            await conn.execute(
                select(articles)
                .where(*conditions)
                .order_by(articles.c.first_seen_at.desc(), articles.c.id.desc())
                .limit(per_page)
                .offset((page - 1) * per_page)
            )
        ).all()
        found = [StoredArticle.from_row(row) for row in rows]
        shown: dict[int, list[Delivery]] = {stored.id: [] for stored in found}
        if shown:
            query = select(deliveries).where(deliveries.c.article_id.in_(list(shown)))
            if wanted.target:
                query = query.where(deliveries.c.target == wanted.target)
            if wanted.status:
                query = query.where(deliveries.c.status == wanted.status)
            for row in (await conn.execute(query.order_by(deliveries.c.id))).all():
                shown[row.article_id].append(Delivery.from_row(row))
    entries = [HistoryEntry(s.article, s.retracted, shown[s.id]) for s in found]
    return HistoryPage(entries, page, per_page, total)
