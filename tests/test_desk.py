"""The editors' desk on a real store: explicit ok flags, one clear line for a refused move, and
the previews a console must show (its only way to the outbox)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.desk import Desk, Editor, parse_id, parse_when
from bot.models import PostLength
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
    assert first.ok and woken
    assert first.text == f"#{delivery_id} t1: posting now, decided by user 5 (id 5)."
    # The preview asks once: a second button press is told what was decided, by whom.
    again = await desk.decide(EDITOR, delivery_id, "skip")
    assert not again.ok
    assert again.text.startswith(
        f"#{delivery_id} was already decided: user 5 (id 5): post now #{delivery_id} at "
    )
    assert f"/skip {delivery_id}" in again.text  # how to change it while it is not sent
    # Pending (not yet sent) a post can still be skipped by command; once sent, nothing.
    skipped = await desk.command(EDITOR, f"/skip {delivery_id}")
    assert skipped is not None and skipped.ok and "skipped" in skipped.text
    row = await store.delivery(delivery_id)
    assert row is not None and row.status == DeliveryStatus.SKIPPED and row.priority == 1
    third = await desk.decide(EDITOR, delivery_id, "post")
    assert not third.ok
    assert third.text.startswith(f"#{delivery_id} was already decided: user 5 (id 5): skip")
    assert "/postnow" not in third.text  # skipped: only /post URL brings it back
    stranger = await desk.decide(EDITOR + 1, delivery_id, "skip")
    assert not stranger.ok and stranger.text == "You are not allowed to do that."


async def test_two_editors_deciding_at_once_one_wins_the_other_is_told(store: Store) -> None:
    delivery_id = await delivery_in(store, DeliveryStatus.AWAITING, 1)
    desk, _ = desk_for(store, "t1")
    desk.allowed_users = {EDITOR, EDITOR + 1}
    alice, bob = Editor(EDITOR, "alice"), Editor(EDITOR + 1, "bob")
    answers = await asyncio.gather(
        desk.decide(alice, delivery_id, "post"), desk.decide(bob, delivery_id, "skip")
    )
    won = [a for a in answers if a.ok]
    lost = [a for a in answers if not a.ok]
    assert len(won) == 1 and len(lost) == 1
    row = await store.delivery(delivery_id)
    assert row is not None
    winner = "alice" if row.status == DeliveryStatus.PENDING else "bob"
    assert row.status in (DeliveryStatus.PENDING, DeliveryStatus.SKIPPED)
    assert f"already decided: {winner} (id " in lost[0].text
    assert len(await store.decisions(10, delivery_id)) == 1  # only the winner's is recorded


def test_the_record_reads_as_what_happened_in_the_newsrooms_zone() -> None:
    from bot.models import RenderedPost
    from bot.store import Delivery

    baku = ZoneInfo("Asia/Baku")
    desk = Desk(None, ["t1"], {}, set(), nothing, nothing, lambda: None, tz=baku)  # type: ignore[arg-type]
    at = datetime(2026, 1, 5, 14, 30, tzinfo=baku).timestamp()
    post = RenderedPost(target="t1", platform="telegram", article_url="https://s/a", text="x")
    base = Delivery(
        id=7,
        article_id=1,
        target="t1",
        status=DeliveryStatus.PENDING,
        post=post,
        attempts=0,
        next_attempt_at=at,
        priority=0,
        rule="review",
        sort_key=at,
        remote_id=None,
        remote_url=None,
        last_error=None,
        created_at=at,
        sent_at=None,
        updated_at=at,
    )
    decided = {"kind": "decision", "message": "alice (id 5): delayed 1h #7", "at": at - 3600}
    assert desk.record_line(base, decided, now=at - 3600) == (
        "Scheduled for 2026-01-05 14:30 Asia/Baku\n"
        "Delayed 1h: decided by alice (id 5), 2026-01-05 13:30 Asia/Baku"
    )
    sent = replace(base, status=DeliveryStatus.SENT, sent_at=at, remote_url="https://t.me/c/9")
    assert desk.record_line(sent, decided).splitlines() == [
        "Posted",
        "Delayed 1h: decided by alice (id 5), 2026-01-05 13:30 Asia/Baku",
        "Published 2026-01-05 14:30 Asia/Baku: https://t.me/c/9",
    ]
    timeout = {"kind": "approval-timeout", "message": "no editor answered within 2s: skip by rule"}
    skipped = replace(base, status=DeliveryStatus.SKIPPED)
    assert desk.record_line(skipped, {**timeout, "at": at}).splitlines() == [
        "Timed out: skipped by rule",
        "No editor answered within 2s: skip by rule, 2026-01-05 14:30 Asia/Baku",
    ]


async def test_history_pages_beyond_a_hundred(store: Store) -> None:
    desk, _ = desk_for(store, "t1")
    for n in range(130):
        await store.record_decision(None, None, "user 5 (id 5)", f"decision {n}")
    first = await desk.command(EDITOR, "/history 200")
    assert first is not None and first.ok
    lines = first.text.splitlines()
    assert lines[0].startswith("(at most 100 a page")
    assert lines[1].endswith("decision 129") and lines[100].endswith("decision 30")
    assert lines[-1] == "(older: /history 100 2)"
    second = await desk.command(EDITOR, "/history 100 2")
    assert second is not None
    assert [line.rsplit(" ", 1)[-1] for line in second.text.splitlines()] == [
        str(n) for n in range(29, -1, -1)
    ]
    page = await desk.command(EDITOR, "/history 20 3")
    assert page is not None and page.text.splitlines()[0].endswith("decision 89")
    assert (await desk.command(EDITOR, "/history 20 9")).text == "No decisions on page 9."  # type: ignore[union-attr]
    bad = await desk.command(EDITOR, "/history 20 two")
    assert bad is not None and not bad.ok and "/history 20 2" in bad.text


async def test_commands_say_whether_they_worked(store: Store) -> None:
    sent = await delivery_in(store, DeliveryStatus.SENT, 1)
    failed = await delivery_in(store, DeliveryStatus.FAILED, 2)
    desk, _ = desk_for(store, "t1", "t2")
    refused = await desk.command(EDITOR, f"/skip {sent}")
    assert refused is not None and not refused.ok
    assert refused.text == f"#{sent} is sent: not changed."
    retried = await desk.command(EDITOR, f"/retry {failed}")
    assert retried is not None and retried.ok
    assert retried.text == f"#{failed} t2: queued again, decided by user 5 (id 5)."
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


async def test_a_delayed_post_never_holds_up_the_due_ones_and_can_be_brought_forward(
    store: Store,
) -> None:
    from bot.models import Article, RenderedPost
    from bot.store import NewDelivery

    ids = []
    for n in range(3):
        article = Article(url=f"https://s.example/hol{n}", title=f"H{n}")
        post = RenderedPost(target="t", platform="scripted", article_url=article.url, text="x")
        stored = await store.add_article_with_deliveries(
            article, [f"url:{article.url}"], [NewDelivery(post, sort_key=float(n))]
        )
        assert stored is not None
        ids.extend(stored[1])
    desk, _ = desk_for(store, "t")
    delayed = await desk.command(EDITOR, f"/delay {ids[0]}")
    assert delayed is not None
    assert delayed.ok and "delayed 1h" in delayed.text
    now = time.time()
    first = await store.claim_next("t", now, 60, "test")
    assert first is not None and first.id == ids[1]  # the next due one, in publication order
    back = await desk.command(EDITOR, f"/postnow {ids[0]}")
    assert back is not None and back.ok
    second = await store.claim_next("t", time.time(), 60, "test")
    assert second is not None and second.id == ids[0]  # brought forward, ahead of #3


async def test_retry_sent_schedule_and_history(store: Store) -> None:
    skipped = await delivery_in(store, DeliveryStatus.SKIPPED, 1)
    uncertain = await delivery_in(store, DeliveryStatus.UNCERTAIN, 2)
    pending = await delivery_in(store, DeliveryStatus.PENDING, 3)
    desk, _ = desk_for(store, "t1", "t2", "t3")
    alice = Editor("web:alice", "alice")
    refused = await desk.retry(alice, skipped)
    assert not refused.ok and "only with /post URL" in refused.text
    marked = await desk.command(EDITOR, f"/sent {uncertain} https://t.me/chan/7")
    assert marked is not None and marked.ok
    row = await store.delivery(uncertain)
    assert row is not None and row.status == DeliveryStatus.SENT
    assert row.remote_url == "https://t.me/chan/7"
    again = await desk.mark_sent(alice, pending)
    assert not again.ok and again.text == f"#{pending} is pending: not changed."
    bad = await desk.command(EDITOR, f"/schedule {pending} 25:99")
    assert bad is not None and not bad.ok
    when = await desk.command(EDITOR, f"/schedule {pending} 2030-01-02 09:30")
    assert when is not None and when.ok
    row = await store.delivery(pending)
    assert row is not None and row.next_attempt_at == parse_when(
        "2030-01-02 09:30", UTC, time.time()
    )
    history = await desk.command(EDITOR, "/history 5")
    assert history is not None
    assert f"#{pending} user 5 (id 5): scheduled for 2030-01-02 09:30 UTC" in history.text
    assert f"#{uncertain} user 5 (id 5): mark sent" in history.text
    found = await desk.command(EDITOR, "/find s.example/3")
    assert found is not None and f"#{pending} " in found.text


def test_schedule_times_are_the_newsrooms() -> None:
    baku = ZoneInfo("Asia/Baku")
    now = datetime(2026, 1, 5, 10, 0, tzinfo=baku).timestamp()
    assert parse_when("18:30", baku, now) == datetime(2026, 1, 5, 18, 30, tzinfo=baku).timestamp()
    assert parse_when("09:00", baku, now) == datetime(2026, 1, 6, 9, 0, tzinfo=baku).timestamp()
    assert isinstance(parse_when("tomorrow", baku, now), str)


async def test_hostile_input_gets_one_line(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    desk, _ = desk_for(store, "t1")
    huge = await desk.command(EDITOR, "/skip 99999999999999999999999999")
    assert huge is not None and not huge.ok and huge.text.startswith("Give a delivery number")
    assert parse_id("9" * 40) is None and parse_id("#12") == 12
    not_found = await desk.decide(EDITOR, 2**62, "post")
    assert not not_found.ok
    caplog.set_level(logging.WARNING)
    stranger = await desk.command(EDITOR + 1, "/pause\nINFO forged line")
    assert stranger is not None and not stranger.ok
    lines = [r.getMessage() for r in caplog.records if r.name == "newsbot.desk"]
    assert lines and all("\n" not in line for line in lines)


async def test_an_edit_over_the_platform_limit_is_refused_naming_its_length(
    store: Store,
) -> None:
    awaiting = await delivery_in(store, DeliveryStatus.AWAITING, 1)
    desk, _ = desk_for(store, "t1")
    desk.measure = {"t1": lambda post: PostLength(len(post.text), 40)}
    long = await desk.edit_text(EDITOR, awaiting, "x" * 50)
    assert not long.ok and "too long for t1" in long.text and "/40 characters" in long.text
