"""Group commit for the store: requests made while one batch runs go out together in the next.

Thousands of feeds polled at once each asked the database for their identities and then saved
their state, every one a round trip through the pool and the driver's thread; that was
most of a cold start's CPU (issue 18). A `Batcher` keeps one task running batches: a lone
request runs at once (no added latency), and the requests that arrive meanwhile share the next
batch. Each caller awaits its own result, and a caller that is cancelled leaves the batch as it
is (a write it asked for still happens).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")

#: Runs one batch: one result (or the exception for that request) per request, in order.
RunBatch = Callable[[Sequence[Request]], Awaitable[Sequence[Result | BaseException]]]
#: How many of the pending requests (oldest first) the next batch takes; at least one.
BatchSize = Callable[[Sequence[Request]], int]


class Batcher(Generic[Request, Result]):
    def __init__(self, run: RunBatch[Request, Result], size: BatchSize[Request]) -> None:
        self._run = run
        self._size = size
        self._pending: list[tuple[Request, asyncio.Future[Result]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, request: Request) -> Result:
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((request, done))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        while self._pending:
            taken = self._pending[: max(1, self._size([r for r, _ in self._pending]))]
            del self._pending[: len(taken)]
            batch = [request for request, _ in taken]
            futures = [done for _, done in taken]
            try:
                outcomes: Sequence[Result | BaseException] = await self._run(batch)
            except Exception as exc:
                outcomes = [exc] * len(batch)
            for done, outcome in zip(futures, outcomes, strict=True):
                if done.done():  # its caller was cancelled
                    continue
                if isinstance(outcome, BaseException):
                    done.set_exception(outcome)
                else:
                    done.set_result(outcome)
