"""SQLAlchemy Core driven from asyncio: the engine and connection calls the store makes.

Each call runs SQLAlchemy's synchronous Core API inside SQLAlchemy's own greenlet bridge
(`greenlet_spawn`), over an asyncio driver (aiosqlite, psycopg's async mode), which is what
`sqlalchemy.ext.asyncio` does too. newsbot does not use that extension because importing it
imports the ORM (about 6 MB resident in every daemon) and newsbot never maps a class.

Semantics kept from the extension: results are buffered (read them without awaiting); a
connection used as an async context manager is closed even when the task is cancelled
meanwhile, and the cancellation is re-raised once the close has finished, so a connection is
never left checked out (and a transaction never left open) by a cancelled task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, CursorResult, Dialect, Engine
from sqlalchemy.util import greenlet_spawn

_T = TypeVar("_T")


class NotAnAsyncDriver(ValueError):
    """The database URL names a driver that would block the event loop."""


async def _to_completion(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a clean-up to its end even if the caller is cancelled meanwhile, then re-raise
    the cancellation: returning early would leave the clean-up running unobserved."""
    task = asyncio.ensure_future(coroutine)
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError as error:
            if task.done():
                raise
            cancelled = error
    if cancelled is not None:
        raise cancelled
    return result


class AsyncConnection:
    """One pooled connection; `execute` returns SQLAlchemy's buffered result."""

    __slots__ = ("sync_connection",)

    def __init__(self, sync_connection: Connection) -> None:
        self.sync_connection = sync_connection

    async def execute(self, statement: Any, parameters: Any = None) -> CursorResult[Any]:
        return await greenlet_spawn(self.sync_connection.execute, statement, parameters)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> CursorResult[Any]:
        return await greenlet_spawn(self.sync_connection.exec_driver_sql, statement, parameters)

    async def run_sync(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Call `fn(sync_connection, *args)` where it may use the synchronous API."""
        return await greenlet_spawn(fn, self.sync_connection, *args, **kwargs)

    async def execution_options(self, **options: Any) -> AsyncConnection:
        await greenlet_spawn(self.sync_connection.execution_options, **options)
        return self

    async def invalidate(self) -> None:
        await greenlet_spawn(self.sync_connection.invalidate)

    async def close(self) -> None:
        await greenlet_spawn(self.sync_connection.close)


class _Connecting:
    """What `AsyncEngine.connect()` returns: await it for a connection the caller closes,
    or use it as `async with` for one closed on the way out."""

    __slots__ = ("_connection", "_engine")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None

    async def _open(self) -> AsyncConnection:
        return AsyncConnection(await greenlet_spawn(self._engine.connect))

    def __await__(self) -> Generator[Any, None, AsyncConnection]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncConnection:
        self._connection = await self._open()
        return self._connection

    async def __aexit__(self, *_: object) -> None:
        if self._connection is not None:
            await _to_completion(self._connection.close())


class AsyncEngine:
    """A SQLAlchemy engine on an asyncio driver; `sync_engine` is the engine itself (for
    event listeners and tests)."""

    __slots__ = ("sync_engine",)

    def __init__(self, sync_engine: Engine) -> None:
        self.sync_engine = sync_engine

    @property
    def dialect(self) -> Dialect:
        return self.sync_engine.dialect

    @property
    def url(self) -> URL:
        return self.sync_engine.url

    def connect(self) -> _Connecting:
        return _Connecting(self.sync_engine)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction: committed when the block ends, rolled back when
        it raises (or, if the commit itself is interrupted, by closing the connection)."""
        async with self.connect() as conn:
            transaction = await greenlet_spawn(conn.sync_connection.begin)
            try:
                yield conn
            except BaseException as error:
                await greenlet_spawn(transaction.__exit__, type(error), error, None)
                raise
            await greenlet_spawn(transaction.__exit__, None, None, None)

    async def dispose(self) -> None:
        await greenlet_spawn(self.sync_engine.dispose)


def create_async_engine(url: str) -> AsyncEngine:
    """An engine for a URL naming an asyncio driver (see `bot.store.base.async_url`)."""
    if not url.startswith("sqlite"):
        engine = create_engine(url)
    else:
        # The pool's reset of a connection it takes back is a rollback only when a transaction
        # is open (SQLAlchemy's documented custom reset): a committed one needs none, and on
        # SQLite's asyncio driver every rollback is a round trip to the driver's thread.
        engine = create_engine(url, pool_reset_on_return=None)
        event.listen(engine, "reset", _rollback_if_in_transaction)
    if not engine.dialect.is_async:
        engine.dispose()
        raise NotAnAsyncDriver(
            f"database driver {engine.dialect.name}+{engine.dialect.driver} is not an asyncio "
            "driver (use sqlite, sqlite+aiosqlite, postgresql or postgresql+psycopg)"
        )
    return AsyncEngine(engine)


def _rollback_if_in_transaction(dbapi_connection: Any, _record: Any, _state: Any) -> None:
    if dbapi_connection.driver_connection.in_transaction:
        dbapi_connection.rollback()
