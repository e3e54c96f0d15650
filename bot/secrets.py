"""Secrets come from the environment or from files, and are scrubbed from every log line.

A config field holding a secret is written as `{env: NAME}` or `{file: /path}`; a literal
value is refused so a token never sits in a YAML file that gets committed or pasted.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from pydantic import BaseModel, ConfigDict, model_validator

REDACTED = "[REDACTED]"

_known: set[str] = set()
_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None


def encoded_forms(value: str) -> set[str]:
    """The value and the ways HTTP and OAuth code write it: OAuth 1.0a libraries log the
    percent-encoded consumer key and token (once in the header, twice in the base string)."""
    once = quote(value, safe="")
    return {value, once, quote(value), quote_plus(value), quote(once, safe="")}


def _regex(form: str) -> str:
    # Percent escapes match in either case of hex digit (%2B, %2b).
    return re.sub(
        r"%([0-9A-F])([0-9A-F])",
        lambda m: "%" + "".join(f"[{c}{c.lower()}]" if c.isalpha() else c for c in m.groups()),
        re.escape(form),
    )


def register_secret(value: str) -> None:
    """Remember a secret value so every later log record has it (in any of its encoded
    forms) replaced by [REDACTED]."""
    global _pattern
    if not value or len(value) < 4:
        return
    with _lock:
        if value in _known:
            return
        _known.update(encoded_forms(value))
        ordered = sorted(_known, key=len, reverse=True)
        _pattern = re.compile("|".join(_regex(v) for v in ordered))
        _install_record_factory()


_factory_installed = False


def _install_record_factory() -> None:
    """Redact as each log record is made, so every handler (even one added later, or a
    library's debug output such as python-telegram-bot's "Set Bot API URL") sees clean text."""
    global _factory_installed
    if _factory_installed:
        return
    _factory_installed = True
    previous = logging.getLogRecordFactory()

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _pattern is not None:
            try:
                message = record.getMessage()
            except Exception:  # a malformed format string: leave it to the handler
                return record
            cleaned = redact(message)
            if cleaned != message or record.args:
                record.msg, record.args = cleaned, None
        return record

    logging.setLogRecordFactory(make_record)


def redact(text: str) -> str:
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(REDACTED, text)


class Secret:
    """A resolved secret. str() gives the value to code that needs it; repr() never does."""

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str) -> None:
        self._value = value
        self.origin = origin
        register_secret(value)

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.origin})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class SecretRef(BaseModel):
    """Where a secret lives: exactly one of `env` or `file`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_literals(cls, data: Any) -> Any:
        if isinstance(data, str):
            raise ValueError(
                "secrets are not written in the config: use {env: VARIABLE_NAME} "
                "or {file: /path/to/secret}"
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self

    def describe(self) -> str:
        return f"env {self.env}" if self.env else f"file {self.file}"

    def resolve(self, environ: dict[str, str] | None = None) -> Secret:
        """Read the secret. Raises LookupError naming where it looked, never the value."""
        if self.env is not None:
            env = os.environ if environ is None else environ
            value = env.get(self.env, "")
            if not value.strip():
                raise LookupError(f"environment variable {self.env} is not set or empty")
            return Secret(value.strip(), f"env {self.env}")
        path = Path(self.file or "")
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise LookupError(f"cannot read secret file {path}: {exc.strerror}") from None
        if not value:
            raise LookupError(f"secret file {path} is empty")
        return Secret(value, f"file {path}")


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and exception text with every known secret removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        message = record.getMessage()
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction() -> None:
    """Attach the redacting filter to every handler of the root logger (call after handlers exist).

    httpx logs full request URLs at INFO, and a Bot API URL contains the token, so httpx and
    httpcore are also held at WARNING.
    """
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    for noisy in ("httpx", "httpcore", "telegram.request", "telegram.ext", "tweepy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
