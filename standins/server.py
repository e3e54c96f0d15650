"""Stand-ins run on loopback with the same small server the bot uses for its own endpoint."""

from bot.httpserver import LoopbackServer, serve

__all__ = ["LoopbackServer", "serve"]
