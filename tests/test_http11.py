"""The lean HTTP/1.1 transport (bot/http11.py) against a scripted server on loopback: framing,
keep-alive reuse, stale connections, hostile answers, per-host limits and fetch() on top."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from bot import http11
from bot.config import FetchConfig
from bot.fetch import FetchError, fetch, make_client
from bot.http11 import LeanTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]


class ScriptedServer:
    """A TCP server on 127.0.0.1: `handler(reader, writer, request_head)` answers one request
    and says whether to keep the connection open for another."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.ssl: ssl.SSLContext | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                if not await self.handler(reader, writer, head):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()


def answer(body: bytes, *extra: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def always(response: bytes, keep: bool = True) -> Handler:
    async def handler(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _h: bytes) -> bool:
        writer.write(response)
        await writer.drain()
        return keep

    return handler


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=LeanTransport(), timeout=2.0) as made:
        yield made


async def test_content_length_body_and_connection_reuse(client: httpx.AsyncClient) -> None:
    server = ScriptedServer(always(answer(b"<rss/>", 'ETag: "v1"')))
    async with server as base:
        for _ in range(3):
            response = await client.get(f"{base}/feed?x=1")
            assert response.status_code == 200
            assert response.content == b"<rss/>"
            assert response.headers["etag"] == '"v1"'
    assert server.connections == 1  # kept alive and reused
    assert len(server.requests) == 3
    first = server.requests[0].decode()
    assert first.startswith("GET /feed?x=1 HTTP/1.1\r\n")
    assert "\r\nhost: 127.0.0.1:" in first.lower()


@pytest.mark.parametrize(
    ("response", "body", "connections"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4;name=x\r\n<rss\r\n2\r\n/>\r\n0\r\nX-Trailer: 1\r\n\r\n",
            b"<rss/>",
            1,
            id="chunked, with an extension and a trailer: reused",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\n\r\nall of it", b"all of it", 2, id="until the server closes"
        ),
        pytest.param(
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok", 2, id="HTTP/1.0: not reused"
        ),
        pytest.param(answer(b"ok", "Connection: close"), b"ok", 2, id="Connection: close"),
        pytest.param(
            b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: "v"\r\n\r\n',
            b"",
            1,
            id="informational, then a 304 without a body: reused",
        ),
    ],
)
async def test_framing_and_whether_the_connection_is_kept(
    client: httpx.AsyncClient, response: bytes, body: bytes, connections: int
) -> None:
    # Until-close framing: the server ends the body by closing; the others keep it open.
    server = ScriptedServer(always(response, keep=body != b"all of it"))
    async with server as base:
        for _ in range(2):
            assert (await client.get(base)).content == body
    assert server.connections == connections


async def test_a_kept_connection_the_server_closed_is_replaced_for_a_get(
    client: httpx.AsyncClient,
) -> None:
    """The server answers with keep-alive, then drops the connection: the next GET finds the
    idle connection dead (or dying) and goes out again, once, on a fresh one."""
    server = ScriptedServer(always(answer(b"ok"), keep=False))
    async with server as base:
        assert (await client.get(base)).content == b"ok"
        await asyncio.sleep(0.05)
        assert (await client.get(base)).content == b"ok"
    assert server.connections == 2


async def test_a_stale_connection_that_swallows_the_request_is_retried_once() -> None:
    """The closing race: the connection looks alive, the request is written, and the server
    closes without a byte. A GET is sent again on a fresh connection."""
    served = 0

    async def handler(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _h: bytes) -> bool:
        nonlocal served
        served += 1
        if served == 2:
            return False  # closes without answering
        writer.write(answer(b"ok"))
        await writer.drain()
        return True

    server = ScriptedServer(handler)
    async with (
        httpx.AsyncClient(transport=LeanTransport(), timeout=2.0) as client,
        server as base,
    ):
        assert (await client.get(base)).content == b"ok"
        assert (await client.get(base)).content == b"ok"
        with pytest.raises(httpx.RemoteProtocolError, match="without answering"):
            # Not a GET: never sent twice.
            server.handler = always(b"", keep=False)
            await client.post(base, content=b"x")
    assert served >= 3


async def test_unsolicited_bytes_on_an_idle_connection_are_not_read_as_the_answer(
    client: httpx.AsyncClient,
) -> None:
    async def handler(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _h: bytes) -> bool:
        writer.write(answer(b"ok"))
        # A 408 sent on the idle connection before the client asks again.
        writer.write(answer(b"timeout", status="408 Request Timeout"))
        await writer.drain()
        return True

    server = ScriptedServer(handler)
    async with server as base:
        assert (await client.get(base)).content == b"ok"
        await asyncio.sleep(0.05)
        second = await client.get(base)
        assert second.status_code == 200 and second.content == b"ok"
    assert server.connections == 2


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (b"SPDY/3 200 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed response header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello", "unusable Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "unusable Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "short of its Content-Length"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "malformed chunk size",
        ),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", "longer than"),
        (
            b"HTTP/1.1 200 OK\r\n" + b"X: a\r\n" * 101 + b"\r\n",
            "over 100 lines",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-", "in the middle of a response line"),
    ],
)
async def test_malformed_answers_are_protocol_errors(
    client: httpx.AsyncClient, response: bytes, message: str
) -> None:
    async with ScriptedServer(always(response, keep=False)) as base:
        with pytest.raises(httpx.RemoteProtocolError, match=message):
            await client.get(base)


async def test_a_server_that_drips_its_head_times_out_as_a_whole() -> None:
    """One header line every 0.3 s, each within a 0.5 s read timeout: the head as a whole
    must still arrive within it."""

    async def handler(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _h: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for number in range(10):
            await asyncio.sleep(0.3)
            writer.write(f"X-{number}: y\r\n".encode())
            await writer.drain()
        return False

    async with (
        httpx.AsyncClient(transport=LeanTransport(), timeout=0.5) as client,
        ScriptedServer(handler) as base,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await client.get(base)


async def test_a_stalled_body_is_a_read_timeout() -> None:
    async def handler(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _h: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(2)
        return False

    async with (
        httpx.AsyncClient(transport=LeanTransport(), timeout=0.3) as client,
        ScriptedServer(handler) as base,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await client.get(base)


async def test_connection_refused_is_a_connect_error(client: httpx.AsyncClient) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(httpx.ConnectError):
        await client.get(f"http://127.0.0.1:{port}/")


async def test_a_header_value_with_a_line_break_is_never_sent(client: httpx.AsyncClient) -> None:
    """An ETag comes from the server; sent back, it must not smuggle a header in."""
    server = ScriptedServer(always(answer(b"ok")))
    async with server as base:
        with pytest.raises(httpx.LocalProtocolError, match="line break"):
            await client.get(base, headers={"If-None-Match": '"v"\r\nX-Injected: 1'})
    assert server.requests == []


async def test_one_host_gets_at_most_host_connections_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http11, "HOST_CONNECTIONS", 3)
    open_now = most = 0

    async def handler(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _h: bytes) -> bool:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        await asyncio.sleep(0.05)
        open_now -= 1
        writer.write(answer(b"ok"))
        await writer.drain()
        return True

    server = ScriptedServer(handler)
    async with (
        httpx.AsyncClient(transport=LeanTransport(), timeout=5.0) as client,
        server as base,
    ):
        answers = await asyncio.gather(*(client.get(f"{base}/{n}") for n in range(12)))
    assert [a.content for a in answers] == [b"ok"] * 12
    assert most == 3
    assert server.connections == 3


async def test_idle_connections_are_kept_for_recent_hosts_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Origins beyond KEPT_HOSTS lose their idle connections, least recently used first, so
    the pool's bookkeeping does not grow with the number of feeds."""
    monkeypatch.setattr(http11, "KEPT_HOSTS", 2)
    servers = [ScriptedServer(always(answer(b"ok"))) for _ in range(4)]
    transport = LeanTransport()
    async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
        bases = [await server.__aenter__() for server in servers]
        try:
            for base in bases:
                assert (await client.get(base)).content == b"ok"
            assert len(transport._origins) == 2
            # The first host's idle connection was closed: asking again opens a new one.
            assert (await client.get(bases[0])).content == b"ok"
            assert servers[0].connections == 2
            # The most recent host still had its connection.
            assert (await client.get(bases[3])).content == b"ok"
            assert servers[3].connections == 1
        finally:
            for server in servers:
                await server.__aexit__()


async def test_an_idle_connection_past_its_keepalive_is_not_reused(
    monkeypatch: pytest.MonkeyPatch, client: httpx.AsyncClient
) -> None:
    monkeypatch.setattr(http11, "KEEPALIVE_SECONDS", 0.05)
    server = ScriptedServer(always(answer(b"ok")))
    async with server as base:
        await client.get(base)
        await asyncio.sleep(0.1)
        await client.get(base)
    assert server.connections == 2


async def test_fetch_on_the_transport_inflates_in_bounded_steps_and_keeps_its_caps() -> None:
    """fetch() gets the raw body from the transport: gzip is inflated by fetch, and a bomb is
    stopped at the cap; a chunked body over the cap is stopped too."""
    page = b"<rss>" + b"x" * 5000 + b"</rss>"
    bomb = gzip.compress(b"\0" * 5_000_000)
    routes = {
        b"/gz": answer(gzip.compress(page), "Content-Encoding: gzip"),
        b"/bomb": answer(bomb, "Content-Encoding: gzip"),
        b"/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"4000\r\n" + b"y" * 0x4000 + b"\r\n" for _ in range(10))
        + b"0\r\n\r\n",
    }

    async def handler(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
        path = head.split(b" ", 2)[1]
        writer.write(routes[path])
        await writer.drain()
        return True

    client = make_client(FetchConfig())
    try:
        async with ScriptedServer(handler) as base:
            result = await fetch(client, f"{base}/gz", max_bytes=100_000, deadline=5)
            assert result.content == page
            with pytest.raises(FetchError, match="compression bomb"):
                await fetch(client, f"{base}/bomb", max_bytes=100_000, deadline=5)
            with pytest.raises(FetchError, match="more than 100000 bytes"):
                await fetch(client, f"{base}/chunked", max_bytes=100_000, deadline=5)
            # The connection the cap abandoned mid-body was not handed to the next request.
            assert (await fetch(client, f"{base}/gz", max_bytes=100_000, deadline=5)).content
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (openssl's command line)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_is_verified_for_the_host_name_and_kept_alive(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    server = ScriptedServer(always(answer(b"<rss/>")))
    server.ssl = server_side
    async with server as base:
        secure = base.replace("http://127.0.0.1", "https://localhost")
        async with httpx.AsyncClient(transport=LeanTransport(trusting), timeout=5) as client:
            assert (await client.get(secure)).content == b"<rss/>"
            assert (await client.get(secure)).content == b"<rss/>"
        assert server.connections == 1
        # The system's trust store does not know this certificate: refused, nothing read.
        async with httpx.AsyncClient(transport=LeanTransport(), timeout=5) as strict:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await strict.get(secure)
    assert len(server.requests) == 2
