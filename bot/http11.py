"""A lean HTTP/1.1 transport for the downloads of sources, article pages and images.

httpx's default stack (httpcore's pool, h11, anyio streams) cost about 1 ms of CPU per
conditional GET on loopback, ten times the network work: every request walked every pooled
connection, tested each one's expiry through anyio's socket attributes, and ran h11's state
machine and anyio's lock bookkeeping (issue 18's profile). A feed poll needs much less: one GET,
a status line, a few headers and a body framed by Content-Length, chunks or the end of the
connection. This transport does exactly that on asyncio streams, under httpx's client (so
fetch() and its error handling stay as they are), with:

- one small pool per origin (scheme, host, port): at most HOST_CONNECTIONS at a time, the
  idle ones reused last-in first-out and dropped after KEEPALIVE_SECONDS, and idle connections
  kept only for the KEPT_HOSTS most recently used origins: no step costs more with more feeds;
- connections dialled where the SSRF guard says (`netguard.dial_targets`), TLS verified for
  the host name;
- httpx's own exceptions (ConnectError, ConnectTimeout, ReadTimeout, RemoteProtocolError...),
  so a failure reads the same as before;
- bounded reads: a response head over MAX_HEAD_BYTES or MAX_HEADERS lines, a chunk-size line
  over MAX_LINE_BYTES, or a malformed status line, header or framing is a protocol error, and
  every read waits at most the request's read timeout.

Bodies are handed on raw (fetch() inflates gzip/deflate itself, in bounded steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator

import httpx

from bot.netguard import dial_targets
from bot.tls import verified_context

#: Connections to one origin at a time; a polite ceiling for the many feeds a newsroom serves
#: from one host.
HOST_CONNECTIONS = 16
#: Origins whose idle connections are kept between requests (least recently used beyond this
#: are closed once idle): a newsroom's own sites and CDNs, not one per feed.
KEPT_HOSTS = 64
#: An idle connection older than this is closed rather than reused (servers drop them too).
KEEPALIVE_SECONDS = 5.0
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
MAX_LINE_BYTES = 8 * 1024
READ_SIZE = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})
_IDEMPOTENT = frozenset({b"GET", b"HEAD"})


class _StaleConnection(Exception):
    """A reused idle connection was closed by the server before it answered."""


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def reusable(self, now: float) -> bool:
        """Still open, quiet and fresh. Bytes waiting on an idle connection (an unsolicited
        408, say) mean the server is closing it: it must not be read as the next answer."""
        return (
            now - self.idle_since < KEEPALIVE_SECONDS
            and not self.writer.transport.is_closing()
            and not self.reader.at_eof()
            and not self.reader._buffer  # asyncio has no public "bytes waiting"
        )

    def close(self) -> None:
        self.writer.close()


class _OriginPool:
    __slots__ = ("active", "idle", "slots")

    def __init__(self) -> None:
        self.slots = asyncio.Semaphore(HOST_CONNECTIONS)
        self.idle: list[_Connection] = []
        self.active = 0

    def take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self.idle:
            connection = self.idle.pop()
            if connection.reusable(now):
                return connection
            connection.close()
        return None

    def close_idle(self) -> None:
        idle, self.idle = self.idle, []
        for connection in idle:
            connection.close()


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over asyncio streams, pooled per origin (see the module docstring)."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._origins: OrderedDict[tuple[str, str, int], _OriginPool] = OrderedDict()
        self._closed = False

    def _tls(self) -> ssl.SSLContext:
        # Looked up on first https use: loading the CA bundle costs ~10 ms and memory, once.
        if self._ssl_context is None:
            self._ssl_context = verified_context()
        return self._ssl_context

    def _pool(self, origin: tuple[str, str, int]) -> _OriginPool:
        pool = self._origins.get(origin)
        if pool is None:
            pool = self._origins[origin] = _OriginPool()
            self._forget_idle_origins()
        else:
            self._origins.move_to_end(origin)
        return pool

    def _forget_idle_origins(self) -> None:
        excess = len(self._origins) - KEPT_HOSTS
        if excess <= 0:
            return
        for origin in list(self._origins)[:excess]:
            pool = self._origins[origin]
            if pool.active == 0:
                pool.close_idle()
                del self._origins[origin]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("the HTTP client is closed", request=request)
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}", request=request)
        host = url.host
        port = url.port or (443 if scheme == "https" else 80)
        timeouts = request.extensions.get("timeout", {})
        pool = self._pool((scheme, host, port))
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await pool.slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection in time", request=request) from None
        pool.active += 1
        connection: _Connection | None = None
        try:
            head = _request_head(request)
            body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
            answer: _Answer | None = None
            connection = pool.take_idle()
            if connection is not None:
                try:
                    answer = await _exchange(connection, head, body, timeouts, request)
                except _StaleConnection:
                    # A kept-alive connection the server had closed: a GET goes again, once,
                    # on a fresh connection (nothing was answered, so nothing was done twice).
                    connection.close()
                    if request.method.encode() not in _IDEMPOTENT:
                        raise _unanswered(request) from None
            if answer is None:
                connection = await self._connect(scheme, host, port, timeouts, request)
                try:
                    answer = await _exchange(connection, head, body, timeouts, request)
                except _StaleConnection:
                    raise _unanswered(request) from None
        except BaseException:
            if connection is not None:
                connection.close()
            pool.active -= 1
            pool.slots.release()
            raise
        status, reason, headers, framing, length, keep_alive = answer
        stream = _ResponseBody(
            self, pool, connection, request, framing, length, keep_alive, timeouts.get("read")
        )
        return httpx.Response(
            status,
            headers=headers,
            stream=stream,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def _connect(
        self,
        scheme: str,
        host: str,
        port: int,
        timeouts: dict[str, float | None],
        request: httpx.Request,
    ) -> _Connection:
        tls = self._tls() if scheme == "https" else None
        failure: Exception | None = None
        for target in await dial_targets(host, port, request):
            try:
                async with asyncio.timeout(timeouts.get("connect")):
                    reader, writer = await asyncio.open_connection(
                        target,
                        port,
                        ssl=tls,
                        server_hostname=host if tls is not None else None,
                        limit=MAX_HEAD_BYTES,
                    )
                return _Connection(reader, writer)
            except TimeoutError:
                failure = httpx.ConnectTimeout("could not connect in time", request=request)
            except (OSError, ssl.SSLError) as exc:
                failure = httpx.ConnectError(str(exc) or type(exc).__name__, request=request)
        assert failure is not None  # dial_targets never returns an empty list
        raise failure

    def _release(self, pool: _OriginPool, connection: _Connection, reusable: bool) -> None:
        if reusable and not self._closed and len(pool.idle) < HOST_CONNECTIONS:
            connection.idle_since = time.monotonic()
            pool.idle.append(connection)
        else:
            connection.close()
        pool.active -= 1
        pool.slots.release()

    async def aclose(self) -> None:
        self._closed = True
        origins, self._origins = list(self._origins.values()), OrderedDict()
        for pool in origins:
            pool.close_idle()


def _unanswered(request: httpx.Request) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(
        "the server closed the connection without answering", request=request
    )


def _request_head(request: httpx.Request) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    for name, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\0" in value or b":" in name:
            # A value taken from a server (an ETag) must not smuggle a header in.
            raise httpx.LocalProtocolError(
                f"refusing to send header {name.decode('latin-1')!r}: it contains a line break",
                request=request,
            )
        lines.append(name + b": " + value)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


_Answer = tuple[int, bytes, list[tuple[bytes, bytes]], str, int, bool]


async def _exchange(
    connection: _Connection,
    head: bytes,
    body: bytes,
    timeouts: dict[str, float | None],
    request: httpx.Request,
) -> _Answer:
    """Send the request and read the response head: (status, reason, headers, framing,
    length, keep_alive). framing is "none", "length", "chunked" or "close"."""
    writer, reader = connection.writer, connection.reader
    try:
        async with asyncio.timeout(timeouts.get("write")):
            writer.write(head + body if body else head)
            await writer.drain()
    except TimeoutError:
        raise httpx.WriteTimeout("the server stopped reading", request=request) from None
    except OSError:
        raise _StaleConnection from None
    try:
        # One deadline for the whole head (a read timeout per line would let a server drip
        # a hundred header lines, each just in time).
        async with asyncio.timeout(timeouts.get("read")):
            status_line = await _read_line(reader, request, stale_if_empty=True)
            while True:
                version, status, reason = _status_line(status_line, request)
                headers = await _read_headers(reader, request)
                if not 100 <= status < 200 or status == 101:
                    break
                # Informational (100 Continue, 103 Early Hints): the answer follows.
                status_line = await _read_line(reader, request)
    except TimeoutError:
        raise httpx.ReadTimeout("the server stopped sending", request=request) from None
    framing, length = _framing(request.method, status, headers, request)
    keep_alive = version == b"HTTP/1.1" and framing != "close"
    for name, value in headers:
        if name.lower() == b"connection" and b"close" in value.lower():
            keep_alive = False
    return status, reason, headers, framing, length, keep_alive


async def _read_line(
    reader: asyncio.StreamReader, request: httpx.Request, *, stale_if_empty: bool = False
) -> bytes:
    """One line, without its line break; the caller bounds the wait."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if stale_if_empty and not exc.partial:
            raise _StaleConnection from None
        raise httpx.RemoteProtocolError(
            "the server closed the connection in the middle of a response line",
            request=request,
        ) from None
    except asyncio.LimitOverrunError:
        raise httpx.RemoteProtocolError(
            f"a response line longer than {MAX_HEAD_BYTES} bytes", request=request
        ) from None
    except ConnectionResetError:
        if stale_if_empty:
            raise _StaleConnection from None
        raise httpx.ReadError("the server reset the connection", request=request) from None
    except OSError as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from None
    return line.rstrip(b"\r\n")


def _status_line(line: bytes, request: httpx.Request) -> tuple[bytes, int, bytes]:
    version, _, rest = line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise httpx.RemoteProtocolError(
            f"not an HTTP/1.x status line: {line[:80]!r}", request=request
        )
    return version, int(code), reason


async def _read_headers(
    reader: asyncio.StreamReader, request: httpx.Request
) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    size = 0
    while True:
        line = await _read_line(reader, request)
        if not line:
            return headers
        size += len(line)
        if size > MAX_HEAD_BYTES or len(headers) >= MAX_HEADERS:
            raise httpx.RemoteProtocolError(
                f"response headers over {MAX_HEADERS} lines or {MAX_HEAD_BYTES} bytes",
                request=request,
            )
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name:
            raise httpx.RemoteProtocolError(
                f"malformed response header line {line[:80]!r}", request=request
            )
        headers.append((name, value.strip(b" \t")))


def _framing(
    method: str, status: int, headers: list[tuple[bytes, bytes]], request: httpx.Request
) -> tuple[str, int]:
    if method == "HEAD" or status in _NO_BODY_STATUSES or status < 200:
        return "none", 0
    lengths = set()
    chunked = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
            if not chunked:
                return "close", 0  # some other coding: the body runs to the end
        elif lowered == b"content-length":
            lengths.update(part.strip() for part in value.split(b","))
    if chunked:
        return "chunked", 0
    if lengths:
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            raise httpx.RemoteProtocolError(
                f"unusable Content-Length {sorted(lengths)!r}", request=request
            )
        return "length", int(next(iter(lengths)))
    return "close", 0


class _ResponseBody(httpx.AsyncByteStream):
    """The raw body, read as it is iterated; closing it gives the connection back to its pool
    when the body was read to its end (and the server keeps connections), else closes it."""

    def __init__(
        self,
        transport: LeanTransport,
        pool: _OriginPool,
        connection: _Connection,
        request: httpx.Request,
        framing: str,
        length: int,
        keep_alive: bool,
        read_timeout: float | None,
    ) -> None:
        self._transport = transport
        self._pool = pool
        self._connection = connection
        self._request = request
        self._framing = framing
        self._length = length
        self._keep_alive = keep_alive
        self._read_timeout = read_timeout
        self._complete = framing == "none"
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._framing == "length":
            async for part in self._fixed(self._length):
                yield part
        elif self._framing == "chunked":
            async for part in self._chunked():
                yield part
        elif self._framing == "close":
            while True:
                data = await self._read(READ_SIZE)
                if not data:
                    break
                yield data
        self._complete = True

    async def _read(self, size: int) -> bytes:
        try:
            async with asyncio.timeout(self._read_timeout):
                return await self._connection.reader.read(size)
        except TimeoutError:
            raise httpx.ReadTimeout("the server stopped sending", request=self._request) from None
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=self._request) from None

    async def _line(self) -> bytes:
        async with self._deadline():
            return await _read_line(self._connection.reader, self._request)

    @contextlib.asynccontextmanager
    async def _deadline(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._read_timeout):
                yield
        except TimeoutError:
            raise httpx.ReadTimeout("the server stopped sending", request=self._request) from None

    async def _fixed(self, length: int) -> AsyncIterator[bytes]:
        left = length
        while left > 0:
            data = await self._read(min(left, READ_SIZE))
            if not data:
                raise httpx.RemoteProtocolError(
                    f"the server closed the connection {left} bytes short of its Content-Length",
                    request=self._request,
                )
            left -= len(data)
            yield data

    async def _chunked(self) -> AsyncIterator[bytes]:
        reader = self._connection.reader
        while True:
            line = await self._line()
            size_text = line.split(b";", 1)[0].strip()
            if len(line) > MAX_LINE_BYTES or not size_text or len(size_text) > 16:
                raise httpx.RemoteProtocolError(
                    f"malformed chunk size line {line[:40]!r}", request=self._request
                )
            try:
                size = int(size_text, 16)
            except ValueError:
                raise httpx.RemoteProtocolError(
                    f"malformed chunk size {size_text[:40]!r}", request=self._request
                ) from None
            if size == 0:
                async with self._deadline():
                    await _read_headers(reader, self._request)  # trailers
                return
            async for part in self._fixed(size):
                yield part
            if await self._line():
                raise httpx.RemoteProtocolError(
                    "a chunk longer than its declared size", request=self._request
                )

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        self._transport._release(self._pool, self._connection, self._complete and self._keep_alive)
