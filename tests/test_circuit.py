"""The per-target circuit breaker: pure state, then as the dispatcher uses it."""

from __future__ import annotations

import asyncio
import random
import time
from typing import ClassVar

from hypothesis import given
from hypothesis import strategies as st

from adapters.base import Adapter
from bot.circuit import Circuit, jittered
from bot.config import DispatchConfig
from bot.dispatcher import Dispatcher
from bot.models import Article, PostLength, RenderedPost, SentPost
from bot.outcomes import TemporaryFailure
from bot.store import DeliveryStatus, Store
from tests.test_dispatcher import ScriptedAdapter, add, queue_post, raising


def test_opens_after_threshold_failures_in_a_row() -> None:
    c = Circuit(threshold=3, cooldown_base=10, cooldown_max=300, rng=random.Random(1))
    assert c.failure(0, "503") is False and c.state(0) == "closed"
    assert c.failure(1, "503") is False
    assert c.failure(2, "503") is True  # opened now: the caller alerts once
    assert c.state(2) == "open" and not c.allows(2)
    assert 2 + 5 <= c.open_until <= 2 + 10
    assert c.state(c.open_until) == "half-open" and c.allows(c.open_until)


def test_a_success_in_between_resets_the_count() -> None:
    c = Circuit(threshold=2)
    c.failure(0, "x")
    assert c.success(1) is None  # it was never open
    assert c.failure(2, "x") is False


def test_failed_recovery_reopens_longer_and_success_reports_the_outage() -> None:
    c = Circuit(threshold=1, cooldown_base=10, cooldown_max=1000, rng=random.Random(2))
    assert c.failure(100, "down") is True
    first = c.open_until - 100
    assert c.failure(c.open_until, "still down") is False  # not a new alert
    second = c.open_until - (100 + first)
    assert second > first
    assert c.success(500) == 400  # down since t=100


def test_uncertain_trips_at_once_and_retry_after_is_honoured() -> None:
    c = Circuit(threshold=5, cooldown_base=1, cooldown_max=2)
    assert c.failure(0, "no answer", trip=True) is True
    c2 = Circuit(threshold=1, cooldown_base=1, cooldown_max=2)
    c2.failure(0, "429", at_least=60)
    assert c2.open_until >= 60


@given(
    base=st.floats(0.01, 100),
    cap=st.floats(0.01, 10_000),
    step=st.integers(0, 60),
    seed=st.integers(0, 2**32),
)
def test_jittered_cooldown_stays_within_half_and_whole_of_the_capped_exponential(
    base: float, cap: float, step: int, seed: int
) -> None:
    exp = min(cap, base * 2**step)
    value = jittered(base, cap, step, random.Random(seed))
    assert exp / 2 <= value <= exp


class CheckedAdapter(ScriptedAdapter):
    """A scripted adapter with a health check that answers from a flag."""

    platform: ClassVar[str] = "checked"
    up = False
    checks = 0
    calls = 0

    async def send(self, post: RenderedPost, *, idempotency_key: str | None = None) -> SentPost:
        self.calls += 1
        return await super().send(post)

    async def check(self) -> bool:
        self.checks += 1
        if not self.up:
            raise TemporaryFailure("still 503")
        return True


async def test_open_circuit_holds_posts_without_using_attempts_then_recovers(
    store: Store,
) -> None:
    adapter = CheckedAdapter("t", [raising(TemporaryFailure("503"))] * 3)
    ids = await add(store, adapter, 3)
    alerts: list[str] = []

    async def alert(target: str, message: str) -> None:
        alerts.append(message)

    config = DispatchConfig(backoff_base=0.01, circuit_cooldown_max=0.02, max_attempts=3)
    d = Dispatcher(store, {adapter.name: adapter}, config, claimer="test", alert=alert)
    for _ in range(3):  # three failures in a row open the circuit
        await store.reschedule(ids[0], time.time())
        await d.run_once()
    assert d.circuits["t"].trips == 1
    assert [a for a in alerts if "held" in a] and adapter.calls == 3
    for _ in range(3):  # down: health checks only, no post tried, nothing given up
        await asyncio.sleep(0.03)
        await store.reschedule(ids[0], time.time())
        await d.run_once()
    assert adapter.calls == 3 and adapter.checks >= 2
    head = await store.delivery(ids[0])
    assert head is not None and head.status == DeliveryStatus.PENDING and head.attempts <= 3
    adapter.up = True
    await asyncio.sleep(0.03)
    await store.reschedule(ids[0], time.time())
    await d.run_once()
    statuses = [(await store.delivery(i)).status for i in ids]  # type: ignore[union-attr]
    assert statuses == [DeliveryStatus.SENT, DeliveryStatus.SENT, DeliveryStatus.SENT]
    assert any("answers again" in a for a in alerts)


class GatedAdapter(Adapter):
    """Sends only when its gate opens: a platform that hangs."""

    platform: ClassVar[str] = "gated"

    def __init__(self, name: str) -> None:
        from bot.targets import Outlet, TargetSettings

        super().__init__(
            TargetSettings(name=name, platform="gated", api_base="http://127.0.0.1:9"), {}, Outlet()
        )
        self.gate = asyncio.Event()

    def render(self, article: Article) -> RenderedPost:
        return RenderedPost(
            target=self.name, platform="gated", article_url=article.url, text=article.url
        )

    def measure(self, post: RenderedPost) -> PostLength:
        return PostLength(len(post.text), 10_000)

    async def send(self, post: RenderedPost, *, idempotency_key: str | None = None) -> SentPost:
        await self.gate.wait()
        return SentPost("slow-1")


async def test_a_hanging_target_does_not_hold_up_another(store: Store) -> None:
    slow, fast = GatedAdapter("slow"), ScriptedAdapter("fast", [])
    await add(store, slow, 1)
    d = Dispatcher(store, {"slow": slow, "fast": fast}, DispatchConfig(), claimer="test")
    first = asyncio.create_task(d.run_once(wait=False))
    await asyncio.sleep(0.2)  # the slow target's send is now hanging
    article = Article(url="https://s.example/fast", title="Fast")
    fast_id = await queue_post(store, article, fast.render(article), sort_key=2000.0)
    report = await asyncio.wait_for(d.run_once(wait=False), timeout=5)
    assert report.sent == 1
    assert (await store.delivery(fast_id)).status == DeliveryStatus.SENT  # type: ignore[union-attr]
    assert not first.done() and d.busy()
    slow.gate.set()
    assert (await first).sent == 1
