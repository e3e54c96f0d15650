"""The outbox state machine: the transition table, and the Store's named moves that follow it
(every legal move works on a real database, every illegal one is refused and changes nothing)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.models import Article, RenderedPost
from bot.store import (
    TRANSITIONS,
    Claim,
    DeliveryStatus,
    IllegalTransition,
    Move,
    NewDelivery,
    Store,
    allowed_next,
)
from bot.store.types import move_sources, move_target

S = DeliveryStatus

# Each named Store operation, called for one delivery.
OPERATIONS: dict[Move, Callable[[Store, int], Awaitable[Any]]] = {
    Move.MARK_SENT: lambda store, i: store.mark_sent(i, "remote-1", None),
    Move.RETRY_LATER: lambda store, i: store.retry_later(i, time.time(), "503"),
    Move.DROP: lambda store, i: store.drop(i, "too old"),
    Move.FAIL: lambda store, i: store.fail(i, "rejected"),
    Move.FLAG_UNCERTAIN: lambda store, i: store.flag_uncertain(i, "timeout", "report"),
    Move.APPROVE: lambda store, i: store.approve(i, "approved by 1"),
    Move.DECLINE: lambda store, i: store.decline(i, "skipped by 1"),
    Move.SKIP: lambda store, i: store.skip(i, "skipped by an editor"),
    Move.REQUEUE: lambda store, i: store.requeue(i, "retried by an editor"),
    Move.RESCHEDULE: lambda store, i: store.reschedule(i, time.time()),
    Move.REVIVE: lambda store, i: store.revive(i, "posted by an editor", awaiting=False),
    Move.RESUBMIT: lambda store, i: store.revive(i, "posted by an editor", awaiting=True),
    Move.PUBLISH: lambda store, i: store.begin_publish(i, time.time() + 60),
    Move.CONFIRM_SENT: lambda store, i: store.confirm_sent(i, "remote-2", None, "read back"),
    Move.CONFIRM_ABSENT: lambda store, i: store.confirm_absent(i, "read back: not there"),
    Move.EDITOR_MARKS_SENT: lambda store, i: store.editor_marks_sent(i, None, "by an editor"),
}


def test_the_table_names_every_status_and_each_move_has_one_outcome() -> None:
    assert set(TRANSITIONS) == set(DeliveryStatus)
    for move in Move:
        assert move_sources(move), f"{move} starts from no status"
        move_target(move)  # raises if a move led to different statuses
    # The promises the rest of the code relies on:
    assert allowed_next(S.SENT) == set()
    # Skipped and backlog posts come back only through /post URL (revive/resubmit).
    assert allowed_next(S.BACKLOG) == allowed_next(S.SKIPPED) == {S.PENDING, S.AWAITING}
    assert move_sources(Move.REQUEUE) == [S.UNCERTAIN, S.FAILED]  # /retry
    assert S.SENDING not in move_sources(Move.SKIP)  # nobody skips a post in flight
    assert move_sources(Move.DECLINE) == [S.AWAITING]  # an approval answer never hits a
    assert move_sources(Move.APPROVE) == [S.AWAITING]  # post another editor already decided
    assert move_sources(Move.CLAIM) == [S.PENDING]
    # An uncertain post is resent only by an editor's requeue or after a read-back of the
    # platform said it is certainly not there.
    back = [m for m, to in TRANSITIONS[S.UNCERTAIN].items() if to == S.PENDING]
    assert back == [Move.REQUEUE, Move.CONFIRM_ABSENT]
    # A lapsed lease on a preparing row is a plain retry (nothing was published); a lapsed
    # `sending` row is uncertain, or resumed only where the platform honours the key.
    assert TRANSITIONS[S.PREPARING][Move.RESUME] == S.PENDING
    assert Move.EXPIRE_LEASE not in TRANSITIONS[S.PREPARING]
    assert move_sources(Move.PUBLISH) == [S.PREPARING]


@given(st.sampled_from(list(DeliveryStatus)), st.sampled_from(list(Move)))
def test_illegal_transition_names_the_delivery_its_state_and_the_move(
    status: DeliveryStatus, move: Move
) -> None:
    exc = IllegalTransition(7, status, move)
    assert str(exc) == f"delivery 7 is {status}; cannot {move.phrase}"
    assert (exc.delivery_id, exc.current, exc.wanted) == (7, status, move_target(move))
    assert "does not exist" in str(IllegalTransition(7, None, move))
    assert str(IllegalTransition(7, status, Move.MARK_SENT)).endswith("cannot mark it sent")


async def delivery_in(store: Store, status: DeliveryStatus, n: int) -> int:
    """A delivery in `status`, reached the way production reaches it."""
    article = Article(url=f"https://s.example/{n}", title=f"T{n}")
    post = RenderedPost(
        target=f"t{n}", platform="scripted", article_url=article.url, text=article.url
    )
    start = S.AWAITING if status == S.AWAITING else S.PENDING
    if status == S.BACKLOG:
        start = S.BACKLOG
    stored = await store.add_article_with_deliveries(
        article, [f"url:{article.url}"], [NewDelivery(post, status=start, sort_key=0)]
    )
    assert stored is not None
    (delivery_id,) = stored[1]
    if status in (S.PENDING, S.AWAITING, S.BACKLOG):
        return delivery_id
    claimed = await store.claim_next(f"t{n}", time.time(), 60, "test")
    assert claimed is not None and claimed.id == delivery_id
    if status == S.PREPARING:
        return delivery_id
    await store.begin_publish(delivery_id, time.time() + 60)
    steps = {
        S.SENT: OPERATIONS[Move.MARK_SENT],
        S.FAILED: OPERATIONS[Move.FAIL],
        S.UNCERTAIN: OPERATIONS[Move.FLAG_UNCERTAIN],
        S.SKIPPED: OPERATIONS[Move.DROP],
    }
    if status in steps:
        await steps[status](store, delivery_id)
    return delivery_id


async def test_every_move_from_every_status_follows_the_table(store: Store) -> None:
    n = 0
    for status in DeliveryStatus:
        for move, operation in OPERATIONS.items():
            n += 1
            delivery_id = await delivery_in(store, status, n)
            before = await store.delivery(delivery_id)
            assert before is not None and before.status == status
            if move in TRANSITIONS[status]:
                await operation(store, delivery_id)
                after = await store.delivery(delivery_id)
                assert after is not None and after.status == TRANSITIONS[status][move]
            else:
                with pytest.raises(IllegalTransition) as refused:
                    await operation(store, delivery_id)
                assert (refused.value.current, refused.value.wanted) == (status, move_target(move))
                wanted = f"delivery {delivery_id} is {status}; cannot {move.phrase}"
                assert str(refused.value) == wanted
                assert await store.delivery(delivery_id) == before  # nothing changed


async def test_claim_and_expire_lease_follow_the_table(store: Store) -> None:
    awaiting = await delivery_in(store, S.AWAITING, 1)
    assert await store.claim_next("t1", time.time(), 60, "test") is None  # not claimable
    pending = await delivery_in(store, S.PENDING, 2)
    claimed = await store.claim_next("t2", time.time(), 0.0, "test")
    assert claimed is not None and claimed.id == pending and claimed.status == S.PREPARING
    # Its sender died while preparing: nothing was published, so it is simply due again.
    assert await store.expire_leases(time.time() + 1) == []
    row = await store.delivery(pending)
    assert row is not None and row.status == S.PENDING and row.last_error
    claimed = await store.claim_next("t2", time.time() + 2, 0.0, "test")
    assert claimed is not None and claimed.id == pending
    await store.begin_publish(pending, time.time())
    # It was publishing on a platform that honours the key: resumed, not flagged.
    assert await store.expire_leases(time.time() + 1, resend_safe=["t2"]) == []
    assert [e["kind"] for e in await store.recent_events(2)] == ["resumed", "resumed"]
    row = await store.delivery(pending)
    assert row is not None and row.status == S.PENDING
    claimed = await store.claim_next("t2", time.time() + 2, 0.0, "test")
    assert claimed is not None
    await store.begin_publish(pending, time.time())
    (flagged,) = await store.expire_leases(time.time() + 3)
    assert flagged.id == pending
    row = await store.delivery(pending)
    assert row is not None and row.status == S.UNCERTAIN
    assert await store.expire_leases(time.time() + 4) == []  # once only
    row = await store.delivery(awaiting)
    assert row is not None and row.status == S.AWAITING


async def test_a_move_on_a_missing_delivery_is_refused(store: Store) -> None:
    with pytest.raises(IllegalTransition, match="delivery 999 does not exist; cannot skip it"):
        await store.skip(999, "no such")


async def test_claim_due_tells_whether_another_delivery_was_due_behind(store: Store) -> None:
    assert await store.claim_due("t7", time.time(), 60, "test") == Claim(None, more_due=False)
    first = await delivery_in(store, S.PENDING, 7)
    later = await store.add_article_with_deliveries(
        Article(url="https://s.example/7b", title="T7b"),
        ["url:https://s.example/7b"],
        [
            NewDelivery(
                RenderedPost(
                    target="t7", platform="scripted", article_url="https://s.example/7b", text="b"
                ),
                sort_key=1,
            )
        ],
    )
    assert later is not None
    claim = await store.claim_due("t7", time.time(), 60, "test")
    assert claim.delivery is not None and claim.delivery.id == first and claim.more_due
    claim = await store.claim_due("t7", time.time(), 60, "test")
    assert claim.delivery is not None and claim.delivery.id == later[1][0]
    assert not claim.more_due  # it was the last one due
    # One not yet due (backing off) does not count as due behind.
    await store.retry_later(first, time.time() + 3600, "503")
    assert await store.claim_due("t7", time.time(), 60, "test") == Claim(None, more_due=False)


async def test_a_claim_returns_the_row_as_claimed_and_moves_reuse_their_statements(
    store: Store,
) -> None:
    """The claim's UPDATE ... RETURNING gives the row as it now stands (one more attempt, the
    new status and time), a retry that gives the attempt back takes it off, and each move's
    statement is built once and reused with new parameters."""
    from bot.store.outbox import _move_statement

    first = await delivery_in(store, S.PENDING, 8)
    now = time.time()
    claimed = await store.claim_next("t8", now, 60, "replica-a")
    stored = await store.delivery(first)
    assert claimed is not None and stored is not None
    assert claimed == stored  # what the claim returned is what the row holds
    assert (claimed.status, claimed.attempts, claimed.updated_at) == (S.PREPARING, 1, now)
    await store.retry_later(first, now - 1, "rate limited", count_attempt=False)
    stored = await store.delivery(first)
    assert stored is not None and (stored.status, stored.attempts) == (S.PENDING, 0)
    built = _move_statement.cache_info().currsize
    again = await store.claim_next("t8", time.time(), 60, "replica-b")
    assert again is not None and (again.status, again.attempts) == (S.PREPARING, 1)
    await store.retry_later(first, time.time() - 1, "rate limited", count_attempt=False)
    assert _move_statement.cache_info().currsize == built  # the same two statements again
