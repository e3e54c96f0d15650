"""Outbox state machine: each adapter outcome leads to the right delivery state.

The adapter here is a scripted one (a real Adapter subclass whose send answers from a list),
because these tests are about the dispatcher's bookkeeping, not about any platform.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, ClassVar

from adapters.base import Adapter, SendContext
from bot.config import DispatchConfig
from bot.dispatcher import Dispatcher, backoff_delay
from bot.models import Article, PostLength, RenderedPost, SentPost
from bot.outcomes import (
    AuthFailure,
    PermanentFailure,
    RetryLater,
    TemporaryFailure,
    UncertainDelivery,
)
from bot.rules import Rule
from bot.store import DeliveryStatus, NewDelivery, Store
from bot.targets import Outlet, TargetSettings


class ScriptedAdapter(Adapter):
    platform: ClassVar[str] = "scripted"

    def __init__(self, name: str, script: list[Callable[[RenderedPost], SentPost]]) -> None:
        settings = TargetSettings(name=name, platform="scripted", api_base="http://127.0.0.1:9")
        super().__init__(settings, {}, Outlet())
        self.script = script
        self.sent: list[RenderedPost] = []

    def render(self, article: Article) -> RenderedPost:
        return RenderedPost(
            target=self.name, platform="scripted", article_url=article.url, text=article.url
        )

    def measure(self, post: RenderedPost) -> PostLength:
        return PostLength(len(post.text), 10_000)

    async def send(self, post: RenderedPost, *, idempotency_key: str | None = None) -> SentPost:
        step = self.script.pop(0) if self.script else (lambda p: SentPost(f"id-{len(self.sent)}"))
        result = step(post)
        self.sent.append(post)
        return result


def raising(exc: Exception) -> Callable[[RenderedPost], SentPost]:
    def step(_: RenderedPost) -> SentPost:
        raise exc

    return step


async def queue_post(store: Store, article: Article, post: RenderedPost, **options: Any) -> int:
    """Store an article with one delivery, the way the pipeline does. Returns its id."""
    stored = await store.add_article_with_deliveries(
        article, [f"url:{article.url}"], [NewDelivery(post, **options)]
    )
    assert stored is not None
    return stored[1][0]


async def add(store: Store, adapter: Adapter, n: int, base: float = 1000.0) -> list[int]:
    ids = []
    for i in range(n):
        article = Article(url=f"https://s.example/{i}", title=f"T{i}")
        ids.append(await queue_post(store, article, adapter.render(article), sort_key=base + i))
    return ids


def dispatcher(store: Store, adapter: Adapter, **overrides: float) -> Dispatcher:
    config = DispatchConfig(backoff_base=overrides.get("backoff_base", 10), max_attempts=3)
    return Dispatcher(store, {adapter.name: adapter}, config, claimer="test")


async def test_sends_in_publication_order_exactly_once(store: Store) -> None:
    adapter = ScriptedAdapter("t", [])
    ids = await add(store, adapter, 3)
    report = await dispatcher(store, adapter).run_once()
    assert report.sent == 3
    assert [p.article_url for p in adapter.sent] == [f"https://s.example/{i}" for i in range(3)]
    again = await dispatcher(store, adapter).run_once()
    assert again.sent == 0 and len(adapter.sent) == 3
    for delivery_id in ids:
        row = await store.delivery(delivery_id)
        assert row is not None and row.status == DeliveryStatus.SENT and row.remote_id


async def test_two_deliveries_for_the_same_target_are_refused(store: Store) -> None:
    adapter = ScriptedAdapter("t", [])
    article = Article(url="https://s.example/twice", title="Twice")
    post = adapter.render(article)
    twice = [NewDelivery(post), NewDelivery(post)]
    assert await store.add_article_with_deliveries(article, ["url:twice"], twice) is None
    assert await store.count_articles() == 0  # one transaction: nothing half-stored


async def test_retry_later_waits_without_counting_an_attempt_and_blocks_the_queue(
    store: Store,
) -> None:
    adapter = ScriptedAdapter("t", [raising(RetryLater("flood", 30))])
    first, second = await add(store, adapter, 2)
    report = await dispatcher(store, adapter).run_once()
    assert report.sent == 0 and report.retried == 1
    row = await store.delivery(first)
    assert row is not None and row.status == DeliveryStatus.PENDING and row.attempts == 0
    assert row.next_attempt_at >= time.time() + 25
    later = await store.delivery(second)
    assert (
        later is not None and later.status == DeliveryStatus.PENDING
    )  # order kept: it waits behind
    assert adapter.sent == []


async def test_temporary_failure_backs_off_then_gives_up(store: Store) -> None:
    adapter = ScriptedAdapter("t", [raising(TemporaryFailure("503"))] * 3)
    (delivery_id,) = await add(store, adapter, 1)
    config = DispatchConfig(backoff_base=10, max_attempts=3, circuit_threshold=5)
    d = Dispatcher(store, {adapter.name: adapter}, config, claimer="test")
    for attempt in range(1, 4):
        await d.run_once()
        row = await store.delivery(delivery_id)
        assert row is not None and row.attempts == attempt
        if attempt < 3:
            assert row.status == DeliveryStatus.PENDING and row.next_attempt_at > time.time()
            await store.reschedule(delivery_id, time.time())  # make it due now
    row = await store.delivery(delivery_id)
    assert (
        row is not None
        and row.status == DeliveryStatus.FAILED
        and "gave up after 3" in (row.last_error or "")
    )


async def test_permanent_failure_is_terminal_and_the_next_post_goes(store: Store) -> None:
    adapter = ScriptedAdapter("t", [raising(PermanentFailure("duplicate"))])
    first, second = await add(store, adapter, 2)
    report = await dispatcher(store, adapter).run_once()
    assert report.failed == 1 and report.sent == 1
    assert (await store.delivery(first)).status == DeliveryStatus.FAILED  # type: ignore[union-attr]
    assert (await store.delivery(second)).status == DeliveryStatus.SENT  # type: ignore[union-attr]


async def test_auth_failure_pauses_target_and_keeps_post(store: Store) -> None:
    adapter = ScriptedAdapter("t", [raising(AuthFailure("token revoked"))])
    (delivery_id,) = await add(store, adapter, 1)
    alerts: list[tuple[str, str]] = []

    async def alert(target: str, message: str) -> None:
        alerts.append((target, message))

    d = Dispatcher(store, {"t": adapter}, DispatchConfig(), claimer="x", alert=alert)
    report = await d.run_once()
    assert report.paused == ["t"]
    assert (await store.paused_targets()) == {"t": "token revoked"}
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == DeliveryStatus.PENDING and row.attempts == 0
    assert alerts and alerts[0][0] == "t" and "token revoked" in alerts[0][1]
    # Paused: nothing is attempted until an editor resumes.
    assert (await d.run_once()).sent == 0
    await store.set_paused("t", False)
    assert (await d.run_once()).sent == 1


async def test_uncertain_is_never_resent(store: Store) -> None:
    adapter = ScriptedAdapter("t", [raising(UncertainDelivery("read timeout"))])
    (delivery_id,) = await add(store, adapter, 1)
    d = dispatcher(store, adapter)
    assert (await d.run_once()).uncertain == 1
    assert (await d.run_once()).sent == 0
    row = await store.delivery(delivery_id)
    assert (
        row is not None
        and row.status == DeliveryStatus.UNCERTAIN
        and "read timeout" in (row.last_error or "")
    )


async def test_unexpected_adapter_exception_is_uncertain(store: Store) -> None:
    adapter = ScriptedAdapter("t", [raising(RuntimeError("bug"))])
    (delivery_id,) = await add(store, adapter, 1)
    await dispatcher(store, adapter).run_once()
    assert (await store.delivery(delivery_id)).status == DeliveryStatus.UNCERTAIN  # type: ignore[union-attr]


async def test_abandoned_send_becomes_uncertain_after_its_lease(store: Store) -> None:
    adapter = ScriptedAdapter("t", [])
    (delivery_id,) = await add(store, adapter, 1)
    # A process claims the delivery, starts publishing and dies before recording the answer.
    claimed = await store.claim_next("t", time.time(), lease=0.01, claimer="dead:1")
    assert claimed is not None and claimed.status == DeliveryStatus.PREPARING
    await store.begin_publish(claimed.id, time.time() + 0.01)
    time.sleep(0.02)
    report = await dispatcher(store, adapter).run_once()
    assert report.uncertain == 1 and adapter.sent == []
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == DeliveryStatus.UNCERTAIN


async def test_flagging_uncertain_and_its_report_are_one_commit(store: Store) -> None:
    adapter = ScriptedAdapter("t", [])
    first, second = await add(store, adapter, 2)
    claimed = await store.claim_next("t", time.time(), lease=0.01, claimer="dead:1")
    assert claimed is not None and claimed.id == first
    await store.begin_publish(first, time.time() + 0.01)
    time.sleep(0.02)
    # No dispatcher involved: the store alone both flags and reports.
    flagged = await store.expire_leases(time.time())
    assert [d.id for d in flagged] == [first]
    claimed = await store.claim_next("t", time.time(), lease=60, claimer="live:1")
    assert claimed is not None and claimed.id == second
    await store.begin_publish(second, time.time() + 60)
    await store.flag_uncertain(second, "read timeout", "may or may not be posted")
    reports = [e for e in await store.recent_events(10) if e["kind"] == "uncertain"]
    assert sorted(e["delivery_id"] for e in reports) == [first, second]
    assert all(e["target"] == "t" for e in reports)


async def test_post_without_attribution_is_never_sent(store: Store) -> None:
    adapter = ScriptedAdapter("t", [])
    article = Article(url="https://s.example/a", title="T")
    bad = RenderedPost(target="t", platform="scripted", article_url=article.url, text="no link")
    delivery_id = await queue_post(store, article, bad)
    await dispatcher(store, adapter).run_once()
    row = await store.delivery(delivery_id)
    assert (
        row is not None
        and row.status == DeliveryStatus.FAILED
        and "article URL" in (row.last_error or "")
    )
    assert adapter.sent == []


def test_backoff_grows_is_capped_and_jittered() -> None:
    import random

    rng = random.Random(1)
    delays = [backoff_delay(n, 10, 300, rng) for n in range(1, 12)]
    assert all(5 <= d <= 300 for d in delays)
    assert delays[0] <= 10 and delays[-1] >= 150
    assert len({round(d, 3) for d in delays[-4:]}) == 4  # jittered, not identical


def timed_adapter(name: str, **timing: object) -> ScriptedAdapter:
    adapter = ScriptedAdapter(name, [])
    adapter.settings = TargetSettings(
        name=name, platform="scripted", api_base="http://127.0.0.1:9", timing=timing
    )
    return adapter


async def test_dispatcher_holds_posts_for_the_publication_delay(store: Store) -> None:
    adapter = timed_adapter("t", delay=600)
    (delivery_id,) = await add(store, adapter, 1, base=time.time())
    await dispatcher(store, adapter).run_once()
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == DeliveryStatus.PENDING and row.attempts == 0
    assert row.next_attempt_at >= time.time() + 590
    assert "publication delay" in (row.last_error or "")
    assert adapter.sent == []


async def test_breaking_priority_skips_the_delay(store: Store) -> None:
    adapter = timed_adapter("t", delay=600)
    article = Article(url="https://s.example/b", title="Breaking")
    await queue_post(store, article, adapter.render(article), priority=1, sort_key=time.time())
    assert (await dispatcher(store, adapter).run_once()).sent == 1


async def test_stale_post_is_dropped_not_sent(store: Store) -> None:
    adapter = timed_adapter("t", max_age=60)
    (delivery_id,) = await add(store, adapter, 1, base=time.time() - 3600)
    await dispatcher(store, adapter).run_once()
    row = await store.delivery(delivery_id)
    assert (
        row is not None
        and row.status == DeliveryStatus.SKIPPED
        and "max_age" in (row.last_error or "")
    )
    assert adapter.sent == []


async def test_unanswered_approval_follows_the_rule_default(store: Store) -> None:
    adapter = ScriptedAdapter("t", [])
    article = Article(url="https://s.example/a", title="Needs review")
    post_id = await queue_post(
        store, article, adapter.render(article), status=DeliveryStatus.AWAITING, rule="auto"
    )
    other = Article(url="https://s.example/b", title="Also")
    skip_id = await queue_post(
        store, other, adapter.render(other), status=DeliveryStatus.AWAITING, rule="strict"
    )
    rules = [
        Rule(name="auto", approval=True, approval_timeout=0, approval_default="post"),
        Rule(name="strict", approval=True, approval_timeout=0, approval_default="skip"),
    ]
    d = Dispatcher(store, {"t": adapter}, DispatchConfig(), claimer="x", rules=rules)
    report = await d.run_once()
    assert report.sent == 1 and [p.article_url for p in adapter.sent] == [article.url]
    assert (await store.delivery(post_id)).status == DeliveryStatus.SENT  # type: ignore[union-attr]
    assert (await store.delivery(skip_id)).status == DeliveryStatus.SKIPPED  # type: ignore[union-attr]


class SlowAdapter(ScriptedAdapter):
    """Each send takes a while, as a real platform's request does."""

    async def send(self, post: RenderedPost, *, idempotency_key: str | None = None) -> SentPost:
        await asyncio.sleep(0.2)
        return await super().send(post, idempotency_key=idempotency_key)


async def test_stop_waits_for_the_pass_in_flight_and_no_pass_starts_after_it(
    store: Store,
) -> None:
    """Stopping mid-pass: the post being sent finishes and is recorded as sent (nothing is
    cut off to leave a traceback or an abandoned row), no further post is claimed, and a
    tick after the stop does nothing."""
    adapter = SlowAdapter("t", [])
    ids = await add(store, adapter, 3)
    d = dispatcher(store, adapter)
    passing = asyncio.create_task(d.run_once())
    while not adapter.sent and not d.busy():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the first send is in flight
    await d.stop(timeout=5)
    assert not d.busy()
    assert passing.done() and passing.result().sent == 1
    assert (await d.run_once()).sent == 0
    statuses = [(await store.delivery(i)).status for i in ids]  # type: ignore[union-attr]
    assert statuses == [DeliveryStatus.SENT, DeliveryStatus.PENDING, DeliveryStatus.PENDING]


class ReadBackAdapter(ScriptedAdapter):
    """Reads the platform back after an unclear answer: the post is certainly not there."""

    read_back: ClassVar[str] = "the scripted platform's recent posts"

    async def find_published(self, post: RenderedPost, ctx: SendContext) -> SentPost | None:
        return None


class CountingStore:
    """The real store, counting the dispatcher's claims (each one a write transaction)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.claims = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def claim_due(self, *args: Any) -> Any:
        self.claims += 1
        return await self.store.claim_due(*args)


async def test_a_drain_stops_after_the_last_due_post_without_another_claim(
    store: Store,
) -> None:
    adapter = ScriptedAdapter("t", [])
    await add(store, adapter, 3)
    counting = CountingStore(store)
    d = Dispatcher(counting, {"t": adapter}, DispatchConfig(), claimer="test")  # type: ignore[arg-type]
    assert (await d.run_once()).sent == 3
    assert counting.claims == 3  # not a fourth that finds nothing
    assert (await d.run_once()).sent == 0 and counting.claims == 4


async def test_a_post_queued_during_a_drain_goes_out_in_the_same_drain(store: Store) -> None:
    """The drain knew of nothing more when it claimed; the new post's wake-up (a pass that
    finds the target being drained) makes it look again before it stops."""
    adapter = SlowAdapter("t", [])
    await add(store, adapter, 1)
    d = dispatcher(store, adapter)
    passing = asyncio.create_task(d.run_once())
    while not d.busy():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the first send is in flight
    late = Article(url="https://s.example/late", title="Late")
    await queue_post(store, late, adapter.render(late), sort_key=2000.0)
    woken = await d.run_once(wait=False)  # what the pipeline's wake-up runs
    assert woken.sent == 0  # it left the target to the drain in progress
    assert (await passing).sent == 2
    assert [p.article_url for p in adapter.sent][-1] == late.url


async def test_a_read_back_that_finds_the_post_absent_resends_it_in_the_same_drain(
    store: Store,
) -> None:
    """Uncertain, then the platform's read-back says it is certainly not there: it is due
    again, and the drain takes it before stopping (no wait for the next tick)."""
    adapter = ReadBackAdapter("t", [raising(UncertainDelivery("timeout"))])
    (delivery_id,) = await add(store, adapter, 1)
    report = await dispatcher(store, adapter).run_once()
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == DeliveryStatus.SENT
    assert report.sent == 1 and len(adapter.sent) == 1 and not adapter.script
