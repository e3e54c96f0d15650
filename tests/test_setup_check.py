"""The online setup check (`check-config --online`, the daemon's start-up self-test) against
the stand-ins, which answer getMe/getChat/getChatMember and refuse as the platforms do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.base import SetupCheck, SetupStatus
from bot.cli import main
from bot.config import validate
from bot.httpserver import serve
from bot.secrets import SecretRef
from bot.selfcheck import check_setup, startup_message
from bot.service import Service, build_adapters
from standins import graph as graph_standin
from standins import telegram as tg
from tests.test_end_to_end import World, wait_for
from tests.test_end_to_end import world as world

TOKEN = "123456:GOODtokenGOODtoken"
WRONG = "654321:WRONGtokenWRONG"


def _config(tg_url: str, targets: list[dict[str, Any]], editors: dict | None = None) -> dict:
    data: dict[str, Any] = {
        "outlet": {"name": "Sample Times", "url": "https://sample.example"},
        "database": "sqlite:///state.db",
        "sources": [{"name": "en", "url": "https://sample.example/rss"}],
        "targets": [
            {"platform": "telegram", "api_base": tg_url, "token": {"env": "TG"}, **target}
            for target in targets
        ],
    }
    if editors is not None:
        data["editors"] = {
            "platform": "telegram",
            "api_base": tg_url,
            "token": {"env": "TG"},
            "allowed_user_ids": [1],
            **editors,
        }
    return data


async def _checks(data: dict, token: str = TOKEN) -> list[SetupCheck]:
    config = validate(data, environ={"TG": token})
    adapters = build_adapters(config)
    try:
        return await check_setup(config, adapters.values())
    finally:
        for adapter in adapters.values():
            await adapter.aclose()


@pytest.fixture
async def telegram() -> AsyncIterator[tuple[tg.State, str]]:
    state = tg.State()
    state.valid_tokens.add(TOKEN)
    async with serve(tg.create_app(state)) as server:
        yield state, server.url


async def test_a_good_setup_is_ok_everywhere(telegram: tuple[tg.State, str]) -> None:
    state, url = telegram
    state.add_channel("@sample_news")
    state.add_chat("@sample_forum", "supergroup", is_forum=True, topics=(42,))
    state.add_chat("@sample_editors", "supergroup", bot_status="member")
    data = _config(
        url,
        [
            {"name": "channel", "chat_id": "@sample_news"},
            {"name": "topic", "chat_id": "@sample_forum", "message_thread_id": 42},
        ],
        editors={"chat_id": "@sample_editors"},
    )
    checks = await _checks(data)
    assert [(c.name, c.status) for c in checks] == [
        ("channel", SetupStatus.OK),
        ("topic", SetupStatus.OK),
        ("editors' chat", SetupStatus.OK),
    ]
    assert "can post in channel @sample_news" in checks[0].detail
    assert "topic 42" in checks[1].detail
    assert not state.messages  # nothing was posted
    called = {r["method"] for r in state.requests}
    assert {"getMe", "getChat", "getChatMember", "sendChatAction"} <= called


# (what is wrong, how the stand-in's chat is set up, the target's chat and topic, the reason)
REFUSALS = [
    ("wrong chat", {}, ("@sample_nope", None), "chat @sample_nope not found"),
    (
        "bot without post rights",
        {"bot_status": "administrator", "can_post": False},
        ("@sample_news", None),
        "cannot post in channel @sample_news",
    ),
    (
        "bot not in the channel",
        {"bot_status": "left"},
        ("@sample_news", None),
        "bot is not a member of the channel chat",
    ),
    (
        "restricted in a group",
        {"kind": "supergroup", "bot_status": "restricted", "can_post": False},
        ("@sample_news", None),
        "is restricted in supergroup @sample_news",
    ),
    (
        "missing forum topic",
        {"kind": "supergroup", "is_forum": True, "topics": (42,)},
        ("@sample_news", 43),
        "topic 43 not found",
    ),
    (
        "topic in a chat that is no forum",
        {"kind": "supergroup"},
        ("@sample_news", 43),
        "is not a forum",
    ),
]


@pytest.mark.parametrize(
    ("what", "chat", "target", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
async def test_each_refusal_is_one_clear_line(
    telegram: tuple[tg.State, str],
    what: str,
    chat: dict[str, Any],
    target: tuple[str, int | None],
    reason: str,
) -> None:
    state, url = telegram
    state.add_chat("@sample_news", **chat)
    chat_id, thread = target
    entry: dict[str, Any] = {"name": "tg-en", "chat_id": chat_id}
    if thread is not None:
        entry["message_thread_id"] = thread
    [check] = await _checks(_config(url, [entry]))
    assert check.status is SetupStatus.FAILED, what
    assert reason in check.detail, check.detail
    assert str(check).startswith("FAILED  tg-en: ")
    assert not state.messages


async def test_a_wrong_token_is_named_and_never_shown(telegram: tuple[tg.State, str]) -> None:
    state, url = telegram
    state.add_channel("@sample_news")
    data = _config(url, [{"name": "tg-en", "chat_id": "@sample_news"}], {"chat_id": "@sample_news"})
    checks = await _checks(data, token=WRONG)
    assert [c.status for c in checks] == [SetupStatus.FAILED, SetupStatus.FAILED]
    for check in checks:
        assert "refused the bot token (401 Unauthorized)" in check.detail
        assert WRONG not in str(check)


def test_cli_online_prints_one_line_per_target_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> tuple[int, int]:
        state = tg.State()
        state.valid_tokens.add(TOKEN)
        state.add_channel("@sample_news")
        state.add_chat("@sample_editors", "supergroup", bot_status="member")
        async with serve(tg.create_app(state)) as server:
            data = _config(
                server.url,
                [
                    {"name": "good", "chat_id": "@sample_news"},
                    {"name": "bad", "chat_id": "@sample_gone"},
                ],
                editors={"chat_id": "@sample_editors"},
            )
            path = tmp_path / "newsbot.yaml"
            data["database"] = f"sqlite:///{tmp_path}/state.db"
            path.write_text(yaml.safe_dump(data))
            failing = await asyncio.to_thread(main, ["-c", str(path), "check-config", "--online"])
            data["targets"].pop()
            path.write_text(yaml.safe_dump(data))
            passing = await asyncio.to_thread(main, ["-c", str(path), "check-config", "--online"])
            return failing, passing

    monkeypatch.setenv("TG", TOKEN)
    failing, passing = asyncio.run(scenario())
    out = capsys.readouterr().out
    assert failing == 1 and passing == 0
    lines = [line.strip() for line in out.splitlines()]
    assert any(line.startswith("OK      good: @newsbot_standin_bot can post") for line in lines)
    assert any(line.startswith("FAILED  bad: chat @sample_gone not found") for line in lines)
    assert any(line.startswith("OK      editors' chat: ") for line in lines)
    assert TOKEN not in out
    assert not (tmp_path / "state.db").exists()


def test_startup_message_counts_targets_and_names_failures() -> None:
    checks = [
        SetupCheck("a", SetupStatus.OK, "fine"),
        SetupCheck("b", SetupStatus.FAILED, "chat @x not found"),
        SetupCheck("c", SetupStatus.SKIPPED, "X bills reads"),
        SetupCheck("editors' chat", SetupStatus.OK, "fine"),
    ]
    assert startup_message(checks) == (
        "newsbot started: 1 of 3 targets OK\nFAILED  b: chat @x not found\nSKIPPED c: X bills reads"
    )


async def test_the_daemon_tells_the_editors_once_at_start_up(world: World) -> None:
    # One of the three targets cannot post: the bot lost its rights in @chan_az.
    world.tg.chats["@chan_az"]["can_post"] = False
    world.tg.add_chat("@sample_editors", "supergroup", bot_status="member")
    editors = {
        "platform": "telegram",
        "api_base": world.tg_url,
        "token": {"env": "TG_TOKEN"},
        "chat_id": "@sample_editors",
        "allowed_user_ids": [1],
        "poll_timeout": 1,
    }
    service = Service(world.config(editors=editors))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await wait_for(lambda: world.tg.in_chat("@sample_editors"), 10)
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    [message] = world.tg.in_chat("@sample_editors")
    lines = message["text"].splitlines()
    assert lines[0] == "newsbot started: 2 of 3 targets OK"
    assert lines[1].startswith(
        "FAILED  tg-az: @newsbot_standin_bot cannot post in channel @chan_az"
    )
    assert len(lines) == 2


async def test_a_wrong_editors_token_is_one_log_line_and_the_bot_runs_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.tg.add_chat("@sample_editors", "supergroup", bot_status="member")
    editors = {
        "platform": "telegram",
        "api_base": world.tg_url,
        "token": {"env": "TG_TOKEN"},
        "chat_id": "@sample_editors",
        "allowed_user_ids": [1],
        "poll_timeout": 1,
    }
    config = world.config(editors=editors)
    config.editor_secrets["token"] = SecretRef(env="WRONG_TOKEN").resolve({"WRONG_TOKEN": WRONG})
    service = Service(config)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await wait_for(lambda: world.site.hits["/en/rss.xml"] >= 1, 10)
        await wait_for(lambda: "editors' console is off" in caplog.text, 10)
        await asyncio.sleep(0.3)
        assert not task.done()  # the daemon is still running
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert "Telegram refused its token (401 Unauthorized)" in caplog.text
    assert "editors' chat: Telegram refused the bot token" in caplog.text
    assert "Task exception was never retrieved" not in caplog.text
    assert WRONG not in caplog.text


def _meta_config(url: str, token_env: str = "FB") -> dict[str, Any]:
    return {
        "outlet": {"name": "Sample Times", "url": "https://sample.example"},
        "database": "sqlite:///state.db",
        "sources": [{"name": "en", "url": "https://sample.example/rss"}],
        "targets": [
            {
                "name": "fb",
                "platform": "facebook",
                "api_base": url,
                "page_id": "1000001",
                "page_access_token": {"env": token_env},
            },
            {
                "name": "ig",
                "platform": "instagram",
                "api_base": url,
                "ig_user_id": "17841400000000001",
                "access_token": {"env": token_env},
            },
            {
                "name": "x-main",
                "platform": "x",
                "api_base": "http://127.0.0.1:9",
                "upload_base": "http://127.0.0.1:9",
                "api_key": {"env": token_env},
                "api_secret": {"env": token_env},
                "access_token": {"env": token_env},
                "access_token_secret": {"env": token_env},
            },
        ],
    }


async def _meta_checks(graph: graph_standin.State, token: str) -> list[SetupCheck]:
    async with serve(graph_standin.create_app(graph)) as server:
        config = validate(_meta_config(server.url), environ={"FB": token})
        adapters = build_adapters(config)
        try:
            return await check_setup(config, adapters.values())
        finally:
            for adapter in adapters.values():
                await adapter.aclose()


async def test_facebook_and_instagram_good_setup_x_skipped_as_billed() -> None:
    graph = graph_standin.State(tokens={"page-token-1"})
    fb, ig, x = await _meta_checks(graph, "page-token-1")
    assert (fb.status, ig.status, x.status) == (SetupStatus.OK, SetupStatus.OK, SetupStatus.SKIPPED)
    assert fb.detail == "page Sample Times (1000001) token may post"
    assert ig.detail.startswith("account 17841400000000001 answers; 0 of 50 posts used")
    assert "X bills each read" in x.detail and "health_check: true" in x.detail
    assert not graph.posts


async def test_a_facebook_token_without_the_posting_scope_fails() -> None:
    graph = graph_standin.State(tokens={"page-token-1"})
    graph.scopes = ["pages_show_list", "pages_read_engagement"]
    fb, ig, _ = await _meta_checks(graph, "page-token-1")
    assert fb.status is SetupStatus.FAILED
    assert fb.detail.startswith("the page token lacks pages_manage_posts")
    assert ig.status is SetupStatus.OK


async def test_a_wrong_graph_token_is_code_190() -> None:
    graph = graph_standin.State(tokens={"page-token-1"})
    fb, ig, _ = await _meta_checks(graph, "not-the-token")
    for check in (fb, ig):
        assert check.status is SetupStatus.FAILED
        assert check.detail.startswith("the access token was refused (code 190")
        assert "not-the-token" not in str(check)


async def test_a_page_the_token_cannot_see_is_graph_error_100() -> None:
    graph = graph_standin.State(tokens={"page-token-1"}, page_id="2000002")
    fb, _, _ = await _meta_checks(graph, "page-token-1")
    assert fb.status is SetupStatus.FAILED
    assert fb.detail.startswith("page 1000001 not found or not visible to this token (code 100")
