"""Issue 15: hostile input, round two (stalls, site identity, fairness, bounded everything)."""

from __future__ import annotations

import logging
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from adapters.x import PLAIN, compose, weighted_length
from bot.config import validate
from bot.logs import TextFormatter, escape_log
from bot.metrics import Metrics
from bot.models import MAX_TITLE_CHARS, Article, FeedEntry
from bot.netguard import BlockedURL, Guard, static_resolver
from bot.pipeline import Pipeline, trusted_canonical
from bot.store import Store
from bot.templates import TemplateProblem, compile_template, render_template
from bot.text import trim_text
from bot.urls import on_site, registrable_domain


def test_a_5mb_headline_is_capped_and_x_trimming_measures_little() -> None:
    huge = "word " * 1_000_000
    assert len(Article(url="https://n.example/a", title=huge).title) == MAX_TITLE_CHARS
    assert len(FeedEntry(source="s", link="x", title=huge).title or "") == MAX_TITLE_CHARS
    measured: list[int] = []

    def counting(text: str) -> int:
        measured.append(len(text))
        return weighted_length(text)

    trimmed = trim_text(huge, 250, counting)
    assert weighted_length(trimmed) <= 250 and trimmed.endswith("…")
    # Never a parse of the whole 5 MB: the longest text measured is a few times the limit.
    assert max(measured) <= 4 * 250 + 2 and len(measured) < 40
    tweet = compose(huge[:MAX_TITLE_CHARS], "lead", [], "https://n.example/a")
    assert weighted_length(tweet) <= 280 and tweet.endswith("https://n.example/a")


def test_site_identity_uses_the_public_suffix_list() -> None:
    assert registrable_domain("www.news.co.uk") == "news.co.uk"
    assert registrable_domain("alice.github.io") == "alice.github.io"
    assert registrable_domain("127.0.0.1") == "127.0.0.1"
    page = "https://news.co.uk/a"
    claimed = Article(url="https://attacker.co.uk/x", title="t")
    assert trusted_canonical(claimed, page).url == page
    same = Article(url="https://www.news.co.uk/a-canonical", title="t")
    assert trusted_canonical(same, page).url == same.url
    bob = Article(url="https://bob.github.io/p", title="t")
    assert trusted_canonical(bob, "https://alice.github.io/p").url == "https://alice.github.io/p"
    assert trusted_canonical(bob, "https://alice.github.io/p", ["bob.github.io"]).url == bob.url
    assert not on_site("http://10.255.0.1/", "http://127.0.0.1:8000/rss.xml")
    assert on_site("https://cdn.example.net/a", "https://news.example/rss", ["*.example.net"])


def _pipeline(tmp_path: Path, sources: list[dict]) -> Pipeline:
    raw = {
        "database": f"sqlite:///{tmp_path}/p.db",
        "sources": sources,
        "targets": [
            {"name": "tg", "platform": "telegram", "token": {"env": "T"}, "chat_id": "@chan_c"}
        ],
    }
    config = validate(raw, environ={"T": "1:abcdef"})
    return Pipeline(config, Store(config.file.database), httpx.AsyncClient(), {})


async def test_push_matches_the_exact_host_and_the_body_cannot_widen_it(tmp_path: Path) -> None:
    pipeline = _pipeline(
        tmp_path,
        [
            {"name": "intranet", "url": "http://127.0.0.1:8000/rss.xml"},
            {"name": "news", "url": "https://news.co.uk/rss.xml"},
        ],
    )
    assert pipeline._source_for("http://10.255.0.1/a", None) is None
    assert pipeline._source_for("http://[::ffff:127.0.0.1]/a", None) is None
    assert pipeline._source_for("https://attacker.co.uk/a", "news") is None  # named, not widened
    found = pipeline._source_for("http://127.0.0.1:8000/story", "news")
    assert found is not None and found.name == "intranet"
    # The intranet source is trusted for its own host and port, not PostgreSQL's.
    pipeline.guard = Guard(static_resolver({}))
    policy = await pipeline._policy_for("http://127.0.0.1:5432/", "")
    await pipeline.guard.check("http://127.0.0.1:8000/story", policy)
    with pytest.raises(BlockedURL, match="loopback"):
        await pipeline.guard.check("http://127.0.0.1:5432/", policy)
    with pytest.raises(BlockedURL, match="private"):
        await pipeline.guard.check("http://10.255.0.1/", policy)
    await pipeline.client.aclose()


def test_delivery_order_is_fair_and_clamps_odd_dates(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, [{"name": "a", "url": "https://a.example/rss"}])
    now = 1_700_000_000.0
    future = datetime.fromtimestamp(now, UTC) + timedelta(days=3)
    backdated = datetime.fromtimestamp(now, UTC) - timedelta(days=300)
    assert pipeline._fair_sort_key(Article("u", "t", "x", published=future), now) == now
    assert pipeline._fair_sort_key(Article("u", "t", "y", published=backdated), now) == now
    flood = [pipeline._fair_sort_key(Article("u", "t", "flood"), now) for _ in range(1000)]
    good = pipeline._fair_sort_key(Article("u", "t", "good"), now + 5)
    assert flood[0] == now and flood[-1] == now + 999
    assert sum(key < good for key in flood) <= 6  # the good article waits for 6, not 1,000


def test_metrics_labels_come_only_from_configured_names() -> None:
    metrics = Metrics(sources=["good"])
    for n in range(300):
        metrics.article_seen(f"forged-{n}", "new")
    metrics.article_seen("good", "new")
    labels = {s.labels["source"] for m in metrics.articles_seen.collect() for s in m.samples}
    assert labels == {"other", "good"}


def test_logged_outside_text_stays_on_one_line() -> None:
    assert escape_log("/post\nINFO forged line\r\x1b[2J") == "/post\\nINFO forged line\\r\\x1b[2J"
    record = logging.LogRecord("n", logging.WARNING, "", 0, "refused /%s", ("a\nb",), None)
    assert "\n" not in TextFormatter().format(record)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{{ 'x' * 300000000 }} {{ url }}", "over the template limit"),
        ("{{ title|safe }} {{ url }}", "No filter named 'safe'"),
        ("{% for a in title %}{% for b in title %}{% endfor %}{% endfor %}{{ url }}", "loops"),
        ("{% for i in range(100000000) %}x{% endfor %}{{ url }}", "over the template limit"),
        ("{{ '{:>300000000}'.format(1) }}{{ url }}", "not allowed"),
        ("{{ 9 ** 999999 }}{{ url }}", "over the template limit"),
    ],
)
def test_templates_run_with_limits_and_without_markup_escapes(template: str, problem: str) -> None:
    article = Article(url="https://n.example/a", title="Title", lead="Lead")
    with pytest.raises(TemplateProblem, match=problem.replace("(", r"\(")):
        compile_template(template, PLAIN)
        render_template(template, article, PLAIN, outlet="N")


async def test_sqlite_files_are_created_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = Store(f"sqlite:///{tmp_path}/state.db")
        await store.init()
        await store.record_event("info", "test", "x")
    finally:
        os.umask(old)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("state.db")]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    await store.close()


def test_sources_are_found_by_host_in_config_order_and_after_a_new_configuration(
    tmp_path: Path,
) -> None:
    """Sources are looked up through an index (thousands of them are not scanned a push):
    the same answers as a scan, in the configuration's order, and a new configuration is
    seen at once."""
    pipeline = _pipeline(
        tmp_path,
        [
            {
                "name": "cdn",
                "url": "https://feeds.example/cdn.xml",
                "allow_hosts": ["*.site.example"],
            },
            {"name": "ru", "url": "https://site.example/ru/rss.xml"},
            {"name": "en", "url": "https://site.example/en/rss.xml"},
        ],
    )
    found = pipeline._source_for("https://site.example/en/news/1", None)
    assert found is not None and found.name == "en"  # longest shared path
    found = pipeline._source_for("https://site.example/other", None)
    assert found is not None and found.name == "ru"  # a tie: the first in the configuration
    found = pipeline._source_for("https://img.site.example/a.jpg", None)
    assert found is not None and found.name == "cdn"  # listed in allow_hosts only
    assert pipeline._source_for("https://elsewhere.example/a", None) is None
    renamed = _pipeline(tmp_path, [{"name": "new", "url": "https://elsewhere.example/rss"}])
    pipeline.config = renamed.config
    found = pipeline._source_for("https://elsewhere.example/a", None)
    assert found is not None and found.name == "new"
    assert pipeline._source_named("en") is None
