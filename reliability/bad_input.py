"""Bad input: hostile feeds, pages and images next to a good source.

A raw asyncio HTTP server on 127.0.0.1 plays a hostile news site, one case per path prefix
(/<case>/feed.xml ...): malformed XML, HTML served as a feed, feeds in windows-1251 and
ISO-8859-1, a 50 MB feed, gzip bombs, a server that never finishes its answer or never
answers, redirect loops, article and image links to loopback, cloud-metadata, decimal and
IPv4-mapped addresses or to file://, and images that are not images. Each case runs in its
own real Service (its own SQLite database) with two sources: the hostile one and the sample
site's English feed. The hostile source is reached as `localhost`, which the Service's SSRF
guard is told resolves to a public address, so it is judged as a public site would be.

Measured per case: whether the expected clear error (or warning) was logged, whether the
expected outcome happened (source failed / article refused / posted without the image /
posted with the right text), how often an internal address was hit, and whether the good
source's new article still reached the Telegram stand-in.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import logging
import os
import stat
import struct
import sys
import tempfile
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import yaml

from bot.config import validate
from bot.demo.site import SampleSite, image_bytes, make_sample
from bot.demo.site import create_app as site_app
from bot.fetch import FetchError, fetch
from bot.httpserver import LoopbackServer
from bot.netguard import Guard, static_resolver
from bot.pipeline import PollReport
from bot.service import Service
from standins import telegram as tg
from standins import x as xs

TOKEN = "4242:bad-input-token"
PUSH_TOKEN = "bad-input-push-token"
X_ENV = {
    "BAD_INPUT_X_KEY": "ck-bad-input",
    "BAD_INPUT_X_SECRET": "cs-bad-input",
    "BAD_INPUT_X_TOKEN": "at-bad-input",
    "BAD_INPUT_X_TOKEN_SECRET": "ats-bad-input",
}
#: A name the SSRF guard is told resolves to another private address (10.255.0.1). Were it
#: ever allowed, the connection would go to the internal listener on 127.0.0.1 (the guard's
#: dial map), never to a real 10.x host.
OTHER_PRIVATE_NAME = "intranet-other.test"
OTHER_PRIVATE_ADDRESS = "10.255.0.1"
#: What `localhost` resolves to for the SSRF guard: a public address (example.com's), so the
#: hostile site is judged as a public one while its sockets still go to 127.0.0.1.
PUBLIC_ADDRESS = "93.184.215.14"
MAX_BYTES = 1_000_000
MAX_IMAGE_BYTES = 200_000
TIMEOUT = 1.0  # fetch.timeout; a download's deadline is twice this
GOOD_TITLE = "Good news still arrives next to hostile input"

Writer = asyncio.StreamWriter
Handler = Callable[["HostileSite", str, asyncio.StreamReader, Writer], Awaitable[None]]


# The hostile site ----------------------------------------------------------------------


def rss(
    items: list[tuple[str, str, str | None]],
    encoding: str | None = "utf-8",
    about: str = "Сегодня в Баку прошли большие переговоры о будущем региона и экономики.",
) -> str:
    """An RSS document (as text) with (title, link, image) items."""
    prolog = f'<?xml version="1.0" encoding="{encoding}"?>' if encoding else '<?xml version="1.0"?>'
    body = "".join(
        f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
        f"<description>{about}</description>"
        + (f'<enclosure url="{image}" type="image/jpeg" length="1"/>' if image else "")
        + "</item>"
        for title, link, image in items
    )
    return f'{prolog}<rss version="2.0"><channel><title>Hostile</title>{body}</channel></rss>'


def article_page(title: str, image: str | None) -> bytes:
    og = f'<meta property="og:image" content="{image}">' if image else ""
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<meta property='og:title' content='{title}'>"
        f"<meta property='og:description' content='Lead of a hostile article.'>{og}</head>"
        f"<body><article><h1>{title}</h1><p>Lead of a hostile article.</p>"
        "<p>Body text of the article goes on for a while to look like news.</p></article>"
        "</body></html>"
    ).encode()


def gzip_bomb(inflated: int = 1 << 30) -> list[bytes]:
    """A valid gzip stream of `inflated` zero bytes (about 1 MB per GB), as chunks: one
    compressed megabyte of zeros repeated (a full flush makes each repeat identical)."""
    mb = bytes(1 << 20)
    engine = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    head = engine.compress(mb) + engine.flush(zlib.Z_FULL_FLUSH)
    unit = engine.compress(mb) + engine.flush(zlib.Z_FULL_FLUSH)
    megabytes = inflated >> 20
    crc = 0
    for _ in range(megabytes):
        crc = zlib.crc32(mb, crc)
    end = engine.flush()[:-8] + struct.pack("<II", crc, inflated & 0xFFFFFFFF)
    return [head, *([unit] * (megabytes - 1)), end]


@dataclass
class HostileSite:
    """Raw HTTP/1.1 on 127.0.0.1 (full control over framing, encodings and stalls)."""

    phase: int = 0  # 0: every case serves an empty feed (the first poll), 1: hostile content
    neighbour: str = ""  # the good site's base URL (cases that try to speak for it)
    hits: Counter[str] = field(default_factory=Counter)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _bomb: list[bytes] = field(default_factory=list)

    def base(self, case: str) -> str:
        return f"http://localhost:{self.port}/{case}"

    def loopback(self, case: str) -> str:
        return f"http://127.0.0.1:{self.port}/{case}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def bomb(self) -> list[bytes]:
        if not self._bomb:
            self._bomb = gzip_bomb()
        return self._bomb

    async def _handle(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            request = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            path = request.split()[1].decode() if len(request.split()) > 1 else "/"
            self.hits[path] += 1
            name, _, rest = path.strip("/").partition("/")
            case = CASES.get(name)
            if case is None:
                await send(writer, 404, b"no such case")
            elif rest == "feed.xml" and self.phase == 0:
                await send(writer, 200, rss([]).encode(), "application/rss+xml")
            elif rest.startswith("internal"):
                await send(writer, 200, b"internal secret", "text/plain")
            else:
                await case.serve(self, rest, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the bot hung up: what a size cap or a deadline does
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)


async def send(
    writer: Writer,
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain",
    headers: dict[str, str] | None = None,
) -> None:
    head = {"Content-Type": content_type, "Content-Length": str(len(body)), "Connection": "close"}
    head.update(headers or {})
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
    writer.write(f"HTTP/1.1 {status} X\r\n{lines}\r\n".encode() + body)
    await writer.drain()


async def stream(writer: Writer, headers: dict[str, str], chunks: Any) -> None:
    """Send headers then chunks with no Content-Length (the end is the connection's close)."""
    lines = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "Connection": "close"}.items())
    writer.write(f"HTTP/1.1 200 OK\r\n{lines}\r\n".encode())
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()


# The cases -------------------------------------------------------------------------------


async def _long_title(site: HostileSite, rest: str, _: asyncio.StreamReader, w: Writer) -> None:
    """F1: one headline of most of a megabyte; its page is missing (posted from the entry)."""
    if rest != "feed.xml":
        await send(w, 404, b"not found")
        return
    title = ("word " * (LONG_TITLE_CHARS // 5)).strip()
    body = rss([(title, f"{site.base('long-title')}/article", None)])
    await send(w, 200, body.encode(), "application/rss+xml")


async def _canonical_elsewhere(
    site: HostileSite, rest: str, _: asyncio.StreamReader, w: Writer
) -> None:
    """F2: a page whose canonical, og:url and JSON-LD url name the good site's article."""
    claimed = site.neighbour + GOOD_PATH
    title = "Canonical elsewhere"
    if rest == "feed.xml":
        body = rss([(title, f"{site.base('canonical-elsewhere')}/article", None)])
        await send(w, 200, body.encode(), "application/rss+xml")
    elif rest == "article":
        page = article_page(title, None).replace(
            b"</head>",
            f'<link rel="canonical" href="{claimed}"><meta property="og:url" content="{claimed}">'
            f'<script type="application/ld+json">{{"@type":"NewsArticle","url":"{claimed}"}}'
            "</script></head>".encode(),
        )
        await send(w, 200, page, "text/html; charset=utf-8")
    else:
        await send(w, 404, b"not found")


async def _flood(site: HostileSite, rest: str, _: asyncio.StreamReader, w: Writer) -> None:
    """F5: many new entries at once, undated or backdated 25 years, next to a good source."""
    if rest == "feed.xml":
        items = "".join(
            f"<item><title>Flood {n}</title><link>{site.base('flood')}/a{n}</link>"
            + ("<pubDate>Mon, 01 Jan 2001 00:00:00 +0000</pubDate>" if n % 2 else "")
            + "</item>"
            for n in range(FLOOD)
        )
        body = f"<rss version='2.0'><channel><title>Flood</title>{items}</channel></rss>"
        await send(w, 200, body.encode(), "application/rss+xml")
    elif rest.startswith("a"):
        await send(w, 200, article_page(f"Flood {rest[1:]}", None), "text/html; charset=utf-8")
    else:
        await send(w, 404, b"not found")


async def _pushed_only(site: HostileSite, rest: str, _: asyncio.StreamReader, w: Writer) -> None:
    """An empty feed and a slow article page (0.3 s): its URL only ever arrives by push."""
    if rest == "feed.xml":
        await send(w, 200, rss([]).encode(), "application/rss+xml")
    elif rest == "article":
        await asyncio.sleep(0.3)
        await send(w, 200, article_page(PUSHED_TITLE, None), "text/html; charset=utf-8")
    else:
        await send(w, 404, b"not found")


FEED_ERROR = "source failed"  # the poll fails with a clear error; nothing is posted from it
REFUSED = "article refused"  # the feed is fine, its article is refused; nothing is posted
NO_IMAGE = "posted without the image"
POSTED = "posted as expected"
BOUNDED = "posted once, text capped"  # one post whose text stays within a post's size
CAPPED = "capped per poll"  # MAX_NEW_PER_POLL posted, the rest recorded, editors told
CHECKED = "handled as its check describes"  # a case with its own check (pushes, files, ...)
PUSHED_TITLE = "Pushed article"
PUSHES = 1_000  # pushes of one URL (push storm)
LABEL_FLOOD = 300  # pushes, each with another `source` (metrics labels)
#: The good site's new article: no hostile post may ever link to it (issue 15, F2/F3).
GOOD_PATH = "/en/news/still-arrives"
FLOOD = 60  # entries in the flood case's feed
MAX_NEW_PER_POLL = 20  # the default sources[].max_new_per_poll
LONG_TITLE_CHARS = 900_000  # a headline just under the feed's size cap


@dataclass(frozen=True)
class Case:
    name: str
    problem: str
    expect: str  # one of the outcomes above
    message: str | None  # text the logged error/warning must contain (None: nothing needed)
    serve: Handler
    title: str = ""  # the hostile article's title, where one should be posted
    allow_hosts: tuple[str, ...] = ()
    #: The case's own check, run while its Service (and, with `http`, its HTTP endpoint)
    #: still runs after the hostile poll: (handled, evidence).
    check: Check | None = None
    http: bool = False
    #: The hostile source is an intranet one: its feed on 127.0.0.1 (a private network).
    intranet: bool = False
    #: An X target next to the Telegram one (on the X stand-in).
    x_target: bool = False
    #: An editors' chat (on the Telegram stand-in) whose console the check runs.
    editors: bool = False


@dataclass
class CaseRun:
    """What a case's own check gets: its running Service and the world around it."""

    case: Case
    service: Service
    hostile: HostileSite
    internal: InternalListener
    records: _Records
    telegram: tg.State
    x_state: xs.State
    raw: dict[str, Any]
    tmp: str

    def posts(self) -> list[str]:
        """The texts posted in the case's chat, but the good source's."""
        texts = [_text(p) for p in self.telegram.in_chat(_chat(self.case))]
        return [t for t in texts if not t.startswith(GOOD_TITLE)]


Check = Callable[[CaseRun], Awaitable[tuple[bool, str]]]


@dataclass
class InternalListener:
    """An internal service on 127.0.0.1: counts every connection (none may ever come)."""

    port: int = 0
    connections: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        async def answer(_: asyncio.StreamReader, writer: Writer) -> None:
            self.connections += 1
            with contextlib.suppress(ConnectionError):
                await send(writer, 200, b"internal secret")
            writer.close()

        self._server = await asyncio.start_server(answer, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


async def _push(run: CaseRun, bodies: list[dict[str, str]]) -> list[int]:
    """POST each body to the Service's /push, then wait until the pushes are worked off and
    their posts dispatched."""
    assert run.service.web_server is not None
    url = f"{run.service.web_server.url}/push"
    headers = {"Authorization": f"Bearer {PUSH_TOKEN}"}
    answers: list[httpx.Response] = []
    # 20 at a time, as a busy CMS would: all in flight together is not the point (the page
    # answers in 0.3 s, so pushes of one URL still overlap), and the cases share the loop.
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=20)) as client:
        for start in range(0, len(bodies), 20):
            batch = bodies[start : start + 20]
            answers += await asyncio.gather(
                *(client.post(url, json=body, headers=headers) for body in batch)
            )
    deadline = time.monotonic() + 60
    while run.service.busy() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await run.service.dispatch()
    return [a.status_code for a in answers]


async def _check_intranet_push(run: CaseRun) -> tuple[bool, str]:
    """F4: pushes (with the intranet source's name as `source`) of other loopback ports, other
    spellings of loopback and another private host: all refused, none connected to."""
    port = run.internal.port
    urls = [
        f"http://127.0.0.1:{port}/secret",
        f"http://[::ffff:127.0.0.1]:{port}/secret",
        f"http://2130706433:{port}/secret",
        f"http://{OTHER_PRIVATE_NAME}:{port}/secret",
        "http://127.0.0.1:5432/secret",  # PostgreSQL's port
    ]
    statuses = await _push(run, [{"url": u, "source": run.case.name} for u in urls])
    refused = [line for _, line in run.records.lines if "/secret" in line and "refused" in line]
    handled = (
        statuses == [202] * len(urls)
        and run.internal.connections == 0
        and len(refused) == len(urls)
        # Its own host:port is still trusted: the intranet article was posted, nothing else.
        and [post.split("\n")[0] for post in run.posts()] == [run.case.title]
    )
    return handled, refused[0] if refused else "no refusal logged"


async def _check_metrics_flood(run: CaseRun) -> tuple[bool, str]:
    """F6: a push `source` of another name each time never becomes a /metrics label."""
    assert run.service.web_server is not None
    metrics = f"{run.service.web_server.url}/metrics"
    async with httpx.AsyncClient(timeout=10) as client:
        before = len((await client.get(metrics)).text)
        url = f"{run.hostile.base(run.case.name)}/article"
        await _push(run, [{"url": url, "source": f"label-{n}"} for n in range(LABEL_FLOOD)])
        after = (await client.get(metrics)).text
    grown = len(after) - before
    posts = run.posts()
    handled = (
        "label-" not in after
        and grown < 4_000
        and len(posts) == 1
        and posts[0].startswith(PUSHED_TITLE)
    )
    return handled, f"/metrics grew {grown} bytes after {LABEL_FLOOD} pushes with new names"


async def _check_push_storm(run: CaseRun) -> tuple[bool, str]:
    """F7: pushes of one URL (in flight together, and after) fetch its page once."""
    url = f"{run.hostile.base(run.case.name)}/article"
    await _push(run, [{"url": url} for _ in range(PUSHES)])
    fetched = run.hostile.hits[f"/{run.case.name}/article"]
    posts = run.posts()
    handled = fetched == 1 and len(posts) == 1 and posts[0].startswith(PUSHED_TITLE)
    return handled, f"{PUSHES} pushes of one URL: page fetched {fetched} time(s), {len(posts)} post"


async def _check_templates(run: CaseRun) -> tuple[bool, str]:
    """F8: `newsbot check-config` (a real subprocess) refuses a template that would build a
    300 MB string and one using |safe, at once, naming each."""
    raw = json.loads(json.dumps(run.raw))
    base = raw["targets"][0]
    raw["targets"] += [
        {**base, "name": "tg-huge", "template": "{{ 'x' * 300000000 }} {{ url }}"},
        {**base, "name": "tg-safe", "template": "{{ title|safe }} {{ url }}"},
    ]
    path = os.path.join(run.tmp, f"{run.case.name}.yaml")
    with open(path, "w", encoding="utf-8") as out:
        yaml.safe_dump(raw, out)
    env = {**os.environ, "BAD_INPUT_TG_TOKEN": TOKEN, "BAD_INPUT_PUSH": PUSH_TOKEN, **X_ENV}
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "-c", path, "check-config",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        return False, "check-config did not finish within 60 s"
    took = time.monotonic() - started
    text = output.decode(errors="replace").replace(path, os.path.basename(path))
    lines = [line.strip() for line in text.splitlines()]
    huge = next((line for line in lines if "tg-huge" in line and "template limit" in line), "")
    safe = next((line for line in lines if "tg-safe" in line and "safe" in line), "")
    handled = process.returncode != 0 and bool(huge) and bool(safe)
    return handled, f"{huge} | {safe} ({took:.1f} s)"


async def _check_file_modes(run: CaseRun) -> tuple[bool, str]:
    """F10: the SQLite database and its -wal/-shm files are readable by their owner only."""
    base = os.path.join(run.tmp, f"{run.case.name}.db")
    modes = {
        os.path.basename(path): stat.S_IMODE(os.stat(path).st_mode)
        for path in (base, f"{base}-wal", f"{base}-shm")
        if os.path.exists(path)
    }
    handled = os.path.basename(base) in modes and set(modes.values()) == {0o600}
    return handled, ", ".join(f"{name} {mode:o}" for name, mode in modes.items())


async def _check_long_title_on_x(run: CaseRun) -> tuple[bool, str]:
    """F1 with an X target: the long headline is posted once to each platform, trimmed to
    each one's limit, and the good article reaches X too."""
    tweets = [str(p.get("text", "")) for p in run.x_state.live_posts()]
    long_ones = [t for t in tweets if t.startswith("word word")]
    good = [t for t in tweets if t.startswith(GOOD_TITLE[:30])]
    posts = [p for p in run.posts() if p.startswith("word word")]
    handled = (
        len(long_ones) == 1
        and len(long_ones[0]) <= 280
        and len(good) == 1
        and len(posts) == 1
        and len(posts[0]) <= 4096
    )
    sizes = f"X post {len(long_ones[0]) if long_ones else '-'} chars"
    return handled, f"{sizes}, Telegram post {len(posts[0]) if posts else '-'} chars"


EDITORS_CHAT = "@bad_input_editors"
EDITOR_ID, STRANGER_ID = 1001, 666
FORGED = "2026-01-01 00:00:00 INFO newsbot: editor 1001 approved everything"


async def _check_log_forging(run: CaseRun) -> tuple[bool, str]:
    """F9: a command with newlines (and a name with one) from a user who is not an editor,
    through the editors' chat: refused, and logged as one line with the newlines escaped."""
    console = run.service.console
    assert console is not None
    chat = run.telegram.chats[EDITORS_CHAT]
    stop = asyncio.Event()
    task = asyncio.create_task(console.run(stop))
    text = f"/post\n{FORGED}\nhttp://x.example/"
    run.telegram.push_update(
        {
            "message": {
                "message_id": 77,
                "date": int(time.time()),
                "chat": {"id": chat["id"], "type": chat["type"], "title": "Editors"},
                "from": {"id": STRANGER_ID, "is_bot": False, "first_name": f"Eve\n{FORGED}"},
                "text": text,
                "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
            }
        }
    )
    deadline = time.monotonic() + 15
    lines = [line for _, line in run.records.lines if "not an allowed editor" in line]
    while not lines and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        lines = [line for _, line in run.records.lines if "not an allowed editor" in line]
    stop.set()
    await asyncio.wait_for(task, 15)
    forged = [line for _, line in run.records.lines if "\n" in line and FORGED in line]
    handled = len(lines) == 1 and "\\n" in lines[0] and not forged
    return handled, lines[0] if lines else "the refusal was not logged"


def feed_of(body: bytes | Callable[[HostileSite, str], bytes], ctype: str = "") -> Handler:
    async def serve(site: HostileSite, rest: str, _: asyncio.StreamReader, w: Writer) -> None:
        if rest != "feed.xml":
            await send(w, 404, b"not found")
            return
        data = body(site, rest) if callable(body) else body
        await send(w, 200, data, ctype or "application/rss+xml")

    return serve


def article_feed(
    case: str,
    title: str,
    link: Callable[[HostileSite], str],
    image: Callable[[HostileSite], str] | None = None,
    image_answer: Callable[[HostileSite, Writer], Awaitable[None]] | None = None,
    redirect: Callable[[HostileSite], str] | None = None,
) -> Handler:
    """A good feed with one article; the article (page, image) is the hostile part."""

    async def serve(site: HostileSite, rest: str, _: asyncio.StreamReader, w: Writer) -> None:
        picture = image(site) if image else None
        if rest == "feed.xml":
            await send(w, 200, rss([(title, link(site), None)]).encode(), "application/rss+xml")
        elif rest == "article" and redirect is not None:
            await send(w, 302, b"", headers={"Location": redirect(site)})
        elif rest == "article":
            await send(w, 200, article_page(title, picture), "text/html; charset=utf-8")
        elif rest == "image.jpg" and image_answer is not None:
            await image_answer(site, w)
        else:
            await send(w, 404, b"not found")

    return serve


async def _huge(_: HostileSite, __: str, ___: asyncio.StreamReader, w: Writer) -> None:
    item = b"<item><title>Padding</title><link>http://localhost/x</link></item>" * 1000
    await stream(w, {"Content-Type": "application/rss+xml"}, (item for _ in range(50 << 20 >> 16)))


async def _huge_declared(_: HostileSite, __: str, ___: asyncio.StreamReader, w: Writer) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n")
    w.write(b"Content-Length: 52428800\r\nConnection: close\r\n\r\n<rss>")
    await w.drain()
    for _ in range(800):
        w.write(b"<item/>" * 9000)
        await w.drain()


async def _bomb(site: HostileSite, _: str, __: asyncio.StreamReader, w: Writer) -> None:
    headers = {"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"}
    await stream(w, headers, site.bomb())


async def _nested_bomb(site: HostileSite, _: str, __: asyncio.StreamReader, w: Writer) -> None:
    body = gzip.compress(b"".join(site.bomb()), 9)  # a few KB; inflated twice: 1 GB
    headers = {"Content-Encoding": "gzip, gzip"}
    await send(w, 200, body, "application/rss+xml", headers)


async def _never_finishes(_: HostileSite, __: str, reader: asyncio.StreamReader, w: Writer) -> None:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n")
    w.write(b"Content-Length: 100000\r\n\r\n<rss version='2.0'><channel>")
    await w.drain()
    await reader.read()  # until the bot gives up and closes


async def _never_answers(_: HostileSite, __: str, r: asyncio.StreamReader, ___: Writer) -> None:
    await r.read()


async def _drip(_: HostileSite, __: str, ___: asyncio.StreamReader, w: Writer) -> None:
    await stream(w, {"Content-Type": "application/rss+xml"}, [b"<rss version='2.0'>"])
    while True:
        w.write(b" ")
        await w.drain()
        await asyncio.sleep(0.2)


async def _loop(site: HostileSite, rest: str, _: asyncio.StreamReader, w: Writer) -> None:
    target = "again" if rest == "feed.xml" else "feed.xml"
    await send(w, 302, b"", headers={"Location": f"/redirect-loop/{target}"})


async def _chain(site: HostileSite, rest: str, _: asyncio.StreamReader, w: Writer) -> None:
    step = int(rest.removeprefix("hop")) + 1 if rest.startswith("hop") else 1
    await send(w, 301, b"", headers={"Location": f"{site.base('redirect-chain')}/hop{step}"})


ImageAnswer = Callable[[HostileSite, Writer], Awaitable[None]]


def _image(body: bytes, ctype: str = "image/jpeg") -> ImageAnswer:
    async def answer(_: HostileSite, w: Writer) -> None:
        await send(w, 200, body, ctype)

    return answer


async def _big_image(_: HostileSite, w: Writer) -> None:
    jpeg = image_bytes("big")
    await stream(w, {"Content-Type": "image/jpeg"}, [jpeg, *([b"\0" * 65536] * 8)])


async def _missing_image(_: HostileSite, w: Writer) -> None:
    await send(w, 404, b"gone")


def _cases() -> list[Case]:
    html_page = (
        b"<!DOCTYPE html><html><head><title>Sign in</title></head>"
        b"<body><form>Password</form></body></html>"
    )
    bare_html = b"<head><meta charset='utf-8'><title>Login</title></head><body><div>Log in</div>"
    cyr = "Новости: кириллица в windows-1251"
    lat = "Café, crème brûlée et façade"
    und = "Привет из ленты без объявленной кодировки"

    def missing(case: str) -> Callable[[HostileSite], str]:
        return lambda site: f"{site.base(case)}/missing"

    def page(case: str) -> Callable[[HostileSite], str]:
        return lambda site: f"{site.base(case)}/article"

    def image_at(case: str) -> Callable[[HostileSite], str]:
        return lambda site: f"{site.base(case)}/image.jpg"

    return [
        Case("malformed-xml", "truncated XML", FEED_ERROR, "malformed feed",
             feed_of(b"<rss><channel><item><title>cut off")),
        Case("binary-garbage", "binary junk as a feed", FEED_ERROR, "malformed feed",
             feed_of(bytes(range(256)) * 8)),
        Case("html-as-feed", "an HTML login page as the feed", FEED_ERROR,
             "answered an HTML page, not a feed", feed_of(html_page, "text/html")),
        Case("html-no-doctype", "HTML without a doctype, served as text/html", FEED_ERROR,
             "answered an HTML page, not a feed", feed_of(bare_html, "text/html; charset=utf-8")),
        Case("cp1251-prolog", "windows-1251 feed declared in the XML prolog", POSTED, None,
             feed_of(lambda s, _: rss([(cyr, missing("cp1251-prolog")(s), None)],
                                      "windows-1251").encode("cp1251")), title=cyr),
        Case("latin1-header", "ISO-8859-1 feed declared only in Content-Type", POSTED, None,
             feed_of(lambda s, _: rss([(lat, missing("latin1-header")(s), None)], None, lat)
                     .encode("latin-1"), "application/rss+xml; charset=ISO-8859-1"), title=lat),
        Case("cp1251-undeclared", "windows-1251 feed with no declared encoding", POSTED,
             "declared encoding is missing or wrong",
             feed_of(lambda s, _: rss([(und, missing("cp1251-undeclared")(s), None)], None)
                     .encode("cp1251")), title=und),
        Case("feed-50mb", "a 50 MB feed, no Content-Length", FEED_ERROR,
             f"more than {MAX_BYTES} bytes", _huge),
        Case("feed-50mb-declared", "a 50 MB feed with its Content-Length", FEED_ERROR,
             f"52428800 bytes is over the {MAX_BYTES}-byte cap", _huge_declared),
        Case("gzip-bomb", "1 MB of gzip inflating to 1 GB", FEED_ERROR,
             f"inflates to more than {MAX_BYTES} bytes", _bomb),
        Case("nested-gzip-bomb", "a few KB, gzip of gzip, inflating to 1 GB", FEED_ERROR,
             "unsupported Content-Encoding", _nested_bomb),
        Case("never-finishes", "headers, then the body stalls forever", FEED_ERROR,
             "timed out", _never_finishes),
        Case("never-answers", "no headers, ever", FEED_ERROR, "timed out", _never_answers),
        Case("drip-feed", "a byte every 0.2 s, forever (no read timeout fires)", FEED_ERROR,
             "no complete answer within", _drip),
        Case("redirect-loop", "a feed redirecting in a circle", FEED_ERROR, "redirect loop", _loop),
        Case("redirect-chain", "an endless chain of redirects", FEED_ERROR, "too many redirects",
             _chain),
        Case("ssrf-loopback", "article link to 127.0.0.1", REFUSED, "linking off its site",
             article_feed("ssrf-loopback", "Loopback link",
                          lambda s: f"{s.loopback('ssrf-loopback')}/internal")),
        Case("ssrf-redirect", "public article redirecting to 127.0.0.1", REFUSED,
             "loopback address",
             article_feed("ssrf-redirect", "Redirected inside", page("ssrf-redirect"),
                          redirect=lambda s: f"{s.loopback('ssrf-redirect')}/internal")),
        Case("ssrf-metadata", "article link to 169.254.169.254", REFUSED,
             "linking off its site",
             article_feed("ssrf-metadata", "Metadata link",
                          lambda s: "http://169.254.169.254/latest/meta-data/")),
        Case("ssrf-decimal", "article link to http://2130706433/ (127.0.0.1)", REFUSED,
             "linking off its site",
             article_feed("ssrf-decimal", "Decimal link",
                          lambda s: f"http://2130706433:{s.port}/ssrf-decimal/internal")),
        Case("ssrf-ipv6-mapped", "article link to [::ffff:127.0.0.1]", REFUSED,
             "linking off its site",
             article_feed("ssrf-ipv6-mapped", "Mapped link",
                          lambda s: f"http://[::ffff:127.0.0.1]:{s.port}/ssrf-ipv6-mapped/internal")),
        Case("ssrf-file-scheme", "article link to file:///etc/passwd", REFUSED,
             "linking off its site",
             article_feed("ssrf-file-scheme", "File link", lambda s: "file:///etc/passwd")),
        Case("allow-hosts", "link to 127.0.0.1 with the host in allow_hosts", POSTED, None,
             article_feed("allow-hosts", "Allowed internal article",
                          lambda s: f"{s.loopback('allow-hosts')}/article"),
             title="Allowed internal article", allow_hosts=("127.0.0.1",)),
        Case("image-html", "og:image answering an HTML page", NO_IMAGE,
             "an HTML page, not an image",
             article_feed("image-html", "Image is a page", page("image-html"),
                          image_at("image-html"), _image(b"<!doctype html><p>hi", "text/html")),
             title="Image is a page"),
        Case("image-corrupt", "a PNG signature followed by junk", NO_IMAGE, "not an image",
             article_feed("image-corrupt", "Image is junk", page("image-corrupt"),
                          image_at("image-corrupt"),
                          _image(b"\x89PNG\r\n\x1a\n" + b"junk" * 100, "image/png")),
             title="Image is junk"),
        Case("image-too-large", "an image over max_image_bytes", NO_IMAGE,
             f"more than {MAX_IMAGE_BYTES} bytes",
             article_feed("image-too-large", "Image too large", page("image-too-large"),
                          image_at("image-too-large"), _big_image),
             title="Image too large"),
        Case("image-unreachable", "an image answering 404", NO_IMAGE, "HTTP 404",
             article_feed("image-unreachable", "Image missing", page("image-unreachable"),
                          image_at("image-unreachable"), _missing_image),
             title="Image missing"),
        Case("long-title", f"F1: a {LONG_TITLE_CHARS:,}-character headline", BOUNDED,
             "posting from the feed entry alone", _long_title),
        Case("canonical-elsewhere", "F2: canonical/og:url/JSON-LD url on another site",
             POSTED, None, _canonical_elsewhere, title="Canonical elsewhere"),
        Case("off-site-claim", "F3: an entry naming the good site's next article", REFUSED,
             "linking off its site",
             article_feed("off-site-claim", "Fake headline for the good site",
                          lambda s: s.neighbour + GOOD_PATH)),
        Case("flood", f"F5: {FLOOD} new entries at once, undated or backdated", CAPPED,
             f"beyond max_new_per_poll ({MAX_NEW_PER_POLL})", _flood),
        Case("long-title-x", f"F1 with an X target: a {LONG_TITLE_CHARS:,}-character headline",
             CHECKED, None, _long_title, check=_check_long_title_on_x, x_target=True),
        Case("intranet-push", "F4: pushes naming an intranet source: other loopback ports and "
             "spellings, another private host", CHECKED, None,
             article_feed("intranet-push", "Intranet article",
                          lambda s: f"{s.loopback('intranet-push')}/article"),
             title="Intranet article", check=_check_intranet_push, http=True, intranet=True),
        Case("metrics-flood", f"F6: {LABEL_FLOOD} pushes, each naming another source",
             CHECKED, None, _pushed_only, check=_check_metrics_flood, http=True),
        Case("push-storm", f"F7: {PUSHES:,} pushes of one URL", CHECKED, None, _pushed_only,
             check=_check_push_storm, http=True),
        Case("log-forging", "F9: a chat command with newlines from a user who is not allowed",
             CHECKED, None, feed_of(rss([]).encode()), check=_check_log_forging, editors=True),
        Case("template-limits", "F8: templates building 300 MB, or using the safe filter",
             CHECKED, None,
             feed_of(rss([]).encode()), check=_check_templates),
        Case("file-modes", "F10: the SQLite database and its -wal/-shm files", CHECKED, None,
             feed_of(rss([]).encode()), check=_check_file_modes),
        Case("image-ssrf", "an image on 127.0.0.1 from a public source", NO_IMAGE,
             "loopback address",
             article_feed("image-ssrf", "Image inside", page("image-ssrf"),
                          lambda s: f"{s.loopback('image-ssrf')}/internal.jpg"),
             title="Image inside"),
    ]  # fmt: skip


CASES: dict[str, Case] = {case.name: case for case in _cases()}


# Running -----------------------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, record.getMessage()))


def _raw_config(
    case: Case, site_url: str, tg_url: str, x_url: str, hostile: HostileSite, tmp: str
) -> dict[str, Any]:
    feed = hostile.loopback(case.name) if case.intranet else hostile.base(case.name)
    raw: dict[str, Any] = {
        "outlet": {"name": "Sample Times", "url": site_url},
        "database": f"sqlite:///{tmp}/{case.name}.db",
        "sources": [
            {"name": "good", "url": f"{site_url}/en/rss.xml", "language": "en"},
            {
                "name": case.name,
                "url": f"{feed}/feed.xml",
                "language": "en",
                "allow_hosts": list(case.allow_hosts),
            },
        ],
        "targets": [
            {
                "name": "tg",
                "platform": "telegram",
                "api_base": tg_url,
                "token": {"env": "BAD_INPUT_TG_TOKEN"},
                "chat_id": _chat(case),
                "min_interval": 0,
                "timeout": 3,
            }
        ],
        "dispatch": {"interval": 0.2, "backoff_base": 0.2, "lease": 5},
        "fetch": {
            "timeout": TIMEOUT,
            "max_bytes": MAX_BYTES,
            "max_image_bytes": MAX_IMAGE_BYTES,
            "max_redirects": 5,
        },
        "http": {"enabled": False},
    }
    if case.http:
        raw["http"] = {"port": 0, "push_token": {"env": "BAD_INPUT_PUSH"}}
    if case.editors:
        raw["editors"] = {
            "platform": "telegram",
            "api_base": tg_url,
            "token": {"env": "BAD_INPUT_TG_TOKEN"},
            "chat_id": EDITORS_CHAT,
            "allowed_user_ids": [EDITOR_ID],
            "poll_timeout": 1,
        }
    if case.x_target:
        raw["targets"].append(
            {
                "name": "x",
                "platform": "x",
                "api_base": x_url,
                "upload_base": x_url,
                "with_image": False,
                "api_key": {"env": "BAD_INPUT_X_KEY"},
                "api_secret": {"env": "BAD_INPUT_X_SECRET"},
                "access_token": {"env": "BAD_INPUT_X_TOKEN"},
                "access_token_secret": {"env": "BAD_INPUT_X_TOKEN_SECRET"},
                "timeout": 3,
            }
        )
    return raw


def _config(raw: dict[str, Any]) -> Any:
    environ = {"BAD_INPUT_TG_TOKEN": TOKEN, "BAD_INPUT_PUSH": PUSH_TOKEN, **X_ENV}
    return validate(raw, environ=environ)


def _chat(case: Case) -> str:
    return "@case_" + case.name.replace("-", "_")


async def _run_case(
    config: Any, then: Callable[[Service], Awaitable[tuple[bool, str]]] | None = None
) -> tuple[list[PollReport], tuple[bool, str] | None]:
    """One poll of the case's Service; then its own check (if any) while it still runs."""
    service = Service(config)
    # `localhost` looks public to the guard (and that public address is dialled on loopback:
    # no test reaches the internet); OTHER_PRIVATE_NAME is a private host elsewhere, dialled
    # (were it ever allowed) on loopback too; no other name resolves.
    resolver = static_resolver(
        {"localhost": [PUBLIC_ADDRESS], OTHER_PRIVATE_NAME: [OTHER_PRIVATE_ADDRESS]}
    )
    service.pipeline.guard = Guard(
        resolver, dial={PUBLIC_ADDRESS: "127.0.0.1", OTHER_PRIVATE_ADDRESS: "127.0.0.1"}
    )
    checked = None
    try:
        if then is not None and config.file.http.enabled:
            await service._start_web()  # what `run` starts, without its scheduler
        polls, _ = await service.run_once()
        if then is not None:
            checked = await then(service)
    finally:
        await service._stop_web()
        await service.close()
    return polls, checked


def _text(message: dict[str, Any]) -> str:
    return str(message.get("caption") or message.get("text") or "")


def _verdict(
    case: Case,
    polls: list[PollReport],
    posts: list[dict[str, Any]],
    lines: list[str],
    hits: int,
    checked: tuple[bool, str] | None = None,
) -> dict[str, Any]:
    hostile_poll = next(p for p in polls if p.source == case.name)
    good_poll = next(p for p in polls if p.source == "good")
    good = [p for p in posts if _text(p).startswith(GOOD_TITLE)]
    others = [p for p in posts if not _text(p).startswith(GOOD_TITLE)]
    logged = next((line for line in lines if case.message and case.message in line), None)
    if case.expect == FEED_ERROR:
        handled = hostile_poll.outcome == "error" and not others
    elif case.expect == REFUSED:
        handled = hostile_poll.outcome == "ok" and not others and hits == 0
    elif case.expect == NO_IMAGE:
        handled = [_text(p).split("\n")[0] for p in others] == [case.title] and all(
            p.get("photo_url") is None and "photo" not in p for p in others
        )
        handled = handled and hits == 0
    elif case.expect == BOUNDED:
        handled = len(others) == 1 and len(_text(others[0])) <= 4096
    elif case.expect == CHECKED:
        handled = checked is not None and checked[0]
        logged = checked[1] if checked is not None else "not checked"
    elif case.expect == CAPPED:
        handled = (
            hostile_poll.new == MAX_NEW_PER_POLL
            and hostile_poll.recorded == FLOOD - MAX_NEW_PER_POLL
            # The stand-in enforces Telegram's per-chat rate: some wait for the next dispatch.
            and 0 < len(others) <= MAX_NEW_PER_POLL
        )
    else:
        handled = [_text(p).split("\n")[0] for p in others] == [case.title]
    # No hostile post may link to (speak for) the good site's article.
    handled = handled and not any(GOOD_PATH in json.dumps(p) for p in others)
    return {
        "name": case.name,
        "problem": case.problem,
        "expected": case.expect,
        "error_logged": None if case.message is None else logged is not None,
        "message": (logged or "")[:300],
        "handled": handled,
        "internal_hits": hits,
        "others_unaffected": good_poll.outcome == "ok"
        and len(good) == 1
        and bool(good[0].get("photo_url")),
    }


async def bomb_memory(url: str) -> dict[str, Any]:
    """Peak Python memory while fetching a gzip bomb with the production fetch()."""
    async with httpx.AsyncClient() as client:
        tracemalloc.start()
        try:
            await fetch(client, url, max_bytes=MAX_BYTES, deadline=10)
            error = "no error"
        except FetchError as exc:
            error = str(exc)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {"bomb_peak_bytes": peak, "bomb_error": error}


async def run(cases: list[str] | None = None, **_: Any) -> dict[str, Any]:
    """Every case (or the named ones), each in its own Service, all at once."""
    chosen = [CASES[name] for name in cases] if cases else list(CASES.values())
    site, state, hostile = SampleSite(), tg.State(), HostileSite()
    internal, x_state = InternalListener(), xs.State()
    state.valid_tokens.add(TOKEN)
    x_state.allow(xs.Credentials(*X_ENV.values()))
    for case in chosen:
        state.add_channel(_chat(case))
    state.add_chat(EDITORS_CHAT, "supergroup")
    site_server, tg_server = LoopbackServer(site_app(site)), LoopbackServer(tg.create_app(state))
    x_server = LoopbackServer(xs.create_app(x_state))
    records = _Records()
    logger = logging.getLogger("newsbot")
    level = logger.level
    with tempfile.TemporaryDirectory() as tmp:
        await site_server.start()
        await tg_server.start()
        await x_server.start()
        await hostile.start()
        await internal.start()
        site.base_url = site_server.url
        hostile.neighbour = site_server.url
        logger.addHandler(records)
        if logger.getEffectiveLevel() > logging.WARNING:
            logger.setLevel(logging.WARNING)
        try:
            raws = [
                _raw_config(c, site_server.url, tg_server.url, x_server.url, hostile, tmp)
                for c in chosen
            ]
            configs = [_config(raw) for raw in raws]
            # First poll: the sample site's backlog is recorded, the hostile feeds are empty.
            # A few at a time: 28 Services at once on 2 busy cores can miss the 1 s connect
            # timeout on loopback, which would test the machine, not the bot.
            gate = asyncio.Semaphore(4)

            async def one(config: Any) -> Any:
                async with gate:
                    return (await _run_case(config))[0]

            def checker(case: Case, raw: dict[str, Any]) -> Any:
                check = case.check
                if check is None:
                    return None

                async def then(service: Service) -> tuple[bool, str]:
                    run = CaseRun(
                        case, service, hostile, internal, records, state, x_state, raw, tmp
                    )
                    return await check(run)

                return then

            async def hostile_poll(case: Case, raw: dict[str, Any], config: Any) -> Any:
                async with gate:
                    return await _run_case(config, checker(case, raw))

            await asyncio.gather(*(one(config) for config in configs))
            records.lines.clear()
            hostile.phase = 1
            await site.publish(make_sample("still-arrives", GOOD_TITLE))
            outcomes = await asyncio.gather(
                *(hostile_poll(c, r, f) for c, r, f in zip(chosen, raws, configs, strict=True))
            )
            memory = await bomb_memory(f"{hostile.loopback('gzip-bomb')}/feed.xml")
        finally:
            logger.removeHandler(records)
            logger.setLevel(level)
            await hostile.stop()
            await internal.stop()
            await site_server.stop()
            await tg_server.stop()
            await x_server.stop()
    results = []
    for case, (case_polls, checked) in zip(chosen, outcomes, strict=True):
        mine = [
            line
            for _, line in records.lines
            if f"/{case.name}/" in line or f"source {case.name}:" in line
        ]
        hits = sum(n for path, n in hostile.hits.items() if path.startswith(f"/{case.name}/int"))
        posts = state.in_chat(_chat(case))
        results.append(_verdict(case, case_polls, posts, mine, hits, checked))
    return {
        "cases": results,
        "all_handled": all(r["handled"] for r in results),
        "all_logged": all(r["error_logged"] is not False for r in results),
        "others_unaffected": all(r["others_unaffected"] for r in results),
        "max_bytes": MAX_BYTES,
        "bomb_inflated_bytes": 1 << 30,
        "bomb_compressed_bytes": sum(map(len, hostile.bomb())),
        **memory,
    }


def table_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    def yes(value: bool | None) -> str:
        return "n/a" if value is None else ("yes" if value else "NO")

    def outcome(r: dict[str, Any]) -> str:
        if r["expected"] == CHECKED:  # its own check: what it found
            found = r["message"].replace("|", "/").replace("\n", " ")
            return f"{'handled' if r['handled'] else 'NOT handled'}: {found}"
        verdict = r["expected"] if r["handled"] else "NOT " + r["expected"]
        return f"{verdict}; error logged: {yes(r['error_logged'])}"

    rows = [
        (
            f"{r['name']}: {r['problem']}",
            f"{outcome(r)}; other source unaffected: {yes(r['others_unaffected'])}",
        )
        for r in figures["cases"]
    ]
    rows.append(
        (
            "peak memory fetching the gzip bomb",
            f"{figures['bomb_peak_bytes'] / 1e6:.1f} MB for a {figures['max_bytes'] / 1e6:g} MB "
            f"cap ({figures['bomb_compressed_bytes'] / 1e6:.1f} MB inflating to "
            f"{figures['bomb_inflated_bytes'] / 1e9:.1f} GB)",
        )
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.bad_input")
    parser.add_argument("cases", nargs="*", help=f"cases to run (default all: {', '.join(CASES)})")
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args.cases or None))
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    return 0 if figures["all_handled"] and figures["others_unaffected"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
