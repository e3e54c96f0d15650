"""Group commit (bot/store/batching.py): who shares a batch, who gets what, and what a failure
or a cancelled caller does; and the store's identity lookups on it (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bot.models import Article
from bot.store import Store
from bot.store.batching import Batcher


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def run(self, batch: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(batch))
        await self.gate.wait()
        return [ValueError(f"odd {n}") if n % 2 else n * 10 for n in batch]


async def test_a_lone_request_runs_at_once_and_later_ones_share_the_next_batch() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.run, lambda pending: min(len(pending), 3))
    assert await batcher.submit(2) == 20
    recorder.gate.clear()
    first = asyncio.create_task(batcher.submit(4))
    await asyncio.sleep(0)  # the first batch is running, held at the gate
    rest = [asyncio.create_task(batcher.submit(n)) for n in (6, 8, 10, 12)]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await first == 40
    assert [await task for task in rest] == [60, 80, 100, 120]
    assert recorder.batches == [[2], [4], [6, 8, 10], [12]]


async def test_each_caller_gets_its_own_failure_and_a_cancelled_caller_leaves_the_batch() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder.run, len)
    recorder.gate.clear()
    busy = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0)
    odd = asyncio.create_task(batcher.submit(3))
    gone = asyncio.create_task(batcher.submit(4))
    even = asyncio.create_task(batcher.submit(6))
    await asyncio.sleep(0)
    gone.cancel()
    recorder.gate.set()
    assert await busy == 0
    with pytest.raises(ValueError, match="odd 3"):
        await odd
    assert await even == 60
    assert recorder.batches == [[0], [3, 4, 6]]  # the cancelled caller's request still ran


async def test_a_batch_that_raises_fails_all_its_callers_and_the_next_batch_still_runs() -> None:
    calls = 0

    async def run(batch: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database gone")
        return list(batch)

    batcher: Batcher[int, int] = Batcher(run, len)
    with pytest.raises(RuntimeError, match="database gone"):
        await batcher.submit(1)
    assert await batcher.submit(2) == 2


async def test_identity_lookups_made_together_answer_each_feed_alone(store: Store) -> None:
    for n in range(3):
        article = Article(url=f"https://site.example/{n}", title=f"A{n}", source="s")
        assert await store.add_articles([(article, [f"url:{n}", f"guid:s:{n}"])])
    asked = [["url:0", "url:9"], ["guid:s:1"], [], ["url:2", "guid:s:2", "url:0"]]
    answers = await asyncio.gather(*(store.articles_by_key(keys) for keys in asked))
    assert [sorted(answer) for answer in answers] == [
        ["url:0"],
        ["guid:s:1"],
        [],
        ["guid:s:2", "url:0", "url:2"],
    ]
    assert answers[3]["url:2"].article.url == "https://site.example/2"
    assert answers[0]["url:0"].article.title == "A0"
