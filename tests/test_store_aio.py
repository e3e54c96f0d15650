"""bot.store.aio: SQL text on the drivers' own APIs (sqlite3, psycopg 3), driven from asyncio.

Real SQLite files on the standard driver in worker threads; the PostgreSQL cases run where
the test server is up."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bot.store.aio import (
    POOL_SIZE,
    AsyncConnection,
    AsyncEngine,
    Connection,
    DatabaseError,
    IntegrityError,
    NotAnAsyncDriver,
    create_async_engine,
    in_list,
)

CREATE_NOTES = "CREATE TABLE notes (id INTEGER PRIMARY KEY, text VARCHAR)"
ADD_NOTE = "INSERT INTO notes (id, text) VALUES (:id, :text)"


async def _engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(CREATE_NOTES)
    return engine


async def _sqlite(tmp_path: Path) -> AsyncEngine:
    return await _engine(f"sqlite:///{tmp_path}/aio.db")


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute("SELECT count(*) FROM notes")).scalar_one())


def _in_transaction(raw: Any) -> bool:
    """Whether a driver connection (sqlite3 or psycopg) has a transaction open."""
    if isinstance(raw, sqlite3.Connection):
        return raw.in_transaction
    import psycopg

    return raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


async def test_begin_commits_and_rolls_back_on_error(tmp_path: Path) -> None:
    engine = await _sqlite(tmp_path)
    async with engine.begin() as conn:
        await conn.executemany(ADD_NOTE, [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}])
    with pytest.raises(RuntimeError, match="refused"):
        async with engine.begin() as conn:
            await conn.execute(ADD_NOTE, {"id": 3, "text": "c"})
            raise RuntimeError("refused")
    assert await _count(engine) == 2
    assert engine.pool.checked_out == 0
    await engine.dispose()


async def test_cancelled_transaction_is_rolled_back_and_its_connection_returned(
    tmp_path: Path,
) -> None:
    engine = await _sqlite(tmp_path)
    inside = asyncio.Event()

    async def writer() -> None:
        async with engine.begin() as conn:
            await conn.execute(ADD_NOTE, {"id": 1, "text": "never"})
            inside.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(writer())
    await inside.wait()
    assert engine.pool.checked_out == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.pool.checked_out == 0
    assert await _count(engine) == 0
    await engine.dispose()


async def test_connection_awaited_is_the_callers_to_close(tmp_path: Path) -> None:
    engine = await _sqlite(tmp_path)
    conn = await engine.connect()
    assert isinstance(conn, AsyncConnection)
    assert engine.pool.checked_out == 1
    assert (await conn.execute("SELECT 41 + 1")).scalar_one() == 42
    kept = conn.sync_connection.raw
    await conn.close()
    await conn.close()  # a second close gives nothing back twice
    assert engine.pool.checked_out == 0

    conn = await engine.connect()
    assert conn.sync_connection.raw is kept  # pooled and given out again
    conn.invalidate()
    await conn.close()
    assert engine.pool.checked_out == 0
    with pytest.raises(sqlite3.ProgrammingError):  # an invalidated connection is closed
        kept.execute("SELECT 1")
    async with engine.connect() as conn:
        assert conn.sync_connection.raw is not kept
        assert (await conn.execute("SELECT count(*) FROM notes")).scalar_one() == 0
    await engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://h/db",
        "sqlite+foo:///x",
        "postgresql+asyncpg://u@h/d",
        "postgresql+pg8000://u@h/d",
        "oracle://u@h/d",
    ],
)
def test_unsupported_drivers_are_refused(url: str) -> None:
    with pytest.raises(NotAnAsyncDriver, match="is not supported"):
        create_async_engine(url)


@pytest.mark.parametrize(
    ("url", "dialect"),
    [
        ("sqlite:///x.db", "sqlite"),
        ("sqlite+pysqlite:///x.db", "sqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite"),
        ("sqlite://", "sqlite"),
        ("postgresql://u@h/d", "postgresql"),
        ("postgres://u@h/d", "postgresql"),
        ("postgresql+psycopg://u@h/d", "postgresql"),
        ("postgresql+psycopg2://u@h/d", "postgresql"),
        ("postgresql+psycopg_async://u@h/d", "postgresql"),
    ],
)
async def test_supported_urls_pick_their_database(url: str, dialect: str) -> None:
    engine = create_async_engine(url)  # connects lazily: no server needed here
    assert engine.dialect_name == dialect
    await engine.dispose()


async def test_postgresql_round_trip(pg_url: str) -> None:
    engine = await _engine(pg_url)
    assert engine.dialect_name == "postgresql"
    async with engine.connect() as conn:
        assert (await conn.execute("SELECT length(:word)", {"word": "newsbot"})).scalar() == 7
    async with engine.begin() as conn:
        await conn.execute(ADD_NOTE, {"id": 1, "text": "from asyncio"})
    async with engine.connect() as conn:
        rows = (await conn.execute("SELECT id, text FROM notes")).all()
    assert rows == [(1, "from asyncio")]
    assert engine.pool.checked_out == 0
    await engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///{tmp}/state.db",
        # What the daemon's start-up opens, before any query: still no psycopg on SQLite.
        "sqlite://",
    ],
)
def test_the_daemon_imports_neither_sqlalchemy_nor_psycopg_on_sqlite(
    url: str, tmp_path: Path
) -> None:
    """The reason the store runs on the drivers' own APIs: SQLAlchemy cost every daemon about
    12 MB, and psycopg is needed only with a PostgreSQL URL."""
    probe = (
        "import asyncio, sys, bot.service, bot.store, bot.webdesk.queries\n"
        "from bot.store import Store\n"
        "async def main():\n"
        "    store = Store(sys.argv[1])\n"
        "    await store.init()\n"
        "    await store.count_articles()\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'psycopg')))\n"
        "print('bot.store.aio' in sys.modules and 'sqlite3' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, url.format(tmp=tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    assert out.split() == ["[]", "True"]  # the second line: the probe sees imports


async def test_a_connection_taken_back_inside_a_transaction_is_rolled_back(db_url: str) -> None:
    """A connection given back with a transaction open (one begun by hand) is rolled back
    before it is pooled again, its write gone; a committed one has nothing left open."""
    engine = await _engine(db_url)
    conn = await engine.connect()
    raw = conn.sync_connection.raw
    await conn.execute("BEGIN")
    await conn.execute(ADD_NOTE, {"id": 1, "text": "never committed"})
    assert _in_transaction(raw)
    await conn.close()
    assert not _in_transaction(raw)  # rolled back on the way in
    assert await _count(engine) == 0
    async with engine.begin() as conn:
        assert conn.sync_connection.raw is raw  # the same connection, pooled again
        await conn.execute(ADD_NOTE, {"id": 2, "text": "kept"})
    assert not _in_transaction(raw)
    assert await _count(engine) == 1
    await engine.dispose()


async def test_sqlite_statements_run_in_worker_threads_never_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every statement SQLite runs (the connection's set-up, BEGIN, COMMIT and the pool's
    rollbacks included) and every connect runs in the engine's worker threads: the event loop
    never waits on the database file."""
    seen: list[tuple[str, str]] = []
    connect = sqlite3.connect

    def traced_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        seen.append(("connect", threading.current_thread().name))
        raw = connect(*args, **kwargs)
        raw.set_trace_callback(lambda sql: seen.append((sql, threading.current_thread().name)))
        return raw

    monkeypatch.setattr(sqlite3, "connect", traced_connect)
    engine = await _sqlite(tmp_path)
    async with engine.begin() as conn:
        await conn.executemany(ADD_NOTE, [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}])
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await conn.execute(ADD_NOTE, {"id": 3, "text": "c"})
            raise RuntimeError("refused")
    conn = await engine.connect()
    await conn.execute("BEGIN")
    await conn.close()  # the pool's rollback
    await engine.transaction(lambda c: c.execute("DELETE FROM notes WHERE id = 2"))
    assert await _count(engine) == 1

    statements = {sql.split()[0].upper() for sql, _ in seen}
    assert {"CONNECT", "PRAGMA", "BEGIN", "INSERT", "COMMIT", "ROLLBACK", "DELETE"} <= statements
    on_the_loop = [(sql, name) for sql, name in seen if not name.startswith("newsbot-db")]
    assert not on_the_loop
    await engine.dispose()


async def test_a_call_running_when_its_task_is_cancelled_finishes_before_the_rollback(
    tmp_path: Path,
) -> None:
    """A cancelled task waits for its statement to finish in the worker thread, then rolls
    back and returns the connection: the connection is never used by two threads at once."""
    engine = await _sqlite(tmp_path)
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def slow_insert(connection: Connection) -> None:
        connection.execute(ADD_NOTE, {"id": 1, "text": "rolled back"})
        started.set()
        release.wait(10)
        finished.append("insert")

    async def writer() -> None:
        async with engine.begin() as conn:
            await conn.run_sync(slow_insert)

    task = asyncio.create_task(writer())
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()  # still waiting for the statement in the thread
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished == ["insert"]
    assert engine.pool.checked_out == 0
    assert await _count(engine) == 0
    await engine.dispose()


async def test_checkouts_past_the_pool_wait_on_the_loop_and_all_finish(tmp_path: Path) -> None:
    """More tasks than the pool has connections: the extra ones wait for a connection on the
    event loop (not in a worker thread a connection in use would need), and every one ends."""
    engine = await _sqlite(tmp_path)
    most = 0
    gate = asyncio.Event()

    async def hold() -> int:
        nonlocal most
        async with engine.connect() as conn:
            most = max(most, engine.pool.checked_out)
            await gate.wait()
            return int((await conn.execute("SELECT count(*) FROM notes")).scalar_one())

    tasks = [asyncio.create_task(hold()) for _ in range(2 * POOL_SIZE + 5)]
    await asyncio.sleep(0.3)
    assert engine.pool.checked_out == POOL_SIZE
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(*tasks), 20) == [0] * len(tasks)
    assert most == POOL_SIZE
    assert engine.pool.checked_out == 0
    await engine.dispose()


async def test_a_checkout_cancelled_midway_gives_its_connection_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await _sqlite(tmp_path)
    connecting, release = threading.Event(), threading.Event()
    take = engine.pool.take

    def slow_take() -> Connection:
        connection = take()
        if not release.is_set():
            connecting.set()
            release.wait(10)
        return connection

    monkeypatch.setattr(engine.pool, "take", slow_take)

    async def checkout() -> AsyncConnection:
        return await engine.connect()

    task = asyncio.create_task(checkout())
    await asyncio.to_thread(connecting.wait, 10)
    assert engine.pool.checked_out == 1
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.pool.checked_out == 0
    # Its permit came back too: the whole pool can still be checked out at once.
    conns = await asyncio.wait_for(asyncio.gather(*(checkout() for _ in range(POOL_SIZE))), 10)
    assert engine.pool.checked_out == POOL_SIZE
    for conn in conns:
        await conn.close()
    assert engine.pool.checked_out == 0
    await engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
async def test_an_in_memory_database_is_one_database_for_every_task(url: str) -> None:
    """`sqlite://` (the preview's throwaway state): one connection, so one database, whichever
    task or thread uses it; even an invalidated connection is kept, being the database."""
    engine = await _engine(url)

    async def add(i: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(ADD_NOTE, {"id": i, "text": str(i)})

    await asyncio.gather(*(add(i) for i in range(10)))
    await engine.transaction(lambda c: c.execute(ADD_NOTE, {"id": 10, "text": "10"}))
    assert await _count(engine) == 11
    conn = await engine.connect()
    conn.invalidate()
    await conn.close()
    assert await _count(engine) == 11
    await engine.dispose()


async def test_sqlite_write_transactions_take_turns(tmp_path: Path) -> None:
    """Transactions on SQLite run one at a time, each whole in its thread: thirty concurrent
    read-then-write increments (each pausing between its read and its write) lose none and
    none fails on the file's lock, even with SQLite's own wait for the lock turned off."""
    engine = await _sqlite(tmp_path)
    async with engine.begin() as conn:
        await conn.execute(ADD_NOTE, {"id": 1, "text": "0"})
    conns = [await engine.connect() for _ in range(POOL_SIZE)]  # every connection of the pool
    for conn in conns:
        # Without busy_timeout a writer finding the file locked fails at once: only the
        # engine's write turn keeps them apart.
        await conn.execute("PRAGMA busy_timeout=0")
    for conn in conns:
        await conn.close()

    def increment(connection: Connection) -> None:
        value = int(connection.execute("SELECT text FROM notes WHERE id = 1").scalar_one())
        time.sleep(0.005)  # another writer would read the same value here
        connection.execute("UPDATE notes SET text = :text WHERE id = 1", {"text": str(value + 1)})

    await asyncio.gather(*(engine.transaction(increment) for _ in range(30)))
    async with engine.connect() as conn:
        final = (await conn.execute("SELECT text FROM notes WHERE id = 1")).scalar_one()
    assert final == "30"
    await engine.dispose()


async def test_a_transaction_commits_what_returns_and_rolls_back_what_raises(db_url: str) -> None:
    engine = create_async_engine(db_url)
    await engine.transaction(lambda connection: connection.execute(CREATE_NOTES))

    def add(connection: Connection, id_: int, text: str, fail: bool) -> int:
        connection.execute(ADD_NOTE, {"id": id_, "text": text})
        if fail:
            raise RuntimeError("refused")
        return int(connection.execute("SELECT count(*) FROM notes").scalar_one())

    assert await engine.transaction(add, 1, "kept", fail=False) == 1
    with pytest.raises(RuntimeError, match="refused"):
        await engine.transaction(add, 2, "gone", fail=True)
    assert await _count(engine) == 1
    assert engine.pool.checked_out == 0
    await engine.dispose()


async def test_a_duplicate_key_raises_integrity_error(db_url: str) -> None:
    """The driver's own error is mapped at the boundary: an IntegrityError (a DatabaseError)
    whose message is the driver's first line, the driver's error kept as its cause."""
    engine = await _engine(db_url)
    async with engine.begin() as conn:
        await conn.execute(ADD_NOTE, {"id": 1, "text": "first"})
    with pytest.raises(IntegrityError) as refused:
        async with engine.begin() as conn:
            await conn.execute(ADD_NOTE, {"id": 2, "text": "second"})
            await conn.execute(ADD_NOTE, {"id": 1, "text": "again"})
    assert isinstance(refused.value, DatabaseError)
    assert str(refused.value) and "\n" not in str(refused.value)
    assert refused.value.__cause__ is not None
    assert not isinstance(refused.value.__cause__, DatabaseError)  # the driver's error

    with pytest.raises(IntegrityError):
        await engine.transaction(lambda c: c.executemany(ADD_NOTE, [{"id": 1, "text": "x"}]))
    async with engine.connect() as conn:  # outside a transaction, and the session lives on
        with pytest.raises(IntegrityError):
            await conn.execute(ADD_NOTE, {"id": 1, "text": "again"})
        rows = (await conn.execute("SELECT id, text FROM notes")).all()
    assert rows == [(1, "first")]  # the transactions' other writes were rolled back
    assert engine.pool.checked_out == 0
    await engine.dispose()


async def test_an_error_is_a_database_error_with_the_drivers_first_line(db_url: str) -> None:
    engine = await _engine(db_url)
    async with engine.connect() as conn:
        with pytest.raises(DatabaseError, match="no_such_table") as failed:
            await conn.execute("SELECT * FROM no_such_table")
        assert not isinstance(failed.value, IntegrityError)
        assert "\n" not in str(failed.value)
        # The connection is still good for the next statement.
        assert (await conn.execute("SELECT count(*) FROM notes")).scalar_one() == 0
    await engine.dispose()


async def test_a_broken_postgresql_session_is_not_pooled_again(pg_url: str) -> None:
    engine = await _engine(pg_url)
    conn = await engine.connect()
    broken = conn.sync_connection.raw
    with pytest.raises(DatabaseError):  # the server ends this very session
        await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    await conn.close()
    assert engine.pool.checked_out == 0
    assert broken.closed
    async with engine.connect() as conn:  # the next checkout works, on a new session
        assert conn.sync_connection.raw is not broken
        assert (await conn.execute("SELECT count(*) FROM notes")).scalar_one() == 0
    await engine.dispose()


async def test_after_an_outage_no_stale_pooled_session_fails_a_caller(pg_url: str) -> None:
    """The server dropped every session (a restart, a network outage): the first caller to meet
    a dead one is told, and the pool's other sessions from before are closed, not handed out
    one failure at a time (a readiness probe would stay red for as many checks)."""
    engine = await _engine(pg_url)
    held = [await engine.connect() for _ in range(4)]
    old = {conn.sync_connection.raw for conn in held}
    pids = [(await conn.execute("SELECT pg_backend_pid()")).scalar_one() for conn in held]
    killer = await engine.connect()  # a fifth session, not one of those killed
    for conn in held[1:]:
        await conn.close()  # three idle sessions in the pool
    await killer.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN ("
        + ", ".join(str(pid) for pid in pids)
        + ")"
    )
    await killer.close()
    with pytest.raises(DatabaseError):
        await held[0].execute("SELECT 1")
    await held[0].close()
    again = [await engine.connect() for _ in range(5)]  # as many as were pooled, and more
    for conn in again:  # every one is a live session
        assert (await conn.execute("SELECT 1")).scalar_one() == 1
        assert conn.sync_connection.raw not in old
        await conn.close()
    assert engine.pool.checked_out == 0
    await engine.dispose()


@pytest.mark.parametrize(
    ("sql", "parameters", "expected"),
    [
        ("SELECT 'a%' || :x", {"x": "b"}, "a%b"),
        ("SELECT :x || '%%' || :x", {"x": "b"}, "b%%b"),
        ("SELECT 'a%s' || :x", {"x": "%(x)s"}, "a%s%(x)s"),
        ("SELECT :first_name || '-' || :first", {"first": "a", "first_name": "b"}, "b-a"),
        ("SELECT CASE WHEN 'a%' LIKE 'a%' THEN :yes ELSE :no END", {"yes": 1, "no": 0}, 1),
    ],
)
async def test_named_parameters_and_a_literal_percent(
    db_url: str, sql: str, parameters: dict[str, Any], expected: Any
) -> None:
    """Both databases take the same `:name` SQL: on PostgreSQL it becomes psycopg's
    `%(name)s` with every literal `%` kept as written."""
    engine = create_async_engine(db_url)
    async with engine.connect() as conn:
        assert (await conn.execute(sql, parameters)).scalar_one() == expected
    await engine.dispose()


async def test_rows_are_named_tuples(db_url: str) -> None:
    engine = await _engine(db_url)
    async with engine.begin() as conn:
        added = await conn.executemany(ADD_NOTE, [{"id": i, "text": f"n{i}"} for i in (1, 2, 3)])
        assert added == 3
        changed = await conn.execute("UPDATE notes SET text = 'big' WHERE id >= :id", {"id": 2})
        assert changed.rowcount == 2
        assert changed.rows == [] and changed.first() is None
    async with engine.connect() as conn:
        result = await conn.execute("SELECT id, text AS body FROM notes ORDER BY id")
        first = result.first()
        assert (first.id, first.body) == (1, "n1")
        assert (first[0], first[1]) == (1, "n1")
        assert first._asdict() == {"id": 1, "body": "n1"}
        id_, body = result.all()[2]
        assert (id_, body) == (3, "big")
        assert [row.body for row in result] == ["n1", "big", "big"]
        assert (await conn.execute("SELECT id FROM notes ORDER BY id")).scalars() == [1, 2, 3]

        none = await conn.execute("SELECT id FROM notes WHERE id = :id", {"id": 9})
        assert (none.all(), none.first(), none.scalar()) == ([], None, None)
        with pytest.raises(DatabaseError, match="expected one row, got 0"):
            none.scalar_one()
        with pytest.raises(DatabaseError, match="expected one row, got 3"):
            result.scalar_one()
    await engine.dispose()


@pytest.mark.parametrize(("ids", "found"), [([1, 3], ["n1", "n3"]), ([2], ["n2"]), ([], [])])
async def test_in_list_binds_each_value(db_url: str, ids: list[int], found: list[str]) -> None:
    engine = await _engine(db_url)
    rows = [{"id": i, "text": f"n{i}"} for i in (1, 2, 3)]
    await engine.transaction(lambda c: c.executemany(ADD_NOTE, rows))
    listed, parameters = in_list("id", ids)
    async with engine.connect() as conn:
        result = await conn.execute(
            f"SELECT text FROM notes WHERE id IN {listed} ORDER BY id", parameters
        )
    assert result.scalars() == found
    await engine.dispose()
