"""Per-source polling state: validators, first-run flag, consecutive failures."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.models import Article
from bot.store.aio import Connection, IntegrityError
from bot.store.articles import insert_articles
from bot.store.base import StoreBase
from bot.store.batching import Batcher
from bot.store.events import INSERT_EVENT, event_values
from bot.store.types import SourceState


class SourcesMixin(StoreBase):
    async def source_state(self, name: str) -> SourceState:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(f"{_SELECT_STATES} WHERE name = :name", {"name": name})
            ).first()
        if row is None:
            return SourceState(name)
        return SourceState(
            name, row.etag, row.last_modified, bool(row.initialized), row.failures or 0
        )

    async def source_states(self) -> dict[str, SourceState]:
        """Every stored source state, by name: one query at start-up instead of one per source."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(_SELECT_STATES)).all()
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
        ids = await self.engine.transaction(_write_states, batch, now)
        outcomes: list[list[int] | None] = []
        for write in batch:
            outcomes.append(ids[: len(write.records)])
            ids = ids[len(write.records) :]
        return outcomes

    async def source_overview(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(f"{_SELECT_STATES} ORDER BY name")).all()
        return [row._asdict() | {"initialized": bool(row.initialized)} for row in rows]


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


_SELECT_STATES = (
    "SELECT name, etag, last_modified, initialized, last_polled_at, last_status, last_error, "
    "failures FROM source_state"
)

# INSERT ... ON CONFLICT (name) DO UPDATE (SQLite and PostgreSQL alike): one statement per
# batch whether or not a source was saved before; failures count up while errors last.
_STATE_UPSERT = (
    "INSERT INTO source_state (name, etag, last_modified, initialized, last_polled_at, "
    "last_status, last_error, failures) VALUES (:name, :etag, :last_modified, :initialized, "
    ":last_polled_at, :last_status, :last_error, :failures) "
    "ON CONFLICT (name) DO UPDATE SET etag = excluded.etag, "
    "last_modified = excluded.last_modified, initialized = excluded.initialized, "
    "last_polled_at = excluded.last_polled_at, last_status = excluded.last_status, "
    "last_error = excluded.last_error, failures = CASE WHEN excluded.last_error IS NULL "
    "THEN 0 ELSE COALESCE(source_state.failures, 0) + 1 END"
)


def _write_states(conn: Connection, batch: Sequence[_StateWrite], now: float) -> list[int]:
    """One transaction for a batch of polls: their recorded articles, states and notes."""
    ids = insert_articles(conn, [r for w in batch for r in w.records], now)
    conn.executemany(
        _STATE_UPSERT,
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
    conn.executemany(INSERT_EVENT, notes)
    return ids
