"""What every editors' console is: built from its Settings, its secrets and the desk, it runs
until told to stop and can alert the editors. It reaches the core only through the desk
(bot.desk.Desk): commands, approval decisions, previews due; never the store."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import ClassVar

from pydantic import BaseModel

from bot.desk import Desk
from bot.secrets import Secret


class Console(ABC):
    Settings: ClassVar[type[BaseModel]]

    def __init__(self, settings: BaseModel, secrets: dict[str, Secret], desk: Desk) -> None:
        self.settings = settings
        self.secrets = secrets
        self.desk = desk

    @abstractmethod
    async def run(self, stop: asyncio.Event) -> None:
        """Serve the editors until `stop` is set: show previews due, answer commands."""

    @abstractmethod
    async def alert(self, text: str) -> None:
        """Tell the editors something needs their attention (never raises for a lost line)."""
