"""The adapters' HTTP clients (plain httpx, and python-telegram-bot's request layer) drop idle
connections before a 5 s server keep-alive closes them (a request on a connection closing
under it gets no answer: "may have been posted")."""

from __future__ import annotations

import asyncio

import pytest

from adapters import _http
from adapters._http import platform_client
from adapters.telegram.bot_api import telegram_request


@pytest.mark.parametrize("client", ["platform_client", "telegram_request"])
async def test_an_idle_connection_is_not_reused_past_the_keepalive(
    monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    assert _http.KEEPALIVE_SECONDS < 5.0  # under Apache's and uvicorn's default keep-alive
    monkeypatch.setattr(_http, "KEEPALIVE_SECONDS", 0.2)
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    if client == "platform_client":
        http = platform_client(5.0)

        async def get() -> bytes:
            return (await http.get(base)).content

        close = http.aclose
    else:
        request = telegram_request(connection_pool_size=1)
        await request.initialize()

        async def get() -> bytes:
            return (await request.do_request(base, "GET"))[1]

        close = request.shutdown
    try:
        assert await get() == b"ok"
        assert await get() == b"ok"
        assert connections == 1  # reused while fresh
        await asyncio.sleep(0.4)
        assert await get() == b"ok"
        assert connections == 2  # the idle one was dropped, not reused
    finally:
        await close()
        server.close()
