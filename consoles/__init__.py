"""Editors' consoles: chats from which editors approve posts and run commands.

`consoles.<platform>` exposes `CONSOLE` (a `consoles.base.Console` subclass taking its Settings,
secrets and the Desk) and its `Settings` model, loaded by name like adapters.
"""

from __future__ import annotations

import importlib

from consoles.base import Console


def console_class(platform: str) -> type[Console]:
    try:
        module = importlib.import_module(f"consoles.{platform}")
    except ModuleNotFoundError:
        raise ValueError(
            f"no editors' console for platform {platform!r}; available: telegram"
        ) from None
    console: type[Console] = module.CONSOLE
    return console
