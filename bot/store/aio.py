"""SQLAlchemy Core driven from asyncio: the engine and connection calls the store makes.

Every call runs SQLAlchemy's synchronous Core API off the event loop, by one of two bridges:
- SQLite: the call runs whole in a worker thread on the standard `sqlite3` driver: one trip
  to a thread per statement, and one for a whole write transaction (`transaction`), which
  holds SQLite's single write turn only while it runs. With aiosqlite a write crossed to the
  driver's thread four times a statement (cursor, statement, rows, close), each crossing
  waiting for a busy event loop while the other writers waited for the turn.
- PostgreSQL: SQLAlchemy's own greenlet bridge (`greenlet_spawn`) over psycopg's async mode,
  which is what `sqlalchemy.ext.asyncio` does too.
newsbot does not use that extension because importing it imports the ORM (about 6 MB resident
in every daemon) and newsbot never maps a class.

Semantics kept from the extension: results are buffered (read them without awaiting); a
connection used as an async context manager is closed even when the task is cancelled
meanwhile, and the cancellation is re-raised once the close has finished, so a connection is
never left checked out (and a transaction never left open) by a cancelled task. A call running
in SQLite's thread is waited for to its end before a cancellation is re-raised: the connection
is then free for the rollback and close that follow, never used by two threads at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, CursorResult, Dialect, Engine, make_url
from sqlalchemy.pool import StaticPool
from sqlalchemy.util import greenlet_spawn

_T = TypeVar("_T")

#: Runs a synchronous SQLAlchemy call off the event loop and returns its result.
Bridge = Callable[..., Awaitable[Any]]

#: Connections a SQLite engine's pool gives out at once (SQLAlchemy's default 5 + 10
#: overflow). Checkouts past it wait on the event loop, not in a worker thread, so a thread is
#: always free for a connection already out to finish and come back.
SQLITE_CONNECTIONS = 15


class NotAnAsyncDriver(ValueError):
    """The database URL names a driver that would block the event loop."""


async def _to_completion(
    awaitable: Awaitable[_T], undo: Callable[[_T], Awaitable[object]] | None = None
) -> _T:
    """Run a call to its end even if the caller is cancelled meanwhile, then re-raise the
    cancellation (after `undo(result)`, if given): returning early would leave the call
    running unobserved."""
    task = asyncio.ensure_future(awaitable)
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
        if undo is not None:
            await _to_completion(undo(result))
        raise cancelled
    return result


class _SQLiteThreads:
    """The SQLite bridge: each call runs whole in a worker thread. Threads start as needed,
    at most one per connection the pool can give out, and end when the engine is disposed."""

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.checkouts = asyncio.Semaphore(SQLITE_CONNECTIONS)
        # SQLite has one writer at a time: writers queue here, in their threads, rather than
        # race for the file's lock until busy_timeout fails one; the turn is held only while
        # the transaction runs, never while the event loop is busy elsewhere.
        self.write_turn = threading.Lock()

    def submit(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> asyncio.Future[_T]:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                self._threads, thread_name_prefix="newsbot-sqlite"
            )
        call = functools.partial(fn, *args, **kwargs)
        return asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def __call__(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return await _to_completion(self.submit(fn, *args, **kwargs))

    def shutdown(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)


class AsyncConnection:
    """One pooled connection; `execute` returns SQLAlchemy's buffered result."""

    __slots__ = ("_call", "_release", "sync_connection")

    def __init__(
        self, sync_connection: Connection, call: Bridge, release: Callable[[], None]
    ) -> None:
        self.sync_connection = sync_connection
        self._call = call
        self._release = release

    async def execute(self, statement: Any, parameters: Any = None) -> CursorResult[Any]:
        return await self._call(self.sync_connection.execute, statement, parameters)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> CursorResult[Any]:
        return await self._call(self.sync_connection.exec_driver_sql, statement, parameters)

    async def run_sync(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Call `fn(sync_connection, *args)` where it may use the synchronous API."""
        return await self._call(fn, self.sync_connection, *args, **kwargs)

    async def execution_options(self, **options: Any) -> AsyncConnection:
        await self._call(self.sync_connection.execution_options, **options)
        return self

    async def invalidate(self) -> None:
        await self._call(self.sync_connection.invalidate)

    async def close(self) -> None:
        try:
            await self._call(self.sync_connection.close)
        finally:
            release, self._release = self._release, _nothing
            release()


def _nothing() -> None:
    pass


class _Connecting:
    """What `AsyncEngine.connect()` returns: await it for a connection the caller closes,
    or use it as `async with` for one closed on the way out."""

    __slots__ = ("_connection", "_engine")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None

    async def _open(self) -> AsyncConnection:
        return await self._engine._checkout()

    def __await__(self) -> Generator[Any, None, AsyncConnection]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncConnection:
        self._connection = await self._open()
        return self._connection

    async def __aexit__(self, *_: object) -> None:
        if self._connection is not None:
            await _to_completion(self._connection.close())


class AsyncEngine:
    """A SQLAlchemy engine driven from asyncio; `sync_engine` is the engine itself (for
    event listeners and tests)."""

    __slots__ = ("_call", "_threads", "sync_engine")

    def __init__(self, sync_engine: Engine, threads: _SQLiteThreads | None = None) -> None:
        self.sync_engine = sync_engine
        self._threads = threads
        self._call: Bridge = threads if threads is not None else greenlet_spawn

    @property
    def dialect(self) -> Dialect:
        return self.sync_engine.dialect

    @property
    def url(self) -> URL:
        return self.sync_engine.url

    def connect(self) -> _Connecting:
        return _Connecting(self)

    async def _checkout(self) -> AsyncConnection:
        if self._threads is None:
            connection = await greenlet_spawn(self.sync_engine.connect)
            return AsyncConnection(connection, self._call, _nothing)
        threads = self._threads
        await threads.checkouts.acquire()
        try:
            # A checkout finished after its caller was cancelled goes straight back.
            connection = await _to_completion(
                threads.submit(self.sync_engine.connect),
                undo=lambda connection: threads.submit(connection.close),
            )
        except BaseException:
            threads.checkouts.release()
            raise
        return AsyncConnection(connection, self._call, threads.checkouts.release)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction: committed when the block ends, rolled back when
        it raises (or, if the commit itself is interrupted, by closing the connection)."""
        async with self.connect() as conn:
            transaction = await self._call(conn.sync_connection.begin)
            try:
                yield conn
            except BaseException as error:
                await self._call(transaction.__exit__, type(error), error, None)
                raise
            await self._call(transaction.__exit__, None, None, None)

    async def transaction(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """`fn(connection, *args, **kwargs)` in one transaction, committed when it returns,
        rolled back when it raises. On SQLite, transactions run one at a time in this process,
        each all in one call in a worker thread (checkout, statements, commit, check-in). A
        cancelled caller's transaction ends first, committed or rolled back as it went."""
        if self._threads is None:
            return await greenlet_spawn(_in_transaction, self.sync_engine, fn, args, kwargs)
        threads = self._threads
        async with threads.checkouts:
            return await threads(_in_turn, threads.write_turn, self.sync_engine, fn, args, kwargs)

    async def dispose(self) -> None:
        await self._call(self.sync_engine.dispose)
        if self._threads is not None:
            self._threads.shutdown()


def create_async_engine(url: str) -> AsyncEngine:
    """An engine for a URL naming an asyncio driver (see `bot.store.base.async_url`); a
    SQLite URL runs on the standard driver in worker threads, whatever driver it names."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(parsed)
        if not engine.dialect.is_async:
            engine.dispose()
            raise NotAnAsyncDriver(
                f"database driver {engine.dialect.name}+{engine.dialect.driver} is not an "
                "asyncio driver (use sqlite, postgresql or postgresql+psycopg)"
            )
        return AsyncEngine(engine)
    options: dict[str, Any] = {
        # Each connection is used by one call at a time, from whichever worker thread runs it.
        "connect_args": {"check_same_thread": False},
        # The pool's reset of a connection it takes back is a rollback only when a transaction
        # is open (SQLAlchemy's documented custom reset): a committed one needs none.
        "pool_reset_on_return": None,
    }
    if parsed.database in (None, "", ":memory:"):
        # One database in memory: one connection to it, every call in one thread, in turn.
        options["poolclass"], threads = StaticPool, 1
    else:
        options["pool_size"], options["max_overflow"] = 5, SQLITE_CONNECTIONS - 5
        threads = SQLITE_CONNECTIONS
    engine = create_engine(parsed.set(drivername="sqlite+pysqlite"), **options)
    event.listen(engine, "reset", _rollback_if_in_transaction)
    return AsyncEngine(engine, _SQLiteThreads(threads))


def _in_transaction(
    engine: Engine, fn: Callable[..., _T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> _T:
    with engine.begin() as connection:
        return fn(connection, *args, **kwargs)


def _in_turn(
    turn: threading.Lock,
    engine: Engine,
    fn: Callable[..., _T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> _T:
    with turn:
        return _in_transaction(engine, fn, args, kwargs)


def _rollback_if_in_transaction(dbapi_connection: Any, _record: Any, _state: Any) -> None:
    if dbapi_connection.in_transaction:
        dbapi_connection.rollback()
