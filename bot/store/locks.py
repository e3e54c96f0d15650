"""Locks and leadership between replicas (PostgreSQL advisory locks; SQLite means one
process, so both are always granted)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator

from bot.store.aio import AsyncConnection
from bot.store.base import StoreBase


class LocksMixin(StoreBase):
    def _lock_key(self, name: str) -> int:
        # Advisory locks are per database: the key includes the URL (and so the schema).
        digest = hashlib.sha256(f"newsbot:{self.url}:{name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    async def hold_leadership(self) -> bool:
        """Take or keep the leader lock; False if another replica holds it (or the session
        holding it was lost). The lock lives as long as one dedicated connection."""
        if self.is_sqlite:
            return True
        if self._leader_conn is not None:
            try:
                await self._leader_conn.execute("SELECT 1")
                return True
            except Exception:  # the session, and with it the lock, is gone
                await self._drop_leader_conn()
        conn = await self.engine.connect()
        try:  # connections are in autocommit: the lock belongs to the session, not a transaction
            got = (
                await conn.execute(
                    "SELECT pg_try_advisory_lock(:key)", {"key": self._lock_key("leader")}
                )
            ).scalar()
        except Exception:
            await conn.close()
            raise
        if got:
            self._leader_conn = conn
            return True
        await conn.close()
        return False

    async def _drop_leader_conn(self) -> None:
        conn, self._leader_conn = self._leader_conn, None
        if conn is not None:
            await _release(conn, self._lock_key("leader"))

    @contextlib.asynccontextmanager
    async def target_turn(self, target: str) -> AsyncIterator[bool]:
        """Whether this replica may drain `target` now: one replica at a time per target, so
        its posts keep their order and pacing. Yields False if another replica is on it."""
        if self.is_sqlite:
            yield True
            return
        key = self._lock_key(f"target:{target}")
        async with self.engine.connect() as conn:
            got = bool(
                (await conn.execute("SELECT pg_try_advisory_lock(:key)", {"key": key})).scalar()
            )
            try:
                yield got
            finally:
                if got:
                    await _release(conn, key)


async def _release(conn: AsyncConnection, key: int) -> None:
    """Give up an advisory lock at once. A session whose unlock failed is closed, never pooled:
    a pooled session still holding the lock would block every replica, this one included."""
    released = False
    with contextlib.suppress(Exception):
        unlock = "SELECT pg_advisory_unlock(:key)"
        released = bool((await conn.execute(unlock, {"key": key})).scalar())
    with contextlib.suppress(Exception):
        if not released:
            conn.invalidate()
        await conn.close()
