"""Issue #13 through the Telegram stand-in, as editors meet it: a real python-telegram-bot
console, updates pushed through the stand-in's getUpdates, a real SQLite store.

Hostile button data and commands, two editors pressing at once, a restart between preview and
decision, the approval timeout, /post of a first-run article, /retry of a skipped post, /sent
of an uncertain delivery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.demo.site import make_sample
from bot.service import Service
from bot.store import DeliveryStatus
from standins import telegram as tg
from tests.test_editors import EDITOR, STRANGER, command, editor_messages, editors_config, press
from tests.test_end_to_end import World, wait_for
from tests.test_end_to_end import world as world

OTHER_EDITOR = 1002


def config_for(world: World, timeout: str = "1h", **changes: Any) -> Any:
    raw = editors_config(world)
    raw["editors"]["allowed_user_ids"] = [EDITOR, OTHER_EDITOR]
    raw["rules"][0]["approval_timeout"] = timeout
    raw.update(changes)
    return world.config(**raw)


@contextlib.asynccontextmanager
async def running(config: Any, world: World) -> AsyncIterator[Service]:
    """A daemon until the block ends (a stop, as SIGTERM does)."""
    service = Service(config)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def previews(world: World) -> list[dict[str, Any]]:
    return [m for m in editor_messages(world) if "Approval needed" in m.get("text", "")]


def message(world: World, message_id: int) -> dict[str, Any]:
    return next(m for m in editor_messages(world) if m["message_id"] == message_id)


def texts(world: World) -> list[str]:
    return [m.get("text", "") for m in editor_messages(world)]


def answers(world: World) -> list[dict[str, Any]]:
    return [r["params"] for r in world.tg.requests if r["method"] == "answerCallbackQuery"]


def button(preview: dict[str, Any], action: str) -> str:
    return next(
        b["callback_data"]
        for row in preview["reply_markup"]["inline_keyboard"]
        for b in row
        if b["callback_data"].endswith(f":{action}")
    )


async def first_preview(world: World, slug: str, title: str) -> tuple[dict[str, Any], int]:
    await world.site.publish(make_sample(slug, title))
    await wait_for(lambda: len(previews(world)) == 1, 10, lambda: texts(world))
    preview = dict(previews(world)[0])  # as the editors' clients saw it (buttons and all)
    return preview, int(button(preview, "post").split(":")[1])


async def ready(world: World) -> None:
    """The first poll has recorded the backlog."""
    await wait_for(lambda: world.site.hits["/en/rss.xml"] >= 1, 5)
    await asyncio.sleep(0.3)


async def test_hostile_button_data_and_a_strangers_forged_command_are_one_line_each(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running(config_for(world), world) as service:
        await ready(world)
        chat = world.tg.chats["@editors"]
        somewhere = {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": chat["id"], "type": chat["type"], "title": "Editors"},
            "text": "an old message",
        }
        hostile = [
            "d:99999999999999999999999999999999:post",  # would overflow a 64-bit integer
            "d:9999999999:post",  # ten digits, past PostgreSQL's INTEGER
            "d:1:post\nINFO newsbot.desk forged line\x1b[2K\r",
        ]
        for data in hostile:
            press(world, EDITOR, somewhere, data)
        command(world, STRANGER, "/pause\nWARNING newsbot.desk: forged\x1b[31m\r\x00 tg-en")
        await wait_for(lambda: len(answers(world)) == 3, 10, lambda: answers(world))
        await wait_for(lambda: any("not allowed" in t for t in texts(world)), 10)
        assert [a.get("text") for a in answers(world)] == ["Unknown button"] * 3
        assert await service.store.paused_targets() == {}
    ours = [r for r in caplog.records if r.name.startswith("newsbot")]
    assert not any(r.exc_info for r in ours), "no traceback (OverflowError or other)"
    assert "OverflowError" not in caplog.text
    warnings = [r.getMessage() for r in ours if r.levelno >= logging.WARNING]
    ignored = [w for w in warnings if w.startswith("ignored a button press")]
    refused = [w for w in warnings if w.startswith("refused /")]
    assert len(ignored) == 3 and len(refused) == 1, warnings
    for line in [*ignored, *refused]:
        assert not any(c in line for c in "\n\r\x1b\x00"), repr(line)
    assert "forged line" in ignored[2]  # shown, escaped, on the same line
    assert "\\n" in ignored[2] and str(STRANGER) in refused[0]


async def test_two_editors_pressing_at_once_one_decision_wins(world: World) -> None:
    async with running(config_for(world), world) as service:
        await ready(world)
        preview, delivery_id = await first_preview(world, "race", "For review: race")
        # Both presses reach the console in the same getUpdates answer.
        press(world, EDITOR, preview, button(preview, "post"))
        press(world, OTHER_EDITOR, preview, button(preview, "skip"))
        await wait_for(lambda: len(answers(world)) == 2, 10, lambda: answers(world))
        first, second = answers(world)
        assert first["text"].startswith(f"#{delivery_id} tg-en: posting now, decided by U{EDITOR}")
        assert str(second.get("show_alert")).lower() == "true"  # a pop-up, not a toast
        assert second["text"].startswith(
            f"#{delivery_id} was already decided: U{EDITOR} (id {EDITOR}): post now"
        )
        await wait_for(lambda: len(world.posts()) == 1, 10)
        await asyncio.sleep(1)
        assert len(world.posts()) == 1  # once
        row = await service.store.delivery(delivery_id)
        assert row is not None and row.status == DeliveryStatus.SENT
        assert any(f"was already decided: U{EDITOR}" in t for t in texts(world))
        decisions = await service.store.decisions(10, delivery_id)
        assert [d["message"] for d in decisions] == [
            f"U{EDITOR} (id {EDITOR}): post now #{delivery_id}"
        ]


async def test_a_restart_between_preview_and_decision(world: World) -> None:
    config = config_for(world)
    async with running(config, world):
        await ready(world)
        preview, delivery_id = await first_preview(world, "rs", "For review: restart")
    # A new process (a deploy, a crash and restart) gets the press on the old preview.
    async with running(config, world) as service:
        await asyncio.sleep(0.5)
        press(world, EDITOR, preview, button(preview, "post"))
        await wait_for(lambda: len(world.posts()) == 1, 10, lambda: texts(world))
        await wait_for(
            lambda: message(world, preview["message_id"])["text"].startswith("Posted #"),
            10,
            lambda: message(world, preview["message_id"]),
        )
        record = message(world, preview["message_id"])
        assert record["reply_markup"] is None
        row = await service.store.delivery(delivery_id)
        assert row is not None and row.remote_url and row.remote_url in record["text"]
        await asyncio.sleep(1)
    assert (
        len(previews(world)) == 0 and len(world.posts()) == 1
    )  # the one preview became the record
    assert sum(1 for m in editor_messages(world) if f"#{delivery_id} for" in m["text"]) == 1


async def test_the_approval_timeout_is_announced_and_replaces_the_buttons(world: World) -> None:
    async with running(config_for(world, timeout="2s"), world) as service:
        await ready(world)
        preview, delivery_id = await first_preview(world, "late", "For review: nobody answers")

        def shown() -> dict[str, Any]:
            return message(world, preview["message_id"])

        await wait_for(lambda: shown()["text"].startswith("Timed out: skipped by rule"), 10, shown)
        assert shown()["reply_markup"] is None
        assert "No editor answered within 2s: skip by rule" in shown()["text"]

        def announced() -> list[str]:
            return [t for t in texts(world) if t.startswith(f"#{delivery_id} tg-en: Timed out")]

        # The record (the edited preview) and the announcement are two messages: the second
        # may arrive a moment after the first.
        await wait_for(lambda: len(announced()) >= 1, 10, lambda: texts(world))
        await asyncio.sleep(0.5)
        assert len(announced()) == 1
        # A press on the old buttons (a client that had not refreshed) is told what happened.
        press(world, EDITOR, preview, button(preview, "post"))
        await wait_for(lambda: len(answers(world)) == 1, 10)
        assert answers(world)[0]["text"].startswith(
            f"#{delivery_id} was already decided: no editor answered within 2s"
        )
        await asyncio.sleep(1)
        row = await service.store.delivery(delivery_id)
        assert row is not None and row.status == DeliveryStatus.SKIPPED
        assert world.posts() == []
        # The skipped post: /retry refuses and names /post; /post brings it back to approval.
        command(world, EDITOR, f"/retry {delivery_id}")
        await wait_for(
            lambda: any("A skipped post comes back only with /post URL" in t for t in texts(world)),
            10,
            lambda: texts(world),
        )
        await asyncio.sleep(0.5)
        assert world.posts() == []


async def test_post_url_of_a_first_run_article_and_through_approval(world: World) -> None:
    plain = await world.site.publish(make_sample("old-plain", "Recorded on the first run"))
    review = await world.site.publish(make_sample("old-review", "For review: old draft"))
    async with running(config_for(world), world) as service:
        await ready(world)
        await asyncio.sleep(0.5)
        assert world.posts() == [] and previews(world) == []  # the backlog is recorded
        world.site.on_publish.clear()
        command(world, EDITOR, f"/post {world.site_url}{plain.path}")
        await wait_for(lambda: len(world.posts()) == 1, 10, lambda: texts(world))
        assert world.posts()[0]["caption"].startswith("Recorded on the first run")
        command(world, EDITOR, f"/post {world.site_url}{review.path}")
        await wait_for(lambda: any("waits for approval" in t for t in texts(world)), 10)
        await wait_for(lambda: len(previews(world)) == 1, 10, lambda: texts(world))
        assert len(world.posts()) == 1  # its rule asks for approval: not posted yet
        preview = previews(world)[0]
        press(world, EDITOR, preview, button(preview, "post"))
        await wait_for(lambda: len(world.posts()) == 2, 10, lambda: texts(world))
        assert world.posts()[1]["caption"].startswith("For review: old draft")
        sent = await service.store.recent_deliveries(5, ["sent"])
        assert len(sent) == 2


async def test_sent_marks_an_uncertain_delivery_posted_and_it_is_never_resent(
    world: World,
) -> None:
    async with running(config_for(world), world) as service:
        await ready(world)
        # The send hangs past the target's 3 s timeout: did it go out? Nobody knows.
        world.tg.inject(tg.Fault(hang=4, methods=("sendPhoto", "sendMessage")))
        await world.site.publish(make_sample("unsure", "Maybe posted"))

        async def uncertain() -> list[Any]:
            return await service.store.recent_deliveries(5, ["uncertain"])

        deadline = time.monotonic() + 15
        while not await uncertain():
            assert time.monotonic() < deadline, texts(world)
            await asyncio.sleep(0.2)
        (row,) = await uncertain()
        command(world, EDITOR, f"/sent {row.id} https://t.me/chan_en/77")
        await wait_for(
            lambda: any("marked sent" in t for t in texts(world)), 10, lambda: texts(world)
        )
        done = await service.store.delivery(row.id)
        assert done is not None and done.status == DeliveryStatus.SENT
        assert done.remote_url == "https://t.me/chan_en/77"
        await asyncio.sleep(1.5)
        assert world.posts() == []  # never sent again by the bot
        command(world, EDITOR, f"/sent {row.id}")
        await wait_for(
            lambda: any(f"#{row.id} is sent: not changed" in t for t in texts(world)), 10
        )
