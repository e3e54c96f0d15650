from datetime import UTC, datetime

import pytest

from bot.sources import SourceFormatError, parse_feed, parse_sitemap

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
