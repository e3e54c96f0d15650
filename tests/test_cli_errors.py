"""Issue #11, as a newcomer meets it: every mistake of theirs or of the network is one line on
stderr with a documented exit code (never a traceback, unless --debug), the command line
behaves as people expect, and read-only commands create no database."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot import netguard
from bot.cli import Exit, build_parser, main
from bot.demo.site import SampleSite, create_app
from bot.httpserver import serve
from standins import telegram as tg

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "777:cli-errors-SECRET-token"


def newsbot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` as a user runs it (this tree first on the path)."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "CLI_TG_TOKEN": TOKEN, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """The command failed with `code` and said why in one line naming each needle."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def write_config(path: Path, site_url: str, tg_url: str = "http://127.0.0.1:9", **extra: object):
    data = {
        "outlet": {"name": "Sample Times", "url": site_url},
        "database": f"sqlite:///{path.parent}/state.db",
        "sources": [{"name": "en", "url": f"{site_url}/en/rss.xml", "language": "en"}],
        "targets": [
            {
                "name": "tg-en",
                "platform": "telegram",
                "api_base": tg_url,
                "token": {"env": "CLI_TG_TOKEN"},
                "chat_id": "@chan_cli",
                "min_interval": 0,
            }
        ],
        "http": {"enabled": False},
    }
    data.update(extra)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The command line ---------------------------------------------------------------------------


def test_version_and_help_describe_every_command_and_argument() -> None:
    version = newsbot("--version")
    assert version.returncode == 0 and version.stdout.startswith("newsbot 0.")
    top = newsbot("-h")
    assert top.returncode == 0
    for described in (
        "run the bot",
        "check the configuration",
        "show how each target would post an article",
        "recent deliveries",
        "bundled sample site",
        "exit codes: 0 ok; 1 problems found",
    ):
        assert described in " ".join(top.stdout.split()), described
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {c.dest for c in subparsers._choices_actions} == set(subparsers.choices)
    assert all(c.help for c in subparsers._choices_actions)
    for name, sub in subparsers.choices.items():
        assert sub.description, name
        for action in sub._actions:
            assert action.help, f"{name} {action.dest} has no help text"


def test_config_option_before_or_after_the_command(tmp_path: Path) -> None:
    path = write_config(tmp_path / "x.yaml", "https://site.example")
    after = newsbot("check-config", "-c", str(path))
    before = newsbot("--config", str(path), "check-config")
    for result in (after, before):
        assert result.returncode == 0, result.stderr
        assert f"{path}: OK" in result.stdout
    # Given in both places, the one after the command is the one meant.
    both = newsbot("-c", str(tmp_path / "missing.yaml"), "check-config", "-c", str(path))
    assert both.returncode == 0, both.stderr
    assert not (tmp_path / "state.db").exists()  # check-config opens no database


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = newsbot("-c", str(tmp_path / "nope.yaml"), "status")
    one_line = result.stderr.strip()
    assert result.returncode == Exit.USAGE and "Traceback" not in result.stderr
    assert "cannot read" in one_line and "nope.yaml" in one_line


# The database -----------------------------------------------------------------------------


def test_a_database_in_a_missing_folder(tmp_path: Path) -> None:
    url = "sqlite:////nonexistent/dir/state.db"
    path = write_config(tmp_path / "c.yaml", "http://127.0.0.1:9", database=url)
    run = newsbot("-c", str(path), "run", "--once")
    one_line_error(run, Exit.RUNTIME, f"database {url}", "the folder /nonexistent/dir does not")
    status = newsbot("status", "-c", str(path))
    one_line_error(status, Exit.RUNTIME, "no state database at /nonexistent/dir/state.db")
    daemon = newsbot("-c", str(path), "run")  # the daemon too, with no stray thread's traceback
    one_line_error(daemon, Exit.RUNTIME, f"newsbot run: database {url}", "does not exist")
    demo = newsbot("demo", "--db", "/nonexistent/dir/demo.db")
    one_line_error(demo, Exit.RUNTIME, "database sqlite:////nonexistent/dir/demo.db", "(--db)")


def test_a_database_url_that_is_not_a_url(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", "http://127.0.0.1:9", database="not a url")
    for command in (["run", "--once"], ["status"]):
        result = newsbot("-c", str(path), *command)
        one_line_error(result, Exit.USAGE, "'not a url' is not a database URL", str(path))
    # --debug: the same failure with its traceback, for a bug report.
    debug = newsbot("-c", str(path), "--debug", "run", "--once")
    assert debug.returncode == Exit.USAGE
    assert "Traceback" in debug.stderr and "is not a database URL" in debug.stderr


def test_status_on_a_missing_database_creates_none(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", "http://127.0.0.1:9")
    result = newsbot("-c", str(path), "status")
    one_line_error(result, Exit.RUNTIME, f"no state database at {tmp_path}/state.db", "run --once")
    assert not (tmp_path / "state.db").exists()


# Fetching an article ------------------------------------------------------------------------


async def test_preview_of_a_missing_or_unreachable_page(tmp_path: Path) -> None:
    site = SampleSite()
    async with serve(create_app(site)) as server:
        site.base_url = server.url
        path = write_config(tmp_path / "c.yaml", server.url)
        missing = f"{server.url}/en/news/no-such-article"
        result = await asyncio.to_thread(newsbot, "-c", str(path), "preview", missing)
        one_line_error(result, Exit.RUNTIME, f"newsbot preview: cannot fetch {missing}: HTTP 404")
    refused = f"http://127.0.0.1:{closed_port()}/en/news/x"
    path = write_config(tmp_path / "c.yaml", refused.rsplit("/en/", 1)[0])
    result = newsbot("-c", str(path), "preview", refused)
    one_line_error(result, Exit.RUNTIME, f"cannot fetch {refused}: cannot connect")
    assert not (tmp_path / "state.db").exists()  # preview reads and writes no state


def test_preview_with_the_example_config_and_its_editors_chat(tmp_path: Path) -> None:
    example = ROOT / "config" / "newsbot.example.yaml"
    assert "editors:" in example.read_text(encoding="utf-8")
    # A loopback page for a public newsroom's config: the SSRF guard refuses it, in one line
    # (and no KeyError from the editors' console, which a preview does not open).
    url = f"http://127.0.0.1:{closed_port()}/news/1"
    result = newsbot("-c", str(example), "preview", url, env={"NEWSBOT_DATABASE": ""})
    one_line_error(result, Exit.RUNTIME, f"newsbot preview: {url}: refused", "allow_hosts")


async def test_preview_renders_with_editors_configured(tmp_path: Path) -> None:
    site = SampleSite()
    async with serve(create_app(site)) as server:
        site.base_url = server.url
        editors = {
            "token": {"env": "CLI_EDITORS_TOKEN_NOT_SET"},  # a preview reads no secret
            "chat_id": "@editors",
            "allowed_user_ids": [1],
            "api_base": "http://127.0.0.1:9",
        }
        path = write_config(tmp_path / "c.yaml", server.url, editors=editors)
        article = site.published[0]
        url = server.url + article.path
        result = await asyncio.to_thread(newsbot, "-c", str(path), "preview", url)
    assert result.returncode == 0, result.stderr
    assert "=== tg-en ===" in result.stdout and article.sample.title in result.stdout
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state.db").exists()


async def test_status_after_a_dns_failure_says_no_answer_in_the_newsrooms_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The resolver seam: nothing here resolves, as on a machine whose DNS fails.
    monkeypatch.setattr(netguard, "system_resolver", netguard.static_resolver({}))
    monkeypatch.setenv("CLI_TG_TOKEN", TOKEN)
    path = write_config(tmp_path / "c.yaml", "http://feeds.newsroom.example", timezone="Asia/Baku")
    assert await asyncio.to_thread(main, ["-c", str(path), "run", "--once"]) == Exit.RUNTIME
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["status", "-c", str(path)]) == Exit.PROBLEMS
    status = capsys.readouterr().out
    assert "HTTP None" not in status
    line = next(x for x in status.splitlines() if x.strip().startswith("en: polled"))
    assert "+04, no answer  last error:" in line and "feeds.newsroom.example" in line
    assert "Targets (times in Asia/Baku)" in status


# Platforms ----------------------------------------------------------------------------------


async def test_a_rejected_token_pauses_with_one_clear_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLI_TG_TOKEN", TOKEN)  # the stand-in does not know it
    site = SampleSite()
    state = tg.State()
    state.add_channel("@chan_cli")
    async with serve(create_app(site)) as site_server, serve(tg.create_app(state)) as tg_server:
        site.base_url = site_server.url
        path = write_config(tmp_path / "c.yaml", site_server.url, tg_server.url)
        args = ["-c", str(path)]
        assert await asyncio.to_thread(main, [*args, "run", "--once"]) == 0
        await site.publish_next()
        assert await asyncio.to_thread(main, [*args, "run", "--once"]) == 0
        err = capsys.readouterr()
        assert "paused tg-en" in err.out
        assert "target paused:" in err.err and ". Fix the credentials" in err.err
        assert ".." not in err.err and TOKEN not in err.err
        assert await asyncio.to_thread(main, [*args, "status"]) == Exit.PROBLEMS
        assert "PAUSED" in capsys.readouterr().out
    assert state.messages == []


# The installation ---------------------------------------------------------------------------


def test_a_missing_package_is_named_not_a_traceback(tmp_path: Path) -> None:
    """lxml without lxml_html_clean (what pip 23.2 installed): check-config no longer says OK
    while every other command dies on the import."""
    path = write_config(tmp_path / "c.yaml", "https://site.example")
    code = (
        "import sys; sys.modules['lxml_html_clean'] = None; from bot.cli import main; "
        f"sys.exit(main(['-c', {str(path)!r}, 'check-config']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "CLI_TG_TOKEN": TOKEN},
        timeout=60,
        check=False,
    )
    one_line_error(result, Exit.RUNTIME, "installation is incomplete", "lxml_html_clean")
    assert "OK" not in result.stdout
