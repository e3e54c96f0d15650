"""HTTP downloads for sources, article pages and images: conditional GET, size caps that hold
for compressed bodies too, total deadlines, and redirects followed one checked hop at a time."""

from __future__ import annotations

import asyncio
import contextlib
import io
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from bot.config import FetchConfig
from bot.http11 import LeanTransport
from bot.netguard import BlockedURL, Unresolvable, URLCheck, parsed_url, url_host

REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Image formats every platform takes.
IMAGE_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP"})
MAX_IMAGE_PIXELS = 50_000_000


class FetchError(Exception):
    """A download failed; the message names the URL and what went wrong."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RefusedURL(FetchError):
    """The SSRF guard refused a URL (or a redirect hop): nothing was downloaded from it."""


@dataclass(frozen=True)
class FetchResult:
    url: str  # final URL after redirects
    status: int
    content: bytes
    content_type: str
    etag: str | None
    last_modified: str | None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def make_client(config: FetchConfig) -> DownloadClient:
    return DownloadClient(config)


class DownloadClient(httpx.AsyncClient):
    """The client for sources, article pages and images: httpx's client over a lean HTTP/1.1
    transport pooled per host that dials where the SSRF guard judged (bot/http11.py; httpx's
    default stack cost ten times the network work of a poll). fetch() hands its GETs
    straight to that transport (`open`): the client's layers (cookies, auth, its redirect
    bookkeeping, a second URL parse) were a third of what was left and fetch() needs none."""

    def __init__(self, config: FetchConfig) -> None:
        self.lean = LeanTransport()
        super().__init__(
            headers={"User-Agent": config.user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
            # fetch() follows redirects itself, so the SSRF guard sees every hop.
            follow_redirects=False,
            max_redirects=config.max_redirects,
            transport=self.lean,
        )

    @contextlib.asynccontextmanager
    async def open(self, url: str, headers: dict[str, str]) -> AsyncIterator[httpx.Response]:
        """GET `url` on the transport; the response's body is read as it is iterated."""
        merged = httpx.Headers(self.headers)
        merged.update(headers)
        request = httpx.Request(
            "GET", parsed_url(url), headers=merged, extensions={"timeout": self.timeout.as_dict()}
        )
        response = await self.lean.handle_async_request(request)
        response.request = request
        try:
            yield response
        finally:
            await response.aclose()


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    deadline: float,
    etag: str | None = None,
    last_modified: str | None = None,
    accept: str = "*/*",
    check: URLCheck | None = None,
) -> FetchResult:
    """GET `url`, sending validators for a conditional GET. A 304 has no content.

    The size cap counts decoded bytes, inflated in bounded steps, so a gzip bomb is stopped
    at the cap; the deadline bounds the whole exchange, redirects included, so a server that
    never finishes cannot hang a poll. `check` (the SSRF guard) vets the URL and every
    redirect hop before it is requested; only http and https are ever fetched.
    """
    headers = {"Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        async with asyncio.timeout(deadline):
            return await _follow(client, url, headers, max_bytes, check)
    except TimeoutError:
        raise FetchError(f"{url}: timed out: no complete answer within {deadline:g}s") from None
    except httpx.TimeoutException as exc:
        raise FetchError(f"{url}: timed out: {_timeout_kind(exc)}") from None
    except httpx.ConnectError as exc:
        raise FetchError(f"{url}: cannot connect ({exc or 'connection refused'})") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "could not connect in time"
    if isinstance(exc, httpx.ReadTimeout):
        return "the server stopped sending"
    return type(exc).__name__


async def _follow(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    max_bytes: int,
    check: URLCheck | None,
) -> FetchResult:
    hop, seen = url, {url}
    for _ in range(client.max_redirects + 1):
        via = "" if hop == url else f" (redirected to {hop})"
        try:
            url_host(hop)  # http(s) only, with a host, even without a guard
            if check is not None:
                await check(hop)
        except BlockedURL as exc:
            raise RefusedURL(f"{url}{via}: refused: {exc}") from None
        except Unresolvable as exc:
            raise FetchError(f"{url}{via}: {exc}") from None
        with check.pinned() if check is not None else contextlib.nullcontext():
            outcome = await _get(client, hop, headers, max_bytes, url)
        if isinstance(outcome, FetchResult):
            return outcome
        if outcome in seen:
            raise FetchError(f"{url}: redirect loop ({hop} redirects back to {outcome})")
        seen.add(outcome)
        hop = outcome
    raise FetchError(f"{url}: too many redirects (more than {client.max_redirects})")


async def _get(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], max_bytes: int, asked: str
) -> FetchResult | str:
    """One request: the result, or the next URL when the answer is a redirect."""
    name = asked if asked == url else f"{asked} (redirected to {url})"
    opened = (
        client.open(url, headers)
        if isinstance(client, DownloadClient)
        else client.stream("GET", url, headers=headers, follow_redirects=False)
    )
    async with opened as response:
        if response.status_code == 304:
            # Read the (empty) body so the connection goes back to the pool for reuse.
            await response.aread()
            return _result(response, b"")
        if response.status_code in REDIRECTS and response.headers.get("Location"):
            try:
                return str(response.url.join(response.headers["Location"]))
            except httpx.InvalidURL as exc:
                raise FetchError(f"{name}: unusable redirect Location: {exc}") from None
        if response.status_code >= 400:
            raise FetchError(f"{name}: HTTP {response.status_code}", response.status_code)
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"{name}: {declared} bytes is over the {max_bytes}-byte cap")
        inflater = _inflater(name, response.headers.get("Content-Encoding", ""))
        chunks: list[bytes] = []
        raw_size = size = 0
        async for raw in response.aiter_raw():
            raw_size += len(raw)
            if raw_size > max_bytes:
                raise FetchError(f"{name}: more than {max_bytes} bytes; download stopped")
            data = inflater.feed(raw, max_bytes - size) if inflater else raw
            size += len(data)
            if size > max_bytes:
                raise FetchError(
                    f"{name}: inflates to more than {max_bytes} bytes (a compression bomb?); "
                    "download stopped"
                )
            chunks.append(data)
        return _result(response, b"".join(chunks))


class _Inflater:
    """gzip/deflate decoding that never produces more than it is asked for in one step
    (httpx's own decoder inflates a whole chunk at once: 64 KB of a bomb is 64 MB)."""

    def __init__(self, name: str, encoding: str) -> None:
        self.name = name
        self.deflate = encoding == "deflate"
        self.started = False
        self.engine = zlib.decompressobj(zlib.MAX_WBITS if self.deflate else zlib.MAX_WBITS | 16)

    def feed(self, data: bytes, room: int) -> bytes:
        try:
            out = self.engine.decompress(data, room + 1)
        except zlib.error as exc:
            if not (self.deflate and not self.started):
                raise FetchError(f"{self.name}: corrupt compressed body: {exc}") from None
            # Some servers send raw deflate without the zlib header.
            self.engine = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._retry(data, room)
        self.started = True
        return out

    def _retry(self, data: bytes, room: int) -> bytes:
        try:
            return self.engine.decompress(data, room + 1)
        except zlib.error as exc:
            raise FetchError(f"{self.name}: corrupt compressed body: {exc}") from None


def _inflater(name: str, header: str) -> _Inflater | None:
    encoding = header.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Inflater(name, "deflate" if encoding == "deflate" else "gzip")
    raise FetchError(f"{name}: unsupported Content-Encoding {header!r} (asked for gzip, deflate)")


def _result(response: httpx.Response, content: bytes) -> FetchResult:
    return FetchResult(
        url=str(response.url),
        status=response.status_code,
        content=content,
        content_type=response.headers.get("Content-Type", ""),
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
    )


def image_problem(content: bytes) -> str | None:
    """Why `content` is not a usable JPEG, PNG, GIF or WebP image, or None when it is one."""
    if not content:
        return "empty body, not an image"
    # Pillow only when an image is checked: the poll path never needs it (start-up memory).
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:
            kind, (width, height) = image.format or "", image.size
            if kind not in IMAGE_FORMATS:
                return f"a {kind or 'unknown'} image, not JPEG, PNG, GIF or WebP"
            if width * height > MAX_IMAGE_PIXELS:
                return f"{width}x{height} pixels is too large to be an article image"
            image.verify()  # checks the structure without decoding every pixel
    except Image.DecompressionBombError as exc:
        return f"refused by the decompression bomb check: {exc}"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        head = content[:64].lstrip().lower()
        if head.startswith((b"<!doctype html", b"<html")):
            return "an HTML page, not an image"
        return f"not an image ({type(exc).__name__}: {exc})"
    return None


async def fetch_image(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    deadline: float,
    check: URLCheck | None = None,
) -> FetchResult:
    """Download an image (capped, guarded) and make sure it is one; FetchError otherwise."""
    result = await fetch(
        client,
        url,
        max_bytes=max_bytes,
        deadline=deadline,
        accept="image/webp,image/jpeg,image/png,image/gif;q=0.9,*/*;q=0.1",
        check=check,
    )
    # Pillow decodes off the event loop: a crafted image must not stall other work.
    problem = await asyncio.to_thread(image_problem, result.content)
    if problem is not None:
        raise FetchError(f"{url}: {problem}")
    return result
