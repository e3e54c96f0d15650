import logging
from pathlib import Path

import pytest

from bot.config import ConfigError, load, parse_duration, validate
from bot.secrets import REDACTED, RedactingFilter, SecretRef

ENV = {"TG_TOKEN": "123456:ABCdefSECRETtoken"}


def base_config() -> dict:
    return {
        "outlet": {"name": "Sample Times", "url": "https://sample.example"},
        "database": "sqlite:///state.db",
        "sources": [{"name": "en", "url": "https://sample.example/en/rss.xml", "interval": "2m"}],
        "targets": [
            {
                "name": "tg-en",
                "platform": "telegram",
                "chat_id": "@sample_en",
                "token": {"env": "TG_TOKEN"},
            }
        ],
    }


def test_valid_config_resolves_secrets_and_durations() -> None:
    config = validate(base_config(), environ=ENV)
    assert config.sources[0].interval == 120
    assert config.targets[0].api_base == "https://api.telegram.org"
    assert config.secrets["tg-en"]["token"].get() == ENV["TG_TOKEN"]
    assert ENV["TG_TOKEN"] not in repr(config.secrets)


def test_every_problem_is_reported_at_once_with_its_location() -> None:
    data = base_config()
    data["sources"][0]["url"] = "ftp://nope"
    data["sources"][0]["intervall"] = 5
    data["sources"][0]["allow_hosts"] = "cdn.example"  # one host, not a list of them
    data["targets"][0].pop("chat_id")
    data["targets"].append({"name": "x1", "platform": "myspace"})
    data["timezone"] = "Mars/Olympus"
    with pytest.raises(ConfigError) as caught:
        validate(data, environ=ENV)
    text = str(caught.value)
    locations = {p.location for p in caught.value.problems}
    assert "sources[en].url" in locations
    assert "sources[en].intervall" in locations
    assert "targets[tg-en].chat_id" in locations
    assert "targets[x1].platform" in locations
    assert "timezone" in locations
    assert "unknown platform 'myspace'" in text
    assert "http:// or https://" in text
    assert "sources[en].intervall: unknown field (check the spelling" in text
    assert "sources[en].allow_hosts: should be a list" in text


def test_a_source_is_a_compact_frozen_record_compared_by_value() -> None:
    """30,000 sources must not cost a pydantic model each (issue 18): a slotted dataclass,
    equal when its settings are (a reload compares them), never changed in place."""
    first = validate(base_config(), environ=ENV).sources[0]
    again = validate(base_config(), environ=ENV).sources[0]
    assert first == again and first is not again
    assert not hasattr(first, "__dict__")
    with pytest.raises(AttributeError):
        first.interval = 5  # type: ignore[misc]


def test_literal_secret_is_refused() -> None:
    data = base_config()
    data["targets"][0]["token"] = "123456:literal-token"
    with pytest.raises(ConfigError) as caught:
        validate(data, environ=ENV)
    assert any(p.location == "targets[tg-en].token" for p in caught.value.problems)
    assert "123456:literal-token" not in str(caught.value)


def test_missing_secret_names_the_variable_not_a_value() -> None:
    with pytest.raises(ConfigError) as caught:
        validate(base_config(), environ={})
    assert "environment variable TG_TOKEN is not set" in str(caught.value)


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("987:from-a-file\n")
    data = base_config()
    data["targets"][0]["token"] = {"file": str(secret)}
    config = validate(data, environ={})
    assert config.secrets["tg-en"]["token"].get() == "987:from-a-file"


def test_unknown_source_in_target_filter_and_duplicate_names() -> None:
    data = base_config()
    data["targets"][0]["sources"] = ["ru"]
    data["targets"].append(dict(data["targets"][0]))
    with pytest.raises(ConfigError) as caught:
        validate(data, environ=ENV)
    text = str(caught.value)
    assert "no source named 'ru'" in text
    assert "target name 'tg-en' is used more than once" in text


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sources:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert "line" in str(caught.value) and "invalid YAML" in str(caught.value)


def test_example_configs_are_valid() -> None:
    root = Path(__file__).resolve().parents[1] / "config"
    env = {
        "TELEGRAM_BOT_TOKEN": "1:x" * 3,
        "NEWSBOT_PUSH_TOKEN": "push-secret",
        "X_API_KEY": "k" * 8,
        "X_API_SECRET": "s" * 8,
        "X_ACCESS_TOKEN": "t" * 8,
        "X_ACCESS_TOKEN_SECRET": "u" * 8,
        "FACEBOOK_PAGE_TOKEN": "f" * 8,
        "INSTAGRAM_TOKEN": "i" * 8,
        "BLUESKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop",
        "MASTODON_TOKEN": "m" * 8,
        "THREADS_TOKEN": "h" * 8,
    }
    examples = sorted(root.glob("*.yaml"))
    assert examples
    for path in examples:
        config = load(path, environ=env)
        assert config.targets


@pytest.mark.parametrize(
    ("raw", "seconds"), [(30, 30), ("45s", 45), ("5m", 300), ("1h", 3600), ("250ms", 0.25)]
)
def test_parse_duration(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == seconds


def test_parse_duration_rejects_words() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_redacting_filter_scrubs_resolved_secrets(caplog: pytest.LogCaptureFixture) -> None:
    secret = SecretRef(env="TG_TOKEN").resolve({"TG_TOKEN": "777:very-secret-value"})
    logger = logging.getLogger("test.redaction")
    handler = logging.Handler()
    records: list[logging.LogRecord] = []
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("calling https://api.example/bot%s/sendMessage", secret.get())
    finally:
        logger.removeHandler(handler)
    assert records and "very-secret-value" not in records[0].getMessage()
    assert REDACTED in records[0].getMessage()
