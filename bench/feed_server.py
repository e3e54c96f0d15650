"""A loopback server with many small RSS feeds (ETag + 304), for the polling benchmark.

Run as: python -m bench.feed_server PORT FEEDS [HOSTS]. With HOSTS > 1 it listens on
127.0.0.1 .. 127.0.0.HOSTS (all loopback on Linux), so feeds can be spread over many hosts.
POST /bump?n=K adds an item to K feeds. /big/N is one feed of N entries: POST /bump-big adds
one entry to it, POST /big-etag?on=0 stops its ETag (the poller must then notice an unchanged
body itself).
"""

from __future__ import annotations

import hashlib
import socket
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

FEEDS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
items: dict[int, int] = dict.fromkeys(range(FEEDS), 1)
big_extra = 0
big_etag = True
_big_cache: dict[tuple[int, int, str], bytes] = {}


def _item(feed: int | str, i: int, base: str) -> str:
    return (
        f"<item><title>Feed {feed} item {i}</title><link>{base}/page/{feed}/{i}</link>"
        f"<guid>f{feed}-i{i}</guid><description>Summary of item {i} of feed {feed}, "
        f"a sentence or two as feeds carry.</description>"
        f"<pubDate>Tue, 25 Nov 2025 10:{i % 60:02d}:00 GMT</pubDate></item>"
    )


def rss(feed: int, base: str) -> bytes:
    entries = "".join(_item(feed, i, base) for i in range(items[feed]))
    return (
        f"<?xml version='1.0'?><rss version='2.0'><channel><title>F{feed}</title>"
        f"<link>{base}/</link>{entries}</channel></rss>"
    ).encode()


def big_rss(count: int, base: str) -> bytes:
    key = (count, big_extra, base)
    if key not in _big_cache:
        _big_cache.clear()
        entries = "".join(_item("big", i, base) for i in range(count + big_extra - 1, -1, -1))
        _big_cache[key] = (
            "<?xml version='1.0'?><rss version='2.0'><channel><title>Big</title>"
            f"<link>{base}/</link>{entries}</channel></rss>"
        ).encode()
    return _big_cache[key]


def _answer(request: Request, body: bytes, etag_on: bool = True) -> Response:
    etag = '"' + hashlib.md5(body).hexdigest() + '"'
    if not etag_on:
        return Response(body, media_type="application/rss+xml")
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/rss+xml", headers={"ETag": etag})


async def feed(request: Request) -> Response:
    number = int(request.path_params["n"])
    return _answer(request, rss(number, str(request.base_url).rstrip("/")))


async def big(request: Request) -> Response:
    body = big_rss(int(request.path_params["n"]), str(request.base_url).rstrip("/"))
    return _answer(request, body, etag_on=big_etag)


async def page(request: Request) -> Response:
    feed_no, item = request.path_params["feed"], request.path_params["item"]
    return HTMLResponse(
        f"<html lang='en'><head><title>Feed {feed_no} item {item}</title>"
        f"<meta property='og:description' content='Lead of item {item}.'></head>"
        f"<body><article><h1>Feed {feed_no} item {item}</h1><p>{'Body text. ' * 40}</p>"
        "</article></body></html>"
    )


async def bump(request: Request) -> Response:
    count = int(request.query_params.get("n", "10"))
    for number in range(count):
        items[number] += 1
    return PlainTextResponse("ok")


async def bump_big(request: Request) -> Response:
    global big_extra
    big_extra += 1
    return PlainTextResponse("ok")


async def big_validators(request: Request) -> Response:
    global big_etag
    big_etag = request.query_params.get("on") == "1"
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/feed/{n}", feed),
        Route("/big/{n}", big),
        Route("/page/{feed}/{item}", page),
        Route("/bump", bump, methods=["POST"]),
        Route("/bump-big", bump_big, methods=["POST"]),
        Route("/big-etag", big_validators, methods=["POST"]),
    ]
)


def main() -> None:
    from bench.polling import die_with_parent

    die_with_parent()
    port, hosts = int(sys.argv[1]), int(sys.argv[3]) if len(sys.argv) > 3 else 1
    sockets = []
    for host in range(1, hosts + 1):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((f"127.0.0.{host}", port))
        sockets.append(sock)
    config = uvicorn.Config(app, log_level="warning", access_log=False, backlog=4096)
    uvicorn.Server(config).run(sockets=sockets)


if __name__ == "__main__":
    main()
