"""The HTTP client every platform adapter on plain httpx uses."""

from __future__ import annotations

from typing import Any

import httpx

from bot.tls import verified_context

#: Idle connections are dropped before the 5 s keep-alive of Apache, uvicorn and many
#: proxies: a request sent on a connection the server closes at that instant gets no answer
#: (a ReadError), and for a post that means "it may have been published" (issue 18: posts
#: five seconds apart met the server's close and waited for a resend).
KEEPALIVE_SECONDS = 4.0


def platform_client(timeout: float, **options: Any) -> httpx.AsyncClient:
    """An httpx client for a platform's API, with the keep-alive above and the process's
    shared TLS context (one CA bundle in memory, not one per client)."""
    options.setdefault("verify", verified_context())
    return httpx.AsyncClient(
        timeout=timeout, limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS), **options
    )
