"""The harness every platform's stand-in provides for the shared contract test.

tests/test_contract.py runs the same cases over every platform `adapters.available_platforms()`
finds, each against its own stand-in, through this small interface only. A platform whose
stand-in has no harness fails the contract test (it is not skipped).

To give a platform a harness, `standins/<platform>.py` defines `HARNESS`: a zero-argument
callable (usually the class) returning a `Harness`. Platforms that share one stand-in server
(Facebook and Instagram share standins/graph.py) each get a thin `standins/<platform>.py` that
imports the right harness class as `HARNESS`.

A harness, in order of use:

- `app()`: the stand-in's ASGI app; the base's `start()` serves it on 127.0.0.1
  (standins.server.LoopbackServer, port 0),
  accepting the credentials in `env()`. Anything else the platform needs (a chat, a page, a
  server for generated images) is set up here too.
- `target()`: the target's raw config dict, exactly as it would appear in config/*.yaml:
  `name`, `platform`, `api_base` (and any other base URL) pointing at the stand-in, every
  secret as `{"env": NAME}`, and `timeout` at most `MAX_TIMEOUT` seconds.
- `env()`: the values of those NAMEs.
- `published()`: what the stand-in has accepted as posts, in order, deleted ones included
  (with `deleted=True`), as `Published` records.
- `await arm(fault)`: the next send fails this way (see `Fault`). For `RATE_LIMIT` it returns
  the wait, in seconds, the stand-in announced (the adapter's RetryLater must carry it).
- `await stop()`: stop everything `start()` started; safe to call twice.

`Harness` is an async context manager: `async with harness_for("x") as harness: ...`.
"""

from __future__ import annotations

import contextlib
import importlib
import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, ClassVar, Self

from starlette.types import ASGIApp

from standins.server import LoopbackServer

#: The longest `timeout` a harness's target may have (TIMEOUT_AFTER_SEND waits it out).
MAX_TIMEOUT = 2.0


class Fault(StrEnum):
    """What `Harness.arm` makes the next send meet, and the outcome the adapter must report."""

    #: The platform refuses the credentials (401 or its own auth error) -> AuthFailure.
    AUTH = "auth"
    #: The platform's rate limit (429 or its equivalent) with its wait -> RetryLater(wait).
    RATE_LIMIT = "rate_limit"
    #: Nothing listens at the API's address any more (connection refused) -> TemporaryFailure.
    REFUSED = "refused"
    #: The post request is received (and may be carried out) but no answer comes within the
    #: target's timeout -> UncertainDelivery.
    TIMEOUT_AFTER_SEND = "timeout_after_send"


@dataclass(frozen=True)
class Published:
    """One post as the stand-in received it."""

    #: The id the adapter reports for the post (SentPost.remote_id).
    remote_id: str
    #: The post's text as readers see it (markup removed; the caption of a photo post).
    text: str
    #: Every hyperlink target the post carries (entities, link attachments, facets), in
    #: order. Empty where the platform has no hyperlinks (the URL is then only in `text`).
    links: tuple[str, ...] = ()
    deleted: bool = False


class Harness(ABC):
    """A platform's stand-in as the contract test drives it. One instance per test."""

    #: The platform name, as in `adapters.available_platforms()`.
    platform: ClassVar[str]

    #: The server running app() on 127.0.0.1, once started.
    server: LoopbackServer | None = None

    @abstractmethod
    def app(self) -> ASGIApp:
        """The stand-in's ASGI application (its state kept on the harness)."""

    async def start(self) -> None:
        """Run the stand-in on 127.0.0.1 (a harness with more servers extends this)."""
        self.server = LoopbackServer(self.app())
        await self.server.start()

    async def stop(self) -> None:
        """Stop whatever start() started. Safe to call twice, and after arm(REFUSED)."""
        if self.server is not None:
            await self.server.stop()

    @abstractmethod
    def target(self) -> dict[str, Any]:
        """The target's raw config dict; secrets as {"env": NAME}; timeout <= MAX_TIMEOUT."""

    @abstractmethod
    def env(self) -> dict[str, str]:
        """The environment the target's secret references resolve from."""

    @abstractmethod
    def published(self) -> list[Published]:
        """Every post the stand-in accepted, in order, deleted ones included."""

    @abstractmethod
    async def arm(self, fault: Fault) -> float | None:
        """Make the next send meet `fault`; for RATE_LIMIT return the announced wait (s)."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def close_port(server: LoopbackServer) -> None:
    """Stop `server` so that its port refuses connections (Fault.REFUSED's usual arming)."""
    await server.stop()


def port_refuses(url_host: str, port: int) -> bool:
    """Whether nothing listens at host:port now (a self-check for a harness's REFUSED)."""
    with contextlib.suppress(OSError), socket.create_connection((url_host, port), timeout=1):
        return False
    return True


def harness_for(platform: str) -> Harness:
    """A fresh harness for `platform`'s stand-in; LookupError saying what to write if none."""
    try:
        module = importlib.import_module(f"standins.{platform}")
    except ModuleNotFoundError as exc:
        if exc.name != f"standins.{platform}":
            raise
        raise LookupError(
            f"platform {platform!r} has no stand-in: write standins/{platform}.py with a "
            "HARNESS (see standins/contract.py)"
        ) from None
    factory = getattr(module, "HARNESS", None)
    if factory is None:
        raise LookupError(f"standins/{platform}.py has no HARNESS (see standins/contract.py)")
    harness = factory()
    if not isinstance(harness, Harness) or harness.platform != platform:
        raise LookupError(f"standins.{platform}.HARNESS does not make a {platform} Harness")
    return harness
