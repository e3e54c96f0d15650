"""bot.store.aio: SQLAlchemy Core on asyncio without sqlalchemy.ext.asyncio (and its ORM).

Real SQLite files through aiosqlite; the PostgreSQL case runs where the test server is up."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from bot.store.aio import AsyncEngine, NotAnAsyncDriver, create_async_engine
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
    with pytest.raises(NotAnAsyncDriver, match=r"sqlite\+pysqlite is not an asyncio driver"):
        create_async_engine("sqlite+pysqlite:///:memory:")


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite"),
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
    assert raw.driver_connection.in_transaction
    await conn.close()
    assert not raw.driver_connection.in_transaction  # the reset rolled it back
    assert await _count(engine) == 0
    async with engine.begin() as conn:  # a committed transaction: nothing left open either
        await conn.execute(insert(notes), {"text": "kept"})
    assert not raw.driver_connection.in_transaction
    assert await _count(engine) == 1
    await engine.dispose()
