"""Per-article CPU cost: extract, summarise and render one saved page for all four platforms.

Baseline: trafilatura.extract called directly on the same page.
"""

from __future__ import annotations

import gzip
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import trafilatura

from adapters.facebook import FacebookAdapter
from adapters.instagram import InstagramAdapter
from adapters.telegram import TelegramAdapter
from adapters.x import XAdapter
from bot.enrich import extract_article
from bot.targets import Outlet

FIXTURES = Path(
    os.environ.get("NEWSBOT_FIXTURES")
    or Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "article-pages"
)


def adapters() -> list[Any]:
    outlet = Outlet(name="Bench Times")
    common = {"api_base": "http://127.0.0.1:9"}
    specs = [
        (TelegramAdapter, {"token": {"env": "T"}, "chat_id": "@chan_c"}),
        (
            XAdapter,
            {
                "api_key": {"env": "T"},
                "api_secret": {"env": "T"},
                "access_token": {"env": "T"},
                "access_token_secret": {"env": "T"},
            },
        ),
        (FacebookAdapter, {"page_id": "1", "page_access_token": {"env": "T"}}),
        (InstagramAdapter, {"ig_user_id": "1", "access_token": {"env": "T"}}),
    ]
    built = []
    for cls, extra in specs:
        raw = {"name": cls.platform, "platform": cls.platform, **common, **extra}
        built.append(cls(cls.Settings.model_validate(raw), {}, outlet))
    return built


def load_pages() -> list[tuple[str, bytes]]:
    truth = json.loads((FIXTURES / "ground-truth.json").read_text(encoding="utf-8"))
    return [
        (info["url"], gzip.decompress((FIXTURES / "html" / f"{sha}.html.gz").read_bytes()))
        for sha, info in truth.items()
    ]


def run() -> dict[str, Any]:
    if not (FIXTURES / "ground-truth.json").is_file():
        return {"skipped": f"no article pages at {FIXTURES}"}
    pages = load_pages()
    targets = adapters()
    ours, base = [], []
    for url, page in pages:
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            article = extract_article(page, url)
            for adapter in targets:
                adapter.render(article)
            best = min(best, time.process_time() - start)
        ours.append(best * 1000)
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            trafilatura.extract(page, url=url)
            best = min(best, time.process_time() - start)
        base.append(best * 1000)
    return {
        "pages": len(pages),
        "median_ms": statistics.median(ours),
        "p95_ms": sorted(ours)[int(len(ours) * 0.95)],
        "baseline_median_ms": statistics.median(base),
        "baseline_p95_ms": sorted(base)[int(len(base) * 0.95)],
    }
