"""Secret scan: a full cycle with known fake secrets, then every byte written is searched.

Known fake secrets for every platform (Telegram bot tokens, X keys and secrets, the Facebook
Page and Instagram tokens, the editors' bot token, the push token) are given through the
environment in one pass and through files in the other. Each pass runs the bot against the
sample site and the stand-ins with DEBUG logging for everything (our loggers, the store's
and psycopg's, and httpx, httpcore, telegram, tweepy, urllib3, oauthlib, requests, uvicorn),
JSON logs in one pass and text in the other, and with failures that put errors into the logs
and the database: a wrong bot token (401, target paused), server errors (500/503, retried), a
post whose answer never comes (timeout, uncertain), broken feeds, a push with a wrong bearer.

Then every place written is read: captured stdout/stderr of the in-process daemon and of the
`newsbot run --once`, `status` and `check-config` commands, /metrics, /health and /push
answers, the SQLite file (raw bytes, WAL and every text column), the image cards and anything
else in the working directory. Each secret is searched raw, URL-encoded (once and twice,
form and path styles), base64 (standard and URL-safe, at every byte alignment) and in the
Bot API URL form `bot<token>`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import yaml

from bot.config import validate
from bot.demo.runner import DEMO_IG_USER, DEMO_PAGE_ID, _free_port, demo_config
from bot.demo.site import SampleSite, make_sample
from bot.demo.site import create_app as create_site_app
from bot.httpserver import LoopbackServer
from bot.logs import setup_logging
from bot.service import Service
from bot.store import DeliveryStatus
from standins import graph as graph_standin
from standins import telegram as telegram_standin
from standins import x as x_standin

# Fake, but shaped like the real thing; some carry characters that URL encoding changes.
SECRETS: dict[str, str] = {
    "TELEGRAM_TOKEN": "7000000001:AAF-scanSECRET_telegram-Token01",
    "TELEGRAM_WRONG_TOKEN": "7000000009:AAW-scanSECRET_wrong-Token09",
    "EDITORS_TOKEN": "7000000002:AAE-scanSECRET_editors-Token02",
    "X_API_KEY": "scanSECRET+xApiKey/0003",
    "X_API_SECRET": "scanSECRET/x+api=Secret0004",
    "X_ACCESS_TOKEN": "1000000001-scanSECRET=xAccess05",
    "X_ACCESS_TOKEN_SECRET": "scanSECRET+x/access=TokenSecret06",
    "FACEBOOK_PAGE_TOKEN": "EAAscanSECRETfacebookPage07",
    "INSTAGRAM_TOKEN": "IGQscanSECRETinstagram08",
    "PUSH_TOKEN": "scanSECRET-push+token/10=",
}
TELEGRAM_TOKENS = ("TELEGRAM_TOKEN", "TELEGRAM_WRONG_TOKEN", "EDITORS_TOKEN")

# Every library that logs HTTP traffic, OAuth signing or SQL, at its most talkative. SQL runs
# in the store (bot.store) on sqlite3, which logs nothing, or psycopg (logger "psycopg").
LOUD_LOGGERS = (
    "httpx", "httpcore", "telegram", "telegram.ext", "telegram.request", "tweepy", "urllib3",
    "oauthlib", "requests", "requests_oauthlib", "bot.store", "psycopg",
    "apscheduler", "uvicorn", "uvicorn.error", "asyncio", "PIL", "newsbot",
)  # fmt: skip

# `newsbot` as a subprocess, with the libraries' loggers turned to DEBUG after set-up.
CLI = """
import logging, sys
import bot.cli, bot.logs
original = bot.logs.setup_logging
def loud(level="INFO", fmt="text"):
    original(level, fmt)
    for name in {loggers!r}:
        logging.getLogger(name).setLevel(logging.DEBUG)
bot.cli.setup_logging = loud
sys.exit(bot.cli.main(sys.argv[1:]))
"""


def forms(name: str, secret: str) -> dict[str, str]:
    """The ways a secret could be written: raw, URL-encoded, base64, Bot API URL."""
    found = {
        "raw": secret,
        "url": quote(secret, safe=""),
        "url-path": quote(secret),
        "url-form": quote_plus(secret),
        "url-twice": quote(quote(secret, safe=""), safe=""),
    }
    data = secret.encode()
    for shift in range(3):
        # The characters of base64(prefix + secret) that depend on the secret alone.
        for label, encode in (("base64", base64.b64encode), ("base64u", base64.urlsafe_b64encode)):
            text = encode(b"\0" * shift + data).decode().rstrip("=")
            start = -(-shift * 4 // 3)
            end = len(text) - (1 if (shift + len(data)) % 3 else 0)
            found[f"{label}+{shift}"] = text[start:end]
    if name in TELEGRAM_TOKENS:
        found["bot-url"] = f"bot{secret}"
    return found


@dataclass
class Scan:
    places: dict[str, bytes] = field(default_factory=dict)
    leaks: list[dict[str, str]] = field(default_factory=list)
    prefix: str = ""  # the pass, so both passes' places are kept apart

    def add(self, place: str, data: bytes | str) -> None:
        raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        place = f"{self.prefix}{place}"
        self.places[place] = self.places.get(place, b"") + raw

    def search(self) -> None:
        needles = [
            (name, form, text.encode())
            for name, secret in SECRETS.items()
            for form, text in forms(name, secret).items()
        ]
        for place, data in self.places.items():
            lowered = data.lower()
            for name, form, needle in needles:
                # URL encodings may use either case of hex digits.
                haystack = lowered if form.startswith("url") else data
                probe = needle.lower() if form.startswith("url") else needle
                if probe in haystack:
                    self.leaks.append({"place": place, "secret": name, "form": form})


@dataclass
class World:
    tmp: Path
    site: SampleSite
    tg: telegram_standin.State
    x: x_standin.State
    graph: graph_standin.State
    servers: list[LoopbackServer]
    raw_config: dict[str, Any]
    environ: dict[str, str]


def _secret_refs(tmp: Path, via: str) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    refs, environ = {}, {}
    secrets_dir = tmp / "secrets"
    secrets_dir.mkdir(exist_ok=True)
    for name, value in SECRETS.items():
        if via == "env":
            refs[name] = {"env": f"SCAN_{name}"}
            environ[f"SCAN_{name}"] = value
        else:
            path = secrets_dir / name.lower()
            path.write_text(value + "\n", encoding="utf-8")
            refs[name] = {"file": str(path)}
    return refs, environ


async def _world(tmp: Path, via: str) -> World:
    site = SampleSite()
    tg = telegram_standin.State()
    tg.valid_tokens |= {SECRETS["TELEGRAM_TOKEN"], SECRETS["EDITORS_TOKEN"]}
    tg.per_chat_interval = 0.01
    for chat in ("@scan_en", "@scan_ru", "@scan_az"):
        tg.add_channel(chat)
    tg.add_chat("@scan_editors", "supergroup")
    x = x_standin.State()
    x.allow(
        x_standin.Credentials(
            SECRETS["X_API_KEY"],
            SECRETS["X_API_SECRET"],
            SECRETS["X_ACCESS_TOKEN"],
            SECRETS["X_ACCESS_TOKEN_SECRET"],
        )
    )
    graph = graph_standin.State(page_id=DEMO_PAGE_ID, ig_user_id=DEMO_IG_USER)
    graph.tokens |= {SECRETS["FACEBOOK_PAGE_TOKEN"], SECRETS["INSTAGRAM_TOKEN"]}
    graph.in_progress_polls = 0
    servers = [
        LoopbackServer(create_site_app(site)),
        LoopbackServer(telegram_standin.create_app(tg)),
        LoopbackServer(x_standin.create_app(x)),
        LoopbackServer(graph_standin.create_app(graph)),
    ]
    for server in servers:
        await server.start()
    site.base_url = servers[0].url
    refs, environ = _secret_refs(tmp, via)
    raw = demo_config(
        servers[0].url,
        servers[1].url,
        servers[2].url,
        servers[3].url,
        f"sqlite:///{tmp / 'state.db'}",
        poll_every=3600,
        http_port=_free_port(),
        cards_dir=str(tmp / "cards"),
    )
    chats = {"en": "@scan_en", "ru": "@scan_ru", "az": "@scan_az"}
    for target in raw["targets"]:
        target["timeout"] = 2
        if target["platform"] == "telegram":
            lang = target["languages"][0]
            target["chat_id"] = chats[lang]
            target["min_interval"] = 0
            # The Russian channel's bot token is wrong: Telegram answers 401, target paused.
            target["token"] = refs["TELEGRAM_WRONG_TOKEN" if lang == "ru" else "TELEGRAM_TOKEN"]
        elif target["platform"] == "x":
            for key in ("api_key", "api_secret", "access_token", "access_token_secret"):
                target[key] = refs[f"X_{key.upper()}"]
        elif target["platform"] == "facebook":
            target["page_access_token"] = refs["FACEBOOK_PAGE_TOKEN"]
        elif target["platform"] == "instagram":
            target["access_token"] = refs["INSTAGRAM_TOKEN"]
    raw["http"]["push_token"] = refs["PUSH_TOKEN"]
    raw["editors"] = {
        "platform": "telegram",
        "api_base": servers[1].url,
        "token": refs["EDITORS_TOKEN"],
        "chat_id": "@scan_editors",
        "allowed_user_ids": [1001],
        "poll_timeout": 1,
    }
    raw["first_run"] = {"post_newest": 1}
    raw["dispatch"] = {"interval": 0.3, "backoff_base": 0.3, "lease": 10}
    return World(tmp, site, tg, x, graph, servers, raw, environ)


def _loud(level: str = "DEBUG") -> None:
    for name in LOUD_LOGGERS:
        logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _captured(path: Path, fmt: str) -> Iterator[None]:
    """stdout and stderr into `path`, logging set up as the CLI does, then put back."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_levels = {n: logging.getLogger(n).level for n in LOUD_LOGGERS}
    with (
        path.open("w", encoding="utf-8") as out,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),
    ):
        setup_logging("DEBUG", fmt)
        _loud()
        try:
            yield
        finally:
            for handler in list(root.handlers):
                root.removeHandler(handler)
            for handler in saved_handlers:
                root.addHandler(handler)
            root.setLevel(saved_level)
            for name, level in saved_levels.items():
                logging.getLogger(name).setLevel(level)


async def _settled(service: Service, timeout: float, articles: int = 0) -> None:
    """Until at least `articles` are known and nothing is pending or sending (the paused
    target's posts aside), twice in a row."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 2:
        paused = await service.store.paused_targets()
        counts = await service.store.counts()
        busy = [
            t
            for t, row in counts.items()
            if t not in paused
            and (row.get(DeliveryStatus.PENDING) or row.get(DeliveryStatus.SENDING))
        ]
        known = await service.store.count_articles()
        quiet = quiet + 1 if not busy and counts and known >= articles else 0
        await asyncio.sleep(0.2)


async def _daemon_cycle(world: World, scan: Scan, fmt: str) -> dict[str, int]:
    config = validate(world.raw_config, "scan config", environ=world.environ or {})
    service = Service(config)
    stop = asyncio.Event()
    log_path = world.tmp / f"daemon-{fmt}.log"
    with _captured(log_path, fmt):
        # Failures queued before anything is sent: each is met once.
        world.tg.inject(telegram_standin.Fault(status=500))
        world.x.inject(x_standin.XFault(status=503))
        world.graph.inject(graph_standin.GraphFault(status=500))
        world.site.failing_paths["/az/rss.xml"] = 500
        task = asyncio.create_task(service.run(stop))
        try:
            while service.web_server is None:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
            base = service.web_server.url
            await _settled(service, 20)
            known = await service.store.count_articles()
            # Pushes: one with the right bearer, one with a wrong one (401).
            sample = make_sample("scan-push", "Pushed secret scan", image=False)  # a card
            article = await world.site.publish(sample)
            # The answer to this post never comes in time: uncertain, and an alert.
            world.tg.inject(telegram_standin.Fault(status=200, hang=3.0))
            async with httpx.AsyncClient(timeout=10) as client:
                url = {"url": world.site.base_url + article.path}
                refused = await client.post(
                    f"{base}/push", json=url, headers={"Authorization": "Bearer wrong"}
                )
                scan.add("http /push (wrong bearer)", refused.content)
                accepted = await client.post(
                    f"{base}/push",
                    json=url,
                    headers={"Authorization": f"Bearer {SECRETS['PUSH_TOKEN']}"},
                )
                scan.add("http /push", accepted.content)
                await _settled(service, 20, articles=known + 1)
                await asyncio.sleep(1.5)  # the editors' console sends its alerts
                for path in ("/metrics", "/health/ready", "/health/live"):
                    answer = await client.get(base + path)
                    scan.add(f"http {path}", answer.content)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    scan.add("daemon stdout/stderr and logs", log_path.read_bytes())
    outcomes: dict[str, float] = {}
    for metric in service.metrics.deliveries.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                status = sample.labels["status"]
                outcomes[status] = outcomes.get(status, 0) + sample.value
    return {
        "outcomes": {k: int(v) for k, v in sorted(outcomes.items())},
        "telegram_posts": len(world.tg.messages),
        "x_posts": len(world.x.posts),
        "facebook_posts": len(world.graph.posts),
        "instagram_posts": len(world.graph.media),
        "refused_push_status": refused.status_code,
    }


def _cli(world: World, scan: Scan, fmt: str, *args: str) -> None:
    config_path = world.tmp / "newsbot.yaml"
    raw = dict(world.raw_config, logging={"level": "DEBUG", "format": fmt})
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    env = {**os.environ, **world.environ}
    code = CLI.format(loggers=LOUD_LOGGERS)
    done = subprocess.run(
        [sys.executable, "-c", code, "-c", str(config_path), *args],
        env=env,
        capture_output=True,
        timeout=60,
        cwd=world.tmp,
    )
    scan.add(f"newsbot {' '.join(args)} stdout", done.stdout)
    scan.add(f"newsbot {' '.join(args)} stderr", done.stderr)


def _database(path: Path, scan: Scan) -> int:
    """Every text column of every table, read back; returns the rows read."""
    rows = 0
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            out = io.StringIO()
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                rows += 1
                out.write(json.dumps([str(v) for v in row], ensure_ascii=False) + "\n")
            scan.add(f"database table {table} (text)", out.getvalue())
    return rows


async def _pass(via: str, fmt: str, scan: Scan) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"newsbot-scan-{via}-") as name:
        tmp = Path(name)
        world = await _world(tmp, via)
        try:
            figures = await _daemon_cycle(world, scan, fmt)
            # A new article for the one-shot CLI run (the same database, a second process).
            await world.site.publish(make_sample("scan-cli", "Secret scan from the CLI"))
            world.tg.inject(telegram_standin.Fault(status=500))
            await asyncio.to_thread(_cli, world, scan, fmt, "--log-level", "DEBUG", "run", "--once")
            await asyncio.to_thread(_cli, world, scan, fmt, "status")
            await asyncio.to_thread(_cli, world, scan, fmt, "check-config")
        finally:
            for server in world.servers:
                await server.stop()
        figures["database_rows"] = _database(tmp / "state.db", scan)
        secrets_dir = tmp / "secrets"
        for path in sorted(tmp.rglob("*")):
            if path.is_file() and secrets_dir not in path.parents:
                scan.add(f"file {path.relative_to(tmp)}", path.read_bytes())
        figures["files"] = sum(
            1 for p in tmp.rglob("*") if p.is_file() and secrets_dir not in p.parents
        )
        figures["cards"] = len(list(tmp.glob("cards/*")))
        return figures


async def run(**_: Any) -> dict[str, Any]:
    """Two passes (secrets from the environment with JSON logs, from files with text logs)."""
    passes = {}
    scan = Scan()
    for via, fmt in (("env", "json"), ("file", "text")):
        scan.prefix = f"{via}/{fmt}: "
        passes[f"{via}/{fmt}"] = await _pass(via, fmt, scan)
        mine = [data for place, data in scan.places.items() if place.startswith(scan.prefix)]
        passes[f"{via}/{fmt}"]["places"] = len(mine)
        # Proof the secrets were there to leak: the redaction replaced them this often.
        passes[f"{via}/{fmt}"]["redactions"] = sum(d.count(b"[REDACTED]") for d in mine)
    scan.search()
    forms_searched = sum(len(forms(n, s)) for n, s in SECRETS.items())
    return {
        "secrets_planted": len(SECRETS),
        "forms_searched": forms_searched,
        "places_scanned": len(scan.places),
        "bytes_scanned": sum(len(b) for b in scan.places.values()),
        "leaks_found": len(scan.leaks),
        "leaks": scan.leaks,
        "passes": passes,
        "places": sorted(scan.places),
    }


def table_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("fake secrets planted (env pass, file pass)", str(figures["secrets_planted"])),
        ("forms searched per secret set (raw, URL-encoded, base64, bot<token>)",
         str(figures["forms_searched"])),
        ("places scanned (logs, command output, HTTP answers, DB bytes and columns, files)",
         str(figures["places_scanned"])),
        ("bytes scanned", f"{figures['bytes_scanned']:,}"),
        ("leaks found", str(figures["leaks_found"])),
    ]  # fmt: skip
    for name, p in figures["passes"].items():
        rows.append(
            (
                f"pass {name}: posts Telegram/X/Facebook/Instagram",
                f"{p['telegram_posts']}/{p['x_posts']}/{p['facebook_posts']}/"
                f"{p['instagram_posts']}",
            )
        )
        outcomes = ", ".join(f"{k} {v}" for k, v in p["outcomes"].items())
        rows.append((f"pass {name}: delivery outcomes met", outcomes))
        rows.append((f"pass {name}: secrets replaced by [REDACTED]", str(p["redactions"])))
    return rows


if __name__ == "__main__":
    result = asyncio.run(run())
    for measure, value in table_rows(result):
        print(f"{measure}: {value}")
    for leak in result["leaks"]:
        print("LEAK", leak)
