"""Events (what happened, for editors and `newsbot status`) and the decisions that hold until
changed: paused targets, previews already shown to the editors."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import insert, select, update

from bot.store.base import StoreBase
from bot.store.schema import events, target_state

PREVIEWED = "previewed"  # the event kind that remembers a preview reached the editors


def event_row(
    level: str, kind: str, message: str, target: str | None, delivery_id: int | None, at: float
) -> Any:
    """The INSERT of one event (run inside the caller's transaction)."""
    return insert(events).values(
        at=at, level=level, kind=kind, target=target, delivery_id=delivery_id, message=message
    )


class EventsMixin(StoreBase):
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
            await conn.execute(event_row(level, kind, message, target, delivery_id, time.time()))

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
