"""Stand-ins run on loopback with the same small server the bot uses for its own endpoint.

`download` is how a stand-in fetches a URL the bot gave it (a photo, an Instagram image), as
the platform's servers do.
"""

from __future__ import annotations

import ssl
from functools import cache

import httpx

from bot.httpserver import LoopbackServer, serve

__all__ = ["LoopbackServer", "download", "serve"]


@cache
def _tls() -> ssl.SSLContext:
    # One context per process: loading the CA bundle costs tens of milliseconds of CPU, and the
    # stand-ins share the event loop with the bot in the demo and the latency benchmark.
    return ssl.create_default_context()


async def download(url: str, timeout: float = 5.0) -> httpx.Response:
    """GET `url` in full; raises httpx.HTTPError as an httpx client would."""
    async with httpx.AsyncClient(timeout=timeout, verify=_tls()) as client:
        return await client.get(url)
