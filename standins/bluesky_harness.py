"""The Bluesky stand-in's harness for the shared contract test (standins/contract.py)."""

from __future__ import annotations

from typing import Any, ClassVar

from starlette.types import ASGIApp

from standins import bluesky as bs
from standins.contract import MAX_TIMEOUT, Fault, Harness, Published

HANDLE = "contract.bsky.social"
APP_PASSWORD = "cont-ract-test-pass"


class BlueskyHarness(Harness):
    platform: ClassVar[str] = "bluesky"

    def __init__(self) -> None:
        self.state = bs.State()
        self.state.add_account(HANDLE, APP_PASSWORD)

    def app(self) -> ASGIApp:
        return bs.create_app(self.state)

    def target(self) -> dict[str, Any]:
        return {
            "name": "bluesky-contract",
            "platform": "bluesky",
            "api_base": self.server.url,
            "identifier": HANDLE,
            "app_password": {"env": "BLUESKY_APP_PASSWORD"},
            "link_card": False,
            "timeout": MAX_TIMEOUT,
        }

    def env(self) -> dict[str, str]:
        return {"BLUESKY_APP_PASSWORD": APP_PASSWORD}

    def published(self) -> list[Published]:
        out = []
        for post in self.state.posts:
            record = post["record"]
            links = tuple(
                feature["uri"]
                for facet in record.get("facets", [])
                for feature in facet["features"]
                if feature.get("$type") == "app.bsky.richtext.facet#link"
            )
            card = (record.get("embed") or {}).get("external", {}).get("uri")
            out.append(
                Published(
                    remote_id=post["uri"],
                    text=record["text"],
                    links=links + ((card,) if card else ()),
                    deleted=post["deleted"],
                )
            )
        return out

    async def arm(self, fault: Fault) -> float | None:
        create = ("com.atproto.server.createSession", "com.atproto.repo.createRecord")
        if fault is Fault.AUTH:
            self.state.revoke_sessions()
            self.state.accounts[0].app_password = "revo-ked0-pass-word"
            return None
        if fault is Fault.RATE_LIMIT:
            wait = 300
            self.state.inject(
                bs.BlueskyFault(
                    status=429,
                    error="RateLimitExceeded",
                    message="Rate Limit Exceeded",
                    retry_after=wait,
                    nsids=create,
                )
            )
            return float(wait)
        if fault is Fault.REFUSED:
            await self.server.stop()
            return None
        # TIMEOUT_AFTER_SEND: the record is made only after the adapter has given up waiting.
        self.state.inject(bs.BlueskyFault(status=0, hang=MAX_TIMEOUT + 1.0))
        return None
