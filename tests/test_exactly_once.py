"""Exactly once with fewer questions (issue 14): the narrow `sending` window, resuming from
stored progress, idempotent resends and the automatic read-back of uncertain deliveries.

Facebook and Instagram run against the Graph stand-in (it reads back the Page's posts and the
account's media the way the Graph API does); faults land before, during and after the one
publishing request, and a dead sender is played by a lapsed lease."""

from __future__ import annotations

import time

from adapters.base import SendContext
from bot.config import DispatchConfig
from bot.dispatcher import Dispatcher
from bot.models import RenderedPost, SentPost
from bot.outcomes import TemporaryFailure, UncertainDelivery
from bot.store import DeliveryStatus, Store
from standins import graph
from tests import test_meta
from tests.test_dispatcher import ScriptedAdapter, add, queue_post, raising
from tests.test_meta import Meta, article, facebook, instagram

S = DeliveryStatus
meta = test_meta.meta  # the Graph stand-in fixture


def run(store: Store, adapter: object) -> Dispatcher:
    config = DispatchConfig(backoff_base=0.01, backoff_max=0.01, max_attempts=5, lease=30)
    return Dispatcher(store, {adapter.name: adapter}, config, claimer="test")  # type: ignore[attr-defined]


async def kinds(store: Store, delivery_id: int) -> list[str]:
    return [e["kind"] for e in await store.recent_events(50) if e["delivery_id"] == delivery_id]


async def queued(store: Store, adapter: object) -> int:
    post = adapter.render(article())  # type: ignore[attr-defined]
    return await queue_post(store, article(), post)


async def test_instagram_answer_lost_after_publishing_is_confirmed_by_read_back(
    store: Store, meta: Meta
) -> None:
    ig = instagram(meta, timeout=0.5)
    delivery_id = await queued(store, ig)
    meta.state.inject(graph.GraphFault(hang=2, edges=("media_publish",), after=True))
    report = await run(store, ig).run_once()
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == S.SENT, row
    assert list(meta.state.media) == [row.remote_id]  # posted once, its id found
    assert "confirmed" in await kinds(store, delivery_id)
    assert report.uncertain == 0
    await ig.aclose()


async def test_instagram_publish_that_never_landed_is_sent_again_once(
    store: Store, meta: Meta
) -> None:
    ig = instagram(meta, timeout=0.5)
    delivery_id = await queued(store, ig)
    meta.state.inject(graph.GraphFault(hang=2, edges=("media_publish",)))
    report = await run(store, ig).run_once()
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == S.SENT and report.uncertain == 0
    # Read back: certainly absent, so it went back to the queue and out once.
    assert "absent" in await kinds(store, delivery_id)
    assert len(meta.state.media) == 1
    assert len(meta.state.containers) == 1  # the saved container was reused
    await ig.aclose()


async def test_instagram_sender_dead_while_preparing_resumes_with_its_container(
    store: Store, meta: Meta
) -> None:
    ig = instagram(meta)
    delivery_id = await queued(store, ig)
    # A sender claims it, creates the container (saved), and dies before media_publish.
    claimed = await store.claim_next("ig", time.time(), 0.01, "dead:1")
    assert claimed is not None and claimed.status == S.PREPARING
    ctx = SendContext(claimed.id, claimed.idempotency_key, {}, claimed.created_at)
    ctx._store = lambda p: store.save_progress(claimed.id, p)
    await ig.prepare(claimed.post, ctx)
    assert (await store.delivery(delivery_id)).progress["container_id"]  # type: ignore[union-attr]
    time.sleep(0.02)
    report = await run(store, ig).run_once()
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == S.SENT and report.uncertain == 0
    assert len(meta.state.containers) == 1 and len(meta.state.media) == 1
    assert "resumed" in await kinds(store, delivery_id)
    await ig.aclose()


async def test_instagram_expired_container_is_recreated(store: Store, meta: Meta) -> None:
    ig = instagram(meta)
    delivery_id = await queued(store, ig)
    claimed = await store.claim_next("ig", time.time(), 30, "test")
    assert claimed is not None
    ctx = SendContext(claimed.id, claimed.idempotency_key, {}, claimed.created_at)
    await ig.prepare(claimed.post, ctx)
    (old,) = meta.state.containers.values()
    old["status"] = "EXPIRED"
    await ig.prepare(claimed.post, ctx)
    assert len(meta.state.containers) == 2 and ctx.progress["container_id"] != old["id"]
    sent = await ig.publish(claimed.post, ctx)
    assert sent.remote_id in meta.state.media and delivery_id == claimed.id
    await ig.aclose()


async def test_facebook_answer_lost_after_posting_is_confirmed(store: Store, meta: Meta) -> None:
    fb = facebook(meta, timeout=0.5)
    delivery_id = await queued(store, fb)
    meta.state.inject(graph.GraphFault(hang=2, edges=("feed",), after=True))
    await run(store, fb).run_once()
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == S.SENT
    assert [p["id"] for p in meta.state.live_posts()] == [row.remote_id]
    await fb.aclose()


async def test_facebook_read_back_refused_goes_to_editors_naming_the_check(
    store: Store, meta: Meta
) -> None:
    fb = facebook(meta, timeout=0.5)
    delivery_id = await queued(store, fb)
    meta.state.inject(
        graph.GraphFault(hang=2, edges=("feed",), after=True),
        graph.GraphFault(edges=("posts",)),  # the read-back meets a server error
    )
    report = await run(store, fb).run_once()
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == S.UNCERTAIN and report.uncertain == 1
    (unresolved,) = [e for e in await store.recent_events(50) if e["kind"] == "unresolved"]
    assert "GET /{page-id}/posts" in unresolved["message"]
    assert len(meta.state.live_posts()) == 1  # never resent
    await fb.aclose()


async def test_facebook_dead_sender_mid_post_is_read_back_after_restart(
    store: Store, meta: Meta
) -> None:
    fb = facebook(meta)
    delivery_id = await queued(store, fb)
    claimed = await store.claim_next("fb", time.time(), 0.01, "dead:1")
    assert claimed is not None
    await store.begin_publish(claimed.id, time.time() + 0.01)
    await fb.send(claimed.post)  # it posted, then the process died before recording it
    time.sleep(0.02)
    await run(store, fb).run_once()
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == S.SENT and len(meta.state.live_posts()) == 1
    assert (await kinds(store, delivery_id))[:2] == ["confirmed", "uncertain"]  # newest first
    await fb.aclose()


async def test_facebook_dead_sender_before_posting_is_sent_once(store: Store, meta: Meta) -> None:
    fb = facebook(meta)
    delivery_id = await queued(store, fb)
    claimed = await store.claim_next("fb", time.time(), 0.01, "dead:1")
    assert claimed is not None
    await store.begin_publish(claimed.id, time.time() + 0.01)  # died before the request
    time.sleep(0.02)
    await run(store, fb).run_once()  # flagged, read back: absent -> pending
    time.sleep(0.02)
    await run(store, fb).run_once()
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == S.SENT and len(meta.state.live_posts()) == 1
    await fb.aclose()


class IdempotentAdapter(ScriptedAdapter):
    idempotent = True

    def __init__(self, name: str, script: list) -> None:  # type: ignore[type-arg]
        super().__init__(name, script)
        self.keys: list[str | None] = []

    async def send(self, post: RenderedPost, *, idempotency_key: str | None = None) -> SentPost:
        self.keys.append(idempotency_key)
        return await super().send(post, idempotency_key=idempotency_key)


async def test_idempotent_platform_is_resent_with_the_same_key_not_flagged(store: Store) -> None:
    adapter = IdempotentAdapter("t", [raising(UncertainDelivery("read timeout"))])
    (delivery_id,) = await add(store, adapter, 1)
    report = await run(store, adapter).run_once()
    assert report.uncertain == 0
    time.sleep(0.05)
    await run(store, adapter).run_once()
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == S.SENT
    assert len(adapter.keys) == 2 and adapter.keys[0] == adapter.keys[1] == row.idempotency_key


async def test_idempotent_platform_dead_sender_mid_publish_is_resumed(store: Store) -> None:
    adapter = IdempotentAdapter("t", [])
    (delivery_id,) = await add(store, adapter, 1)
    claimed = await store.claim_next("t", time.time(), 0.01, "dead:1")
    assert claimed is not None
    await store.begin_publish(claimed.id, time.time() + 0.01)
    time.sleep(0.02)
    await run(store, adapter).run_once()
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == S.SENT and adapter.keys == [row.idempotency_key]


async def test_failure_while_preparing_is_a_plain_retry(store: Store) -> None:
    class Flaky(ScriptedAdapter):
        calls = 0

        async def prepare(self, post: RenderedPost, ctx: SendContext) -> None:
            self.calls += 1
            if self.calls == 1:
                raise UncertainDelivery("getMe timed out")  # publishes nothing

    adapter = Flaky("t", [])
    (delivery_id,) = await add(store, adapter, 1)
    report = await run(store, adapter).run_once()
    assert report.uncertain == 0 and adapter.sent == []
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == S.PENDING
    time.sleep(0.05)
    await run(store, adapter).run_once()
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == S.SENT and len(adapter.sent) == 1


async def test_no_read_back_flags_for_editors(store: Store) -> None:
    adapter = ScriptedAdapter("t", [raising(UncertainDelivery("read timeout"))])
    (delivery_id,) = await add(store, adapter, 1)
    report = await run(store, adapter).run_once()
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == S.UNCERTAIN and report.uncertain == 1
    assert adapter.sent == [] and TemporaryFailure  # nothing resent
