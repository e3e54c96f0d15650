"""Article enrichment: one fetched page -> an Article. Pure: HTML in, Article out.

Sources, best first: JSON-LD (NewsArticle and kin), OpenGraph / Twitter / article meta, the
page itself (canonical link, <html lang>, byline) and its main text (trafilatura), and last
the feed entry. Each field falls back on its own; only a page with no title at all fails.
"""

from __future__ import annotations

import html as htmllib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

import lxml.html
import trafilatura
from lxml import etree

from bot.models import Article, FeedEntry
from bot.text import parse_iso_datetime, squash_spaces
from bot.urls import absolute_url, is_http_url

log = logging.getLogger("newsbot.enrich")

ARTICLE_TYPES = {
    "newsarticle",
    "article",
    "reportagenews",
    "analysisnewsarticle",
    "opinionnewsarticle",
    "backgroundnewsarticle",
    "blogposting",
    "liveblogposting",
    "report",
    "webpage",
}
# Site boilerplate that must not become a lead (the reference site prints it on every page).
_BOILERPLATE = re.compile(
    r"(any use of materials is allowed only if there is a hyperlink to\s*\S+"
    r"|использование материалов разрешается только при наличии гиперссылки[^.]*"
    r"|views:\s*\d+)",
    re.IGNORECASE,
)
_BYLINE = re.compile(r"\s*(?:By|Автор:?|Müəllif:?)\s+([^\n|]{3,80}?)\s*")
# The text is decoded by us; tell lxml it is UTF-8 so a <meta charset> cannot re-decode it.
_PARSER = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True)
_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_\-]+)""", re.IGNORECASE)


class EnrichmentError(Exception):
    """The page has nothing usable as an article (no title anywhere)."""


def decode_html(content: bytes | str) -> str:
    """Bytes to text: BOM, then <meta charset>, then UTF-8 (with replacement)."""
    if isinstance(content, str):
        return content
    if content.startswith(b"\xef\xbb\xbf"):
        return content[3:].decode("utf-8", errors="replace")
    match = _CHARSET.search(content[:4096])
    if match:
        try:
            return content.decode(match.group(1).decode("ascii"), errors="replace")
        except LookupError:
            pass
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")


def _clean(text: str | None) -> str:
    if not text:
        return ""
    return squash_spaces(htmllib.unescape(text))


def _iter_ld_objects(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _iter_ld_objects(item)
    elif isinstance(data, dict):
        yield data
        if "@graph" in data:
            yield from _iter_ld_objects(data["@graph"])


def _types(obj: dict[str, Any]) -> set[str]:
    value = obj.get("@type")
    values = value if isinstance(value, list) else [value]
    return {str(v).lower() for v in values if v}


def json_ld_article(tree: lxml.html.HtmlElement) -> dict[str, Any]:
    """The best NewsArticle-like JSON-LD object on the page (empty if none or malformed)."""
    best: dict[str, Any] = {}
    best_rank = len(ARTICLE_TYPES) + 1
    ranking = ["newsarticle", "reportagenews", "analysisnewsarticle", "article", "blogposting"]
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text_content() or "", strict=False)
        except ValueError:
            continue
        for obj in _iter_ld_objects(data):
            kinds = _types(obj) & ARTICLE_TYPES
            if not kinds or not (obj.get("headline") or obj.get("name")):
                continue
            rank = min((ranking.index(k) if k in ranking else len(ranking)) for k in kinds)
            if rank < best_rank:
                best, best_rank = obj, rank
    return best


def _ld_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("name") or value.get("@value") or "")
    if isinstance(value, list) and value:
        return ", ".join(filter(None, (_ld_text(v) for v in value)))
    return ""


def _ld_image(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("url") or value.get("contentUrl")
    if isinstance(value, list):
        for item in value:
            found = _ld_image(item)
            if found:
                return found
    return None


def _ld_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [s for v in value for s in _ld_list(v)]
    return []


def page_meta(tree: lxml.html.HtmlElement) -> dict[str, list[str]]:
    """All <meta property|name=...> values, lower-cased keys, in page order."""
    meta: dict[str, list[str]] = {}
    for element in tree.iter("meta"):
        key = (element.get("property") or element.get("name") or "").strip().lower()
        content = element.get("content")
        if key and content is not None:
            meta.setdefault(key, []).append(content.strip())
    return meta


def _first(meta: dict[str, list[str]], *keys: str) -> str:
    for key in keys:
        for value in meta.get(key, []):
            if value:
                return value
    return ""


def _language(value: str | None) -> str | None:
    if not value:
        return None
    code = re.split(r"[-_]", value.strip())[0].lower()
    return code if re.fullmatch(r"[a-z]{2,3}", code) else None


def _strip_site_suffix(title: str, site_name: str | None) -> str:
    if not site_name:
        return title
    for sep in (" - ", " | ", " — ", " – ", " :: "):
        suffix = f"{sep}{site_name}"
        if title.lower().endswith(suffix.lower()):
            return title[: -len(suffix)].strip()
    return title


def _dedupe(values: Iterable[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    result = []
    for value in values:
        value = _clean(value)
        if value and value.casefold() not in seen:
            seen.add(value.casefold())
            result.append(value)
    return tuple(result)


def main_text(tree: lxml.html.HtmlElement, url: str) -> str:
    """The article body as plain text (paragraphs separated by blank lines)."""
    try:
        # trafilatura prunes the tree it is given: call this last, once nothing else reads it.
        document = trafilatura.bare_extraction(
            tree, url=url, include_comments=False, include_tables=False, fast=True
        )
    except Exception:  # trafilatura on hostile markup: fall back to paragraphs
        log.debug("trafilatura failed on %s", url, exc_info=True)
        document = None
    text = getattr(document, "text", None) if document is not None else None
    if not text:
        paragraphs = [_clean(p.text_content()) for p in tree.iter("p")]
        text = "\n\n".join(p for p in paragraphs if len(p) > 40)
    return _BOILERPLATE.sub("", text or "").strip()


def find_byline(tree: lxml.html.HtmlElement) -> str | None:
    """A "By <name>" line in a small element of the page (the reference site's byline)."""
    for element in tree.iter("p", "div", "span", "address", "strong", "em"):
        text = element.text_content()
        if len(text) > 100:
            continue
        match = _BYLINE.fullmatch(text)
        if match:
            return match.group(1)
    return None


def _first_paragraphs(body: str, limit: int = 400) -> str:
    lead = ""
    for paragraph in body.split("\n"):
        paragraph = paragraph.strip()
        if len(paragraph) < 30:
            continue
        lead = f"{lead} {paragraph}".strip()
        if len(lead) >= limit // 2:
            break
    return lead


def extract_article(
    html: str | bytes, url: str, entry: FeedEntry | None = None, source: str = ""
) -> Article:
    """Build the Article for the page at `url`."""
    text = decode_html(html)
    try:
        tree = lxml.html.document_fromstring(
            text.encode("utf-8", errors="replace") or b"<html/>", parser=_PARSER
        )
    except (etree.ParserError, ValueError) as exc:
        raise EnrichmentError(f"{url}: not an HTML page ({exc})") from None
    ld = json_ld_article(tree)
    meta = page_meta(tree)

    site_name = _clean(_first(meta, "og:site_name")) or _clean(_ld_text(ld.get("publisher")))
    title = _clean(_ld_text(ld.get("headline")) or _first(meta, "og:title", "twitter:title"))
    if not title:
        title = _strip_site_suffix(_clean(tree.findtext(".//title")), site_name or None)
    if not title:
        h1 = tree.find(".//h1")
        title = _clean(h1.text_content()) if h1 is not None else ""
    if not title and entry is not None:
        title = _clean(entry.title)
    if not title:
        raise EnrichmentError(f"{url}: no title found in JSON-LD, meta tags, <title> or <h1>")

    canonical = ""
    for link in tree.iter("link"):
        if (link.get("rel") or "").lower() == "canonical" and link.get("href"):
            canonical = link.get("href", "")
            break
    main_entity = ld.get("mainEntityOfPage")
    canonical = (
        canonical
        or _first(meta, "og:url")
        or _ld_text(ld.get("url"))
        or (main_entity.get("@id") if isinstance(main_entity, dict) else _ld_text(main_entity))
        or url
    )
    canonical = absolute_url(url, canonical.strip())
    if not is_http_url(canonical):
        canonical = url

    html_lang = tree.get("lang")
    byline = find_byline(tree)
    body = main_text(tree, url)  # last reader of the tree: trafilatura prunes it
    lead = _clean(
        _ld_text(ld.get("description"))
        or _first(meta, "og:description", "description", "twitter:description")
    )
    lead = _BOILERPLATE.sub("", lead).strip()
    if not lead:
        lead = _first_paragraphs(body) or _clean(entry.summary if entry else "")

    image = (
        _ld_image(ld.get("image"))
        or _first(meta, "og:image", "og:image:url", "og:image:secure_url", "twitter:image")
        or (entry.image_url if entry else None)
    )
    image = absolute_url(url, image.strip()) if image else None
    if image and not is_http_url(image):
        image = None

    published = (
        parse_iso_datetime(ld.get("datePublished"))
        or parse_iso_datetime(_first(meta, "article:published_time", "pubdate", "date"))
        or (entry.published if entry else None)
    )
    updated = (
        parse_iso_datetime(ld.get("dateModified"))
        or parse_iso_datetime(_first(meta, "article:modified_time", "og:updated_time"))
        or (entry.updated if entry else None)
    )
    language = (
        _language(_ld_text(ld.get("inLanguage")))
        or _language(html_lang)
        or _language(_first(meta, "og:locale", "language", "content-language"))
        or _language(entry.language if entry else None)
    )
    author = _clean(_ld_text(ld.get("author"))) or _clean(_first(meta, "author", "article:author"))
    if not author or is_http_url(author):
        author = _clean(byline) if byline else (entry.author if entry else "") or ""

    categories = _dedupe(
        [
            *_ld_list(ld.get("articleSection")),
            *meta.get("article:section", []),
            *(entry.categories if entry else ()),
        ]
    )
    tags = _dedupe([*_ld_list(ld.get("keywords")), *meta.get("article:tag", [])])
    return Article(
        url=canonical,
        title=title,
        source=source or (entry.source if entry else ""),
        lead=lead,
        body=body,
        image_url=image,
        published=published,
        updated=updated,
        language=language,
        author=author or None,
        categories=categories,
        tags=tuple(t for t in tags if t.casefold() not in {c.casefold() for c in categories}),
        site_name=site_name or None,
    )
