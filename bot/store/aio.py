"""The database driven from asyncio: SQL text on the drivers' own APIs, each call in a worker
thread.

newsbot ran on SQLAlchemy Core until issue 18: importing it cost about 12 MB of every daemon's
memory (90 modules) for statements that are plain SQL on both databases newsbot supports. The
store now writes its SQL once, with `:name` parameters, and runs it here on SQLite's standard
`sqlite3` or on psycopg 3 (loaded only for a PostgreSQL URL).

- Every call runs whole in a worker thread on a pooled connection: one trip to a thread per
  statement, and one for a whole write transaction (`transaction`), which on SQLite also
  holds the process's single write turn only while it runs (writers queue for it in their
  threads rather than race for the file's lock until busy_timeout fails one).
- Connections are in autocommit mode; a transaction is an explicit BEGIN ... COMMIT, rolled
  back when it raises. A connection given back with a transaction open is rolled back; one
  whose session broke is closed, never pooled again.
- Driver errors are mapped once, here, into DatabaseError and IntegrityError (a unique or
  foreign key refused), whose message is the driver's first line.
- Results are buffered: rows are read before the call returns, as named tuples (by column
  name, by position, or unpacked).

Semantics kept from SQLAlchemy's asyncio extension: a connection used as an async context
manager is closed even when the task is cancelled meanwhile, and the cancellation re-raised
once the close has finished, so a connection is never left checked out (and a transaction
never left open) by a cancelled task. A call running in a thread is waited for to its end
before a cancellation is re-raised: the connection is then free for the rollback and close
that follow, never used by two threads at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import re
import sqlite3
import threading
from collections import namedtuple
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from bot.store.url import DRIVERS, DatabaseURL, InvalidDatabaseURL

_T = TypeVar("_T")

#: Connections an engine's pool gives out at once (SQLAlchemy's default, 5 + 10 overflow, kept).
#: Checkouts past it wait on the event loop, not in a worker thread, so a thread is always free
#: for a connection already out to finish and come back.
POOL_SIZE = 15


class DatabaseError(Exception):
    """A database call failed; the message is the driver's first line."""


class IntegrityError(DatabaseError):
    """A unique, primary or foreign key refused a write."""


class NotAnAsyncDriver(ValueError):
    """The database URL names a database or driver newsbot does not run on."""


# Rows -----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[tuple[Any, ...]]:
    return namedtuple("Row", names, rename=True)  # type: ignore[misc]


class Result:
    """A buffered result: its rows (named tuples) and how many rows a write changed."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def all(self) -> list[Any]:
        return self.rows

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def scalar_one(self) -> Any:
        if len(self.rows) != 1:
            raise DatabaseError(f"expected one row, got {len(self.rows)}")
        return self.rows[0][0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self.rows]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)


def _result(cursor: Any) -> Result:
    description = cursor.description
    if description is None:
        return Result([], cursor.rowcount)
    make = _row_class(tuple(column[0] for column in description))._make
    return Result(list(map(make, cursor.fetchall())), cursor.rowcount)


def in_list(name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """`(:name_0, :name_1, ...)` and its parameters: an IN list of bound values. An empty
    list is `(NULL)`, which nothing is IN."""
    parameters = {f"{name}_{i}": value for i, value in enumerate(values)}
    listed = ", ".join(f":{key}" for key in parameters) or "NULL"
    return f"({listed})", parameters


# The two databases ----------------------------------------------------------------------------


class _SQLite:
    name = "sqlite"
    integrity_errors: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,)
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def connect(self, url: DatabaseURL) -> Any:
        database = ":memory:" if url.in_memory else (url.database or "")
        uri = database.startswith("file:")
        if uri and url.query:  # SQLite's own URI: its parameters belong to it
            database += "?" + urlencode(url.query)
        raw = sqlite3.connect(
            database,
            isolation_level=None,  # autocommit: transactions are explicit BEGIN ... COMMIT
            check_same_thread=False,  # one call at a time, from whichever worker thread
            uri=uri,
        )
        # WAL lets `newsbot status` read while the daemon writes; busy_timeout rides out the
        # brief write locks of other processes instead of failing.
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA busy_timeout=5000")
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("PRAGMA foreign_keys=OFF")
        return raw

    def sql(self, statement: str) -> str:
        return statement

    # Writers take the file's write lock at BEGIN: a reader turned writer midway could find
    # the lock taken and fail instead of waiting its turn.
    begin_sql = "BEGIN IMMEDIATE"

    def in_transaction(self, raw: Any) -> bool:
        return bool(raw.in_transaction)

    def broken(self, raw: Any) -> bool:
        return False

    def executemany(self, raw: Any, statement: str, rows: Sequence[Any]) -> int:
        return int(raw.executemany(statement, rows).rowcount)


class _PostgreSQL:
    name = "postgresql"

    def __init__(self) -> None:
        import psycopg  # only a PostgreSQL URL loads it

        self._psycopg = psycopg
        self.integrity_errors = (psycopg.errors.IntegrityError,)
        self.errors = (psycopg.Error,)

    def connect(self, url: DatabaseURL) -> Any:
        from psycopg.conninfo import make_conninfo

        conninfo = make_conninfo("", **url.libpq_parameters())
        return self._psycopg.connect(conninfo, autocommit=True)

    @functools.lru_cache(maxsize=512)  # noqa: B019  # one instance per process
    def sql(self, statement: str) -> str:
        # psycopg's parameters are %(name)s: a literal % doubles, :name becomes %(name)s.
        return _NAMED.sub(r"%(\1)s", statement.replace("%", "%%"))

    begin_sql = "BEGIN"

    def in_transaction(self, raw: Any) -> bool:
        status = raw.info.transaction_status
        return bool(status != self._psycopg.pq.TransactionStatus.IDLE)

    def broken(self, raw: Any) -> bool:
        return bool(
            raw.closed or raw.info.transaction_status == self._psycopg.pq.TransactionStatus.UNKNOWN
        )

    def executemany(self, raw: Any, statement: str, rows: Sequence[Any]) -> int:
        with raw.cursor() as cursor:
            cursor.executemany(statement, rows)
            return int(cursor.rowcount)


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

_Dialect = _SQLite | _PostgreSQL


@functools.cache
def _postgresql() -> _PostgreSQL:
    return _PostgreSQL()


# Connections ----------------------------------------------------------------------------------


class Connection:
    """One pooled driver connection, used by one thread at a time; its calls are synchronous."""

    __slots__ = ("_dialect", "_on_broken", "discard", "generation", "listeners", "raw")

    def __init__(
        self,
        raw: Any,
        dialect: _Dialect,
        listeners: list[Callable[..., None]],
        generation: int = 0,
        on_broken: Callable[[], None] = lambda: None,
    ) -> None:
        self.raw = raw
        self._dialect = dialect
        self.listeners = listeners
        self.discard = False
        self.generation = generation  # the pool's generation it was taken in
        self._on_broken = on_broken

    @property
    def dialect_name(self) -> str:
        return self._dialect.name

    @contextlib.contextmanager
    def _mapped(self) -> Iterator[None]:
        dialect = self._dialect
        try:
            yield
        except dialect.integrity_errors as error:
            raise IntegrityError(_first_line(error)) from error
        except dialect.errors as error:
            if dialect.broken(self.raw):
                # The server or the network dropped the session: the pool's other connections
                # were most likely dropped with it.
                self.discard = True
                self._on_broken()
            raise DatabaseError(_first_line(error)) from error

    def execute(self, statement: str, parameters: Any = None) -> Result:
        """Run one statement with `:name` parameters (a mapping) and read its rows."""
        for listener in self.listeners:
            listener(statement, parameters)
        with self._mapped():
            return _result(self.raw.execute(self._dialect.sql(statement), parameters or {}))

    def executemany(self, statement: str, rows: Sequence[Any]) -> int:
        """One statement for each of `rows` (no rows read back); how many rows it changed."""
        if not rows:
            return 0
        for listener in self.listeners:
            listener(statement, rows)
        with self._mapped():
            return self._dialect.executemany(self.raw, self._dialect.sql(statement), rows)

    def begin(self) -> None:
        with self._mapped():
            self.raw.execute(self._dialect.begin_sql)

    def commit(self) -> None:
        with self._mapped():
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
        with self._mapped():
            if self._dialect.in_transaction(self.raw):
                self.raw.execute("ROLLBACK")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        self.begin()
        try:
            yield self
        except BaseException:
            with contextlib.suppress(Exception):
                self.rollback()
            raise
        self.commit()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class _Pool:
    """Idle connections kept for reuse, taken and given back from worker threads."""

    def __init__(self, url: DatabaseURL, dialect: _Dialect) -> None:
        self.url = url
        self.dialect = dialect
        self.listeners: list[Callable[..., None]] = []
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._disposed = False
        self.checked_out = 0
        # Bumped when a session is found broken: connections of an older generation are
        # closed, not reused (each would fail once, a readiness probe after an outage too).
        self.generation = 0

    def take(self) -> Connection:
        with self._lock:
            raw = self._idle.pop() if self._idle else None
            self.checked_out += 1
            generation = self.generation
        try:
            if raw is None:
                try:
                    raw = self.dialect.connect(self.url)
                except self.dialect.errors as error:
                    raise DatabaseError(_first_line(error)) from error
        except BaseException:
            with self._lock:
                self.checked_out -= 1
            raise
        return Connection(raw, self.dialect, self.listeners, generation, self.invalidate)

    def invalidate(self) -> None:
        """Close every idle connection and retire the ones checked out when they come back."""
        if self.url.in_memory:  # the database lives in its one connection
            return
        with self._lock:
            self.generation += 1
            idle, self._idle = self._idle, []
        for raw in idle:
            with contextlib.suppress(Exception):
                raw.close()

    def give_back(self, conn: Connection) -> None:
        raw, dialect = conn.raw, self.dialect
        # An in-memory database lives in its one connection: never closed before dispose.
        keep = self.url.in_memory or (not conn.discard and conn.generation == self.generation)
        keep = keep and not self._disposed
        try:
            if keep and dialect.in_transaction(raw):
                raw.execute("ROLLBACK")
            keep = keep and not dialect.broken(raw)
        except Exception:
            keep = False
        with self._lock:
            self.checked_out -= 1
            if keep:
                self._idle.append(raw)
                return
        with contextlib.suppress(Exception):
            raw.close()

    def dispose(self) -> None:
        with self._lock:
            self._disposed = True
            idle, self._idle = self._idle, []
        for raw in idle:
            with contextlib.suppress(Exception):
                raw.close()


# The asyncio side -----------------------------------------------------------------------------


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


class _Threads:
    """The worker threads: each call runs whole in one. They start as needed, at most one per
    connection the pool can give out, and end when the engine is disposed."""

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.checkouts = asyncio.Semaphore(threads)

    def submit(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> asyncio.Future[_T]:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                self._threads, thread_name_prefix="newsbot-db"
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
    """One pooled connection driven from asyncio; `execute` returns a buffered Result."""

    __slots__ = ("_engine", "_open", "sync_connection")

    def __init__(self, sync_connection: Connection, engine: AsyncEngine) -> None:
        self.sync_connection = sync_connection
        self._engine = engine
        self._open = True

    async def execute(self, statement: str, parameters: Any = None) -> Result:
        return await self._engine._threads(self.sync_connection.execute, statement, parameters)

    async def executemany(self, statement: str, rows: Sequence[Any]) -> int:
        return await self._engine._threads(self.sync_connection.executemany, statement, rows)

    async def run_sync(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Call `fn(sync_connection, *args)` where it may use the synchronous API."""
        return await self._engine._threads(fn, self.sync_connection, *args, **kwargs)

    def invalidate(self) -> None:
        """Close this connection when it is given back instead of pooling it again."""
        self.sync_connection.discard = True

    async def close(self) -> None:
        """Give the connection back (rolled back if a transaction is open)."""
        if self._open:
            self._open = False
            await self._engine._give_back(self.sync_connection)


class _Connecting:
    """What `AsyncEngine.connect()` returns: await it for a connection the caller closes,
    or use it as `async with` for one closed on the way out."""

    __slots__ = ("_connection", "_engine")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None

    def __await__(self) -> Generator[Any, None, AsyncConnection]:
        return self._engine._checkout().__await__()

    async def __aenter__(self) -> AsyncConnection:
        self._connection = await self._engine._checkout()
        return self._connection

    async def __aexit__(self, *_: object) -> None:
        if self._connection is not None:
            await _to_completion(self._connection.close())


class AsyncEngine:
    """A connection pool and its worker threads, driven from asyncio."""

    def __init__(self, url: DatabaseURL, dialect: _Dialect, size: int) -> None:
        self.url = url
        self.pool = _Pool(url, dialect)
        self._threads = _Threads(size)
        # SQLite has one writer at a time: this process's transactions queue here, in their
        # threads, and hold the turn only while they run.
        self._write_turn: threading.Lock | None = (
            threading.Lock() if dialect.name == "sqlite" else None
        )

    @property
    def dialect_name(self) -> str:
        return self.pool.dialect.name

    @property
    def listeners(self) -> list[Callable[..., None]]:
        """Called with (statement, parameters) before each statement runs (a test seam)."""
        return self.pool.listeners

    def connect(self) -> _Connecting:
        return _Connecting(self)

    async def _checkout(self) -> AsyncConnection:
        threads, pool = self._threads, self.pool
        await threads.checkouts.acquire()
        try:
            # A checkout finished after its caller was cancelled goes straight back.
            connection = await _to_completion(
                threads.submit(pool.take),
                undo=lambda connection: threads.submit(pool.give_back, connection),
            )
        except BaseException:
            threads.checkouts.release()
            raise
        return AsyncConnection(connection, self)

    async def _give_back(self, connection: Connection) -> None:
        try:
            await self._threads(self.pool.give_back, connection)
        finally:
            self._threads.checkouts.release()

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction: committed when the block ends, rolled back when
        it raises (or, if the commit itself is interrupted, when the connection goes back)."""
        async with self.connect() as conn:
            sync = conn.sync_connection
            await self._threads(sync.begin)
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._threads(sync.rollback)
                raise
            await self._threads(sync.commit)

    async def transaction(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """`fn(connection, *args, **kwargs)` in one transaction, committed when it returns,
        rolled back when it raises, all in one call in a worker thread (checkout, statements,
        commit, check-in). On SQLite, transactions run one at a time in this process. A
        cancelled caller's transaction ends first, committed or rolled back as it went."""
        threads = self._threads
        async with threads.checkouts:
            return await threads(self._in_transaction, fn, args, kwargs)

    def _in_transaction(
        self, fn: Callable[..., _T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> _T:
        turn = self._write_turn or contextlib.nullcontext()
        with turn:
            connection = self.pool.take()
            try:
                with connection.transaction():
                    return fn(connection, *args, **kwargs)
            finally:
                self.pool.give_back(connection)

    async def dispose(self) -> None:
        self.pool.dispose()
        self._threads.shutdown()


def create_async_engine(url: str | DatabaseURL) -> AsyncEngine:
    """An engine for a database URL: SQLite on the standard driver, PostgreSQL on psycopg 3."""
    parsed = url if isinstance(url, DatabaseURL) else DatabaseURL.parse(url)
    accepted = DRIVERS.get(parsed.backend)
    if accepted is None or parsed.driver not in accepted:
        name = f"{parsed.backend}+{parsed.driver}" if parsed.driver else parsed.backend
        raise NotAnAsyncDriver(
            f"database driver {name} is not supported (use sqlite, postgresql or "
            "postgresql+psycopg)"
        )
    if parsed.backend == "sqlite":
        # One database in memory: one connection to it, every call in one thread, in turn.
        return AsyncEngine(parsed, _SQLite(), 1 if parsed.in_memory else POOL_SIZE)
    return AsyncEngine(parsed, _postgresql(), POOL_SIZE)


__all__ = [
    "POOL_SIZE",
    "AsyncConnection",
    "AsyncEngine",
    "Connection",
    "DatabaseError",
    "DatabaseURL",
    "IntegrityError",
    "InvalidDatabaseURL",
    "NotAnAsyncDriver",
    "Result",
    "create_async_engine",
    "in_list",
]
