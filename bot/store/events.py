"""Events (what happened, for editors and `newsbot status`) and the decisions that hold until
changed: paused targets, previews already shown to the editors."""

from __future__ import annotations

import time
from typing import Any

from bot.store.aio import Connection, in_list
from bot.store.base import StoreBase

PREVIEWED = "previewed"  # the event kind that remembers a preview reached the editors
PREVIEW_SHOWN = "preview-record"  # what a preview message last showed (its decision/link)
DECISION = "decision"  # an editor's decision on a delivery
APPROVAL_TIMEOUT = "approval-timeout"  # nobody answered: the rule's default decided
DECISION_KINDS = (DECISION, APPROVAL_TIMEOUT)

#: The INSERT of one event (parameters: event_values).
INSERT_EVENT = (
    "INSERT INTO events (at, level, kind, target, delivery_id, message) "
    "VALUES (:at, :level, :kind, :target, :delivery_id, :message)"
)
_SELECT_EVENTS = "SELECT id, at, level, kind, target, delivery_id, message FROM events"


def event_values(
    level: str, kind: str, message: str, target: str | None, delivery_id: int | None, at: float
) -> dict[str, Any]:
    """One event's row, the parameters of INSERT_EVENT (one, or many in an executemany)."""
    return {
        "at": at,
        "level": level,
        "kind": kind,
        "target": target,
        "delivery_id": delivery_id,
        "message": message,
    }


def add_event(
    conn: Connection,
    level: str,
    kind: str,
    message: str,
    target: str | None,
    delivery_id: int | None,
    at: float,
) -> None:
    """Record one event inside the caller's transaction."""
    conn.execute(INSERT_EVENT, event_values(level, kind, message, target, delivery_id, at))


def _set_paused(conn: Connection, target: str, values: dict[str, Any]) -> None:
    values = values | {"name": target}
    result = conn.execute(
        "UPDATE target_state SET paused = :paused, reason = :reason, changed_at = :changed_at "
        "WHERE name = :name",
        values,
    )
    if result.rowcount == 0:
        conn.execute(
            "INSERT INTO target_state (name, paused, reason, changed_at) "
            "VALUES (:name, :paused, :reason, :changed_at)",
            values,
        )


class EventsMixin(StoreBase):
    async def paused_targets(self) -> dict[str, str]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute("SELECT name, reason FROM target_state WHERE paused = TRUE")
            ).all()
        return {row.name: row.reason or "" for row in rows}

    async def set_paused(self, target: str, paused: bool, reason: str = "") -> None:
        values = {"paused": paused, "reason": reason, "changed_at": time.time()}
        await self.engine.transaction(_set_paused, target, values)

    async def record_event(
        self,
        level: str,
        kind: str,
        message: str,
        target: str | None = None,
        delivery_id: int | None = None,
    ) -> None:
        await self._write(
            INSERT_EVENT, event_values(level, kind, message, target, delivery_id, time.time())
        )

    async def recent_events(self, limit: int = 20) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    f"{_SELECT_EVENTS} ORDER BY id DESC LIMIT :limit", {"limit": limit}
                )
            ).all()
        return [r._asdict() for r in rows]

    async def mark_previewed(self, delivery_id: int, target: str, where: str) -> None:
        """Remember that a delivery's preview reached the editors (survives restarts and
        leadership changes, so a preview is shown once)."""
        await self.record_event("info", PREVIEWED, f"preview sent to {where}", target, delivery_id)

    async def record_decision(
        self, delivery_id: int | None, target: str | None, who: str, what: str
    ) -> None:
        """An editor's decision (`who` names the editor and their id), for /history and the
        preview's record."""
        await self.record_event("info", DECISION, f"{who}: {what}", target, delivery_id)

    async def decisions(
        self, limit: int = 10, delivery_id: int | None = None, offset: int = 0
    ) -> list[dict[str, Any]]:
        """The latest decisions (editors' and approval timeouts), newest first, after skipping
        the `offset` newest (a page of /history)."""
        kinds, parameters = in_list("kind", DECISION_KINDS)
        query = f"{_SELECT_EVENTS} WHERE kind IN {kinds}"
        if delivery_id is not None:
            query += " AND delivery_id = :delivery_id"
            parameters["delivery_id"] = delivery_id
        query += " ORDER BY id DESC LIMIT :limit OFFSET :offset"
        parameters |= {"limit": limit, "offset": offset}
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query, parameters)).all()
        return [r._asdict() for r in rows]

    async def preview_events(self, kind: str, since: float) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    f"{_SELECT_EVENTS} WHERE kind = :kind AND at >= :since ORDER BY id",
                    {"kind": kind, "since": since},
                )
            ).all()
        return [r._asdict() for r in rows]
