"""One CA bundle in memory per process: the feed downloads, the platform clients and
python-telegram-bot's request layer share bot.tls's context (each would load its own)."""

from __future__ import annotations

import ssl

import pytest

from adapters._http import platform_client
from adapters.telegram.bot_api import telegram_request
from bot.http11 import LeanTransport
from bot.tls import verified_context


async def test_every_client_shares_one_verified_context(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[object] = []
    original = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: object, **kwargs: object) -> None:
        loads.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    verified_context.cache_clear()
    try:
        clients = [platform_client(5.0) for _ in range(3)]
        requests = [telegram_request(), telegram_request(connection_pool_size=8)]
        transport = LeanTransport()
        shared = transport._tls()
        assert len(loads) == 1, "the CA bundle was loaded more than once"
        assert shared is verified_context() is loads[0]
        assert shared.verify_mode is ssl.CERT_REQUIRED and shared.check_hostname
        for client in clients:
            await client.aclose()
        for request in requests:
            await request.shutdown()
        await transport.aclose()
    finally:
        verified_context.cache_clear()
