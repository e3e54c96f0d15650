"""The engine every store mixin shares: connection setup, write transactions, schema creation."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, select, text
from sqlalchemy.engine import Connection, make_url

from bot.store.aio import AsyncConnection, AsyncEngine, create_async_engine
from bot.store.schema import ADDED_COLUMNS, metadata

#: Per database in a URL: the drivers newsbot accepts there (none named is "") and the driver
#: it runs them on (SQLite's standard driver in worker threads, psycopg's async mode; see
#: bot.store.aio). Any other driver would block the event loop or is not installed; the
#: config check refuses it (bot.config).
DRIVERS: dict[str, tuple[tuple[str, ...], str]] = {
    "sqlite": (("", "pysqlite", "aiosqlite"), "sqlite+pysqlite"),
    "postgresql": (("", "psycopg2", "psycopg", "psycopg_async"), "postgresql+psycopg_async"),
}
DRIVERS["postgres"] = DRIVERS["postgresql"]


def async_url(url: str) -> str:
    """Map a plain SQLAlchemy URL to the driver newsbot runs it on (SQLite's standard driver in
    worker threads, psycopg's async mode)."""
    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    accepted, asyncio_driver = DRIVERS.get(backend, ((), ""))
    if driver in accepted:
        parsed = parsed.set(drivername=asyncio_driver)
    return parsed.render_as_string(hide_password=False)


class StoreBase:
    """The shared engine and write transaction; the per-area mixins build on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(async_url(url))
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            _private_sqlite_files(self.engine.url.database)
        self._leader_conn: AsyncConnection | None = None

    async def _write(self, statement: Any, parameters: Any = None) -> None:
        """A write transaction of one statement."""
        await self.engine.transaction(_execute, statement, parameters)

    async def init(self) -> None:
        await self.engine.transaction(_create_schema)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(1))
            return True
        except Exception:
            return False


def _execute(sync_conn: Connection, statement: Any, parameters: Any) -> None:
    sync_conn.execute(statement, parameters)


def _create_schema(sync_conn: Connection) -> None:
    metadata.create_all(sync_conn)
    _add_missing_columns(sync_conn)


def _add_missing_columns(sync_conn: Connection) -> None:
    """Bring a database made by an older version up to the current columns."""
    present: dict[str, set[str]] = {}
    for table, column, sql_type in ADDED_COLUMNS:
        if table not in present:
            present[table] = {c["name"] for c in inspect(sync_conn).get_columns(table)}
        if column not in present[table]:
            sync_conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets `newsbot status` read while the daemon writes; busy_timeout rides out the
    # brief write locks instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


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
