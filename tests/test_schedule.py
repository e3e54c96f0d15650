"""The daemon's poll schedule (bot/schedule.py) and Service.poll_all: a fixed set of workers,
never one task per source, every source polled, none polled twice at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.config import SourceConfig, validate
from bot.pipeline import PollReport
from bot.schedule import PollSchedule
from bot.service import Service


def source(name: str, interval: float = 3600.0) -> SourceConfig:
    made = SourceConfig(name=name, url=f"http://127.0.0.1:9/{name}")
    # Past validation: intervals under the configurable 1 s keep the tests short.
    object.__setattr__(made, "interval", interval)
    return made


class Polls:
    """Records the polls: how many run at once, how many tasks exist meanwhile."""

    def __init__(self, takes: float = 0.0) -> None:
        self.takes = takes
        self.done: list[str] = []
        self.running: set[str] = set()
        self.most_at_once = 0
        self.most_tasks = 0
        self.overlapped: list[str] = []

    async def __call__(self, source: SourceConfig) -> PollReport:
        if source.name in self.running:
            self.overlapped.append(source.name)
        self.running.add(source.name)
        self.most_at_once = max(self.most_at_once, len(self.running))
        self.most_tasks = max(self.most_tasks, len(asyncio.all_tasks()))
        await asyncio.sleep(self.takes)
        self.running.discard(source.name)
        self.done.append(source.name)
        return PollReport(source.name, "ok")


async def wait_until(condition: object, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_every_source_is_polled_by_at_most_workers_tasks() -> None:
    polls = Polls(takes=0.001)
    schedule = PollSchedule(polls, workers=5)
    names = [f"s{i}" for i in range(300)]
    for name in names:
        schedule.set(source(name))
    before = len(asyncio.all_tasks())
    running = asyncio.create_task(schedule.run())
    try:
        await wait_until(lambda: len(polls.done) == 300)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert sorted(polls.done) == sorted(names)  # each once: the next run is an hour away
    assert polls.most_at_once == 5
    # The loop, its wait for the next due time, and the workers: not 300 tasks.
    assert polls.most_tasks <= before + 2 + 5
    assert len(asyncio.all_tasks()) == before  # cancelling stops the workers too


async def test_a_source_is_never_polled_twice_at_once_and_missed_runs_coalesce() -> None:
    polls = Polls(takes=0.15)  # longer than the interval
    schedule = PollSchedule(polls, workers=4)
    schedule.set(source("slow", interval=0.02))
    running = asyncio.create_task(schedule.run())
    try:
        await asyncio.sleep(0.5)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert polls.overlapped == []
    assert 2 <= len(polls.done) <= 4  # back to back, not the 25 runs the interval asks for


def test_the_rate_is_fixed_from_the_first_due_time() -> None:
    now = [100.0]
    schedule = PollSchedule(Polls(), workers=1, clock=lambda: now[0])
    schedule.set(source("a", interval=10))
    assert schedule._pop_due() is not None
    assert schedule.next_due("a") == 110
    schedule._polling.clear()  # that poll has finished
    now[0] = 135.0  # 110, 120 and 130 were missed: one run now, the next on the grid
    assert schedule._pop_due() is not None
    assert schedule.next_due("a") == 140
    assert schedule._pop_due() is None


async def test_removed_and_replaced_sources() -> None:
    polls = Polls()
    schedule = PollSchedule(polls, workers=2)
    schedule.set(source("gone", interval=0.05))
    schedule.set(source("kept", interval=0.05))
    schedule.remove("gone")
    schedule.set(source("kept", interval=3600))  # replaces the 0.05 s schedule
    running = asyncio.create_task(schedule.run())
    try:
        await asyncio.sleep(0.3)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert polls.done == ["kept"]
    assert "gone" not in schedule and len(schedule) == 1


async def test_poll_all_uses_fetch_concurrency_workers_and_keeps_the_order(
    tmp_path: Path,
) -> None:
    raw = {
        "database": f"sqlite:///{tmp_path}/state.db",
        "sources": [{"name": f"f{i}", "url": f"http://127.0.0.1:9/{i}"} for i in range(400)],
        "targets": [
            {"name": "tg", "platform": "telegram", "token": {"env": "T"}, "chat_id": "@chan_test"}
            | {"api_base": "http://127.0.0.1:9"}
        ],
        "fetch": {"concurrency": 7},
    }
    raw["sources"][3]["enabled"] = False
    service = Service(validate(raw, "test", {"T": "1:b"}), dispatch_on_new=False)
    polls = Polls(takes=0.001)
    service.pipeline.poll = polls  # type: ignore[method-assign]
    before = len(asyncio.all_tasks())
    try:
        reports = await service.poll_all()
    finally:
        await service.close()
    assert [r.source for r in reports] == [f"f{i}" for i in range(400) if i != 3]
    assert polls.most_at_once == 7
    assert polls.most_tasks <= before + 7
