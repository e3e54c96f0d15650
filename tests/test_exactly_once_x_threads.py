"""Exactly once on X and Threads (issue 14): a kill or a lost answer before, during and after
the one publishing request, a restart (a lapsed lease or the next dispatcher pass), and the
final state. The real adapters run against their stand-ins: X refuses a duplicate and lists
the user's posts as X does; Threads lists the user's posts for the read-back."""

from __future__ import annotations

import asyncio
import time

from adapters.base import SendContext
from adapters.threads import ThreadsAdapter
from adapters.x import XAdapter
from bot.config import DispatchConfig
from bot.dispatcher import Dispatcher
from bot.models import Article
from bot.store import Delivery, DeliveryStatus, Store
from standins import threads as ts
from standins import x as xs
from standins.graph import GraphFault
from tests.test_dispatcher import queue_post
from tests.test_threads import World
from tests.test_threads import make_adapter as make_threads
from tests.test_threads import world as world  # the Threads stand-in fixture
from tests.test_x import XWorld
from tests.test_x import make_adapter as make_x
from tests.test_x import xworld as xworld  # the X stand-in fixture

S = DeliveryStatus
ARTICLE = Article(url="https://news.example.com/en/news/14", title="Harbour plan passes")


def dispatcher(store: Store, adapter: XAdapter | ThreadsAdapter) -> Dispatcher:
    config = DispatchConfig(backoff_base=0.01, backoff_max=0.01, max_attempts=5, lease=30)
    return Dispatcher(store, {adapter.name: adapter}, config, claimer="test")


async def queued(store: Store, adapter: XAdapter | ThreadsAdapter) -> int:
    return await queue_post(store, ARTICLE, adapter.render(ARTICLE))


async def kinds(store: Store, delivery_id: int) -> list[str]:
    return [e["kind"] for e in await store.recent_events(50) if e["delivery_id"] == delivery_id]


async def events(store: Store, delivery_id: int, kind: str) -> list[str]:
    return [
        e["message"]
        for e in await store.recent_events(50)
        if e["delivery_id"] == delivery_id and e["kind"] == kind
    ]


async def dead_sender(store: Store, target: str) -> tuple[Delivery, SendContext]:
    """A sender that claims the delivery on a lease about to lapse (then 'dies')."""
    claimed = await store.claim_next(target, time.time(), 0.01, "dead:1")
    assert claimed is not None

    async def keep(progress: dict[str, object]) -> None:
        await store.save_progress(claimed.id, progress)

    ctx = SendContext(claimed.id, claimed.idempotency_key, {}, claimed.created_at, keep)
    return claimed, ctx


async def final(store: Store, delivery_id: int) -> Delivery:
    row = await store.delivery(delivery_id)
    assert row is not None
    return row


# X ---------------------------------------------------------------------------------------


async def test_x_killed_while_preparing_resumes_and_posts_once(
    store: Store, xworld: XWorld
) -> None:
    x = make_x(xworld.url, with_image=False)
    delivery_id = await queued(store, x)
    claimed, ctx = await dead_sender(store, "x-main")
    await x.prepare(claimed.post, ctx)  # then killed, before the publishing request
    await asyncio.sleep(0.02)
    await dispatcher(store, x).run_once()
    row = await final(store, delivery_id)
    assert row.status == S.SENT and [p["id"] for p in xworld.state.posts] == [row.remote_id]
    assert "resumed" in await kinds(store, delivery_id)
    await x.aclose()


async def test_x_killed_after_committing_sending_before_the_request_posts_once(
    store: Store, xworld: XWorld
) -> None:
    x = make_x(xworld.url, with_image=False)
    delivery_id = await queued(store, x)
    claimed, _ = await dead_sender(store, "x-main")
    await store.begin_publish(claimed.id, time.time() + 0.01)  # killed before create_tweet
    await asyncio.sleep(0.02)
    report = await dispatcher(store, x).run_once()
    row = await final(store, delivery_id)
    # X is resend-safe: the lapsed `sending` row is resent, not flagged; X had nothing yet.
    assert row.status == S.SENT and report.uncertain == 0
    assert [p["id"] for p in xworld.state.posts] == [row.remote_id]
    await x.aclose()


async def test_x_killed_after_posting_is_confirmed_by_the_duplicate_refusal(
    store: Store, xworld: XWorld
) -> None:
    x = make_x(xworld.url, with_image=False)
    delivery_id = await queued(store, x)
    claimed, ctx = await dead_sender(store, "x-main")
    await store.begin_publish(claimed.id, time.time() + 0.01)
    await x.publish(claimed.post, ctx)  # posted, then killed before recording it
    await asyncio.sleep(0.02)
    report = await dispatcher(store, x).run_once()
    row = await final(store, delivery_id)
    assert row.status == S.SENT and report.uncertain == 0
    assert len(xworld.state.posts) == 1  # the resend was refused as a duplicate
    # read_back is off: sent without an id, and the event says so; nothing was read.
    assert row.remote_id is None and xworld.state.reads == 0
    (confirmed,) = await events(store, delivery_id, "confirmed")
    assert "duplicate content" in confirmed and "id is unknown" in confirmed
    await x.aclose()


async def test_x_answer_lost_during_the_request_then_read_back_finds_the_id(
    store: Store, xworld: XWorld
) -> None:
    x = make_x(xworld.url, with_image=False, timeout=0.5, read_back=True, cost_per_read=0.01)
    delivery_id = await queued(store, x)
    # X takes the post but answers after the client gave up.
    xworld.state.inject(xs.XFault(status=0, hang=1.0))
    first = await dispatcher(store, x).run_once()
    assert first.uncertain == 0 and first.retried == 1
    assert (await final(store, delivery_id)).status == S.PENDING  # resend-safe: queued again
    await asyncio.sleep(1.2)  # the stand-in finishes the call it received: posted
    await dispatcher(store, x).run_once()
    row = await final(store, delivery_id)
    (post,) = xworld.state.posts
    assert row.status == S.SENT and row.remote_id == post["id"]
    # Found through GET /2/users/me and GET /2/users/:id/tweets: two billed reads, counted.
    assert xworld.state.reads == 1 and row.progress["billed_reads"] == 2
    assert x.read_cost(row.progress) == 0.02
    billed = await store.progress_sent_since("x-main", 0)
    assert sum(x.read_cost(p) for p in billed) == 0.02
    (confirmed,) = await events(store, delivery_id, "confirmed")
    assert f"found as {post['id']}" in confirmed
    await x.aclose()


async def test_x_duplicate_on_a_first_attempt_is_still_a_refusal(
    store: Store, xworld: XWorld
) -> None:
    x = make_x(xworld.url, with_image=False)
    await x.send(x.render(ARTICLE))  # someone posted the very same text before
    delivery_id = await queued(store, x)
    await dispatcher(store, x).run_once()
    row = await final(store, delivery_id)
    assert row.status == S.FAILED and "duplicate" in (row.last_error or "")
    assert len(xworld.state.posts) == 1
    await x.aclose()


async def test_x_read_back_settles_an_uncertain_row_when_asked(
    store: Store, xworld: XWorld
) -> None:
    x = make_x(xworld.url, with_image=False, read_back=True)
    post = x.render(ARTICLE)
    sent = await x.send(post)
    ctx = SendContext(since=time.time() - 5)
    found = await x.find_published(post, ctx)
    assert found is not None and found.remote_id == sent.remote_id
    other = x.render(Article(url="https://news.example.com/en/news/15", title="Not posted"))
    assert await x.find_published(other, ctx) is None  # every post since then was listed
    assert xworld.state.reads == 2
    await x.aclose()


# Threads ---------------------------------------------------------------------------------


async def test_threads_killed_while_preparing_reuses_its_container(
    store: Store, world: World
) -> None:
    th = make_threads(world)
    delivery_id = await queued(store, th)
    claimed, ctx = await dead_sender(store, "threads")
    await th.prepare(claimed.post, ctx)  # container made and saved, then killed
    assert (await final(store, delivery_id)).progress["container_id"]
    await asyncio.sleep(0.02)
    report = await dispatcher(store, th).run_once()
    row = await final(store, delivery_id)
    assert row.status == S.SENT and report.uncertain == 0
    assert len(world.state.containers) == 1 and len(world.state.live_posts()) == 1
    await th.aclose()


async def test_threads_killed_before_the_publish_request_is_read_back_absent_and_sent_once(
    store: Store, world: World
) -> None:
    th = make_threads(world)
    delivery_id = await queued(store, th)
    claimed, ctx = await dead_sender(store, "threads")
    await th.prepare(claimed.post, ctx)
    await store.begin_publish(claimed.id, time.time() + 0.01)  # killed before threads_publish
    await asyncio.sleep(0.02)
    await dispatcher(store, th).run_once()  # flagged, read back: certainly absent -> pending
    await dispatcher(store, th).run_once()
    row = await final(store, delivery_id)
    assert row.status == S.SENT and len(world.state.live_posts()) == 1
    assert "absent" in await kinds(store, delivery_id)
    assert len(world.state.containers) == 1
    await th.aclose()


async def test_threads_answer_lost_during_publish_is_confirmed_by_read_back(
    store: Store, world: World
) -> None:
    th = make_threads(world, timeout=0.5)
    delivery_id = await queued(store, th)
    world.state.inject(ts.ThreadsFault(hang=1.5, after_commit=True))
    report = await dispatcher(store, th).run_once()
    row = await final(store, delivery_id)
    (post,) = world.state.live_posts()
    assert row.status == S.SENT and row.remote_id == post["id"] and report.uncertain == 0
    assert row.remote_url and post["id"] in row.remote_url  # the permalink
    assert "confirmed" in await kinds(store, delivery_id)
    await th.aclose()


async def test_threads_killed_after_publishing_is_confirmed_after_restart(
    store: Store, world: World
) -> None:
    th = make_threads(world)
    delivery_id = await queued(store, th)
    claimed, ctx = await dead_sender(store, "threads")
    await th.prepare(claimed.post, ctx)
    await store.begin_publish(claimed.id, time.time() + 0.01)
    await th.publish(claimed.post, ctx)  # posted, then killed before recording it
    await asyncio.sleep(0.02)
    await dispatcher(store, th).run_once()
    row = await final(store, delivery_id)
    assert row.status == S.SENT and len(world.state.live_posts()) == 1
    assert (await kinds(store, delivery_id))[:2] == ["confirmed", "uncertain"]
    await th.aclose()


async def test_threads_read_back_refused_goes_to_editors_naming_the_check(
    store: Store, world: World
) -> None:
    th = make_threads(world, timeout=0.5)
    delivery_id = await queued(store, th)
    world.state.inject(
        ts.ThreadsFault(hang=1.5, after_commit=True),
        GraphFault(status=500, code=2, message="Service temporarily unavailable"),
    )
    report = await dispatcher(store, th).run_once()
    row = await final(store, delivery_id)
    assert row.status == S.UNCERTAIN and report.uncertain == 1
    (unresolved,) = await events(store, delivery_id, "unresolved")
    assert "GET /{user-id}/threads" in unresolved
    assert len(world.state.live_posts()) == 1  # never resent
    await th.aclose()
