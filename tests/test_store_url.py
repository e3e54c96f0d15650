"""bot.store.url: the database URLs newsbot reads (the forms SQLAlchemy accepted), parsed
without a database toolkit, and shown without their password."""

from __future__ import annotations

from typing import Any

import pytest

from bot.store.url import DatabaseURL, InvalidDatabaseURL

PASSWORD = "p@ss"  # written p%40ss in the URLs below


@pytest.mark.parametrize(
    ("url", "fields"),
    [
        ("sqlite:///state.db", {"backend": "sqlite", "driver": "", "database": "state.db"}),
        ("sqlite:////var/x.db", {"backend": "sqlite", "database": "/var/x.db", "host": None}),
        ("sqlite+pysqlite:///x.db", {"backend": "sqlite", "driver": "pysqlite"}),
        ("sqlite://", {"backend": "sqlite", "database": None, "in_memory": True}),
        ("sqlite:///:memory:", {"backend": "sqlite", "database": ":memory:", "in_memory": True}),
        (
            "postgresql://u:p%40ss@h:5433/db?sslmode=require",
            {
                "backend": "postgresql",
                "driver": "",
                "username": "u",
                "password": PASSWORD,
                "host": "h",
                "port": 5433,
                "database": "db",
                "query": (("sslmode", "require"),),
                "in_memory": False,
            },
        ),
        ("postgres://u@h/db", {"backend": "postgresql", "username": "u", "password": None}),
        (
            "postgresql+psycopg2://u@h/db",
            {"backend": "postgresql", "driver": "psycopg2", "host": "h", "port": None},
        ),
        ("postgresql://u@[::1]:5432/db", {"host": "::1", "port": 5432, "database": "db"}),
        (
            "postgresql://postgres@127.0.0.1/test?options=-csearch_path%3Dt_1",
            {"query": (("options", "-csearch_path=t_1"),)},
        ),
    ],
)
def test_parse(url: str, fields: dict[str, Any]) -> None:
    parsed = DatabaseURL.parse(url)
    assert {name: getattr(parsed, name) for name in fields} == fields


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://u:p%40ss@h:5433/db?sslmode=require",
            "postgresql://u:***@h:5433/db?sslmode=require",
        ),
        ("postgres+psycopg://u:p%40ss@h/db", "postgresql+psycopg://u:***@h/db"),
        ("postgresql://:p%40ss@h/db", "postgresql://:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:///state.db", "sqlite:///state.db"),
    ],
)
def test_render_hides_the_password(url: str, shown: str) -> None:
    parsed = DatabaseURL.parse(url)
    assert parsed.render() == shown
    assert str(parsed) == shown
    for text in (parsed.render(), str(parsed), repr(parsed)):
        assert PASSWORD not in text and "p%40ss" not in text


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///state.db",
        "sqlite:////var/x.db",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql://u:p%40ss@h:5433/db?sslmode=require",
        "postgresql+psycopg2://u@h/db",
        "postgresql://us%3Aer:a%2Fb%3Fc%23d%3Ae%40f@h/db",  # every separator in the credentials
        "postgresql://u@[::1]:5432/db",
        "postgresql://postgres@127.0.0.1/test?options=-csearch_path%3Dt_1&sslmode=disable",
        "postgresql:///db",  # the local socket
    ],
)
def test_render_with_the_password_round_trips(url: str) -> None:
    parsed = DatabaseURL.parse(url)
    assert DatabaseURL.parse(parsed.render(hide_password=False)) == parsed


def test_special_characters_in_credentials_are_decoded() -> None:
    parsed = DatabaseURL.parse("postgresql://us%3Aer:a%2Fb%3Fc%23d%3Ae%40f@h/db")
    assert (parsed.username, parsed.password, parsed.host) == ("us:er", "a/b?c#d:e@f", "h")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://h:abc/db", "port 'abc' is not a number"),
        ("postgresql://u:s3cret@h:abc/db", "port 'abc' is not a number"),
        ("newsbot.db", "not a database URL"),
        ("", "not a database URL"),
        ("u:s3cret@h/db", "not a database URL"),
        ("postgresql:/u:s3cret@h/db", "not a database URL"),
    ],
)
def test_bad_urls_are_refused_without_showing_the_password(url: str, message: str) -> None:
    with pytest.raises(InvalidDatabaseURL, match=message) as refused:
        DatabaseURL.parse(url)
    assert "s3cret" not in str(refused.value)
    assert isinstance(refused.value, ValueError)  # the config check reports ValueErrors
