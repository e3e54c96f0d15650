"""Small value types shared by the config models of the core and of the adapters."""

from __future__ import annotations

import re
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float:
    """Seconds from 90, 90.5, "90s", "5m", "2h", "1d" or "500ms"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 60, '60s', '5m' or '1h'")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; write e.g. 60, '60s', '5m' or '1h'")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


# Telegram: a public @username is 5-32 characters of [A-Za-z0-9_] starting with a letter;
# any other chat (private group, supergroup, forum) is addressed by its integer id.
_TELEGRAM_USERNAME = re.compile(r"@[A-Za-z][A-Za-z0-9_]{4,31}")
_TELEGRAM_NUMERIC_ID = re.compile(r"-?\d{1,20}")


def telegram_chat_id(value: Any) -> int | str:
    """A Telegram chat id as written in the config, or ValueError saying what is wrong."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _TELEGRAM_NUMERIC_ID.fullmatch(text) or _TELEGRAM_USERNAME.fullmatch(text):
            return value
    raise ValueError(
        f"{value!r} is not a Telegram chat id: write @username (5-32 letters, digits or _,"
        " starting with a letter) or the chat's numeric id such as -1001234567890"
    )
