"""The adapters' HTTP client drops idle connections before a 5 s server keep-alive closes them
(a request on a connection closing under it gets no answer: "may have been posted")."""

from __future__ import annotations

import asyncio

import pytest

from adapters import _http
from adapters._http import platform_client


async def test_an_idle_connection_is_not_reused_past_the_keepalive(
    monkeypatch: pytest.MonkeyPatch,
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
    try:
        async with platform_client(5.0) as client:
            assert (await client.get(base)).text == "ok"
            assert (await client.get(base)).text == "ok"
            assert connections == 1  # reused while fresh
            await asyncio.sleep(0.4)
            assert (await client.get(base)).text == "ok"
            assert connections == 2  # the idle one was dropped, not reused
    finally:
        server.close()
