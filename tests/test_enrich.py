"""Enrichment: each field from each kind of page, every fallback, and the real fixture pages.

The small pages here are written for these tests. The real pages (../shared/fixtures) are
never copied into the repository: those tests skip, saying why, where the folder is absent.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.enrich import (
    EnrichmentError,
    decode_html,
    extract_article,
    find_byline,
    language_code,
    parse_html,
    parse_time,
    strip_site_name,
)
from bot.models import Article, FeedEntry

URL = "https://news.example/en/news/42-budget?utm_source=rss"
CLEAN_URL = "https://news.example/en/news/42-budget"


def paragraphs(count: int = 4, word: str = "story") -> str:
    return "".join(
        f"<p>Paragraph {i} of the {word} has enough words in it to count as real body text.</p>"
        for i in range(count)
    )


def ld_page(ld: object, extra_head: str = "", body: str = "", lang: str = "en") -> str:
    script = json.dumps(ld).replace("</", "<\\/")  # as sites do, so "</script>" stays inside
    return f"""<!doctype html><html lang="{lang}"><head><title>Page title - News</title>
<script type="application/ld+json">{script}</script>{extra_head}</head>
<body><article><h1>H1 title</h1>{body}</article></body></html>"""


# -- JSON-LD ---------------------------------------------------------------------------------


def test_json_ld_news_article_in_graph_with_id_references() -> None:
    # Yoast-style: the article points at its author, publisher and image by @id.
    ld = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebSite", "@id": "https://news.example/#site", "name": "News"},
            {"@type": "Organization", "@id": "https://news.example/#org", "name": "News Ltd"},
            {"@type": "Person", "@id": "https://news.example/#p1", "name": "Sabina M."},
            {"@type": "ImageObject", "@id": "https://news.example/#img", "url": "/img/42.jpg"},
            {"@type": "BreadcrumbList", "name": "Breadcrumbs"},
            {
                "@type": "NewsArticle",
                "headline": "Budget &amp; taxes pass",
                "description": "Parliament approved it.",
                "url": "https://news.example/en/news/42-budget",
                "image": {"@id": "https://news.example/#img"},
                "datePublished": "2025-09-04T13:40:00+04:00",
                "dateModified": "2025-09-04T14:00:00+04:00",
                "author": [{"@id": "https://news.example/#p1"}],
                "publisher": {"@id": "https://news.example/#org"},
                "articleSection": ["Politics"],
                "keywords": "budget, taxes, Politics",
                "inLanguage": "en-GB",
            },
        ],
    }
    article = extract_article(ld_page(ld, body=paragraphs()), URL, source="en")
    assert article.title == "Budget & taxes pass"
    assert article.url == CLEAN_URL
    assert article.lead == "Parliament approved it."
    assert article.image_url == "https://news.example/img/42.jpg"
    assert article.published == datetime(2025, 9, 4, 9, 40, tzinfo=UTC)
    assert article.updated == datetime(2025, 9, 4, 10, 0, tzinfo=UTC)
    assert article.author == "Sabina M."
    assert article.site_name == "News Ltd"
    assert article.categories == ("Politics",)
    assert article.tags == ("budget", "taxes")  # the section is not repeated as a tag
    assert article.language == "en"
    assert article.source == "en"
    assert "Paragraph 3 of the story" in article.body


def test_json_ld_top_level_list_picks_the_article_about_this_page() -> None:
    # Listing widgets embed other articles; typed by URL and as a list of types.
    ld = [
        {"@type": "NewsArticle", "headline": "Another story", "url": "https://news.example/9"},
        {
            "@type": ["https://schema.org/NewsArticle", "Thing"],
            "headline": "This story",
            "mainEntityOfPage": {"@type": "WebPage", "@id": CLEAN_URL},
            "author": {"@type": "Person", "name": "A. Writer"},
        },
        {"@type": "WebPage", "name": "Web page name"},
    ]
    article = extract_article(ld_page(ld), URL)
    assert article.title == "This story"
    assert article.author == "A. Writer"


def test_json_ld_type_preference_and_nested_main_entity() -> None:
    ld = {
        "@type": "WebPage",
        "name": "Generic page",
        "mainEntity": {"@type": "ReportageNews", "headline": "Reportage headline"},
    }
    assert extract_article(ld_page(ld), URL).title == "Reportage headline"
    blog = {"@type": "BlogPosting", "headline": "Blog headline", "inLanguage": "aze"}
    article = extract_article(ld_page(blog), URL)
    assert article.title == "Blog headline" and article.language == "az"


def test_malformed_json_ld_is_skipped_and_opengraph_used() -> None:
    page = """<html lang="ru"><head>
<script type="application/ld+json">{"@type": "NewsArticle", "headline": broken</script>
<script type="application/ld+json"></script>
<script type="application/ld+json">[1, "x", null, {"@type": 5}]</script>
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


def test_json_ld_in_html_comment_wrapper_and_second_valid_script() -> None:
    page = """<html><head><title>T</title>
<script type="application/ld+json">{"@type": "NewsArticle", "headline": "bad", }</script>
<script type="application/ld+json"><!--
{"@type": "NewsArticle", "headline": "Wrapped headline", "author": "Ann Lee"}
--></script></head><body></body></html>"""
    article = extract_article(page, URL)
    assert article.title == "Wrapped headline"
    assert article.author == "Ann Lee"


def test_truncated_json_ld_headline_gives_way_to_full_og_title() -> None:
    full = "A long headline that Google made the newsroom cut at one hundred and ten characters"
    ld = {"@type": "NewsArticle", "headline": full[:40] + "..."}
    page = ld_page(ld, f'<meta property="og:title" content="{full}">')
    assert extract_article(page, URL).title == full


# -- OpenGraph / Twitter / plain pages -------------------------------------------------------


def test_opengraph_only_page() -> None:
    page = f"""<html><head>
<meta property="og:title" content="OG headline | News">
<meta property="og:site_name" content="News">
<meta property="og:description" content="OG &lt;b&gt;lead&lt;/b&gt; &amp;amp; more.">
<meta property="og:image" content="/media/og.jpg">
<meta property="og:locale" content="az_AZ">
<meta property="article:published_time" content="2025-09-04 13:40:00">
<meta property="article:modified_time" content="Thu, 04 Sep 2025 12:00:00 +0000">
<meta property="article:author" content="https://facebook.com/someone">
<meta name="author" content="By Aysel Quliyeva">
</head><body><article>{paragraphs()}</article></body></html>"""
    article = extract_article(page, URL)
    assert article.title == "OG headline"  # " | News" is the site's name, not the headline
    assert article.lead == "OG lead & more."
    assert article.image_url == "https://news.example/media/og.jpg"
    assert article.language == "az"
    assert article.published == datetime(2025, 9, 4, 13, 40, tzinfo=UTC)  # naive: UTC
    assert article.updated == datetime(2025, 9, 4, 12, tzinfo=UTC)
    assert article.author == "Aysel Quliyeva"  # a profile URL is not a name
    assert article.site_name == "News"


def test_twitter_card_only_page() -> None:
    page = """<html><head>
<meta name="twitter:title" content="Card headline">
<meta name="twitter:description" content="Card description.">
<meta name="twitter:image:src" content="https://cdn.example/card.jpg">
</head><body></body></html>"""
    article = extract_article(page, URL)
    assert (article.title, article.lead) == ("Card headline", "Card description.")
    assert article.image_url == "https://cdn.example/card.jpg"


def test_plain_page_falls_back_to_title_paragraphs_and_byline() -> None:
    page = f"""<html lang="az"><head><title>Xəbər başlığı | Qəzet</title>
<meta property="og:site_name" content="Qəzet"></head>
<body><nav>Menu</nav><article><h1>Xəbər başlığı</h1>
<time datetime="2025-09-04T13:40:00+04:00">04 September 2025 13:40</time>
{paragraphs()}
<p>By Sabina Mammadli</p><p>Views: 119</p>
<p>Any use of materials is allowed only if there is a hyperlink to Caliber.az</p>
</article></body></html>"""
    article = extract_article(page, "https://qezet.example/az/1")
    assert article.title == "Xəbər başlığı"
    assert article.lead.startswith("Paragraph 0 of the story")
    assert len(article.lead) < 400
    assert "Paragraph 3" in article.body
    assert "Any use of materials" not in article.body + article.lead
    assert "Views" not in article.body and "By Sabina" not in article.body
    assert article.author == "Sabina Mammadli"
    assert article.language == "az"
    assert article.published == datetime(2025, 9, 4, 9, 40, tzinfo=UTC)
    assert article.url == "https://qezet.example/az/1"


def test_h1_is_used_when_the_title_is_only_the_site_name() -> None:
    page = """<html><head><title>Qəzet</title><meta property="og:site_name" content="Qəzet">
</head><body><h1>  Real  headline </h1></body></html>"""
    assert extract_article(page, "https://qezet.example/az/2").title == "Real headline"


def test_caliber_like_page() -> None:
    # Shaped like the reference site's pages (its visible text in ../shared/seed): the
    # attribution notice in the header and as the site-wide description, a section label,
    # the byline, the site name and a view counter after the story. Text written for this test.
    story = "".join(
        f"<p>Sentence {i} about the summit in the capital, told in enough words to be a "
        f"paragraph of the story.</p>"
        for i in range(5)
    )
    notice = "Any use of materials is allowed only if there is a hyperlink to Caliber.az"
    page = f"""<html lang="en"><head>
<title>Leaders gather for crucial talks | Caliber.Az</title>
<meta name="description" content="{notice}">
<meta property="og:title" content="Leaders gather for crucial talks">
<meta property="og:description" content="{notice}">
<meta property="og:site_name" content="Caliber.Az">
<meta property="og:image" content="/storage/news/2025/9/summit.jpg">
<meta property="article:section" content="WORLD">
</head><body>
<header><div class="notice">{notice}</div><div>Caliber.az © 2025.</div></header>
<main><article><div class="category">WORLD</div><span>A+</span><span>A-</span>
<h1>Leaders gather for crucial talks</h1><div class="date">04 September 2025 13:40</div>
<div class="text">{story}
<p><strong>By Nigar Həsənova</strong></p><p>Caliber.Az</p><p>Views: 119</p></div>
</article></main>
<footer><p>Liked the story? Share it on social media!</p></footer></body></html>"""
    article = extract_article(page, "https://caliber.az/en/post/leaders-gather-123")
    assert article.title == "Leaders gather for crucial talks"
    assert article.author == "Nigar Həsənova"
    assert article.lead.startswith("Sentence 0 about the summit")
    assert "hyperlink" not in article.lead and "hyperlink" not in article.body
    assert "Sentence 4 about the summit" in article.body
    assert not re.search(r"Views|^Caliber\.Az$|By Nigar", article.body, re.MULTILINE)
    assert article.image_url == "https://caliber.az/storage/news/2025/9/summit.jpg"
    assert article.categories == ("WORLD",)
    assert article.site_name == "Caliber.Az"


# -- URLs: canonical and images --------------------------------------------------------------


def test_canonical_link_wins_over_og_url_and_resolves_relative() -> None:
    page = """<html><head><link rel="canonical" href="/en/news/42">
<meta property="og:url" content="https://other.example/x"><title>T</title></head></html>"""
    assert extract_article(page, URL).url == "https://news.example/en/news/42"


def test_og_url_then_json_ld_url_then_main_entity_then_fetched_url() -> None:
    og = '<meta property="og:url" content="https://news.example/og">'
    ld = {
        "@type": "NewsArticle",
        "headline": "H",
        "url": "/ld-url",
        "mainEntityOfPage": "https://news.example/main-entity",
    }
    assert extract_article(ld_page(ld, og), URL).url == "https://news.example/og"
    assert extract_article(ld_page(ld), URL).url == "https://news.example/ld-url"
    del ld["url"]
    assert extract_article(ld_page(ld), URL).url == "https://news.example/main-entity"
    del ld["mainEntityOfPage"]
    # Nothing declared: the fetched URL, minus its tracking parameters and fragment.
    assert extract_article(ld_page(ld), URL + "#top").url == CLEAN_URL


def test_canonical_to_home_page_or_non_http_is_ignored() -> None:
    home = """<html><head><title>T</title><link rel="canonical" href="https://news.example/">
<meta property="og:url" content="https://news.example/en/news/42-budget?utm_medium=x">
</head></html>"""
    assert extract_article(home, URL).url == CLEAN_URL
    bad = """<html><head><title>T</title><link rel="canonical" href="javascript:alert(1)">
<meta property="og:image" content="data:image/png;base64,AAAA"></head></html>"""
    article = extract_article(bad, URL)
    assert article.url == CLEAN_URL and article.image_url is None


def test_relative_image_urls_are_resolved() -> None:
    cases = {
        "/img/a.jpg": "https://news.example/img/a.jpg",
        "b.jpg": "https://news.example/en/news/b.jpg",
        "//cdn.example/c.jpg": "https://cdn.example/c.jpg",
        " /img/with space.jpg ": "https://news.example/img/with%20space.jpg",
    }
    for href, expected in cases.items():
        page = f'<html><head><title>T</title><meta property="og:image" content="{href}">'
        assert extract_article(page + "</head></html>", URL).image_url == expected, href


def test_base_href_and_json_ld_image_list_and_article_img_fallback() -> None:
    based = """<html><head><base href="https://static.example/en/"><title>T</title>
<meta property="og:image" content="pics/d.jpg"></head></html>"""
    assert extract_article(based, URL).image_url == "https://static.example/en/pics/d.jpg"
    ld = {"@type": "NewsArticle", "headline": "H", "image": ["", {"url": "/first.jpg"}]}
    assert extract_article(ld_page(ld), URL).image_url == "https://news.example/first.jpg"
    body_img = """<html><head><title>T</title></head><body><article>
<img src="/icons/logo.svg"><img src="/pixel.png" width="1"><img data-src="/photo.jpg" src="x.gif">
</article></body></html>"""
    assert extract_article(body_img, URL).image_url == "https://news.example/photo.jpg"


# -- decoding --------------------------------------------------------------------------------

RU_TEXT = "Привет, мир! Это длинный абзац текста для проверки кодировки страницы сайта."


def test_windows_1251_page_decodes() -> None:
    page = (
        '<html lang="ru"><head><meta charset="windows-1251"><title>Новости дня</title></head>'
        f"<body><article><h1>Новости дня</h1><p>{RU_TEXT}</p><p>{RU_TEXT}</p></article>"
        "</body></html>"
    ).encode("cp1251")
    article = extract_article(page, "https://news.example/ru/1")
    assert article.title == "Новости дня"
    assert RU_TEXT in article.body
    assert article.lead.startswith("Привет, мир!")


def test_http_equiv_content_type_charset() -> None:
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
        "<title>Экономика</title></head><body></body></html>"
    ).encode("cp1251")
    assert extract_article(page, URL).title == "Экономика"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xef\xbb\xbf<title>\xd0\xaf</title>", "<title>Я</title>"),  # UTF-8 BOM
        ("\ufeff<p>Я</p>".encode("utf-16-le"), "<p>Я</p>"),  # UTF-16 LE BOM
        ("<p>Я</p>".encode("utf-16-be").join([b"\xfe\xff", b""]), "<p>Я</p>"),  # UTF-16 BE
        (b"<p>no declaration \xd1\x8f</p>", "<p>no declaration я</p>"),
        (b"<p>broken \xff bytes</p>", "<p>broken \ufffd bytes</p>"),  # never an exception
        (b'<meta charset="no-such-codec"><p>\xd1\x8f', '<meta charset="no-such-codec"><p>я'),
        # A stale legacy declaration on a UTF-8 page: the bytes win.
        (
            '<meta charset="iso-8859-1"><p>ə ğ ş</p>'.encode(),
            '<meta charset="iso-8859-1"><p>ə ğ ş</p>',
        ),
        # A real windows-1252 page (not valid UTF-8) is read as declared.
        (
            '<meta charset="iso-8859-1"><p>café</p>'.encode("cp1252"),
            '<meta charset="iso-8859-1"><p>café</p>',
        ),
    ],
)
def test_decode_html(data: bytes, expected: str) -> None:
    assert decode_html(data) == expected


def test_azerbaijani_page_comes_out_right() -> None:
    letters = "Əə Ğğ Iı İi Öö Üü Çç Şş"
    ld = {
        "@type": "NewsArticle",
        "headline": f"Xəbərlər: {letters}",
        "articleSection": "Siyasət",
        "keywords": ["Şuşa", "İqtisadiyyat"],
        "inLanguage": "az-Latn-AZ",
    }
    body = f"<p>Azərbaycan dilində uzun bir abzas: {letters} — hamısı düzgün görünməlidir.</p>" * 3
    page = ld_page(ld, '<meta charset="utf-8">', body=body, lang="az").encode("utf-8")
    article = extract_article(page, "https://xeber.example/az/1")
    assert article.title == f"Xəbərlər: {letters}"
    assert letters in article.body
    assert article.categories == ("Siyasət",) and article.tags == ("Şuşa", "İqtisadiyyat")
    assert article.language == "az"


# -- bylines, dates, languages, titles -------------------------------------------------------


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("<p>By Sabina Mammadli</p>", "Sabina Mammadli"),
        ('<p>By <a href="/author/1">Ann Lee</a></p>', "Ann Lee"),
        ('<div><span class="by">By</span> <a href="/a">Ann Lee</a></div>', "Ann Lee"),
        ("<div>BY JOHN SMITH and MARY JONES</div>", "JOHN SMITH and MARY JONES"),
        ("<p>Автор: Иван Петров</p>", "Иван Петров"),
        ("<p>Müəllif: Aysel Məmmədova</p>", "Aysel Məmmədova"),
        ("<span>By Jeff Foust</span><span>Monday, November 18, 2019</span>", "Jeff Foust"),
        ("<p>By Federica Lusiardi - 2019-04-10</p>", "Federica Lusiardi"),
        ("<p>By clicking subscribe you agree to our terms</p>", None),
        ("<p>By the way, this is a long sentence and not a byline at all.</p>", None),
        ("<script>var s = 'By Someone Else';</script>", None),
        ("<p>Nothing here</p>", None),
    ],
)
def test_find_byline(snippet: str, expected: str | None) -> None:
    tree = parse_html(f"<html><body><article>{snippet}</article></body></html>")
    assert find_byline(tree) == expected


def test_byline_preferred_when_json_ld_author_is_the_site_itself() -> None:
    org = {"@type": "Organization", "name": "News"}
    ld = {"@type": "NewsArticle", "headline": "H", "author": org}
    site = '<meta property="og:site_name" content="News">'
    assert extract_article(ld_page(ld, site, "<p>By Ann Lee</p>"), URL).author == "Ann Lee"
    # No byline: the site's own name is not an author (issue #12), so none.
    assert extract_article(ld_page(ld, site), URL).author is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-09-04T13:40:00+04:00", datetime(2025, 9, 4, 9, 40, tzinfo=UTC)),
        ("2025-09-04T13:40:00Z", datetime(2025, 9, 4, 13, 40, tzinfo=UTC)),
        ("2025-09-04T13:40:00+0400", datetime(2025, 9, 4, 9, 40, tzinfo=UTC)),
        ("2025-09-04 13:40", datetime(2025, 9, 4, 13, 40, tzinfo=UTC)),  # naive: UTC
        ("2025-09-04", datetime(2025, 9, 4, tzinfo=UTC)),
        ("Thu, 04 Sep 2025 13:40:00 GMT", datetime(2025, 9, 4, 13, 40, tzinfo=UTC)),
        (["2025-09-04T13:40:00Z", "later"], datetime(2025, 9, 4, 13, 40, tzinfo=UTC)),
        # The reference site's visible date format (RFC 2822 without the weekday): naive, UTC.
        ("04 September 2025 13:40", datetime(2025, 9, 4, 13, 40, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
        (None, None),
        (12345, None),
    ],
)
def test_parse_time(value: object, expected: datetime | None) -> None:
    parsed = parse_time(value)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is not None


def test_time_element_and_itemprop_dates() -> None:
    page = """<html><head><title>T</title></head><body>
<span itemprop="datePublished" content="2025-09-01T08:00:00+02:00">1 Sep</span>
<time itemprop="dateModified" datetime="2025-09-02T08:00:00">2 Sep</time></body></html>"""
    article = extract_article(page, URL)
    assert article.published == datetime(2025, 9, 1, 6, tzinfo=UTC)
    assert article.updated == datetime(2025, 9, 2, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("en", "en"),
        ("en-GB", "en"),
        ("ru_RU", "ru"),
        ("AZ", "az"),
        ("az-Latn-AZ", "az"),
        ("aze", "az"),
        ("rus", "ru"),
        ({"@type": "Language", "name": "English", "alternateName": "en"}, "en"),
        (["ru", "en"], "ru"),
        ("x-default", None),
        ("english", None),
        ("", None),
        (None, None),
    ],
)
def test_language_code(value: object, expected: str | None) -> None:
    assert language_code(value) == expected


def test_language_sources_in_order() -> None:
    ld = {"@type": "NewsArticle", "headline": "H", "inLanguage": "ru-RU"}
    assert extract_article(ld_page(ld, lang="en"), URL).language == "ru"
    assert extract_article(ld_page({}, lang="az-AZ"), URL).language == "az"
    og = '<html><head><title>T</title><meta property="og:locale" content="ru_RU"></head></html>'
    assert extract_article(og, URL).language == "ru"
    entry = FeedEntry(source="s", link=URL, language="en")
    bare = "<html><head><title>T</title></head></html>"
    assert extract_article(bare, URL, entry).language == "en"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Headline - News", "Headline"),
        ("Headline | NEWS", "Headline"),
        ("Headline — News", "Headline"),
        ("News | Headline", "Headline"),
        ("Headline - news.example", "Headline"),  # the host when no site name matches
        ("Headline - Other", "Headline - Other"),
        ("Headline-News", "Headline-News"),
    ],
)
def test_strip_site_name(title: str, expected: str) -> None:
    assert strip_site_name(title, ["News", "news.example"]) == expected


# -- categories, lead, feed entry, errors ----------------------------------------------------


def test_categories_and_tags_from_all_sources_deduplicated() -> None:
    ld = {
        "@type": "NewsArticle",
        "headline": "H",
        "articleSection": ["World", "Europe"],
        "keywords": [{"name": "NATO"}, "Category: Ukraine", "nato"],
    }
    head = (
        '<meta property="article:section" content="world">'
        '<meta property="article:tag" content="Paris">'
        '<meta name="news_keywords" content="Summit, Paris">'
    )
    entry = FeedEntry(source="s", link=URL, categories=("Europe", "Politics"))
    article = extract_article(ld_page(ld, head), URL, entry)
    assert article.categories == ("World", "Europe", "Politics")
    assert article.tags == ("NATO", "Ukraine", "Paris", "Summit")


def test_lead_skips_boilerplate_and_title_echo_descriptions() -> None:
    ld = {"@type": "NewsArticle", "headline": "Same as lead", "description": "<p>LD lead.</p>"}
    russian_notice = (
        "Использование материалов разрешается только при наличии гиперссылки на news.example"
    )
    head = (
        f'<meta property="og:description" content="{russian_notice}">'
        '<meta name="description" content="Same as lead">'
    )
    assert extract_article(ld_page(ld, head), URL).lead == "LD lead."
    del ld["description"]
    # Every description is boilerplate or the title: the body's first paragraph is the lead.
    article = extract_article(ld_page(ld, head, paragraphs()), URL)
    assert article.lead.startswith("Paragraph 0 of the story")


def test_feed_entry_fills_what_the_page_lacks() -> None:
    entry = FeedEntry(
        source="s",
        link="https://news.example/1",
        title="Entry title",
        summary="<p>Entry <b>summary</b> &amp; more.</p>",
        published=datetime(2025, 1, 2),  # naive in a feed: UTC
        updated=datetime(2025, 1, 3, tzinfo=timezone(timedelta(hours=4))),
        categories=("Economy",),
        image_url="/e.jpg",
        author="Feed Author",
        language="en-US",
    )
    article = extract_article("<html><body><div>x</div></body></html>", entry.link, entry)
    assert article.title == "Entry title"
    assert article.lead == "Entry summary & more."
    assert article.image_url == "https://news.example/e.jpg"
    assert article.published == datetime(2025, 1, 2, tzinfo=UTC)
    assert article.updated == datetime(2025, 1, 2, 20, tzinfo=UTC)
    assert article.categories == ("Economy",)
    assert article.author == "Feed Author"
    assert article.language == "en"
    assert article.source == "s"


def test_page_values_win_over_the_feed_entry() -> None:
    entry = FeedEntry(source="s", link=URL, title="Feed title", summary="Feed summary.")
    page = ld_page({"@type": "NewsArticle", "headline": "Page title", "description": "Page lead."})
    article = extract_article(page, URL, entry, source="override")
    assert (article.title, article.lead, article.source) == ("Page title", "Page lead.", "override")


def test_empty_or_unparsable_content_uses_the_entry_or_fails_clearly() -> None:
    entry = FeedEntry(source="s", link=URL, title="Entry title")
    for content in ("", b"", "   \n", b"\x00\x00", "<!-- only a comment -->"):
        assert extract_article(content, URL, entry).title == "Entry title"
        with pytest.raises(EnrichmentError, match="no title"):
            extract_article(content, URL)


def test_no_title_anywhere_is_a_clear_error() -> None:
    with pytest.raises(EnrichmentError, match="no title"):
        extract_article("<html><body><div>nothing</div></body></html>", URL)


# -- hostile pages ---------------------------------------------------------------------------


def test_hostile_page_keeps_text_as_text() -> None:
    body = "<p>" + ("Long hostile body sentence with & and <b>stray tags. " * 400) + "</p>"
    ld = {"@type": "NewsArticle", "headline": '<script>alert(1)</script> & "quotes" 😀 ə ğ ş'}
    page = ld_page(ld, body=body + "<script>evil()</script><style>p{}</style>")
    article = extract_article(page, URL)
    # Tags in a headline are markup, handled as in the lead (issue #12); the text stays text.
    assert article.title == 'alert(1) & "quotes" 😀 ə ğ ş'
    assert "<b>" not in article.lead and "stray tags." in article.lead
    assert "evil()" not in article.body and "p{}" not in article.body
    assert len(article.body) > 10_000


def test_twenty_thousand_character_body() -> None:
    sentence = "This sentence is part of a very long article body that keeps going. "
    # Numbered: real paragraphs differ, and trafilatura drops repeated ones.
    text = "".join(f"<p>{i}. {sentence * 6}</p>" for i in range(50))
    assert len(text) > 20_000
    article = extract_article(ld_page({}, body=text), URL)
    assert len(article.body) > 19_000
    assert article.title == "Page title - News"  # no site name known: the suffix may be real
    assert 40 < len(article.lead) < 1_000


def test_deeply_nested_and_broken_markup_does_not_raise() -> None:
    nested = "<div>" * 3000 + "<p>deep text</p>" + "</div>" * 10
    broken = "<html><head><title>Broken</title><body><p>unclosed <b><i>tags<table><tr><td>x"
    deep_ld = ld_page({}).replace(
        "{}", '{"@type": "NewsArticle", "headline": "H", "author": ' + "[" * 900 + "]" * 900 + "}"
    )
    for page in (nested, broken, deep_ld, "<<<>>>&&&;;;" * 100, "\x00<title>Nul</title>\x07"):
        try:
            article = extract_article(page, URL)
        except EnrichmentError:
            continue  # a page without any title may say so; nothing else may escape
        assert isinstance(article, Article)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "<title>T</title>",
                    "<h1>",
                    "</p>",
                    "<p>",
                    '<script type="application/ld+json">{"@type":"NewsArticle","headline":',
                    '"x"}</script>',
                    '<meta property="og:image" content="',
                    '<link rel="canonical" href="',
                    '<meta charset="',
                    '">',
                    "By ",
                    "<time datetime='",
                ]
            ),
            st.text(max_size=20),
        ),
        max_size=25,
    ).map("".join),
    st.sampled_from(["utf-8", "cp1251", "utf-16"]),
)
def test_arbitrary_markup_yields_an_article_or_enrichment_error(text: str, codec: str) -> None:
    data = text.encode(codec, errors="replace")
    try:
        article = extract_article(data, URL)
    except EnrichmentError:
        return
    assert article.title.strip()
    assert article.url.startswith("https://")
    assert article.image_url is None or article.image_url.startswith(("http://", "https://"))
    assert article.published is None or article.published.tzinfo is not None


def test_extraction_is_pure_and_repeatable() -> None:
    page = ld_page({"@type": "NewsArticle", "headline": "Same"}, body=paragraphs())
    assert extract_article(page, URL) == extract_article(page, URL)


# -- the real pages --------------------------------------------------------------------------

FIXTURES = Path(
    os.environ.get("NEWSBOT_FIXTURES")
    or Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "article-pages"
)


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _overlap(reference: str, got: str) -> tuple[float, float]:
    """(token F1, token recall) of `got` against `reference`, as bags of words."""
    ref, out = Counter(_tokens(reference)), Counter(_tokens(got))
    common = sum((ref & out).values())
    if not common:
        return 0.0, 0.0
    precision, recall = common / sum(out.values()), common / sum(ref.values())
    return 2 * precision * recall / (precision + recall), recall


@pytest.fixture(scope="module")
def real_articles() -> list[tuple[str, Article, str]]:
    truth_file = FIXTURES / "ground-truth.json"
    if not truth_file.is_file():
        pytest.skip(
            f"real article pages not found at {FIXTURES}: they are kept outside the repository "
            "(set NEWSBOT_FIXTURES to the article-pages folder to run these tests)"
        )
    truth = json.loads(truth_file.read_text(encoding="utf-8"))
    results = []
    for sha, info in truth.items():
        page = gzip.decompress((FIXTURES / "html" / f"{sha}.html.gz").read_bytes())
        results.append((info["url"], extract_article(page, info["url"]), info["articleBody"]))
    return results


def test_real_pages_give_title_url_and_lead(real_articles: list[tuple[str, Article, str]]) -> None:
    assert len(real_articles) >= 150
    for url, article, _ in real_articles:
        assert article.title.strip() and "\n" not in article.title, url
        assert article.url.startswith(("http://", "https://")), url
        assert article.lead.strip(), url
        assert article.image_url is None or article.image_url.startswith("http"), url
        for moment in (article.published, article.updated):
            assert moment is None or moment.tzinfo is not None, url
        assert article.language is None or re.fullmatch(r"[a-z]{2}", article.language), url


def test_real_pages_fields_are_mostly_found(real_articles: list[tuple[str, Article, str]]) -> None:
    # Measured on the 181 pages: image 176, language 158, published 146, author 127,
    # site name 161. Floors a few pages below catch a broken source, not noise.
    found = Counter(
        field
        for _, article, _ in real_articles
        for field in ("image_url", "language", "published", "author", "site_name")
        if getattr(article, field)
    )
    total = len(real_articles)
    assert found["image_url"] >= 0.93 * total, found
    assert found["language"] >= 0.83 * total, found
    assert found["published"] >= 0.77 * total, found
    # Sites' own names, "admin" and desks are no authors (issue #12): 116 of 181 name a person.
    assert found["author"] >= 0.6 * total, found
    assert found["site_name"] >= 0.85 * total, found


def test_real_pages_body_close_to_ground_truth(
    real_articles: list[tuple[str, Article, str]],
) -> None:
    scores = [_overlap(truth, article.body) for _, article, truth in real_articles]
    f1 = [score[0] for score in scores]
    recall = [score[1] for score in scores]
    mean_f1, mean_recall = sum(f1) / len(f1), sum(recall) / len(recall)
    # Measured (trafilatura 2.3, fast + favor_recall + tables): mean token F1 0.968, mean
    # recall 0.983; no page under F1 0.5, 2 under 0.7 (two wired.com pages whose story is
    # split across widgets: recall 0.35 and 0.45), 12 under 0.85 (mostly captions, related
    # links or tables kept: precision, not recall). The bounds leave room for a library
    # update's small drift but fail on a real regression (a lost source, a wrong option).
    assert mean_f1 >= 0.95, mean_f1
    assert mean_recall >= 0.97, mean_recall
    assert sum(score < 0.5 for score in f1) <= 2, sorted(f1)[:5]
    assert sum(score < 0.7 for score in f1) <= 4, sorted(f1)[:5]
    assert sum(score < 0.85 for score in f1) <= 16, sorted(f1)[:17]
