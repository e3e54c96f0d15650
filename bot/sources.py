"""Turn a downloaded feed or news sitemap into FeedEntry items: bytes in, entries out (a guessed
encoding is logged as a warning)."""

from __future__ import annotations

import calendar
import hashlib
import io
import logging
import re
from collections.abc import Set
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser
from lxml import etree

from bot.models import FeedEntry
from bot.text import parse_iso_datetime

log = logging.getLogger("newsbot.sources")

# A feed marks a withdrawn article with one of these categories.
RETRACTION_TERMS = frozenset({"retracted", "retraction", "withdrawn"})


class SourceFormatError(Exception):
    """The document is not a usable feed or sitemap; the message says why."""


#: Entries feedparser is given at once. News feeds list tens to hundreds (a news sitemap at
#: most 1,000); feedparser builds millions of objects for 100,000, and the garbage collector
#: then holds the GIL for about a second at a time: the event loop (health checks, other
#: sources) would stall although parsing runs in a thread. A big UTF-8 RSS/Atom feed is split
#: by item first (the pipeline reads its newest MAX_FEED_ENTRIES, later only changed items);
#: any other document listing more is refused before parsing.
MAX_FEED_ENTRIES = 5_000
_ENTRY_TAG = re.compile(rb"<(?:[A-Za-z0-9_.-]+:)?(?:item|entry|url)[\s>/]")


def _check_entry_count(content: bytes) -> None:
    count = sum(1 for _ in _ENTRY_TAG.finditer(content))
    if count > MAX_FEED_ENTRIES:
        raise SourceFormatError(
            f"the feed lists {count:,} entries, more than the {MAX_FEED_ENTRIES:,} a news "
            "feed may list; ask for a feed of the latest articles"
        )


_FEED_ROOTS = (b"<rss", b"<feed", b"<rdf:rdf", b"<urlset", b"<sitemapindex")


def _looks_like_html(content: bytes, content_type: str | None = None) -> bool:
    head = content[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return True
    # Served as HTML and no feed root in sight: a login wall, an error or a home page.
    served_html = (content_type or "").split(";")[0].strip().lower() == "text/html"
    return (
        bool(content_type)
        and served_html
        and not any(root in head for root in _FEED_ROOTS)
        and any(tag in head for tag in (b"<head", b"<body", b"<div", b"<meta"))
    )


def header_charset(content_type: str | None) -> str | None:
    """The charset a Content-Type header declares, if any."""
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip(" \"'"):
            return value.strip(" \"'")
    return None


def _feedparser(content: bytes, charset: str | None) -> Any:
    # Only a declared charset is passed on: feedparser would read a bare text/xml as ASCII.
    headers = {"content-type": f"application/xml; charset={charset}"} if charset else None
    return feedparser.parse(
        content, sanitize_html=False, resolve_relative_uris=False, response_headers=headers
    )


def _read_feed(content: bytes, source: str, content_type: str | None) -> Any:
    """Parse with the declared encoding (Content-Type charset, else the XML prolog). When the
    declaration is missing or wrong, guess the encoding rather than post mojibake."""
    parsed = _feedparser(content, header_charset(content_type))
    if not isinstance(parsed.get("bozo_exception"), feedparser.CharacterEncodingOverride):
        return parsed
    reason = parsed.get("bozo_exception")
    # Only for a feed whose declared encoding is wrong: not loaded at start-up.
    import charset_normalizer

    best = charset_normalizer.from_bytes(content[:200_000]).best()
    guess = best.encoding if best is not None else None
    if guess and guess.replace("_", "-") != (parsed.get("encoding") or "").replace("_", "-"):
        retry = _feedparser(content, guess)
        if retry.entries or not parsed.entries:
            parsed = retry
    log.warning(
        "source %s: the feed's declared encoding is missing or wrong (%s); read it as %s",
        source,
        reason,
        parsed.get("encoding") or "unknown",
    )
    return parsed


def _time(struct: Any) -> datetime | None:
    if not struct:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(struct), tz=UTC)
    except (OverflowError, ValueError, TypeError):
        return None


def _entry_image(entry: Any) -> str | None:
    for media in entry.get("media_content") or []:
        url = media.get("url")
        if url and (media.get("medium") == "image" or "image" in (media.get("type") or "image")):
            return url
    for enclosure in entry.get("enclosures") or []:
        if (enclosure.get("type") or "").startswith("image/") and enclosure.get("href"):
            return enclosure["href"]
    for thumb in entry.get("media_thumbnail") or []:
        if thumb.get("url"):
            return thumb["url"]
    return None


def parse_feed(
    content: bytes, source: str, language: str | None = None, content_type: str | None = None
) -> list[FeedEntry]:
    """RSS 0.9x/1.0/2.0 or Atom entries, oldest first. `content_type` is the HTTP header,
    whose charset (when given) overrides the XML prolog's encoding."""
    if _looks_like_html(content, content_type):
        raise SourceFormatError("answered an HTML page, not a feed")
    _check_entry_count(content)
    parsed = _read_feed(content, source, content_type)
    if parsed.bozo and not parsed.entries:
        reason = parsed.get("bozo_exception")
        raise SourceFormatError(f"malformed feed: {reason or 'not RSS or Atom'}")
    if not parsed.entries and not parsed.feed:
        raise SourceFormatError("not an RSS or Atom feed")
    feed_language = language or (parsed.feed.get("language") or None)
    entries = []
    for item in parsed.entries:
        link = item.get("link") or ""
        if not link:
            continue
        entries.append(
            FeedEntry(
                source=source,
                link=link.strip(),
                guid=(item.get("id") or None),
                title=item.get("title") or None,
                summary=item.get("summary") or None,
                # dict.get skips feedparser's deprecated published/updated aliasing.
                published=_time(dict.get(item, "published_parsed")),
                updated=_time(dict.get(item, "updated_parsed")),
                categories=tuple(t.get("term") for t in item.get("tags") or [] if t.get("term")),
                image_url=_entry_image(item),
                author=item.get("author") or None,
                language=feed_language,
                retracted=any(
                    (t.get("term") or "").casefold() in RETRACTION_TERMS
                    for t in item.get("tags") or []
                ),
            )
        )
    if parsed.bozo and not entries:
        reason = parsed.get("bozo_exception")
        raise SourceFormatError(f"malformed feed with no usable item: {reason}")
    return _oldest_first(entries)


_NS = {
    "sm": "http://www.sitemaps.org/schemas/sitemap/0.9",
    "news": "http://www.google.com/schemas/sitemap-news/0.9",
    "image": "http://www.google.com/schemas/sitemap-image/1.1",
}


def parse_sitemap(
    content: bytes, source: str, language: str | None = None, content_type: str | None = None
) -> list[FeedEntry]:
    """A sitemap urlset (news:news and lastmod aware), oldest first."""
    if _looks_like_html(content, content_type):
        raise SourceFormatError("answered an HTML page, not a sitemap")
    _check_entry_count(content)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as exc:
        raise SourceFormatError(f"malformed sitemap XML: {exc}") from None
    root_name = etree.QName(root).localname
    if root_name != "urlset":
        raise SourceFormatError(f"expected a sitemap <urlset>, found <{root_name}>")
    entries = []
    for url in root.findall("sm:url", _NS):
        loc = (url.findtext("sm:loc", namespaces=_NS) or "").strip()
        if not loc:
            continue
        news = url.find("news:news", _NS)
        published = lastmod = parse_iso_datetime(url.findtext("sm:lastmod", namespaces=_NS))
        title = None
        entry_language = language
        if news is not None:
            published = parse_iso_datetime(news.findtext("news:publication_date", namespaces=_NS))
            title = news.findtext("news:title", namespaces=_NS)
            entry_language = (
                news.findtext("news:publication/news:language", namespaces=_NS) or language
            )
        image = url.findtext("image:image/image:loc", namespaces=_NS)
        entries.append(
            FeedEntry(
                source=source,
                link=loc,
                guid=None,
                title=title.strip() if title else None,
                published=published,
                updated=lastmod,
                image_url=image.strip() if image else None,
                language=entry_language,
            )
        )
    return _oldest_first(entries)


#: Feeds with at least this many items remember a fingerprint per item, so that a change
#: parses only the changed items (a small feed is cheaper to parse again than to remember).
INCREMENTAL_ITEMS = 500
_ATOM = "{http://www.w3.org/2005/Atom}"


@dataclass(frozen=True)
class ItemSelection:
    """A big feed read item by item (see select_items)."""

    #: The feed with only the selected items (the downloaded bytes when that is all of them).
    document: bytes
    #: Every item's fingerprint, selected or not.
    digests: set[bytes]
    items: int
    selected: int
    #: Items left out only because MAX_FEED_ENTRIES were already selected.
    over_limit: int


def _item_tag(parent: Any) -> str | None:
    """The tag of the items a feed lists under `parent`, if `parent` is where they belong:
    an RSS 2.0 <channel> under <rss>, or an Atom <feed> root."""
    if parent.tag == f"{_ATOM}feed" and parent.getparent() is None:
        return f"{_ATOM}entry"
    if parent.tag == "channel":
        root = parent.getparent()
        if root is not None and root.tag == "rss" and root.getparent() is None:
            return "item"
    return None


def select_items(content: bytes, known: Set[bytes] | None) -> ItemSelection | None:
    """A big, well-formed UTF-8 RSS 2.0 or Atom feed read item by item, each fingerprinted
    (a hash of its serialised bytes) as the parser finishes it. Selected are the items whose
    fingerprint is not in `known`, up to the first MAX_FEED_ENTRIES (feeds list newest first);
    every other item is dropped from the tree at once, so a feed of 100,000 items never holds
    more than that many in memory. None for anything else (a small feed, RSS 1.0, another
    encoding, broken XML): that is parsed whole."""
    # Every item or entry tag contains one of these words: most feeds stop here, unparsed.
    if content.count(b"item") + content.count(b"entry") < INCREMENTAL_ITEMS:
        return None
    events = etree.iterparse(
        io.BytesIO(content),
        events=("end",),
        tag=("item", f"{_ATOM}entry"),
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
    )
    digests: set[bytes] = set()
    feed_parent: Any = None  # lxml hands back the same proxy while one is referenced
    items = selected = over_limit = 0
    try:
        for _, item in events:
            parent = item.getparent()
            if parent is not feed_parent:
                if parent is None or _item_tag(parent) != item.tag:
                    continue  # an element of that name nested elsewhere
                feed_parent = parent
            items += 1
            serialised = etree.tostring(item, with_tail=False)
            digest = hashlib.blake2b(serialised, digest_size=12).digest()
            digests.add(digest)
            if known is not None and digest in known:
                parent.remove(item)
            elif selected >= MAX_FEED_ENTRIES:
                over_limit += 1
                parent.remove(item)
            else:
                selected += 1
    except (etree.XMLSyntaxError, ValueError):
        return None
    root = events.root
    if (root.getroottree().docinfo.encoding or "UTF-8").upper() not in ("UTF-8", "UTF8"):
        return None
    if items < INCREMENTAL_ITEMS:
        return None
    if selected == items:
        document = content
    else:  # the channel's own elements, such as its language, stay
        document = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return ItemSelection(document, digests, items, selected, over_limit)


def _oldest_first(entries: list[FeedEntry]) -> list[FeedEntry]:
    # Feeds list newest first; undated items keep their relative order behind dated ones.
    indexed = list(enumerate(reversed(entries)))
    far_past = datetime.min.replace(tzinfo=UTC)
    indexed.sort(key=lambda pair: (pair[1].published or pair[1].updated or far_past, pair[0]))
    return [entry for _, entry in indexed]
