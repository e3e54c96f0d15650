"""The web desk in `newsbot demo`: on, with a demo admin account whose password is made fresh
for each run and printed once (it dies with the demo's database)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

DEMO_DESK_USER = "demo"
DEMO_DESK_KEY_ENV = "DEMO_DESK_KEY"


@dataclass(frozen=True)
class DemoDesk:
    """The demo's desk login; `secret_key` signs its session cookies."""

    user: str = DEMO_DESK_USER
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def configure(self, raw: dict[str, Any], environ: dict[str, str]) -> None:
        """Turn the desk on in the demo's configuration and environment."""
        raw["desk"] = {"enabled": True, "secret_key": {"env": DEMO_DESK_KEY_ENV}}
        environ[DEMO_DESK_KEY_ENV] = self.secret_key

    async def open(self, service: Any) -> str:
        """Create the demo account in the running service's database; the line to print."""
        from bot.webdesk.accounts import Accounts, Role

        await Accounts(service.store.engine).add(self.user, Role.ADMIN, self.password)
        url = f"{service.web_server.url}/desk/"
        return f"  web desk:        {url}  (user {self.user}, password {self.password})\n"
