"""The engine every store mixin shares: connection setup, write transactions, schema creation."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from bot.store.aio import AsyncConnection, AsyncEngine, Connection, create_async_engine
from bot.store.schema import create_schema
from bot.store.url import DatabaseURL


class StoreBase:
    """The shared engine and write transaction; the per-area mixins build on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = DatabaseURL.parse(url)
        self.is_sqlite = parsed.backend == "sqlite"
        if self.is_sqlite and not parsed.in_memory:
            _private_sqlite_files(parsed.database)
        self.engine: AsyncEngine = create_async_engine(parsed)
        self._leader_conn: AsyncConnection | None = None

    async def _write(self, statement: str, parameters: Any = None) -> None:
        """A write transaction of one statement."""
        await self.engine.transaction(_execute, statement, parameters)

    async def init(self) -> None:
        await self.engine.transaction(create_schema)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute("SELECT 1")
            return True
        except Exception:
            return False


def _execute(conn: Connection, statement: str, parameters: Any) -> None:
    conn.execute(statement, parameters)


def _private_sqlite_files(database: str | None) -> None:
    """Create the SQLite file 0600 (owner only) before SQLite does, and tighten an existing
    one: SQLite gives its -wal and -shm files the database file's mode (issue 15)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for file in (
        path,
        Path(f"{database}-wal"),
        Path(f"{database}-shm"),
        Path(f"{database}-journal"),
    ):
        with contextlib.suppress(OSError):
            if file.exists():
                file.chmod(0o600)
