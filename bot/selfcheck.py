"""The setup self-test: ask each platform whether every target and the editors' chat really
work (login, page or chat, rights to post), without posting. Used by `check-config --online`
and by the daemon at start-up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING

from bot.config import Config
from bot.outcomes import SetupCheck, SetupStatus
from bot.secrets import redact
from consoles import console_class

if TYPE_CHECKING:
    from adapters import Adapter

#: Longest wait for one target's answers; a platform that hangs must not stall the check.
CHECK_TIMEOUT = 30.0


async def _guarded(
    name: str, check: Awaitable[list[SetupCheck]], timeout: float
) -> list[SetupCheck]:
    try:
        return await asyncio.wait_for(check, timeout)
    except TimeoutError:
        return [SetupCheck(name, SetupStatus.FAILED, f"no answer within {timeout:g}s")]
    except Exception as exc:  # one broken platform never stops the others' checks
        detail = redact(f"{type(exc).__name__}: {exc}")
        return [SetupCheck(name, SetupStatus.FAILED, detail)]


async def check_setup(
    config: Config, adapters: Iterable[Adapter], timeout: float = CHECK_TIMEOUT
) -> list[SetupCheck]:
    """One SetupCheck per target (in config order) and one for the editors' chat."""
    jobs = []
    for adapter in adapters:
        if not adapter.settings.enabled:
            jobs.append(_disabled(adapter.name))
        else:
            jobs.append(_guarded(adapter.name, adapter.verify(), timeout))
    if config.editors is not None:
        console = console_class(config.editors.platform)
        verify = console.verify_settings(config.editors, config.editor_secrets)
        jobs.append(_guarded("editors' chat", verify, timeout))
    return [check for checks in await asyncio.gather(*jobs) for check in checks]


async def _disabled(name: str) -> list[SetupCheck]:
    return [SetupCheck(name, SetupStatus.SKIPPED, "disabled in the config")]


def startup_message(checks: list[SetupCheck]) -> str:
    """The one message the editors get when the daemon starts."""
    targets = [c for c in checks if c.name != "editors' chat"]
    ok = sum(1 for c in targets if c.status is SetupStatus.OK)
    lines = [f"newsbot started: {ok} of {len(targets)} targets OK"]
    lines += [str(c) for c in checks if c.status is not SetupStatus.OK]
    return "\n".join(lines)
