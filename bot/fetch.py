"""HTTP downloads for sources and article pages: conditional GET, size caps, total deadlines."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from bot.config import FetchConfig


class FetchError(Exception):
    """A download failed; the message names the URL and what went wrong."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


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


def make_client(config: FetchConfig) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers={"User-Agent": config.user_agent, "Accept-Encoding": "gzip, deflate"},
        timeout=httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
        follow_redirects=True,
        max_redirects=config.max_redirects,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
    )


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    deadline: float,
    etag: str | None = None,
    last_modified: str | None = None,
    accept: str = "*/*",
) -> FetchResult:
    """GET `url`, sending validators for a conditional GET. A 304 has no content.

    The size cap counts decoded bytes, so a gzip bomb is stopped as it inflates; the
    deadline bounds the whole exchange, so a server that never finishes cannot hang a poll.
    """
    headers = {"Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        async with asyncio.timeout(deadline):
            return await _get(client, url, headers, max_bytes)
    except TimeoutError:
        raise FetchError(f"{url}: no complete answer within {deadline:g}s") from None
    except httpx.TooManyRedirects:
        raise FetchError(f"{url}: too many redirects (a redirect loop?)") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None


async def _get(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], max_bytes: int
) -> FetchResult:
    async with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 304:
            # Read the (empty) body so the connection goes back to the pool for reuse.
            await response.aread()
            return _result(response, b"")
        if response.status_code >= 400:
            raise FetchError(f"{url}: HTTP {response.status_code}", response.status_code)
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"{url}: {declared} bytes is over the {max_bytes}-byte cap")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"{url}: more than {max_bytes} bytes; download stopped")
            chunks.append(chunk)
        return _result(response, b"".join(chunks))


def _result(response: httpx.Response, content: bytes) -> FetchResult:
    return FetchResult(
        url=str(response.url),
        status=response.status_code,
        content=content,
        content_type=response.headers.get("Content-Type", ""),
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
    )
