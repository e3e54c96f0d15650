"""bot.store.aio: SQLAlchemy Core on asyncio without sqlalchemy.ext.asyncio (and its ORM).

Real SQLite files on the standard driver in worker threads; the PostgreSQL cases run where
the test server is up."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, func, insert, select

from bot.store.aio import SQLITE_CONNECTIONS, AsyncEngine, NotAnAsyncDriver, create_async_engine
from bot.store.base import async_url

metadata = MetaData()
notes = Table("notes", metadata, Column("id", Integer, primary_key=True), Column("text", String))


async def _engine(tmp_path: Path) -> AsyncEngine:
    engine = create_async_engine(async_url(f"sqlite:///{tmp_path}/aio.db"))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(notes))).scalar_one()


def _checked_out(engine: AsyncEngine) -> int:
    return engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]


async def test_begin_commits_and_rolls_back_on_error(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    async with engine.begin() as conn:
        await conn.execute(insert(notes), [{"text": "a"}, {"text": "b"}])
    with pytest.raises(RuntimeError, match="refused"):
        async with engine.begin() as conn:
            await conn.execute(insert(notes), {"text": "c"})
            raise RuntimeError("refused")
    assert await _count(engine) == 2
    assert _checked_out(engine) == 0
    await engine.dispose()


async def test_cancelled_transaction_is_rolled_back_and_its_connection_returned(
    tmp_path: Path,
) -> None:
    engine = await _engine(tmp_path)
    inside = asyncio.Event()

    async def writer() -> None:
        async with engine.begin() as conn:
            await conn.execute(insert(notes), {"text": "never"})
            inside.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(writer())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _checked_out(engine) == 0
    assert await _count(engine) == 0
    await engine.dispose()


async def test_connection_awaited_is_the_callers_to_close(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    conn = await engine.connect()
    assert _checked_out(engine) == 1
    same = await conn.execution_options(isolation_level="AUTOCOMMIT")
    assert same is conn
    assert (await conn.exec_driver_sql("SELECT 41 + 1")).scalar_one() == 42
    await conn.invalidate()
    await conn.close()
    assert _checked_out(engine) == 0
    await engine.dispose()


def test_a_driver_that_would_block_the_loop_is_refused() -> None:
    with pytest.raises(NotAnAsyncDriver, match=r"postgresql\+psycopg is not an asyncio driver"):
        create_async_engine("postgresql+psycopg://u@127.0.0.1/d")


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///x.db", "sqlite+pysqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+pysqlite"),
        ("postgresql://u@h/d", "postgresql+psycopg_async"),
        ("postgres://u@h/d", "postgresql+psycopg_async"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg_async"),
        ("postgresql+psycopg2://u@h/d", "postgresql+psycopg_async"),
    ],
)
def test_urls_map_to_asyncio_drivers(given: str, driver: str) -> None:
    assert async_url(given).split(":", 1)[0] == driver


async def test_postgresql_round_trip(pg_url: str) -> None:
    engine = create_async_engine(async_url(pg_url))
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.length("newsbot")))).scalar_one() == 7
    assert engine.dialect.name == "postgresql"
    await engine.dispose()


def test_the_daemon_does_not_import_sqlalchemys_orm() -> None:
    """The reason this module exists: the ORM costs every daemon memory and is never used."""
    probe = (
        "import sys, bot.service, bot.store, bot.webdesk.queries\n"
        "print(sorted(m for m in sys.modules if m.startswith(('sqlalchemy.orm', "
        "'sqlalchemy.ext.asyncio'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


async def test_a_connection_taken_back_inside_a_transaction_is_rolled_back(
    tmp_path: Path,
) -> None:
    """SQLite's pool resets only connections inside a transaction (a committed one needs no
    rollback): one left open behind SQLAlchemy's back is still rolled back, its write gone."""
    engine = await _engine(tmp_path)

    def write_behind_sqlalchemys_back(connection: Any) -> None:
        cursor = connection.connection.dbapi_connection.cursor()
        cursor.execute("BEGIN")
        cursor.execute("INSERT INTO notes (text) VALUES ('never committed')")
        cursor.close()

    conn = await engine.connect()
    raw = conn.sync_connection.connection.dbapi_connection
    await conn.run_sync(write_behind_sqlalchemys_back)
    assert raw.in_transaction
    await conn.close()
    assert not raw.in_transaction  # the reset rolled it back
    assert await _count(engine) == 0
    async with engine.begin() as conn:  # a committed transaction: nothing left open either
        await conn.execute(insert(notes), {"text": "kept"})
    assert not raw.in_transaction
    assert await _count(engine) == 1
    await engine.dispose()


async def test_sqlite_statements_run_in_worker_threads_never_on_the_loop(tmp_path: Path) -> None:
    """Every statement SQLite runs, the pool's own included, runs in the engine's worker
    threads: the event loop never waits on the database file."""
    engine = await _engine(tmp_path)
    threads: list[str] = []

    @event.listens_for(engine.sync_engine, "connect")
    def trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(
            lambda _sql: threads.append(threading.current_thread().name)
        )

    await engine.dispose()  # new connections, traced from their first statement
    async with engine.begin() as conn:
        await conn.execute(insert(notes), [{"text": "a"}, {"text": "b"}])
    assert await _count(engine) == 2
    assert threads  # BEGIN, INSERT, COMMIT, SELECT at least
    assert all(name.startswith("newsbot-sqlite") for name in threads), threads
    await engine.dispose()


async def test_a_call_running_when_its_task_is_cancelled_finishes_before_the_rollback(
    tmp_path: Path,
) -> None:
    """A cancelled task waits for its statement to finish in the worker thread, then rolls
    back and returns the connection: the connection is never used by two threads at once."""
    engine = await _engine(tmp_path)
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def slow_insert(connection: Any) -> None:
        connection.execute(insert(notes), {"text": "rolled back"})
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
    assert _checked_out(engine) == 0
    assert await _count(engine) == 0
    await engine.dispose()


async def test_checkouts_past_the_pool_wait_on_the_loop_and_all_finish(tmp_path: Path) -> None:
    """More tasks than the pool has connections: the extra ones wait for a connection on the
    event loop (not in a worker thread a connection in use would need), and every one ends."""
    engine = await _engine(tmp_path)
    most = 0
    gate = asyncio.Event()

    async def hold(i: int) -> None:
        nonlocal most
        async with engine.connect() as conn:
            most = max(most, _checked_out(engine))
            await gate.wait()
            await conn.execute(select(func.count()).select_from(notes))

    tasks = [asyncio.create_task(hold(i)) for i in range(2 * SQLITE_CONNECTIONS + 5)]
    await asyncio.sleep(0.3)
    assert _checked_out(engine) == SQLITE_CONNECTIONS
    gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 20)
    assert most == SQLITE_CONNECTIONS
    assert _checked_out(engine) == 0
    await engine.dispose()


async def test_a_checkout_cancelled_midway_gives_its_connection_back(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    connecting, release = threading.Event(), threading.Event()

    @event.listens_for(engine.sync_engine, "checkout")
    def slow_checkout(*_: Any) -> None:
        if not release.is_set():
            connecting.set()
            release.wait(10)

    task = asyncio.create_task(engine.connect()._open())
    await asyncio.to_thread(connecting.wait, 10)
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _checked_out(engine) == 0
    async with engine.connect() as conn:  # its permit came back too
        assert (await conn.exec_driver_sql("SELECT 1")).scalar_one() == 1
    await engine.dispose()


async def test_an_in_memory_database_is_one_database_for_every_task() -> None:
    """`sqlite://` (the preview's throwaway state): one connection, so one database, whichever
    task or thread uses it."""
    engine = create_async_engine(async_url("sqlite://"))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)

    async def add(i: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(insert(notes), {"text": str(i)})

    await asyncio.gather(*(add(i) for i in range(10)))
    assert await _count(engine) == 10
    await engine.dispose()


async def test_sqlite_write_transactions_take_turns(tmp_path: Path) -> None:
    """Transactions on SQLite run one at a time, each whole in its thread: thirty concurrent
    read-then-write increments (each pausing between its read and its write) lose none and
    none fails on the file's lock."""
    engine = await _engine(tmp_path)
    async with engine.begin() as conn:
        await conn.execute(insert(notes), {"id": 1, "text": "0"})

    def increment(connection: Any) -> None:
        value = int(connection.execute(select(notes.c.text).where(notes.c.id == 1)).scalar_one())
        time.sleep(0.005)  # another writer would read the same value here
        connection.execute(notes.update().where(notes.c.id == 1).values(text=str(value + 1)))

    await asyncio.gather(*(engine.transaction(increment) for _ in range(30)))
    async with engine.connect() as conn:
        final = (await conn.execute(select(notes.c.text).where(notes.c.id == 1))).scalar_one()
    assert final == "30"
    await engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_a_transaction_commits_what_returns_and_rolls_back_what_raises(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path}/aio.db"
        if database == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    engine = create_async_engine(async_url(url))
    await engine.transaction(metadata.create_all)

    def add(connection: Any, text: str, fail: bool) -> int:
        connection.execute(insert(notes), {"text": text})
        if fail:
            raise RuntimeError("refused")
        return int(connection.execute(select(func.count()).select_from(notes)).scalar_one())

    assert await engine.transaction(add, "kept", fail=False) == 1
    with pytest.raises(RuntimeError, match="refused"):
        await engine.transaction(add, "gone", fail=True)
    assert await _count(engine) == 1
    assert _checked_out(engine) == 0
    await engine.dispose()
