"""Read-only figures for `newsbot status`, the desk's /status and the metrics endpoint."""

from __future__ import annotations

from typing import Any

from bot.store.base import StoreBase
from bot.store.types import DeliveryStatus

_COUNTS = "SELECT target, status, count(*) FROM deliveries GROUP BY target, status"


class MonitoringMixin(StoreBase):
    async def counts(self) -> dict[str, dict[str, int]]:
        """target -> status -> number of deliveries."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(_COUNTS)).all()
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
            rows = await conn.execute(_COUNTS)
            for target, status, count in rows:
                snap["deliveries"][(target, status)] = int(count)
            rows = await conn.execute(
                "SELECT target, count(*), min(next_attempt_at) FROM deliveries "
                "WHERE status = :pending AND next_attempt_at <= :now GROUP BY target",
                {"pending": DeliveryStatus.PENDING.value, "now": now},
            )
            for target, count, earliest in rows:
                snap["due"][target] = (int(count), float(earliest))
            for name, paused in await conn.execute("SELECT name, paused FROM target_state"):
                snap["paused"][name] = bool(paused)
            for name, failures, polled in await conn.execute(
                "SELECT name, failures, last_polled_at FROM source_state"
            ):
                snap["sources"][name] = (int(failures or 0), polled)
        return snap
