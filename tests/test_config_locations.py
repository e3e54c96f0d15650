"""check-config names every mistake by its item's name and its YAML line, all in one run."""

import os
from pathlib import Path

import pytest

from bot.config import ConfigError, load

ENV = {"TG_TOKEN": "123456:ABCdefSECRETtoken"}

GOOD = """\
outlet: {name: Sample Times, url: https://sample.example}
database: sqlite:///state.db
timezone: UTC
sources:
  - name: en
    url: https://sample.example/en/rss.xml
  - name: ru
    url: https://sample.example/ru/rss.xml
targets:
  - name: telegram-en
    platform: telegram
    token: {env: TG_TOKEN}
    chat_id: "@caliber_en"
    template: "<b>{{ title }}</b> {{ link('More') }}"
  - name: telegram-ru
    platform: telegram
    token: {env: TG_TOKEN}
    chat_id: -1001234567890
rules:
  - name: russian
    match: {languages: [ru], sources: [ru]}
    targets: [telegram-ru]
    approval: true
editors:
  platform: telegram
  token: {env: TG_TOKEN}
  chat_id: "@sample_editors"
  allowed_user_ids: [1]
"""

# (what the newcomer wrote wrong, the line replaced -> its replacement, the exact report)
MISTAKES = [
    (
        "chat id with a space",
        ('chat_id: "@caliber_en"', 'chat_id: "caliber en"'),
        "targets[telegram-en].chat_id (newsbot.yaml:13): 'caliber en' is not a Telegram chat id",
    ),
    (
        "chat id too short",
        ('chat_id: "@caliber_en"', 'chat_id: "@cal"'),
        "targets[telegram-en].chat_id (newsbot.yaml:13): '@cal' is not a Telegram chat id",
    ),
    (
        "editors' chat id",
        ('chat_id: "@sample_editors"', 'chat_id: "sample editors"'),
        "editors.chat_id (newsbot.yaml:27): 'sample editors' is not a Telegram chat id",
    ),
    (
        "Jinja syntax error",
        ("{{ title }}</b>", "{{ title }</b>"),
        "targets[telegram-en].template (newsbot.yaml:14): template does not compile (line 1)",
    ),
    (
        "duplicate target name",
        (
            "rules:\n",
            "  - name: telegram-en\n    platform: telegram\n"
            '    token: {env: TG_TOKEN}\n    chat_id: "@caliber_xx"\nrules:\n',
        ),
        "targets[telegram-en].name (newsbot.yaml:19): target name 'telegram-en' is used more"
        " than once (first at newsbot.yaml:10)",
    ),
    (
        "duplicate source name",
        ("targets:\n", "  - name: en\n    url: https://sample.example/en2/rss.xml\ntargets:\n"),
        "sources[en].name (newsbot.yaml:9): source name 'en' is used more than once"
        " (first at newsbot.yaml:5)",
    ),
    (
        "database folder missing",
        ("sqlite:///state.db", "sqlite:////nonexistent/dir/state.db"),
        "database (newsbot.yaml:2): folder '/nonexistent/dir' does not exist",
    ),
    (
        "database not a URL",
        ("sqlite:///state.db", "not a url"),
        "database (newsbot.yaml:2): 'not a url' is not a database URL",
    ),
    (
        "database driver that would block the event loop",
        ("sqlite:///state.db", "postgresql+pg8000://newsbot@db/newsbot"),
        "database (newsbot.yaml:2): unsupported postgresql driver 'pg8000'",
    ),
    (
        "approval without editors",
        ("editors:" + GOOD.split("editors:")[1], ""),
        "rules[russian].approval (newsbot.yaml:23): approval needs an editors' chat",
    ),
    (
        "rule names an unknown target",
        ("targets: [telegram-ru]", "targets: [telegram-ru, telegram-fr]"),
        "rules[russian].targets (newsbot.yaml:22): no target named 'telegram-fr'",
    ),
    (
        "rule names an unknown source",
        ("sources: [ru]}", "sources: [ru, az]}"),
        "rules[russian].match.sources (newsbot.yaml:21): no source named 'az'",
    ),
    (
        "literal secret",
        (
            "    token: {env: TG_TOKEN}\n    chat_id: -100",
            '    token: "123:abc"\n    chat_id: -100',
        ),
        "targets[telegram-ru].token (newsbot.yaml:17):",
    ),
]


def _write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> str:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "newsbot.yaml").write_text(text)
    return "newsbot.yaml"


def _reports(path: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(path, environ=ENV)
    return [str(problem) for problem in caught.value.problems]


def test_the_good_config_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(_write(tmp_path, monkeypatch, GOOD), environ=ENV)
    assert [t.name for t in config.targets] == ["telegram-en", "telegram-ru"]
    assert not (tmp_path / "state.db").exists()  # checking never creates the database


@pytest.mark.parametrize(("what", "change", "report"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_mistake_is_named_where_it_is(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    what: str,
    change: tuple[str, str],
    report: str,
) -> None:
    assert change[0] in GOOD, what
    reports = _reports(_write(tmp_path, monkeypatch, GOOD.replace(change[0], change[1], 1)))
    assert len(reports) == 1, reports  # no consequence of the mistake reported on its own
    assert reports[0].startswith(report)


ALL_AT_ONCE = """\
outlet: {name: Sample Times, url: https://sample.example}
database: sqlite:////nonexistent/dir/state.db
sources:
  - name: en
    url: https://sample.example/en/rss.xml
  - name: en
    url: https://sample.example/en2/rss.xml
targets:
  - name: telegram-en
    platform: telegram
    token: {env: TG_TOKEN}
    chat_id: "caliber en"
    template: "{{ title }"
  - name: telegram-en
    platform: telegram
    token: {env: TG_TOKEN}
    chat_id: "@caliber_en"
    template: "{{ title } again"
  - name: telegram-ru
    platform: telegram
    token: "123456:literal"
    chat_id: "@caliber_ru"
rules:
  - name: ru
    match: {languages: [ru], sources: [ru]}
    targets: [telegram-ru, telegram-fr]
    approval: true
"""


def test_all_mistakes_come_in_one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reports = _reports(_write(tmp_path, monkeypatch, ALL_AT_ONCE))
    expected = [
        "database (newsbot.yaml:2): folder '/nonexistent/dir' does not exist",
        "sources[en].name (newsbot.yaml:6): source name 'en' is used more than once"
        " (first at newsbot.yaml:4)",
        "targets[telegram-en].chat_id (newsbot.yaml:12): 'caliber en' is not a Telegram chat id",
        # The template error of the FIRST of two same-named targets, at its own line.
        "targets[telegram-en].template (newsbot.yaml:13): template does not compile (line 1)",
        "targets[telegram-en].name (newsbot.yaml:14): target name 'telegram-en' is used more"
        " than once (first at newsbot.yaml:9)",
        "targets[telegram-en].template (newsbot.yaml:18): template does not compile (line 1)",
        "targets[telegram-ru].token (newsbot.yaml:21): secrets are not written in the config",
        "rules[ru].match.sources (newsbot.yaml:25): no source named 'ru'",
        "rules[ru].targets (newsbot.yaml:26): no target named 'telegram-fr'",
        "rules[ru].approval (newsbot.yaml:27): approval needs an editors' chat",
    ]
    assert len(reports) == len(expected), reports
    for report, line in zip(expected, reports, strict=True):
        assert line.startswith(report), (report, reports)
    # The target with a literal secret is still known by name: no "unknown target" for it.
    assert not any("'telegram-ru';" in line for line in reports)


def test_literal_secret_is_not_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = GOOD.replace(
        "    token: {env: TG_TOKEN}\n    chat_id: -100", '    token: "123:abc"\n    chat_id: -100'
    )
    reports = _reports(_write(tmp_path, monkeypatch, text))
    assert "123:abc" not in "\n".join(reports)


def test_database_folder_not_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        text = GOOD.replace("sqlite:///state.db", f"sqlite:///{locked}/state.db")
        reports = _reports(_write(tmp_path, monkeypatch, text))
        assert reports == [
            f"database (newsbot.yaml:2): folder '{locked}' is not writable:"
            " the database cannot be made"
        ]
    finally:
        locked.chmod(0o700)
