"""The daemon's polling schedule: every enabled source polled at its interval by a fixed set of
worker tasks, from a heap of due times.

One APScheduler job per source held a job object per source and, when they all fell due at
start-up, one task per source at once: ~70 MB at 30,000 sources (issue 18). Here a source
costs one heap entry; at most `workers` polls run, and due sources wait in the heap, not as
tasks. Same rules as the jobs had: fixed rate from the first due time, a source is never
polled twice at once, and runs missed while it was busy or the workers were full are
coalesced into one.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import SourceConfig

log = logging.getLogger("newsbot")


class PollSchedule:
    """When each source is due, and the workers that poll it."""

    def __init__(
        self,
        poll: Callable[[SourceConfig], Awaitable[object]],
        workers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._poll = poll
        self._workers = max(1, workers)
        self._clock = clock
        #: (due time, tie-breaker, source): an entry whose source is no longer the one in
        #: `_sources` (removed or replaced) is dropped when it comes up.
        self._heap: list[tuple[float, int, SourceConfig]] = []
        self._sources: dict[str, SourceConfig] = {}
        self._polling: set[str] = set()
        self._order = itertools.count()
        self._changed = asyncio.Event()

    def __contains__(self, name: str) -> bool:
        return name in self._sources

    def __len__(self) -> int:
        return len(self._sources)

    def set(self, source: SourceConfig, first: float | None = None) -> None:
        """Poll `source` from `first` (the clock's time; now if None) at its interval,
        replacing any earlier schedule of a source of that name."""
        self._sources[source.name] = source
        due = self._clock() if first is None else first
        heapq.heappush(self._heap, (due, next(self._order), source))
        self._changed.set()

    def remove(self, name: str) -> None:
        self._sources.pop(name, None)

    def next_due(self, name: str) -> float | None:
        """When `name` is next due (None when it is not scheduled)."""
        source = self._sources.get(name)
        dues = [due for due, _, s in self._heap if s is source]
        return min(dues) if source is not None and dues else None

    async def run(self) -> None:
        """Poll until cancelled."""
        # A slot for each worker: the loop hands a source over only when a worker is free.
        handover: asyncio.Queue[SourceConfig] = asyncio.Queue(maxsize=1)
        workers = [asyncio.create_task(self._work(handover)) for _ in range(self._workers)]
        try:
            while True:
                source = self._pop_due()
                if source is not None:
                    await handover.put(source)
                    continue
                self._changed.clear()
                wait = self._heap[0][0] - self._clock() if self._heap else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def _pop_due(self) -> SourceConfig | None:
        """The next source due now (its following run scheduled), or None."""
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            due, _, source = heapq.heappop(self._heap)
            if self._sources.get(source.name) is not source:
                continue  # removed or replaced since
            # Fixed rate from the first due time; runs missed meanwhile become this one.
            missed = math.floor((now - due) / source.interval) + 1
            heapq.heappush(self._heap, (due + missed * source.interval, next(self._order), source))
            if source.name in self._polling:
                continue  # still being polled: this run coalesces with that one
            self._polling.add(source.name)
            return source
        return None

    async def _work(self, handover: asyncio.Queue[SourceConfig]) -> None:
        while True:
            source = await handover.get()
            try:
                await self._poll(source)
            except Exception:  # one broken source never stops the others
                log.exception("source %s: poll failed unexpectedly", source.name)
            finally:
                self._polling.discard(source.name)
