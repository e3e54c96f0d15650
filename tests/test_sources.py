from datetime import UTC, datetime

import pytest
from lxml import etree

from bot.sources import (
    INCREMENTAL_ITEMS,
    MAX_FEED_ENTRIES,
    SourceFormatError,
    parse_feed,
    parse_sitemap,
    select_items,
)

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">
<channel><title>T</title><link>https://s.example/</link><language>ru</language>
<item><title>Второй</title><link>https://s.example/2</link><guid isPermaLink="false">g2</guid>
<pubDate>Thu, 04 Sep 2025 13:40:00 +0400</pubDate><category>Мир</category>
<media:content url="https://s.example/2.jpg" medium="image"/></item>
<item><title>First</title><link>https://s.example/1</link><guid>g1</guid>
<pubDate>Thu, 04 Sep 2025 12:00:00 +0400</pubDate>
<enclosure url="https://s.example/1.jpg" type="image/jpeg" length="1"/></item>
</channel></rss>""".encode()

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:a</id>
<updated>2025-09-04T10:00:00Z</updated>
<entry><title>Atom entry</title><id>urn:e1</id><link href="https://s.example/a1"/>
<published>2025-09-04T09:00:00Z</published><updated>2025-09-04T10:00:00Z</updated>
<category term="World"/><author><name>Jane</name></author></entry></feed>"""

SITEMAP = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
 xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"
 xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
<url><loc>https://s.example/n2</loc><lastmod>2025-09-04T12:00:00+00:00</lastmod>
<news:news><news:publication><news:name>S</news:name><news:language>az</news:language>
</news:publication><news:publication_date>2025-09-04T11:00:00+00:00</news:publication_date>
<news:title>Xəbər ğ ş</news:title></news:news>
<image:image><image:loc>https://s.example/n2.jpg</image:loc></image:image></url>
<url><loc>https://s.example/n1</loc><lastmod>2025-09-03</lastmod></url>
</urlset>""".encode()


def test_rss_entries_oldest_first_with_fields() -> None:
    entries = parse_feed(RSS, "ru")
    assert [e.link for e in entries] == ["https://s.example/1", "https://s.example/2"]
    second = entries[1]
    assert second.title == "Второй"
    assert second.guid == "g2"
    assert second.categories == ("Мир",)
    assert second.image_url == "https://s.example/2.jpg"
    assert second.language == "ru"
    assert second.published == datetime(2025, 9, 4, 9, 40, tzinfo=UTC)
    assert entries[0].image_url == "https://s.example/1.jpg"


def test_atom_entry() -> None:
    (entry,) = parse_feed(ATOM, "en", language="en")
    assert entry.link == "https://s.example/a1"
    assert entry.guid == "urn:e1"
    assert entry.author == "Jane"
    assert entry.categories == ("World",)
    assert entry.updated == datetime(2025, 9, 4, 10, tzinfo=UTC)


def test_news_sitemap() -> None:
    entries = parse_sitemap(SITEMAP, "map")
    assert [e.link for e in entries] == ["https://s.example/n1", "https://s.example/n2"]
    news = entries[1]
    assert news.title == "Xəbər ğ ş"
    assert news.language == "az"
    assert news.published == datetime(2025, 9, 4, 11, tzinfo=UTC)
    assert news.image_url == "https://s.example/n2.jpg"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<!DOCTYPE html><html><body>Not a feed</body></html>", "HTML page"),
        (b"<rss><channel><item><title>broken", "malformed feed"),
        (b"\x00\x01\x02 binary junk", "feed"),
    ],
)
def test_bad_feeds_raise_clear_errors(content: bytes, message: str) -> None:
    with pytest.raises(SourceFormatError, match=message):
        parse_feed(content, "s")


def test_bad_sitemaps_raise_clear_errors() -> None:
    with pytest.raises(SourceFormatError, match="malformed sitemap"):
        parse_sitemap(b"<urlset><url>", "s")
    with pytest.raises(SourceFormatError, match="expected a sitemap <urlset>"):
        parse_sitemap(b"<sitemapindex></sitemapindex>", "s")


def test_sitemap_parser_does_not_expand_entities() -> None:
    bomb = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
    <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
    <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&lol2;</loc></url></urlset>"""
    entries = parse_sitemap(bomb, "s")
    assert all("lollol" not in e.link for e in entries)


def _big_rss(titles: list[str], extra: str = "", encoding: str = "UTF-8") -> bytes:
    """An RSS 2.0 feed listing `titles` newest first, each item carrying `extra`."""
    items = "".join(
        f"<item><title>{t}</title><link>https://s.example/{t}</link><guid>{t}</guid>{extra}</item>"
        for t in titles
    )
    return (
        f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel><title>B</title>'
        f"<link>https://s.example/</link><language>de</language>{items}</channel></rss>"
    ).encode(encoding)


def _item_titles(document: bytes) -> list[str]:
    return [t.text for t in etree.fromstring(document).iterfind("channel/item/title")]


def test_a_huge_feed_first_read_selects_its_newest_items_and_fingerprints_all() -> None:
    titles = [f"n{n}" for n in range(MAX_FEED_ENTRIES + 7)]
    content = _big_rss(titles)
    selection = select_items(content, None)
    assert selection is not None
    assert (selection.items, selection.over_limit) == (MAX_FEED_ENTRIES + 7, 7)
    assert len(selection.digests) == MAX_FEED_ENTRIES + 7
    assert _item_titles(selection.document) == titles[:MAX_FEED_ENTRIES]
    assert b"<language>de</language>" in selection.document  # the channel's own elements stay


def test_a_big_feed_selects_only_items_not_seen_before() -> None:
    titles = [f"n{n}" for n in range(INCREMENTAL_ITEMS)]
    first = select_items(_big_rss(titles), None)
    assert first is not None and first.over_limit == 0
    assert first.document == _big_rss(titles)  # every item selected: the bytes as downloaded

    edited = ["fresh", *titles]
    edited[10] = "n9, corrected"
    again = select_items(_big_rss(edited), first.digests)
    assert again is not None and again.over_limit == 0
    assert _item_titles(again.document) == ["fresh", "n9, corrected"]
    entries = parse_feed(again.document, "b", content_type="application/xml; charset=utf-8")
    assert [(e.title, e.language) for e in entries] == [("n9, corrected", "de"), ("fresh", "de")]

    # The same items again (say, only the channel's build date changed): nothing to parse.
    same = select_items(_big_rss(edited), again.digests)
    assert same is not None and _item_titles(same.document) == []


def test_more_changed_items_than_a_poll_reads_selects_the_newest() -> None:
    titles = [f"n{n}" for n in range(MAX_FEED_ENTRIES + 3)]
    first = select_items(_big_rss(titles), None)
    assert first is not None
    # Every item's bytes changed (a new template, say): the newest MAX_FEED_ENTRIES are read.
    changed = select_items(_big_rss(titles, extra="<comments>c</comments>"), first.digests)
    assert changed is not None and changed.over_limit == 3
    assert _item_titles(changed.document) == titles[:MAX_FEED_ENTRIES]


def test_a_big_atom_feed_under_a_prefix_is_selected_and_nested_items_are_not_counted() -> None:
    entries = "".join(
        f"<a:entry><a:title>e{n}</a:title><a:id>urn:e{n}</a:id>"
        f"<a:link href='https://s.example/e{n}'/><x:item>not an entry</x:item></a:entry>"
        for n in range(INCREMENTAL_ITEMS)
    )
    content = (
        "<?xml version='1.0' encoding='utf-8'?><a:feed xmlns:a='http://www.w3.org/2005/Atom'"
        f" xmlns:x='urn:x'><a:title>A</a:title><a:id>urn:a</a:id>{entries}</a:feed>"
    ).encode()
    first = select_items(content, None)
    assert first is not None and first.items == INCREMENTAL_ITEMS
    fresh = content.replace(
        b"<a:entry>",
        b"<a:entry><a:title>new</a:title><a:id>urn:new</a:id>"
        b"<a:link href='https://s.example/new'/></a:entry><a:entry>",
        1,
    )
    again = select_items(fresh, first.digests)
    assert again is not None and again.items == INCREMENTAL_ITEMS + 1
    parsed = parse_feed(again.document, "a", content_type="application/xml; charset=utf-8")
    assert [(e.title, e.link) for e in parsed] == [("new", "https://s.example/new")]
    assert b"urn:new" in again.document and b"urn:e0" not in again.document


@pytest.mark.parametrize(
    "content",
    [
        _big_rss([f"n{n}" for n in range(INCREMENTAL_ITEMS - 1)]),  # small: parsed whole
        _big_rss([f"n{n}" for n in range(INCREMENTAL_ITEMS)], encoding="ISO-8859-1"),
        _big_rss([f"n{n}" for n in range(INCREMENTAL_ITEMS)])[:-30],  # cut off: broken XML
        # RSS 1.0: items are not under the channel
        b"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#' "
        b"xmlns='http://purl.org/rss/1.0/'><channel/>"
        + b"<item><title>t</title><link>https://s.example/</link></item>" * INCREMENTAL_ITEMS
        + b"</rdf:RDF>",
        # items outside an RSS channel are not a feed's items
        b"<rss><other>" + b"<item><title>t</title></item>" * INCREMENTAL_ITEMS + b"</other></rss>",
    ],
)
def test_anything_but_a_big_utf8_rss_or_atom_feed_is_not_split(content: bytes) -> None:
    assert select_items(content, None) is None
