"""Editors' consoles: chats from which editors approve posts and run commands.

`consoles.<platform>` exposes `CONSOLE` (a class taking its Settings, secrets and a Desk) and
its `Settings` model, loaded by name like adapters.
"""

from __future__ import annotations

import importlib
from typing import Any


def console_class(platform: str) -> Any:
    try:
        module = importlib.import_module(f"consoles.{platform}")
    except ModuleNotFoundError:
        raise ValueError(
            f"no editors' console for platform {platform!r}; available: telegram"
        ) from None
    return module.CONSOLE
