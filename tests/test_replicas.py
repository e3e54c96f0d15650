"""Several replicas on one PostgreSQL database: all deliver, one leader polls, the leader is
SIGKILLed midway and another takes over within a lease; nothing twice, nothing lost."""

from __future__ import annotations

import asyncio

import pytest

from reliability import crash, replicas
from tests.conftest import PG_ADMIN_URL, postgres_available


@pytest.mark.timeout(240)
async def test_three_replicas_share_the_work_and_survive_the_leader_dying() -> None:
    if not postgres_available():
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    f = await replicas.run(replicas=3, articles=12, database_url=PG_ADMIN_URL)
    assert f["replicas_ready"] == 3
    assert f["settled"], f["problems"]
    assert f["duplicates"] == 0
    assert f["lost"] == 0 and f["stray_posts"] == 0
    assert f["sent"] + f["uncertain"] == f["pairs"]
    assert f["uncertain_unreported"] == 0
    assert f["replicas_that_posted"] >= 2  # the work is shared, not one active + idle spares
    assert f["leader_killed"]
    assert f["handover_s"] is not None and f["handover_s"] <= crash.LEASE


async def test_one_leader_at_a_time_and_the_lock_passes_on(pg_url: str) -> None:
    from bot.store import Store

    first, second = Store(pg_url), Store(pg_url)
    await first.init()
    try:
        assert await first.hold_leadership() is True
        assert await first.hold_leadership() is True  # kept, on its own connection
        assert await second.hold_leadership() is False
        async with first.target_turn("tg") as mine, second.target_turn("tg") as theirs:
            assert mine is True and theirs is False
        async with second.target_turn("tg") as theirs_now:
            assert theirs_now is True  # released when the first replica finished draining
        await first.close()  # the session ends: PostgreSQL releases the lock
        assert await second.hold_leadership() is True
    finally:
        await first.close()
        await second.close()


async def test_sqlite_is_one_process_and_always_leads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.store import Store

    store = Store(f"sqlite:///{tmp_path}/s.db")
    await store.init()
    try:
        assert await store.hold_leadership() is True
        async with store.target_turn("tg") as mine:
            assert mine is True
    finally:
        await store.close()


async def test_a_lost_leader_session_does_not_keep_the_lock_from_the_pool(pg_url: str) -> None:
    """The leader's connection breaks: the replica stands down and a standby can lead; no
    pooled session is left holding the lock."""
    import psycopg

    from bot.store import Store
    from tests.conftest import PG_ADMIN_URL

    first, second = Store(pg_url), Store(pg_url)
    await first.init()
    try:
        assert await first.hold_leadership() is True
        conn = first._leader_conn
        assert conn is not None
        pid = (await conn.execute("SELECT pg_backend_pid()")).scalar()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # The server frees the lock as the killed session exits; then someone leads again.
        leaders = [False, False]
        for _ in range(50):
            leaders = [await first.hold_leadership(), await second.hold_leadership()]
            if any(leaders):
                break
            await asyncio.sleep(0.1)
        assert leaders.count(True) == 1  # exactly one leader, never two
    finally:
        await first.close()
        await second.close()
