"""Events (what happened, for editors and `newsbot status`) and the decisions that hold until
changed: paused targets, previews already shown to the editors."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from bot.store.base import StoreBase
from bot.store.schema import events, target_state

PREVIEWED = "previewed"  # the event kind that remembers a preview reached the editors
PREVIEW_SHOWN = "preview-record"  # what a preview message last showed (its decision/link)
DECISION = "decision"  # an editor's decision on a delivery
APPROVAL_TIMEOUT = "approval-timeout"  # nobody answered: the rule's default decided
DECISION_KINDS = (DECISION, APPROVAL_TIMEOUT)


def event_values(
    level: str, kind: str, message: str, target: str | None, delivery_id: int | None, at: float
) -> dict[str, Any]:
    """One event's row, for an INSERT of one (event_row) or of many (an executemany)."""
    return {
        "at": at,
        "level": level,
        "kind": kind,
        "target": target,
        "delivery_id": delivery_id,
        "message": message,
    }


def event_row(
    level: str, kind: str, message: str, target: str | None, delivery_id: int | None, at: float
) -> Any:
    """The INSERT of one event (run inside the caller's transaction)."""
    return insert(events).values(**event_values(level, kind, message, target, delivery_id, at))


def _set_paused(conn: Connection, target: str, values: dict[str, Any]) -> None:
    result = conn.execute(
        update(target_state).where(target_state.c.name == target).values(**values)
    )
    if result.rowcount == 0:
        conn.execute(insert(target_state).values(name=target, **values))


class EventsMixin(StoreBase):
    async def paused_targets(self) -> dict[str, str]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(target_state).where(target_state.c.paused.is_(True)))
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
        await self._write(event_row(level, kind, message, target, delivery_id, time.time()))

    async def recent_events(self, limit: int = 20) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(events).order_by(events.c.id.desc()).limit(limit))
            ).all()
        return [dict(r._mapping) for r in rows]

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
        query = select(events).where(events.c.kind.in_(DECISION_KINDS))
        if delivery_id is not None:
            query = query.where(events.c.delivery_id == delivery_id)
        query = query.order_by(events.c.id.desc()).limit(limit).offset(offset)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [dict(r._mapping) for r in rows]

    async def preview_events(self, kind: str, since: float) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(events)
                    .where(events.c.kind == kind, events.c.at >= since)
                    .order_by(events.c.id)
                )
            ).all()
        return [dict(r._mapping) for r in rows]
