"""The editors' desk on a real store: explicit ok flags, one clear line for a refused move, and
the previews a console must show (its only way to the outbox)."""

from __future__ import annotations

from bot.desk import Desk
from bot.store import DeliveryStatus, Store
from tests.test_outbox_states import delivery_in

EDITOR = 5


async def nothing(_: str) -> str:
    return ""


def desk_for(store: Store, *targets: str) -> tuple[Desk, list[int]]:
    woken: list[int] = []
    desk = Desk(
        store,
        list(targets),
        dict.fromkeys(targets, True),
        {EDITOR},
        nothing,
        nothing,
        lambda: woken.append(1),
    )
    return desk, woken


async def test_a_second_decision_is_refused_naming_the_state_once(store: Store) -> None:
    delivery_id = await delivery_in(store, DeliveryStatus.AWAITING, 1)
    desk, woken = desk_for(store, "t1")
    first = await desk.decide(EDITOR, delivery_id, "post")
    assert first.ok and first.text == "Posting now." and woken
    again = await desk.decide(EDITOR, delivery_id, "skip")
    assert not again.ok and again.text == f"#{delivery_id} is pending: not changed."
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == DeliveryStatus.PENDING and row.priority == 1
    stranger = await desk.decide(EDITOR + 1, delivery_id, "skip")
    assert not stranger.ok


async def test_commands_say_whether_they_worked(store: Store) -> None:
    sent = await delivery_in(store, DeliveryStatus.SENT, 1)
    failed = await delivery_in(store, DeliveryStatus.FAILED, 2)
    desk, _ = desk_for(store, "t1", "t2")
    refused = await desk.command(EDITOR, f"/skip {sent}")
    assert refused is not None and not refused.ok
    assert refused.text == f"#{sent} is sent: not changed."
    retried = await desk.command(EDITOR, f"/retry {failed}")
    assert retried is not None and retried.ok and retried.text == f"#{failed} queued again."
    missing = await desk.command(EDITOR, "/skip 999")
    assert missing is not None and not missing.ok
    unknown = await desk.command(EDITOR, "/pause nowhere")
    assert unknown is not None and not unknown.ok


async def test_previews_due_until_marked_previewed(store: Store) -> None:
    awaiting = await delivery_in(store, DeliveryStatus.AWAITING, 1)
    await delivery_in(store, DeliveryStatus.PENDING, 2)
    desk, _ = desk_for(store, "t1", "t2")
    assert [d.id for d in await desk.previews_due()] == [awaiting]
    await desk.mark_previewed(awaiting, "t1", "the editors' chat")
    assert await desk.previews_due() == []
    assert (await desk.awaiting_delivery(awaiting)) is not None
    await desk.decide(EDITOR, awaiting, "skip")
    assert await desk.awaiting_delivery(awaiting) is None
