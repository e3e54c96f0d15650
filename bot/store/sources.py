"""Per-source polling state: validators, first-run flag, consecutive failures."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.models import Article
from bot.store.articles import insert_articles
from bot.store.base import StoreBase
from bot.store.events import event_row
from bot.store.schema import source_state
from bot.store.types import SourceState


class SourcesMixin(StoreBase):
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

    async def source_states(self) -> dict[str, SourceState]:
        """Every stored source state, by name: one query at start-up instead of one per source."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(source_state))).all()
        return {
            row.name: SourceState(
                row.name, row.etag, row.last_modified, bool(row.initialized), row.failures or 0
            )
            for row in rows
        }

    async def save_source_state(
        self,
        name: str,
        *,
        etag: str | None,
        last_modified: str | None,
        initialized: bool,
        status: int | None,
        error: str | None,
        records: Sequence[tuple[Article, Sequence[str]]] = (),
        notes: Sequence[tuple[str, str, str]] = (),
    ) -> list[int] | None:
        """Save a source's state after a poll, in one transaction with the articles the poll
        records without posting (`records`, as for add_articles) and its events (`notes`:
        level, kind, message): one write per feed instead of three (issue 18). Returns the
        recorded articles' ids, or None, with nothing saved, when one of them is already
        stored (the caller records them one by one and saves again)."""
        values = {
            "etag": etag,
            "last_modified": last_modified,
            "initialized": initialized,
            "last_polled_at": time.time(),
            "last_status": status,
            "last_error": error,
        }
        try:
            async with self._begin() as conn:
                ids = await insert_articles(conn, records, values["last_polled_at"])
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
                for level, kind, message in notes:
                    await conn.execute(
                        event_row(level, kind, message, None, None, values["last_polled_at"])
                    )
        except IntegrityError:
            if not records:
                raise
            return None
        return ids

    async def source_overview(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(source_state).order_by(source_state.c.name))).all()
        return [dict(row._mapping) for row in rows]
