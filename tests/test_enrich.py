"""Enrichment: each field from each kind of page, the fallbacks, and the real fixture pages."""

from __future__ import annotations

import gzip
import json
import os
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.enrich import EnrichmentError, extract_article
from bot.models import FeedEntry

URL = "https://news.example/en/news/42-budget?utm_source=rss"


def ld_page(ld: object, extra_head: str = "", body: str = "") -> str:
    script = json.dumps(ld).replace("</", "<\\/")  # as sites do, so "</script>" stays inside
    return f"""<!doctype html><html lang="en"><head><title>Page title - News</title>
<script type="application/ld+json">{script}</script>{extra_head}</head>
<body><article><h1>H1 title</h1>{body}</article></body></html>"""


def test_json_ld_news_article_in_graph() -> None:
    ld = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebSite", "name": "News"},
            {
                "@type": "NewsArticle",
                "headline": "Budget &amp; taxes pass",
                "description": "Parliament approved it.",
                "url": "https://news.example/en/news/42-budget",
                "image": [{"@type": "ImageObject", "url": "/img/42.jpg"}],
                "datePublished": "2025-09-04T13:40:00+04:00",
                "dateModified": "2025-09-04T14:00:00+04:00",
                "author": [{"@type": "Person", "name": "Sabina M."}],
                "articleSection": "Politics",
                "keywords": "budget, taxes, Politics",
                "inLanguage": "en-GB",
            },
        ],
    }
    article = extract_article(ld_page(ld), URL, source="en")
    assert article.title == "Budget & taxes pass"
    assert article.url == "https://news.example/en/news/42-budget"
    assert article.lead == "Parliament approved it."
    assert article.image_url == "https://news.example/img/42.jpg"
    assert article.published == datetime(2025, 9, 4, 9, 40, tzinfo=UTC)
    assert article.updated is not None and article.updated > article.published
    assert article.author == "Sabina M."
    assert article.categories == ("Politics",)
    assert article.tags == ("budget", "taxes")  # the section is not repeated as a tag
    assert article.language == "en"
    assert article.source == "en"


def test_malformed_json_ld_is_skipped_and_opengraph_used() -> None:
    page = """<html lang="ru"><head>
<script type="application/ld+json">{"@type": "NewsArticle", "headline": broken</script>
<meta property="og:title" content="Заголовок статьи">
<meta property="og:description" content="Краткое описание.">
<meta property="og:image" content="https://cdn.example/a.jpg">
<meta property="og:url" content="https://news.example/ru/news/7">
<meta property="og:site_name" content="Новости">
<meta property="article:published_time" content="2025-09-04T10:00:00Z">
<meta property="article:section" content="Мир"><meta property="article:tag" content="ООН">
</head><body><p>Текст.</p></body></html>"""
    article = extract_article(page, "https://news.example/ru/news/7?fbclid=1")
    assert article.title == "Заголовок статьи"
    assert article.lead == "Краткое описание."
    assert article.url == "https://news.example/ru/news/7"
    assert article.image_url == "https://cdn.example/a.jpg"
    assert article.categories == ("Мир",) and article.tags == ("ООН",)
    assert article.language == "ru" and article.site_name == "Новости"
    assert article.published == datetime(2025, 9, 4, 10, tzinfo=UTC)


def test_canonical_link_wins_over_og_url_and_resolves_relative() -> None:
    page = """<html><head><link rel="canonical" href="/en/news/42">
<meta property="og:url" content="https://other.example/x"><title>T</title></head></html>"""
    assert extract_article(page, URL).url == "https://news.example/en/news/42"


def test_plain_page_falls_back_to_title_paragraphs_and_byline() -> None:
    paragraphs = "".join(
        f"<p>Paragraph {i} of the story has enough words to count as real body text.</p>"
        for i in range(4)
    )
    page = f"""<html lang="az"><head><title>Xəbər başlığı | Qəzet</title>
<meta property="og:site_name" content="Qəzet"></head>
<body><nav>Menu</nav><article><h1>Xəbər başlığı</h1>{paragraphs}
<p>By Sabina Mammadli</p><p>Views: 119</p>
<p>Any use of materials is allowed only if there is a hyperlink to Caliber.az</p>
</article></body></html>"""
    article = extract_article(page, "https://qezet.example/az/1")
    assert article.title == "Xəbər başlığı"
    assert article.lead.startswith("Paragraph 0 of the story")
    assert "Paragraph 3" in article.body
    assert "Any use of materials" not in article.body + article.lead
    assert article.author == "Sabina Mammadli"
    assert article.language == "az"
    assert article.url == "https://qezet.example/az/1"


def test_feed_entry_fills_what_the_page_lacks() -> None:
    entry = FeedEntry(
        source="s",
        link="https://news.example/1",
        title="Entry title",
        summary="Entry summary.",
        published=datetime(2025, 1, 2, tzinfo=UTC),
        categories=("Economy",),
        image_url="https://news.example/e.jpg",
        language="en",
    )
    article = extract_article("<html><body><div>x</div></body></html>", entry.link, entry)
    assert article.title == "Entry title"
    assert article.lead == "Entry summary."
    assert article.image_url == "https://news.example/e.jpg"
    assert article.published == entry.published
    assert article.categories == ("Economy",)
    assert article.language == "en"
    assert article.source == "s"


def test_no_title_anywhere_is_a_clear_error() -> None:
    with pytest.raises(EnrichmentError, match="no title"):
        extract_article("<html><body><div>nothing</div></body></html>", URL)


def test_windows_1251_page_decodes() -> None:
    page = (
        '<html><head><meta charset="windows-1251"><title>Новости дня</title></head>'
        "<body><p>Привет, мир! Это длинный абзац текста для проверки кодировки страницы.</p>"
        "</body></html>"
    ).encode("cp1251")
    article = extract_article(page, "https://news.example/ru/1")
    assert article.title == "Новости дня"


def test_hostile_page_keeps_text_as_text() -> None:
    body = "<p>" + ("Long hostile body sentence with & and <b>stray tags. " * 400) + "</p>"
    ld = {"@type": "NewsArticle", "headline": '<script>alert(1)</script> & "quotes" 😀 ə ğ ş'}
    article = extract_article(ld_page(ld, body=body + "<script>evil()</script>"), URL)
    assert article.title == '<script>alert(1)</script> & "quotes" 😀 ə ğ ş'
    assert "evil()" not in article.body
    assert len(article.body) > 10_000


def test_non_http_image_and_canonical_are_dropped() -> None:
    page = """<html><head><title>T</title><link rel="canonical" href="javascript:alert(1)">
<meta property="og:image" content="data:image/png;base64,AAAA"></head></html>"""
    article = extract_article(page, URL)
    # No usable canonical: the fetched URL, without its tracking parameters.
    assert article.url == "https://news.example/en/news/42-budget"
    assert article.image_url is None


# The real pages --------------------------------------------------------------------------

FIXTURES = Path(
    os.environ.get("NEWSBOT_FIXTURES")
    or Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "article-pages"
)


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _f1(reference: str, got: str) -> float:
    ref, out = _tokens(reference), _tokens(got)
    common = sum((Counter(ref) & Counter(out)).values())
    if not common:
        return 0.0
    precision, recall = common / len(out), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@pytest.fixture(scope="module")
def real_pages() -> list[tuple[str, bytes, str]]:
    truth_file = FIXTURES / "ground-truth.json"
    if not truth_file.is_file():
        pytest.skip(f"real article pages not found at {FIXTURES} (set NEWSBOT_FIXTURES)")
    truth = json.loads(truth_file.read_text(encoding="utf-8"))
    return [
        (
            info["url"],
            gzip.decompress((FIXTURES / "html" / f"{sha}.html.gz").read_bytes()),
            info["articleBody"],
        )
        for sha, info in truth.items()
    ]


def test_real_pages_give_title_url_and_body_close_to_ground_truth(
    real_pages: list[tuple[str, bytes, str]],
) -> None:
    scores = []
    for url, page, body in real_pages:
        article = extract_article(page, url)
        assert article.title.strip(), url
        assert article.url.startswith("http"), url
        scores.append(_f1(body, article.body))
    mean = sum(scores) / len(scores)
    poor = sum(score < 0.5 for score in scores)
    # Measured: mean token F1 0.958, 2 of 181 pages under 0.5 (bodies split across
    # widgets). The bounds leave a little room, not a free pass.
    assert mean >= 0.94, mean
    assert poor <= 5, poor
