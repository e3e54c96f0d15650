"""A loopback server with many small RSS feeds (ETag + 304), for the polling benchmark.

Run as: python -m bench.feed_server PORT FEEDS. POST /bump?n=K adds an item to K feeds.
"""

from __future__ import annotations

import hashlib
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

FEEDS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
items: dict[int, int] = dict.fromkeys(range(FEEDS), 1)


def rss(feed: int, base: str) -> bytes:
    entries = "".join(
        f"<item><title>Feed {feed} item {i}</title><link>{base}/page/{feed}/{i}</link>"
        f"<guid>f{feed}-i{i}</guid>"
        f"<pubDate>Tue, 25 Nov 2025 10:{i % 60:02d}:00 GMT</pubDate></item>"
        for i in range(items[feed])
    )
    return (
        f"<?xml version='1.0'?><rss version='2.0'><channel><title>F{feed}</title>"
        f"<link>{base}/</link>{entries}</channel></rss>"
    ).encode()


async def feed(request: Request) -> Response:
    number = int(request.path_params["n"])
    body = rss(number, str(request.base_url).rstrip("/"))
    etag = '"' + hashlib.md5(body).hexdigest() + '"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/rss+xml", headers={"ETag": etag})


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


app = Starlette(
    routes=[
        Route("/feed/{n}", feed),
        Route("/page/{feed}/{item}", page),
        Route("/bump", bump, methods=["POST"]),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
