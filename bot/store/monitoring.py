"""Read-only figures for `newsbot status`, the desk's /status and the metrics endpoint."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from bot.store.base import StoreBase
from bot.store.schema import deliveries, source_state, target_state
from bot.store.types import DeliveryStatus


class MonitoringMixin(StoreBase):
    async def counts(self) -> dict[str, dict[str, int]]:
        """target -> status -> number of deliveries."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(deliveries.c.target, deliveries.c.status, func.count()).group_by(
                        deliveries.c.target, deliveries.c.status
                    )
                )
            ).all()
        result: dict[str, dict[str, int]] = {}
        for target, status, count in rows:
            result.setdefault(target, {})[status] = int(count)
        return result

    async def monitoring_snapshot(self, now: float) -> dict[str, dict[Any, Any]]:
        """Outbox, target and source figures for the metrics endpoint, in one connection:
        deliveries {(target, status): n}, due {target: (n pending due now, earliest due)},
        paused {target: bool}, sources {name: (consecutive failures, last polled at)}."""
        snap: dict[str, dict[Any, Any]] = {"deliveries": {}, "due": {}, "paused": {}, "sources": {}}
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(deliveries.c.target, deliveries.c.status, func.count()).group_by(
                    deliveries.c.target, deliveries.c.status
                )
            )
            for target, status, count in rows:
                snap["deliveries"][(target, status)] = int(count)
            rows = await conn.execute(
                select(deliveries.c.target, func.count(), func.min(deliveries.c.next_attempt_at))
                .where(
                    deliveries.c.status == DeliveryStatus.PENDING,
                    deliveries.c.next_attempt_at <= now,
                )
                .group_by(deliveries.c.target)
            )
            for target, count, earliest in rows:
                snap["due"][target] = (int(count), float(earliest))
            for name, paused in await conn.execute(
                select(target_state.c.name, target_state.c.paused)
            ):
                snap["paused"][name] = bool(paused)
            for name, failures, polled in await conn.execute(
                select(source_state.c.name, source_state.c.failures, source_state.c.last_polled_at)
            ):
                snap["sources"][name] = (int(failures or 0), polled)
        return snap
