"""Editors' control through the Telegram stand-in: approval previews and buttons, commands,
and who may use them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.demo.site import make_sample
from bot.service import Service
from bot.store import DeliveryStatus
from tests.test_end_to_end import TOKEN, World, wait_for
from tests.test_end_to_end import world as world

EDITOR, STRANGER = 1001, 6666


def editors_config(world: World) -> dict[str, Any]:
    world.tg.add_chat("@editors", "supergroup")
    return {
        "editors": {
            "platform": "telegram",
            "api_base": world.tg_url,
            "token": {"env": "TG_TOKEN"},
            "chat_id": "@editors",
            "allowed_user_ids": [EDITOR],
            "poll_timeout": 1,
        },
        "rules": [
            {
                "name": "review",
                "match": {"keywords": ["review"]},
                "targets": ["tg-en"],
                "approval": True,
                "approval_timeout": "1h",
                "stop": True,
            },
            *(
                {"name": lang, "match": {"languages": [lang]}, "targets": [f"tg-{lang}"]}
                for lang in ("en", "ru", "az")
            ),
        ],
    }


def user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": f"U{user_id}"}


def command(world: World, user_id: int, text: str) -> None:
    chat = world.tg.chats["@editors"]
    world.tg.push_update(
        {
            "message": {
                "message_id": int(time.time() * 1000) % 10**9,
                "date": int(time.time()),
                "chat": {"id": chat["id"], "type": chat["type"], "title": "Editors"},
                "from": user(user_id),
                "text": text,
                "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
                if text.startswith("/")
                else [],
            }
        }
    )


def press(world: World, user_id: int, preview: dict[str, Any], data: str) -> None:
    world.tg.push_update(
        {
            "callback_query": {
                "id": f"q{time.time_ns()}",
                "from": user(user_id),
                "chat_instance": "editors",
                "data": data,
                "message": {
                    "message_id": preview["message_id"],
                    "date": preview["date"],
                    "chat": preview["chat"],
                    "text": preview["text"],
                },
            }
        }
    )


@pytest.fixture
async def daemon(world: World) -> AsyncIterator[tuple[World, Service]]:
    service = Service(world.config(**editors_config(world)))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await wait_for(lambda: world.site.hits["/en/rss.xml"] >= 1, 5)
    await asyncio.sleep(0.3)
    try:
        yield world, service
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def editor_messages(world: World) -> list[dict[str, Any]]:
    return world.tg.in_chat("@editors")


async def test_approval_preview_stranger_refused_editor_posts(daemon) -> None:
    world, service = daemon
    await world.site.publish(make_sample("r1", "For review: budget draft"))
    await wait_for(
        lambda: any("Approval needed" in m.get("text", "") for m in editor_messages(world)), 10
    )
    preview = next(m for m in editor_messages(world) if "Approval needed" in m.get("text", ""))
    buttons = [
        b["callback_data"] for row in preview["reply_markup"]["inline_keyboard"] for b in row
    ]
    assert [b.split(":")[2] for b in buttons] == ["post", "skip", "edit", "delay1h"]
    delivery_id = int(buttons[0].split(":")[1])
    assert world.posts() == []

    press(world, STRANGER, preview, buttons[0])
    await asyncio.sleep(1.5)
    row = await service.store.delivery(delivery_id)
    assert row is not None and row.status == DeliveryStatus.AWAITING
    assert world.posts() == []

    press(world, EDITOR, preview, buttons[0])
    await wait_for(lambda: len(world.posts()) == 1, 10)
    assert world.posts()[0]["caption"].startswith("For review: budget draft")
    events = await service.store.recent_events(20)
    assert any(
        e["kind"] == "decision"
        and e["message"] == f"U{EDITOR} (id {EDITOR}): post now #{delivery_id}"
        for e in events
    )

    # The preview is the record: buttons gone, what happened, who, and the published link.
    def record() -> str:
        message = next(
            m for m in editor_messages(world) if m["message_id"] == preview["message_id"]
        )
        return "" if message.get("reply_markup") else message["text"]

    await wait_for(lambda: record().startswith(f"Posted #{delivery_id} for tg-en"), 10, record)
    (sent,) = await service.store.recent_deliveries(1, ["sent"])
    assert "Approval needed" not in record()
    assert f"\nPost now: decided by U{EDITOR} (id {EDITOR}), " in record()
    assert f"\nPublished {time.strftime('%Y-%m-%d')}" in record()  # the outlet's zone: UTC
    assert sent.remote_url and sent.remote_url in record()
    assert "For review: budget draft" in record()


async def test_edit_text_then_skip(daemon) -> None:
    world, service = daemon
    await world.site.publish(make_sample("r2", "Please review this"))
    await wait_for(
        lambda: any("Approval needed" in m.get("text", "") for m in editor_messages(world)), 10
    )
    preview = next(m for m in editor_messages(world) if "Approval needed" in m.get("text", ""))
    data = preview["reply_markup"]["inline_keyboard"][2][0]["callback_data"]
    delivery_id = int(data.split(":")[1])
    press(world, EDITOR, preview, data)
    await wait_for(
        lambda: any("Send the new text" in m.get("text", "") for m in editor_messages(world)), 10
    )
    command(world, EDITOR, "Corrected headline by the editor")
    await wait_for(
        lambda: any(m.get("text", "").startswith("Text updated") for m in editor_messages(world)),
        5,
        lambda: [m.get("text") for m in editor_messages(world)],
    )
    row = await service.store.delivery(delivery_id)
    assert row is not None and row.post.text.startswith("Corrected headline by the editor")
    assert row.post.article_url in row.post.text  # the link block was kept
    press(world, EDITOR, preview, data.replace(":edit", ":skip"))
    await wait_for(
        lambda: any(
            f"#{delivery_id} tg-en: skipped, decided by U{EDITOR}" in m.get("text", "")
            for m in editor_messages(world)
        ),
        5,
    )
    row = await service.store.delivery(delivery_id)
    assert row is not None and row.status == DeliveryStatus.SKIPPED
    assert world.posts() == []


async def test_commands_for_editors_only(daemon) -> None:
    world, service = daemon
    command(world, STRANGER, "/pause")
    await wait_for(
        lambda: any("not allowed" in m.get("text", "") for m in editor_messages(world)), 10
    )
    assert await service.store.paused_targets() == {}

    command(world, EDITOR, "/pause tg-en")
    await wait_for(
        lambda: any("Paused: tg-en" in m.get("text", "") for m in editor_messages(world)), 10
    )
    assert "tg-en" in await service.store.paused_targets()
    await world.site.publish(make_sample("held", "Held while paused"))
    await asyncio.sleep(1.5)
    assert world.posts() == []

    command(world, EDITOR, "/queue")
    await wait_for(
        lambda: any(
            "Held" in m.get("text", "") or "held" in m.get("text", "")
            for m in editor_messages(world)
        ),
        5,
    )
    command(world, EDITOR, "/resume tg-en")
    await wait_for(lambda: len(world.posts()) == 1, 10)

    command(world, EDITOR, "/status")
    await wait_for(
        lambda: any(m.get("text", "").startswith("tg-en: ") for m in editor_messages(world)), 10
    )

    article = await world.site.publish(make_sample("by-url", "Posted by URL", lang="ru"))
    world.site.on_publish.clear()
    command(world, EDITOR, f"/preview {world.site_url}{article.path}")
    await wait_for(
        lambda: any("— tg-ru (" in m.get("text", "") for m in editor_messages(world)), 10
    )
    shown = next(m for m in editor_messages(world) if "— tg-ru (" in m.get("text", ""))
    # Formatted as Telegram shows it (no raw tags), with the measured length and limit.
    assert "<b>" not in shown["text"] and "<a href" not in shown["text"]
    assert "/4096" in shown["text"] or "/1024" in shown["text"]
    assert any(e["type"] == "bold" for e in shown.get("entities", []))
    command(world, EDITOR, f"/post {world.site_url}{article.path}")
    await wait_for(
        lambda: len(world.posts("@chan_ru")) == 1,
        10,
        lambda: ([m.get("text") for m in editor_messages(world)][-3:], world.tg.requests[-3:]),
    )

    (sent,) = await service.store.recent_deliveries(1, ["sent"])
    command(world, EDITOR, f"/skip {sent.id}")
    await wait_for(
        lambda: any(
            f"#{sent.id} is sent: not changed" in m.get("text", "") for m in editor_messages(world)
        ),
        5,
    )
    assert TOKEN not in str(editor_messages(world))


async def test_a_restart_does_not_send_the_same_preview_again(world: World) -> None:
    config = world.config(**editors_config(world))

    async def run_for_a_while(seconds: float) -> None:
        service = Service(config)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.wait_for(task, 15)

    def previews() -> list[dict[str, Any]]:
        return [m for m in editor_messages(world) if "Approval needed" in m.get("text", "")]

    # First run: until every source's backlog is recorded (not a fixed time: a busy machine
    # may take longer to start, and r3 must arrive after the backlog, as a new article).
    service = Service(config)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        deadline = time.monotonic() + 30
        names = [source.name for source in config.sources]

        async def recorded() -> bool:
            try:
                states = [await service.store.source_state(n) for n in names]
            except Exception:  # the database is not made yet
                return False
            return all(state.initialized for state in states)

        while not await recorded():
            assert time.monotonic() < deadline, "the first poll did not record the backlog"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    await world.site.publish(make_sample("r3", "For review: harbour contract"))
    service = Service(config)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await wait_for(lambda: len(previews()) == 1, 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    await run_for_a_while(2.5)  # a new process (or a new leader) with the preview pending
    assert len(previews()) == 1
