"""The `desk:` section of the configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.config_types import parse_duration
from bot.secrets import SecretRef


class DeskConfig(BaseModel):
    """The web desk at /desk. Off unless `enabled` and a `secret_key` to sign sessions."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    #: Signs the session cookies: {env: NAME} or {file: /path}, at least 32 characters.
    secret_key: SecretRef | None = None
    #: How long a login lasts.
    session_lifetime: float = 12 * 3600.0
    #: Send the session cookie over HTTPS only (set when a TLS proxy fronts the bot).
    secure_cookie: bool = False
    #: Failed logins allowed per account and per client address within `login_window`.
    login_attempts: int = Field(default=5, ge=1, le=100)
    login_window: float = 900.0

    _durations = field_validator("session_lifetime", "login_window", mode="before")(parse_duration)
