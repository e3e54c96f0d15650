"""`newsbot skip|schedule|history` as a newsroom without an editors' chat runs them: a real
subprocess on a real SQLite state database; a bad id or time is one line on stderr, exit 2."""

from __future__ import annotations

import asyncio
import getpass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.cli import Exit
from bot.store import DeliveryStatus, Store
from tests.test_cli_errors import newsbot, one_line_error, write_config
from tests.test_outbox_states import delivery_in


def prepared(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    config = write_config(tmp_path / "newsbot.yaml", "http://127.0.0.1:9", timezone="Asia/Baku")

    async def fill() -> dict[str, int]:
        store = Store(f"sqlite:///{tmp_path}/state.db")
        await store.init()
        try:
            return {
                "pending": await delivery_in(store, DeliveryStatus.PENDING, 1),
                "sent": await delivery_in(store, DeliveryStatus.SENT, 2),
            }
        finally:
            await store.close()

    return config, asyncio.run(fill())


async def row(tmp_path: Path, delivery_id: int) -> tuple[DeliveryStatus, float]:
    store = Store(f"sqlite:///{tmp_path}/state.db")
    try:
        found = await store.delivery(delivery_id)
        assert found is not None
        return found.status, found.next_attempt_at
    finally:
        await store.close()


def test_schedule_and_skip_on_the_command_line(tmp_path: Path) -> None:
    config, ids = prepared(tmp_path)
    pending = str(ids["pending"])
    scheduled = newsbot("-c", str(config), "schedule", pending, "2030-01-02", "09:30")
    assert scheduled.returncode == 0, scheduled.stderr
    assert "scheduled for 2030-01-02 09:30 Asia/Baku" in scheduled.stdout
    status, due = asyncio.run(row(tmp_path, ids["pending"]))
    baku = ZoneInfo("Asia/Baku")
    assert status == DeliveryStatus.PENDING
    assert due == datetime(2030, 1, 2, 9, 30, tzinfo=baku).timestamp()  # the newsroom's zone

    skipped = newsbot("-c", str(config), "skip", f"#{pending}")
    assert skipped.returncode == 0, skipped.stderr
    assert asyncio.run(row(tmp_path, ids["pending"]))[0] == DeliveryStatus.SKIPPED

    history = newsbot("-c", str(config), "history", "--limit", "5")
    assert history.returncode == 0
    who = getpass.getuser()
    lines = history.stdout.splitlines()
    assert f"#{pending} {who} (id cli:{who}): skip #{pending}" in lines[0]
    assert f"scheduled for 2030-01-02 09:30 Asia/Baku #{pending}" in lines[1]
    older = newsbot("-c", str(config), "history", "--limit", "1", "--page", "2")
    assert older.returncode == 0 and "scheduled for" in older.stdout


def test_a_bad_id_or_time_is_one_line(tmp_path: Path) -> None:
    config, ids = prepared(tmp_path)
    base = ("-c", str(config))
    for bad in ("abc", "99999999999999999999999", "-3", "0"):
        one_line_error(newsbot(*base, "skip", bad), Exit.USAGE, "is not a delivery number")
    one_line_error(
        newsbot(*base, "schedule", str(ids["pending"]), "25:99"), Exit.USAGE, "No such time: 25:99"
    )
    one_line_error(
        newsbot(*base, "schedule", str(ids["pending"]), "tomorrow"),
        Exit.USAGE,
        "HH:MM or YYYY-MM-DD HH:MM",
        "newsbot schedule 42 18:30",
    )
    one_line_error(newsbot(*base, "skip", "4242"), Exit.PROBLEMS, "No delivery #4242.")
    one_line_error(
        newsbot(*base, "skip", str(ids["sent"])), Exit.PROBLEMS, f"#{ids['sent']} is sent"
    )
    assert asyncio.run(row(tmp_path, ids["pending"]))[0] == DeliveryStatus.PENDING
