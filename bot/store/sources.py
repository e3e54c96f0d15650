"""Per-source polling state: validators, first-run flag, consecutive failures."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.models import Article
from bot.store.articles import insert_articles
from bot.store.base import StoreBase
from bot.store.batching import Batcher
from bot.store.events import event_values
from bot.store.schema import events, source_state
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
        level, kind, message). Returns the recorded articles' ids, or None, with nothing
        saved, when one of them is already stored (the caller records them one by one and
        saves again).

        Saves are group-committed: the polls that finish while one write runs are written
        together in the next, one statement per table for all of them (issue 18: a
        transaction per feed was a quarter of a cold start's CPU). Each caller still
        returns only once its own state is committed."""
        write = _StateWrite(
            name,
            {
                "etag": etag,
                "last_modified": last_modified,
                "initialized": initialized,
                "last_status": status,
                "last_error": error,
            },
            tuple(records),
            tuple(notes),
        )
        return await self._state_saves.submit(write)

    @functools.cached_property
    def _state_saves(self) -> Batcher[_StateWrite, list[int] | None]:
        return Batcher(self._save_states, _batch_size)

    async def _save_states(
        self, batch: Sequence[_StateWrite]
    ) -> Sequence[list[int] | BaseException | None]:
        try:
            return await self._write_state_batch(batch)
        except IntegrityError:
            if len(batch) == 1 and batch[0].records:
                return [None]
            if len(batch) == 1:
                raise
        # One of them met an article already stored: each in its own transaction, so only
        # that one is refused.
        outcomes: list[list[int] | BaseException | None] = []
        for write in batch:
            try:
                outcomes.append((await self._save_states([write]))[0])
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    async def _write_state_batch(self, batch: Sequence[_StateWrite]) -> list[list[int] | None]:
        now = time.time()
        ids = await self.engine.transaction(_write_states, batch, self.is_sqlite, now)
        outcomes: list[list[int] | None] = []
        for write in batch:
            outcomes.append(ids[: len(write.records)])
            ids = ids[len(write.records) :]
        return outcomes

    async def source_overview(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(source_state).order_by(source_state.c.name))).all()
        return [dict(row._mapping) for row in rows]


@dataclass(frozen=True)
class _StateWrite:
    name: str
    values: dict[str, Any]
    records: tuple[tuple[Article, Sequence[str]], ...]
    notes: tuple[tuple[str, str, str], ...]


#: Source states written in one transaction at most.
STATE_BATCH = 200


def _batch_size(pending: Sequence[_StateWrite]) -> int:
    """At most STATE_BATCH writes, each source once: a second save of a source waits for the
    next batch, so the two stay in order."""
    names: set[str] = set()
    for count, write in enumerate(pending[:STATE_BATCH]):
        if write.name in names:
            return count
        names.add(write.name)
    return min(len(pending), STATE_BATCH)


def _state_upsert(sqlite: bool) -> Any:
    """INSERT ... ON CONFLICT (name) DO UPDATE for SQLite and PostgreSQL: one statement per
    batch whether or not a source was saved before; failures count up while errors last."""
    # The dialect's module is imported here: engine creation has loaded the one in use, and
    # the other is not loaded at all (PostgreSQL's is 1.3 MB for a SQLite daemon).
    if sqlite:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    statement = dialect_insert(source_state)
    kept = ("etag", "last_modified", "initialized", "last_polled_at", "last_status", "last_error")
    return statement.on_conflict_do_update(
        index_elements=[source_state.c.name],
        set_={column: statement.excluded[column] for column in kept}
        | {
            "failures": case(
                (statement.excluded.last_error.is_(None), 0),
                else_=func.coalesce(source_state.c.failures, 0) + 1,
            )
        },
    )


def _write_states(
    conn: Connection, batch: Sequence[_StateWrite], is_sqlite: bool, now: float
) -> list[int]:
    """One transaction for a batch of polls: their recorded articles, states and notes."""
    ids = insert_articles(conn, [r for w in batch for r in w.records], now)
    conn.execute(
        _state_upsert(is_sqlite),
        [
            write.values
            | {
                "name": write.name,
                "last_polled_at": now,
                "failures": 0 if write.values["last_error"] is None else 1,
            }
            for write in batch
        ],
    )
    notes = [
        event_values(level, kind, message, None, None, now)
        for write in batch
        for level, kind, message in write.notes
    ]
    if notes:
        conn.execute(insert(events), notes)
    return ids
