"""The `newsbot` command: check-config, run --once, status, preview, demo."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.cli import main
from bot.demo.runner import run_demo
from bot.demo.site import SampleSite, create_app
from bot.httpserver import serve
from standins import telegram as tg

TOKEN = "777:cli-SECRET-token"


def write_config(path: Path, site_url: str, tg_url: str, **extra: object) -> Path:
    data = {
        "outlet": {"name": "Sample Times", "url": site_url},
        "database": f"sqlite:///{path.parent}/cli.db",
        "sources": [{"name": "en", "url": f"{site_url}/en/rss.xml", "language": "en"}],
        "targets": [
            {
                "name": "tg-en",
                "platform": "telegram",
                "api_base": tg_url,
                "token": {"env": "CLI_TG_TOKEN"},
                "chat_id": "@cli_chan",
                "min_interval": 0,
            }
        ],
        "http": {"enabled": False},
    }
    data.update(extra)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_check_config_reports_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLI_TG_TOKEN", raising=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "sources:\n  - name: en\n    url: notaurl\n    interval: soon\n"
        "targets:\n  - name: t\n    platform: telegram\n    token: {env: CLI_TG_TOKEN}\n"
    )
    assert main(["-c", str(bad), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "sources[en].url (" in err and "bad.yaml:3)" in err
    assert "sources[en].interval (" in err and "bad.yaml:4)" in err
    assert "targets[t].chat_id (" in err
    assert "bad.yaml:8): environment variable CLI_TG_TOKEN is not set" in err


def test_check_config_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLI_TG_TOKEN", TOKEN)
    path = write_config(tmp_path / "ok.yaml", "https://site.example", "http://127.0.0.1:1")
    assert main(["-c", str(path), "check-config"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "target tg-en: telegram via http://127.0.0.1:1" in out
    assert TOKEN not in out


async def test_run_once_status_and_preview(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLI_TG_TOKEN", TOKEN)
    site = SampleSite()
    state = tg.State()
    state.valid_tokens.add(TOKEN)
    state.add_channel("@cli_chan")
    async with serve(create_app(site)) as site_server, serve(tg.create_app(state)) as tg_server:
        site.base_url = site_server.url
        path = write_config(tmp_path / "c.yaml", site_server.url, tg_server.url)
        args = ["-c", str(path)]
        assert await asyncio.to_thread(main, [*args, "run", "--once"]) == 0
        first = capsys.readouterr().out
        assert "source en: ok, 0 new" in first and "sent 0" in first
        article = await site.publish_next()
        assert article is not None
        assert await asyncio.to_thread(main, [*args, "run", "--once"]) == 0
        assert "sent 1" in capsys.readouterr().out
        assert len(state.in_chat("@cli_chan")) == 1

        assert await asyncio.to_thread(main, [*args, "status"]) == 0
        status = capsys.readouterr().out
        assert "tg-en (telegram): sent 1" in status
        assert site_server.url + article.path in status
        assert TOKEN not in status

        url = site_server.url + article.path
        assert await asyncio.to_thread(main, [*args, "preview", url]) == 0
        preview = capsys.readouterr().out
        assert "=== tg-en ===" in preview and article.sample.title in preview
        assert len(state.messages) == 1  # preview sends nothing


async def test_demo_posts_every_sample_once() -> None:
    out = io.StringIO()
    assert await run_demo(every=0.05, out=out) == 0
    text = out.getvalue()
    assert (
        "Done: 12 of 12 articles published; posts: Telegram 12, X 7, Facebook 12, Instagram 7,"
        " Bluesky 12, Mastodon 12, Threads 7." in text
    )
    assert "── published 3 of 12: http://127.0.0.1:" in text
    # Each Telegram box shows the attribution hyperlink's target, not only its label.
    assert text.count("│ 🔗 Read more at Sample Times → http://127.0.0.1:") == 7
    assert text.count("│ 🔗 Читать на Sample Times → http://127.0.0.1:") == 3
    assert text.count("│ 🔗 card → http://127.0.0.1:") == 12  # Facebook's link card
    assert text.count("│ 🔗 link card → http://127.0.0.1:") == 12  # Mastodon's URL in the text
    assert text.count("│ 🔗 link attachment → http://127.0.0.1:") == 7  # Threads
    # Bluesky: a short label whose link facet points at the whole article URL.
    assert len(re.findall(r"│ 🔗 127\.0\.0\.1:\d+/\S+ → http://127\.0\.0\.1:", text)) == 12
    assert text.count("┌─ Bluesky langs=ru") == 3
    assert text.count(" after publication\n") == 12 + 7 + 12 + 7 + 12 + 12 + 7
    summary = text.split("Summary (time from publication to posted):")[1]
    seven = (("Telegram", 12), ("X", 7), ("Facebook", 12), ("Instagram", 7), ("Bluesky", 12))
    for platform, posts in (*seven, ("Mastodon", 12), ("Threads", 7)):
        assert f"{platform:<10} {posts:>3} posts, median " in summary
    assert "[generated card]" in text  # the article without a photo got a card
    assert text.count("┌─ X (") == 7
    assert text.count("┌─ Telegram @sample_times_ru") == 3
    assert text.count("┌─ Telegram @sample_times_az") == 2
    # A lone "<script>" is text and shown as such; <b>..</b> is markup, stripped (issue #12).
    assert '"<script>" & bold rules' in text


def test_python_dash_m_bot_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    for command in ("run", "check-config", "preview", "status", "demo"):
        assert command in result.stdout


def test_desk_commands_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`newsbot retry|skip|sent|schedule|history` are the desk's operations, recorded."""
    from bot.store import DeliveryStatus, Store
    from tests.test_outbox_states import delivery_in

    path = write_config(tmp_path / "desk.yaml", "http://127.0.0.1:9", "http://127.0.0.1:9")

    async def prepare() -> tuple[int, int]:
        store = Store(f"sqlite:///{tmp_path}/cli.db")
        await store.init()
        try:
            return (
                await delivery_in(store, DeliveryStatus.UNCERTAIN, 1),
                await delivery_in(store, DeliveryStatus.SKIPPED, 2),
            )
        finally:
            await store.close()

    uncertain, skipped = asyncio.run(prepare())
    args = ["-c", str(path)]
    assert main([*args, "retry", str(skipped)]) != 0
    assert "only with /post URL" in capsys.readouterr().err  # a refusal: one line on stderr
    assert main([*args, "sent", str(uncertain), "https://t.me/cli_chan/5"]) == 0
    assert "marked sent" in capsys.readouterr().out
    assert main([*args, "history"]) == 0
    assert f"#{uncertain} " in capsys.readouterr().out
