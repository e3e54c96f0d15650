"""Start-up loads only what polling needs (issue 18): a started service has not imported the
extraction stack, the web stack, twitter-text, Jinja2 (no templates), SQLAlchemy (gone since
issue 18: it cost every daemon 12 MB), psycopg on SQLite, nor a platform library before that
platform's first call. Each case runs in a fresh interpreter, so nothing imported by other
tests counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Loaded at the first article (bot.enrich), never at start-up.
EXTRACTION = ("trafilatura", "htmldate", "numpy", "py3langid", "courlan", "justext", "dateutil")
#: Loaded only with the HTTP endpoint or the web desk.
WEB = ("uvicorn", "starlette")
#: Loaded at the first X or Mastodon render.
RENDER = ("twitter_text", "pkg_resources")
#: Loaded at the first image check or card, and for a feed whose declared encoding is wrong.
OCCASIONAL = ("PIL", "charset_normalizer")
#: Loaded at the first template (none configured here), or never: SQLAlchemy is gone, and
#: psycopg is PostgreSQL's driver (these services run on SQLite).
UNUSED = ("jinja2", "sqlalchemy", "psycopg")
#: Each platform's library, loaded at its first call (adapters' deferred_imports).
LIBRARIES = {"telegram": ("telegram", "httpcore"), "x": ("tweepy", "requests", "oauthlib")}

TARGETS = {
    "telegram": {"token": {"env": "T"}, "chat_id": "@chan_test"},
    "x": {
        "api_key": {"env": "T"},
        "api_secret": {"env": "T"},
        "access_token": {"env": "T"},
        "access_token_secret": {"env": "T"},
    },
}

SCRIPT = """
import asyncio, json, sys
from bot.config import validate
from bot.service import Service

async def main():
    service = Service(validate(json.loads(sys.argv[1]), "test", {"T": "1:b"}))
    await service.start()
    if sys.argv[2] == "extract":
        from bot.enrich import extract_article
        page = "<html lang=en><title>T</title><body><h1>T</h1><p>" + "Words here. " * 60
        extract_article(page + "</p></body></html>", "https://news.example/a")
    if sys.argv[2] == "first-call":
        try:  # the API on a dead port: the call fails, after the library is loaded
            await service.adapters["t"].delete("1/1")
        except Exception as exc:
            print(type(exc).__name__, file=sys.stderr)
    loaded = set(sys.modules)
    await service.close()
    print(json.dumps(sorted(loaded)))

asyncio.run(main())
"""


def started_modules(tmp_path: Path, platform: str, then: str = "") -> set[str]:
    config = {
        "database": f"sqlite:///{tmp_path}/state.db",
        "sources": [{"name": "feed", "url": "http://127.0.0.1:9/feed"}],
        "targets": [
            {"name": "t", "platform": platform, "api_base": "http://127.0.0.1:9"}
            | TARGETS[platform]
        ],
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(config), then],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=True,
    )
    names = set(json.loads(result.stdout.strip().splitlines()[-1]))
    return names | {name.split(".")[0] for name in names}


def test_a_telegram_only_service_starts_without_the_rest(tmp_path: Path) -> None:
    loaded = started_modules(tmp_path, "telegram")
    # The check sees imports, the store's own driver module included.
    assert {"bot", "adapters.telegram", "bot.store.aio", "sqlite3"} <= loaded
    unexpected = loaded & {
        *EXTRACTION, *WEB, *RENDER, *OCCASIONAL, *UNUSED, *LIBRARIES["telegram"], *LIBRARIES["x"]
    }  # fmt: skip
    assert not unexpected, f"imported at start-up: {sorted(unexpected)}"


def test_an_x_only_service_starts_without_telegram_nor_twitter_text(tmp_path: Path) -> None:
    loaded = started_modules(tmp_path, "x")
    assert "adapters.x" in loaded
    unexpected = loaded & {
        *EXTRACTION, *WEB, *RENDER, *OCCASIONAL, *UNUSED, *LIBRARIES["telegram"], *LIBRARIES["x"]
    }  # fmt: skip
    assert not unexpected, f"imported at start-up: {sorted(unexpected)}"


def test_a_platform_library_loads_at_the_platforms_first_call(tmp_path: Path) -> None:
    for platform, library in LIBRARIES.items():
        (tmp_path / platform).mkdir()
        loaded = started_modules(tmp_path / platform, platform, then="first-call")
        assert set(library) <= loaded, f"{platform}: {sorted(set(library) - loaded)} not loaded"
        others = {m for p, names in LIBRARIES.items() if p != platform for m in names}
        assert not loaded & others - {"httpcore"}, f"{platform} loaded another platform's library"


def test_the_first_article_loads_the_extraction_stack(tmp_path: Path) -> None:
    loaded = started_modules(tmp_path, "telegram", then="extract")
    assert {"trafilatura", "htmldate"} <= loaded
