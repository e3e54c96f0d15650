"""One module per platform. `adapters.<platform>` exposes `ADAPTER`, its Adapter subclass."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapters.base import Adapter


def available_platforms() -> list[str]:
    """Every platform module in this package (base excluded)."""
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.ispkg
    )


def adapter_class(platform: str) -> type[Adapter]:
    """The Adapter class for `platform`, or ValueError naming the platforms there are."""
    if platform not in available_platforms():
        raise ValueError(
            f"unknown platform {platform!r}; available: {', '.join(available_platforms())}"
        )
    module = importlib.import_module(f"adapters.{platform}")
    return module.ADAPTER
