"""Logging set-up: plain text or one JSON object per line, with secrets scrubbed.

Lines about a delivery carry `target`, `delivery_id` and `article_url`, lines about a poll
carry `source` (passed with `extra=`); the JSON format emits them as fields of their own.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.secrets import install_log_redaction, redact

if TYPE_CHECKING:
    from bot.store import Delivery

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


# Characters that could forge or hide a log line: C0/C1 controls (newline, carriage return,
# escape sequences), Unicode line/paragraph separators and bidi overrides.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
LOGGED_TEXT_LIMIT = 2_000


def escape_log(text: object, limit: int | None = LOGGED_TEXT_LIMIT) -> str:
    """Outside text (a chat command, a feed's title, a URL) made safe for one log line:
    control characters and line breaks escaped (a newline becomes \\n), at most `limit`
    characters. Every log of text that came from outside goes through this."""
    value = str(text)
    if limit is not None and len(value) > limit:
        value = value[:limit] + f"…(+{len(value) - limit} chars)"
    return _UNSAFE.sub(_escape_char, value)


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return named.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def delivery_fields(delivery: Delivery) -> dict[str, Any]:
    """`extra=` for a log line about one delivery."""
    return {
        "target": delivery.target,
        "delivery_id": delivery.id,
        "article_url": delivery.post.article_url,
    }


def _clean(value: Any) -> Any:
    """A JSON-safe copy of an extra field with every known secret removed."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in data:
                data[key] = _clean(value)
        # Redact here too: a handler added without the redacting filter stays clean.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = redact(record.exc_text)
        if record.stack_info:
            data["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(data, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time level logger: message`, the whole line (traceback included) scrubbed."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        # One record, one line: a newline in outside text cannot forge another line (the
        # traceback, added after this, keeps its own lines).
        record.message = escape_log(record.message, limit=None)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    install_log_redaction()
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
