"""Article enrichment: one fetched page -> an Article. Pure: HTML in, Article out, no I/O.

Sources, best first: JSON-LD (NewsArticle and kin), OpenGraph / Twitter / article meta tags,
the page itself (canonical link, <html lang>, <title>, <h1>, <time>, the "By <name>" byline)
and its main text (trafilatura), and last the feed entry. Each field falls back on its own;
only a page with no title anywhere (the feed entry included) raises EnrichmentError.

The page is parsed once with lxml; every reader below works on that one tree.
"""

from __future__ import annotations

import copy
import email.utils
import html as htmllib
import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import lxml.html
from lxml import etree

from bot.models import MAX_BODY_CHARS, MAX_SUMMARY_CHARS, Article, FeedEntry
from bot.text import (
    ELLIPSIS,
    first_sentences,
    is_cjk_text,
    looks_cut,
    squash_spaces,
    strip_invisible,
)
from bot.urls import absolute_url, is_http_url, normalize_url, strip_tracking

log = logging.getLogger("newsbot.enrich")

__all__ = ["EnrichmentError", "decode_html", "extract_article", "parse_html"]


class EnrichmentError(Exception):
    """The page has nothing usable as an article (no title anywhere)."""


# -- decoding and parsing ------------------------------------------------------------------

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
# <meta charset=...>, <meta http-equiv content="text/html; charset=..."> and <?xml encoding=?>
_DECLARED_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)"""
    rb"""|<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:\-]+)""",
    re.IGNORECASE,
)
# WHATWG Encoding: these labels mean windows-1252, and a <meta> cannot declare UTF-16
# (the bytes it is written in are ASCII-compatible), so it means UTF-8.
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "utf-16": "utf-8",
    "utf-16le": "utf-8",
    "utf-16be": "utf-8",
    "x-user-defined": "cp1252",
}
# We decode ourselves; telling lxml the bytes are UTF-8 stops a <meta charset> re-decoding them.
_PARSER = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True)
# lxml.html's default element lookup is Python code run for every element proxy (a tenth of
# the total time); the C-level default lookup gives the same HtmlElement class (all we and
# trafilatura use), only without lxml's form/input subclasses.
_PARSER.set_element_class_lookup(
    etree.ElementDefaultClassLookup(
        element=lxml.html.HtmlElement,
        comment=lxml.html.HtmlComment,
        pi=lxml.html.HtmlProcessingInstruction,
        entity=lxml.html.HtmlEntity,
    )
)
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def decode_html(content: bytes | str) -> str:
    """Page bytes to text: a BOM, then the declared charset, else UTF-8 (with replacement).

    A page that declares a legacy charset but is valid UTF-8 with non-ASCII bytes is read as
    UTF-8: a CMS template often keeps a stale declaration, while real windows-1251 or
    windows-1252 text is practically never valid multi-byte UTF-8 by accident.
    """
    if isinstance(content, str):
        return content
    for bom, codec in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(codec, errors="replace")
    match = _DECLARED_CHARSET.search(content[:8192])
    if match:
        label = (match.group(1) or match.group(2)).decode("ascii").lower()
        codec = _CHARSET_ALIASES.get(label, label)
        if codec.replace("-", "").replace("_", "") not in ("utf8", "unicode11utf8"):
            try:
                return content.decode("utf-8")
            except UnicodeDecodeError:
                pass
            try:
                return content.decode(codec, errors="replace")
            except LookupError:
                log.debug("unknown charset %r, reading the page as UTF-8", label)
    return content.decode("utf-8", errors="replace")


def parse_html(text: str) -> lxml.html.HtmlElement:
    """The page's lxml tree; an empty document (never an exception) for hopeless input."""
    # Control characters (NUL stops libxml2; others make lxml refuse any later edit of the
    # text) are dropped from the UTF-8 bytes: a byte table delete, far quicker than a regex.
    data = text.encode("utf-8", errors="replace").translate(None, _CONTROL_BYTES)
    try:
        return lxml.html.document_fromstring(data, parser=_PARSER)
    except (etree.ParserError, ValueError):
        return lxml.html.document_fromstring(
            b"<html><head></head><body></body></html>", parser=_PARSER
        )


# -- small text and value helpers ----------------------------------------------------------

_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);")
_TAG = re.compile(r"</?[a-zA-Z][^<>]*>")


#: Characters of one page field (headline, description, meta value) read at most: every
#: regex and word count after this is linear in it, and a 5 MB <title> must cost no more than
#: a normal one (it runs in a thread, but holds the GIL, so the event loop waits for it).
MAX_FIELD_CHARS = MAX_SUMMARY_CHARS


def _clean(text: Any) -> str:
    """Unescape HTML entities (twice for double-escaped CMS output), squash white space."""
    if not isinstance(text, str) or not text:
        return ""
    text = text[:MAX_FIELD_CHARS]
    for _ in range(2):
        if "&" not in text or not _ENTITY.search(text):
            break
        text = htmllib.unescape(text)
    return squash_spaces(strip_invisible(_INVISIBLE.sub("", text)))


_PAIRED_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]*)\b[^<>]*>(.*?)</\1\s*>", re.DOTALL)
_VOID_TAG = re.compile(r"<(?:br|hr|img|wbr)\b[^<>]*/?>", re.IGNORECASE)


def _clean_markup(text: Any) -> str:
    """_clean for headlines, descriptions and feed summaries, which often carry <p>, <br>,
    <em> tags: a tag that is markup (opened and closed, or a void <br>) goes, its text stays;
    a lone "<script>" or "5 < 6" written as text stays text. The same for every field."""
    cleaned = _clean(text)  # capped there
    if "<" not in cleaned:
        return cleaned
    for _ in range(4):  # nested markup: <p><em>..</em></p>
        stripped = _PAIRED_TAG.sub(lambda m: f" {m.group(2)} ", cleaned)
        if stripped == cleaned:
            break
        cleaned = stripped
    cleaned = _VOID_TAG.sub(" ", cleaned)
    # Spaces the removal left inside quotes and before punctuation.
    return re.sub(r"\s+(?=[,.;:!?])", "", squash_spaces(cleaned))


def _dedupe(values: Iterable[str], max_len: int = 80) -> tuple[str, ...]:
    seen: set[str] = set()
    result: list[str] = []
    for value in values:
        value = _clean(value).strip(" ,;#")
        if value and len(value) <= max_len and value.casefold() not in seen:
            seen.add(value.casefold())
            result.append(value)
    return tuple(result)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 or RFC 2822 time as an aware datetime; naive times are taken as UTC."""
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, datetime):
        parsed: datetime | None = value
    elif not isinstance(value, str) or not value.strip():
        return None
    else:
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
    if parsed is None or not _MIN_YEAR <= parsed.year <= datetime.now(UTC).year + 1:
        return None  # "0001-01-01" and other CMS placeholders are no publication date
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_MIN_YEAR = 1990


# ISO 639-2 codes pages use in place of the 2-letter ISO 639-1 ones.
_LANG3 = {
    "aze": "az",
    "rus": "ru",
    "eng": "en",
    "tur": "tr",
    "ukr": "uk",
    "bel": "be",
    "kaz": "kk",
    "kir": "ky",
    "uzb": "uz",
    "tgk": "tg",
    "tuk": "tk",
    "geo": "ka",
    "kat": "ka",
    "arm": "hy",
    "hye": "hy",
    "per": "fa",
    "fas": "fa",
    "ara": "ar",
    "heb": "he",
    "deu": "de",
    "ger": "de",
    "fra": "fr",
    "fre": "fr",
    "spa": "es",
    "por": "pt",
    "ita": "it",
    "nld": "nl",
    "dut": "nl",
    "pol": "pl",
    "ces": "cs",
    "cze": "cs",
    "ell": "el",
    "gre": "el",
    "zho": "zh",
    "chi": "zh",
    "jpn": "ja",
    "kor": "ko",
    "hin": "hi",
    "swe": "sv",
    "nor": "no",
    "dan": "da",
    "fin": "fi",
    "ron": "ro",
    "rum": "ro",
    "hun": "hu",
    "bul": "bg",
    "srp": "sr",
    "hrv": "hr",
}


def language_code(value: Any) -> str | None:
    """A 2-letter ISO 639-1 code from "en", "en-GB", "ru_RU", "aze" ...; None if unusable."""
    if isinstance(value, dict):
        value = value.get("alternateName") or value.get("name")
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, str):
        return None
    code = re.split(r"[-_\s]", value.strip().lower(), maxsplit=1)[0]
    if re.fullmatch(r"[a-z]{2}", code):
        return code
    return _LANG3.get(code)


# Language identification (py3langid: its model ships in the wheel, nothing is downloaded),
# held in the compact form of bot/language_model.py (same answers, ~37 MB instead of ~75).
# Loaded on first use (~0.6 s, once per process); a classification takes ~0.1 ms. Under a
# lock: pages are extracted in threads, and ten of them loading the model at once held ten
# copies (a 450 MB peak for ten new articles, issue 18).
_identifier: Any = None
_identifier_loading = threading.Lock()
#: Text shorter than this says too little about its language.
_MIN_DETECT_CHARS = 200
#: Below this probability the detector's answer is not used.
_MIN_DETECT_CONFIDENCE = 0.9
#: A page's declared language is overruled only by a body this long detected this surely
#: (templates keep lang="en" on every edition of a multilingual site).
_OVERRULE_CHARS = 600
_OVERRULE_CONFIDENCE = 0.98


def detect_language(text: str) -> tuple[str | None, float]:
    """The language of `text` (ISO 639-1) and the detector's probability; None if unsure."""
    global _identifier
    sample = squash_spaces(text[:3000])
    # A Japanese or Chinese character says as much as a few Latin ones.
    if len(sample) < (_MIN_DETECT_CHARS // 4 if is_cjk_text(sample) else _MIN_DETECT_CHARS):
        return None, 0.0
    if _identifier is None:
        with _identifier_loading:
            if _identifier is None:
                from bot.language_model import load_compact

                _identifier = load_compact()
    code, probability = _identifier.classify(sample)
    if probability < _MIN_DETECT_CONFIDENCE:
        return None, float(probability)
    return language_code(code), float(probability)


def choose_language(declared: str | None, text: str, default: str | None) -> str | None:
    """The page's declared language, unless a long body clearly says otherwise; else the
    language detected from `text`; else the source's `default`."""
    if declared and len(text) < _OVERRULE_CHARS:
        return declared  # too short to overrule it: no need to load the model (issue 18)
    detected, probability = detect_language(text)
    if declared and (
        detected is None
        or detected == declared
        or len(text) < _OVERRULE_CHARS
        or probability < _OVERRULE_CONFIDENCE
    ):
        return declared
    return detected or declared or default


# -- JSON-LD -------------------------------------------------------------------------------

# Article-like schema.org types, best first. WebPage only names the page: a last resort.
_ARTICLE_TYPES = (
    "newsarticle",
    "reportagenews",
    "analysisnewsarticle",
    "opinionnewsarticle",
    "backgroundnewsarticle",
    "reviewnewsarticle",
    "liveblogposting",
    "article",
    "blogposting",
    "report",
    "techarticle",
    "webpage",
)
_TYPE_RANK = {name: rank for rank, name in enumerate(_ARTICLE_TYPES)}
_MAX_LD_DEPTH = 12  # pages nest objects a few levels deep; bound it against hostile input


def _ld_types(obj: dict[str, Any]) -> list[str]:
    value = obj.get("@type")
    values = value if isinstance(value, list) else [value]
    # "schema:NewsArticle" and "https://schema.org/NewsArticle" name the same type.
    return [re.split(r"[/:#]", v)[-1].lower() for v in values if isinstance(v, str)]


def _walk_ld(data: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """Every JSON object in a JSON-LD document: top level, lists, @graph and nested values."""
    if depth > _MAX_LD_DEPTH:
        return
    if isinstance(data, list):
        for item in data:
            yield from _walk_ld(item, depth + 1)
    elif isinstance(data, dict):
        yield data
        for value in data.values():
            if isinstance(value, dict | list):
                yield from _walk_ld(value, depth + 1)


def _load_ld(text: str) -> Any:
    text = text.strip()
    # Old templates wrap scripts in <!-- --> or CDATA markers; JSON cannot parse those.
    for prefix in ("<!--", "//<![CDATA[", "<![CDATA["):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    for suffix in ("-->", "//]]>", "]]>"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    text = text.strip().rstrip(";")
    try:
        return json.loads(text, strict=False)
    except (ValueError, RecursionError):
        return None


@dataclass(slots=True)
class JsonLd:
    """The page's best article object plus an @id index to resolve references like
    {"@id": ".../#/schema/person/1"} (Yoast and other SEO plugins write authors that way)."""

    article: dict[str, Any] = field(default_factory=dict)
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    website_name: str = ""

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and set(value) <= {"@id", "@type"} and "@id" in value:
            return self.by_id.get(str(value["@id"]), value)
        if isinstance(value, list):  # one level: authors, images
            return [
                self.by_id.get(str(item["@id"]), item)
                if isinstance(item, dict) and set(item) <= {"@id", "@type"} and "@id" in item
                else item
                for item in value
            ]
        return value

    def get(self, key: str) -> Any:
        return self.resolve(self.article.get(key))


def read_json_ld(tree: lxml.html.HtmlElement, page_url: str = "") -> JsonLd:
    """The page's JSON-LD: the best article-like object (empty if none, or all malformed)."""
    result = JsonLd()
    candidates: list[tuple[int, int, int, dict[str, Any]]] = []
    try:
        page_key = normalize_url(page_url) if page_url else ""
    except ValueError:
        page_key = ""
    for script in tree.iter("script"):
        if "ld+json" not in (script.get("type") or "").lower() or not script.text:
            continue
        for obj in _walk_ld(_load_ld(script.text)):
            if isinstance(obj.get("@id"), str):
                result.by_id.setdefault(obj["@id"], obj)
            types = _ld_types(obj)
            if "website" in types and not result.website_name:
                result.website_name = _clean(_ld_text(obj.get("name")))
            ranks = [_TYPE_RANK[t] for t in types if t in _TYPE_RANK]
            if ranks and (obj.get("headline") or obj.get("name")):
                # Listing pages embed several articles: prefer the one about this URL.
                about_page = page_key != "" and page_key in {
                    _normalized_or_empty(_ld_url(obj.get(key)))
                    for key in ("url", "mainEntityOfPage", "@id")
                }
                candidates.append((min(ranks), 0 if about_page else 1, len(candidates), obj))
    if candidates:
        result.article = min(candidates, key=lambda c: c[:3])[3]
    return result


def _normalized_or_empty(url: str) -> str:
    try:
        return normalize_url(url)
    except ValueError:
        return ""


# The value readers below recurse into lists and objects; `depth` stops a hostile page's
# thousand-deep nesting from reaching Python's recursion limit.


def _ld_text(value: Any, depth: int = 0) -> str:
    """A display string from a JSON-LD value: text, {"name": ...}, or a list of either."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if depth > 4:
        return ""
    if isinstance(value, dict):
        return _ld_text(value.get("name") or value.get("@value") or "", depth + 1)
    if isinstance(value, list):
        texts = (_clean(_ld_text(v, depth + 1)) for v in value)
        return ", ".join(dict.fromkeys(t for t in texts if t))
    return ""


def _ld_url(value: Any, depth: int = 0) -> str:
    if isinstance(value, str):
        return value
    if depth > 4:
        return ""
    if isinstance(value, dict):
        found = value.get("url") or value.get("contentUrl") or value.get("@id") or ""
        return _ld_url(found, depth + 1)
    if isinstance(value, list):
        return next((u for u in (_ld_url(v, depth + 1) for v in value) if u), "")
    return ""


def _ld_list(value: Any, depth: int = 0) -> list[str]:
    """Keywords and sections come as "a, b", ["a", "b"] or [{"name": "a"}]."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if depth > 4:
        return []
    if isinstance(value, list):
        return [s for v in value for s in _ld_list(v, depth + 1)]
    if isinstance(value, dict):
        return _ld_list(value.get("name"), depth + 1)
    return []


# -- meta tags and page elements -----------------------------------------------------------


def page_meta(tree: lxml.html.HtmlElement) -> dict[str, list[str]]:
    """All <meta property|name|itemprop|http-equiv=...> values, lower-cased keys, page order."""
    meta: dict[str, list[str]] = {}
    for element in tree.iter("meta"):
        content = element.get("content")
        if content is None or not content.strip():
            continue
        for attr in ("property", "name", "itemprop", "http-equiv"):
            # itemprop="datePublished dateCreated": each space-separated name counts.
            for key in (element.get(attr) or "").lower().split():
                meta.setdefault(key, []).append(content.strip())
    return meta


def _first(meta: dict[str, list[str]], *keys: str) -> str:
    for key in keys:
        values = meta.get(key)
        if values:
            return values[0]
    return ""


def _link_href(tree: lxml.html.HtmlElement, rel: str) -> str:
    for link in tree.iter("link"):
        if rel in (link.get("rel") or "").lower().split() and (link.get("href") or "").strip():
            return link.get("href", "")
    return ""


def _time_attrs(tree: lxml.html.HtmlElement) -> dict[str, str]:
    """Dates from <time> (and itemprop'd) elements: "published", "modified", "first"."""
    found: dict[str, str] = {}
    for element in tree.xpath(
        "//*[contains(@itemprop, 'datePublished') or contains(@itemprop, 'dateModified')]"
        "[@datetime or @content]"
        "|//article//time[@datetime]|//time[@pubdate][@datetime]"
    ):
        value = element.get("datetime") or element.get("content") or ""
        props = (element.get("itemprop") or "").split()
        if "datePublished" in props or element.get("pubdate") is not None:
            found.setdefault("published", value)
        elif "dateModified" in props:
            found.setdefault("modified", value)
        else:
            found.setdefault("first", value)
    return found


# A byline: "By Sabina Mammadli", "Автор: Иван Петров", "Müəllif: Aysel Məmmədova".
_BYLINE = re.compile(
    r"(?:By|BY|by|Автор|Müəllif|Yazar)\s*:?\s+"
    r"(?P<name>[^\W\d_][\w.'’\- ]{1,60}(?:(?:,| and| и| və|&) [\w.'’\- ]{2,60}){0,3})",
)
_BYLINE_START = re.compile(r"\s*(?:By|BY|by|Автор|Müəllif|Yazar)\b")
_NOT_TEXT = frozenset({"script", "style", "noscript", "template", "svg"})


def _name_like(name: str) -> bool:
    words = name.replace(",", " ").split()
    if not 1 <= len(words) <= 8:
        return False
    # Names are capitalised words (joined by "and", "и", "və", "de", "van" ...).
    capitalised = sum(1 for w in words if w[0].isupper())
    return words[0][0].isupper() and capitalised >= max(1, len(words) - 2)


def find_byline(tree: lxml.html.HtmlElement) -> str | None:
    """The author's name from a "By <name>" line in a small element of the page."""
    body = tree.find("body")
    if body is None:
        return None
    # A plain walk over text and tails is quicker here than an XPath over all text nodes.
    for element in body.iter():
        if not isinstance(element.tag, str) or element.tag in _NOT_TEXT:
            continue
        if element.text and _BYLINE_START.match(element.text):
            name = _byline_around(element)
        elif element.tail and _BYLINE_START.match(element.tail):
            name = _byline_around(element.getparent())
        else:
            continue
        if name:
            return name
    return None


def _byline_around(element: lxml.html.HtmlElement | None) -> str | None:
    # "By" may sit in its own <span> with the name in the next <a>: try two levels up.
    for _ in range(3):
        if element is None or element.tag in ("body", "html"):
            return None
        # itertext, not text_content: "<a>Meg James</a><span>Staff</span>" keeps its space.
        content = re.sub(r"\s+(?=[,.;:])", "", squash_spaces(" ".join(element.itertext())))
        if len(content) > 120:
            return None
        if _is_byline(content):
            match = _BYLINE.fullmatch(content)
            return _byline_name(match.group("name")) if match else None
        element = element.getparent()
    return None


def _byline_name(name: str) -> str | None:
    # "Federica Lusiardi - 2019-04-10", "Staff Reports -": the name is before the separator.
    name = re.split(r"\s[-|—–•]\s|\s[-|—–•]$", name, maxsplit=1)[0]
    # "Jeff Foust Monday, November 18, 2019": a date glued to the name is not part of it.
    name = re.split(r",?\s+(?:\d|(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day\b)", name)[0]
    return name.strip(" .,-–—|") or None


# Account and desk names CMSs put where a person's name belongs.
_NOT_PERSONS = frozenset(
    {
        "admin",
        "administrator",
        "editor",
        "editors",
        "staff",
        "newsroom",
        "webmaster",
        "user",
        "guest",
        "redação",
        "redacao",
        "redaktion",
        "redacción",
        "редакция",
        "redaksiya",
        "anonymous",
        "unknown",
    }
)
# "Analysis by ...", "Opinion by ...": the kind of piece, not part of the name.
_BY_PREFIX = re.compile(r"^(?:[\w-]+\s+){0,2}?(?:by|von|por|автор)\s*:?\s+", re.IGNORECASE)
# ", Editor-at-large", ", Senior Correspondent": a role after the name.
_ROLE_SUFFIX = re.compile(
    r",\s*(?:[\w-]+\s+){0,2}(?:editor|correspondent|reporter|writer|columnist|contributor"
    r"|analyst|staff|redakteur|korrespondent|correspondente|корреспондент)[\w-]*$",
    re.IGNORECASE,
)


def _author_name(value: str, site_names: Iterable[str] = ()) -> str:
    """An author value that names a person: no profile URLs, no "By " prefix, no role, not
    an account ("admin") or the site's own name."""
    value = _clean(value)
    value = _ROLE_SUFFIX.sub("", _BY_PREFIX.sub("", value)).strip(" ,")
    if not value or len(value) > 120 or is_http_url(value) or value.startswith(("/", "@")):
        return ""
    if value.casefold() in _NOT_PERSONS or any(c.isdigit() for c in value):
        return ""
    if _name_key(value) in {_name_key(n) for n in site_names if n}:
        return ""
    if not _name_like(value) and not value[:1].isupper():
        return ""
    return value


# -- boilerplate ---------------------------------------------------------------------------

# The reference site prints an attribution notice on every page (en / ru / az); it must not
# become a lead or part of the body. Written loosely to survive small wording changes.
_NOTICE = re.compile(
    r"(?:any\s+)?use\s+of\s+(?:the\s+)?materials?\s+is\s+(?:allowed|permitted)\s+only\s+"
    r"(?:if\s+there\s+is|with)\s+an?\s+(?:active\s+)?hyperlink\s+to\s+[\w\-]+(?:\.[\w\-]+)*\.?"
    r"|(?:любое\s+)?использование\s+материалов\s+(?:допускается|разрешается|разрешено)\s+"
    r"только\s+(?:при\s+наличии\s+)?(?:активной\s+)?(?:гипер)?ссылк\w*\s+на\s+[\w\-]+(?:\.[\w\-]+)*\.?"
    r"|materiallard[ae]n\s+istifadə[^.\n]{0,80}?(?:hiperlink|keçid|istinad)[^.\n]{0,40}\.?",
    re.IGNORECASE,
)
# Whole lines that are page furniture, not story: view counters and copyright lines.
_FURNITURE_LINE = re.compile(
    r"(?:views?|просмотр(?:ов|ы)?|baxış(?:ların)?(?:\s+sayı)?)\s*:?\s*\d[\d\s.,]*"
    r"|(?:©|\(c\)|copyright\s+(?:©|\(c\)|\d{4})).{0,80}",
    re.IGNORECASE,
)


def _is_byline(line: str) -> bool:
    match = _BYLINE.fullmatch(line) if len(line) <= 120 else None
    return match is not None and _name_like(match.group("name"))


def _strip_boilerplate(text: str, drop_lines: Iterable[str] = ()) -> str:
    """Remove the attribution notice, counters, copyright and byline lines, `drop_lines`."""
    lowered = text.lower()
    # The notice regex is slow to scan with; most texts do not contain its key word at all.
    if "hyperlink" in lowered or "ссылк" in lowered or "istifadə" in lowered:
        text = _NOTICE.sub("", text)
    drop = {line.casefold() for line in drop_lines if line}
    lines = []
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and (
            stripped.casefold() in drop
            or _FURNITURE_LINE.fullmatch(stripped)
            or _is_byline(stripped)
        ):
            continue
        lines.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# -- body ----------------------------------------------------------------------------------


# Elements trafilatura deletes anyway. Dropping them first (in C) makes its many XPath passes
# quicker (about 0.5 ms a page); no change to any fixture page's text.
_NEVER_TEXT = ("style", "svg", "template", "iframe", "select", "button", "input", "textarea")
# Scripts other than JSON-LD (trafilatura's last-resort baseline reads articleBody there)
# and <link>s: gone as well, by XPath since strip_elements cannot look at attributes.
_PLAIN_SCRIPTS = etree.XPath("//script[not(contains(@type, 'ld+json'))]|//link")


def main_text(tree: lxml.html.HtmlElement, url: str) -> str:
    """The article body as plain text, one paragraph per line. Prunes `tree`: call it last."""
    etree.strip_elements(tree, *_NEVER_TEXT, with_tail=False)
    for element in _PLAIN_SCRIPTS(tree):
        element.drop_tree()  # keeps the tail text
    # Imported here, at the first article: trafilatura pulls numpy, py3langid, courlan and
    # more (~27 MB) that polling and start-up never use.
    import trafilatura

    document = None
    try:
        # Measured on the 181 fixture pages: fast + favor_recall + tables gives the best
        # token F1 of the settings tried (0.964 vs 0.958 default-fast, 0.956 full cascade)
        # and is the quickest (~6 ms median). trafilatura works on a copy of the tree.
        document = trafilatura.bare_extraction(
            tree,
            url=url or None,
            fast=True,
            favor_recall=True,
            include_comments=False,
            include_tables=True,
        )
    except Exception:  # trafilatura on hostile markup: fall back to the page's paragraphs
        log.debug("trafilatura failed on %s", url, exc_info=True)
    text = getattr(document, "text", None) if document is not None else None
    if not text:
        paragraphs = [squash_spaces(p.text_content()) for p in tree.iter("p")]
        text = "\n".join(p for p in paragraphs if len(p) > 40)
    return text or ""


# A lead is the story's opening, so these never belong in one: share and subscribe widgets,
# contact lines, copyright and e-mail lines, "continue reading" links, bylines and datelines
# run into the text (en, ru, az, tr, pt, de, es, fr, ja).
_LEAD_BOILERPLATE = re.compile(
    r"\bshare (?:this|on|via)\b|\b(?:compartilhe|compartilhar|teilen auf|поделиться)\b"
    r"|\b(?:whatsapp|telegram|facebook|twitter|linkedin|pinterest)\s*(?:\||,|$)"
    r"|\bsubscribe (?:to|now|for)\b|\bsign up (?:for|to)\b|\bnewsletter\b"
    r"|\b(?:assine|inscreva-se|abonnieren sie|подпишитесь|abunə olun|abone ol)\b"
    r"|\b(?:continue reading|read more|read the full|continue lendo|leia mais|leia também"
    r"|weiterlesen|mehr lesen|читать далее|подробнее|davamını oxu|devamını oku|seguir leyendo"
    r"|lire la suite)\b|続きを読む|\[\+?\d+ chars\]"
    r"|©|\(c\)\s*\d{4}|\bcopyright\b|all rights reserved|todos os direitos|alle rechte"
    r"|все права защищены|bütün hüquqlar"
    r"|[\w.+-]+@[\w-]+\.[\w.-]+"
    r"|(?:\btel\.?|\bphone|\bтел\.?|\btelefone?)\s*:?\s*\+?\d"
    r"|\+\d{1,3}[\s(.-]*\d{2,4}[\s).-]*\d{3}[\s.-]*\d{2,4}"
    r"|^(?:by|por|von|автор:?)\s+[\w.'’-]+(?:\s+[\w.'’-]+){0,3}\s*(?:[|,•·]|\s-\s|\s+\d)"
    r"|^[^.!?]{0,60}\b(?:updated|published|atualizado|publicado|aktualisiert|обновлено)\b"
    r"[^.!?]{0,30}\d{1,2}[:.]\d{2}",
    re.IGNORECASE,
)
#: A description longer than this is a page's whole text, not a summary.
_MAX_DESCRIPTION = 1000
#: The lead made from the body: whole sentences up to this many characters.
LEAD_CHARS = 400


def has_boilerplate(text: str) -> bool:
    """Whether a lead candidate carries page furniture (see _LEAD_BOILERPLATE)."""
    return bool(_LEAD_BOILERPLATE.search(text))


def repeats_headline(lead: str, title: str) -> bool:
    """Whether `lead` only says the headline again (same words, give or take a few)."""
    lead_words = re.findall(r"\w+", lead.casefold())
    title_words = re.findall(r"\w+", title.casefold())
    if not lead_words or not title_words:
        return False
    if lead_words == title_words or (
        lead_words[: len(title_words)] == title_words and len(lead_words) - len(title_words) <= 3
    ):
        return True
    shared = len(set(lead_words) & set(title_words))
    return len(lead_words) <= len(title_words) + 3 and shared >= 0.8 * len(set(lead_words))


def _first_paragraphs(body: str, title: str = "", limit: int = LEAD_CHARS) -> str:
    """A lead made of the body's first sentences (not bylines, widgets or the title)."""
    lead = ""
    for paragraph in body.split("\n"):
        paragraph = squash_spaces(paragraph)
        if (
            len(paragraph) < (15 if is_cjk_text(paragraph) else 40)
            or repeats_headline(paragraph, title)
            or has_boilerplate(paragraph)
            or _is_byline(paragraph)
        ):
            continue
        # Japanese and Chinese sentences follow one another without a space.
        gap = "" if lead.endswith(("。", "！", "？")) and is_cjk_text(paragraph) else " "
        lead = f"{lead}{gap}{paragraph}".strip()
        if len(lead) >= limit // 2:
            break
    return first_sentences(lead, limit)


def _about_article(description: str, title: str, body: str, site_names: Iterable[str]) -> bool:
    """False for the site's own blurb used as every page's description ("Online portal that
    provides breaking news"): it names the site, or shares almost no word with the story."""
    flat = squash_spaces(body)
    if description in flat:
        return True
    for name in site_names:
        if name and len(name) >= 4 and name.casefold() in description.casefold():
            return False
    words = {w for w in re.findall(r"\w{4,}", description.casefold())}
    story = set(re.findall(r"\w{4,}", f"{title} {flat}".casefold()))
    if len(story) < 40 or len(words) < 4:
        return True  # too little text to judge by
    return len(words & story) >= 0.25 * len(words)


_CUT_END = re.compile(r"\s*(?:\.\.\.|…|\[…\]|\[\.\.\.\])$")


def _whole_part(cut: str) -> str:
    """What of a text the site cut short ends at a boundary: its whole sentences, else its
    whole words (Japanese, Chinese: up to a comma-like mark) with an ellipsis, else ""."""
    sentences = list(re.finditer(r"[.!?。！？][\"'»”’)\]」』）]*(?=\s|$)", cut))
    if sentences:
        return cut[: sentences[-1].end()]
    if is_cjk_text(cut):
        marks = [m.start() for m in re.finditer(r"[、，；：]", cut)]
        return cut[: marks[-1]] + ELLIPSIS if marks else ""
    # The last word may be a fragment ("stoc"): it goes.
    head, _, _ = cut.rpartition(" ")
    return head.rstrip(" ,;:–—-") + ELLIPSIS if head else ""


def choose_lead(
    descriptions: Iterable[str],
    title: str,
    body: str,
    fallback: str = "",
    site_names: Iterable[str] = (),
) -> str:
    """The post's lead: the first description that reads as the article's opening, else the
    body's first sentences, else `fallback` (the feed summary) without its furniture.

    A description is passed over when it is cut ("...", mid-word), repeats the headline,
    carries boilerplate, or is the whole page.
    """
    for description in descriptions:
        if (
            not description
            or len(description) > _MAX_DESCRIPTION
            or repeats_headline(description, title)
            or has_boilerplate(description)
            or looks_cut(description, body)
            or not _about_article(description, title, body, site_names)
        ):
            continue
        return description
    lead = _first_paragraphs(body, title)
    if lead:
        return lead
    # Nothing better: the best description or summary, its furniture sentences removed.
    for text in (*descriptions, fallback):
        text = squash_spaces(text)
        if not text or repeats_headline(text, title):
            continue
        sentences = re.split(r"(?<=[.!?…。！？])\s+", text)
        kept = " ".join(s for s in sentences if not has_boilerplate(s))
        if _CUT_END.search(kept):
            kept = _whole_part(_CUT_END.sub("", kept))
        if kept:
            return first_sentences(kept, LEAD_CHARS) if len(kept) > LEAD_CHARS else kept
    return ""


# -- title ---------------------------------------------------------------------------------

_SEPARATORS = (" - ", " | ", " — ", " – ", " :: ", " · ", " / ", " « ", " » ")
_SPLIT_SEPARATORS = re.compile(r"\s(?:[-|—–·/«»]|::)\s")


def _name_key(text: str) -> str:
    """A site name compared loosely: "The Space Review", "thespacereview.com" -> same key."""
    text = text.strip().casefold().removeprefix("www.")
    if "." in text and " " not in text:  # a host name: its registered name without suffixes
        labels = text.split(".")
        while len(labels) > 1 and (len(labels[-1]) <= 3 or labels[-1] in _HOST_SUFFIXES):
            labels.pop()
        text = labels[-1]
    return re.sub(r"\W+", "", text)


_HOST_SUFFIXES = frozenset({"info", "news", "media", "online", "site"})


def strip_site_name(title: str, names: Iterable[str], h1: str = "") -> str:
    """The headline without site furniture: a "<sep> Site" suffix or "Site <sep>" / "Site: "
    prefix naming the site (exactly or loosely: "thespacereview.com" names "The Space
    Review"), or any such part the page's visible `h1` does not carry."""
    keys = {_name_key(n) for n in names if n} - {""}
    for _ in range(2):  # "Site | Section | Headline": a second pass for a second layer
        parts = _SPLIT_SEPARATORS.split(title)
        if len(parts) > 1 and _name_key(parts[-1]) in keys:
            title = title[: title.rfind(parts[-1])].rstrip()
            title = title[:-1].rstrip() if title[-1:] in "-|—–·/«»:" else title
            title = title.rstrip(" -|—–·/«»:").strip()
        elif len(parts) > 1 and _name_key(parts[0]) in keys:
            title = title[len(parts[0]) :].lstrip(" -|—–·/«»:").strip()
        else:
            head, colon, rest = title.partition(": ")
            if not (colon and rest and _name_key(head) in keys):
                break
            title = rest.strip()
    # The visible h1 is the headline itself: "<h1> | Anything" or "Anything: <h1>" is furniture.
    h1 = squash_spaces(h1)
    if h1 and len(h1) >= 8 and h1 != title:
        for sep in (*_SEPARATORS, ": "):
            if title.startswith(h1 + sep) or title.endswith(sep + h1):
                return h1
    return title


def _choose_title(candidates: Iterable[str], site_names: list[str], h1: str = "") -> str:
    for candidate in candidates:
        title = strip_site_name(_clean_markup(candidate), site_names, h1)
        # A title that is only the site's name is a template default, not a headline.
        if title and _name_key(title) not in {_name_key(n) for n in site_names if n}:
            return title
    return ""


# CMS-internal keyword prefixes ("Category: Jupiter", "Section: News") are not part of a tag.
_TAG_PREFIX = re.compile(r"^(?:category|section|tag|topic)s?\s*:\s*", re.IGNORECASE)


# -- the article ---------------------------------------------------------------------------


def _http_or_none(base: str, href: str | None) -> str | None:
    if not href or not href.strip():
        return None
    resolved = absolute_url(base, href).replace(" ", "%20")
    return resolved if is_http_url(resolved) else None


def _canonical_url(
    tree: lxml.html.HtmlElement, meta: dict[str, list[str]], ld: JsonLd, url: str, base: str
) -> str:
    fetched_path = urlsplit(url).path.rstrip("/")
    for href in (
        _link_href(tree, "canonical"),
        _first(meta, "og:url"),
        _ld_url(ld.article.get("url")),
        _ld_url(ld.article.get("mainEntityOfPage")),
    ):
        candidate = _http_or_none(base, href)
        if candidate is None:
            continue
        # A canonical pointing at the home page from an article is a template mistake.
        if fetched_path and not urlsplit(candidate).path.strip("/"):
            continue
        return strip_tracking(candidate)
    return strip_tracking(url) if is_http_url(url) else url


def _image_url(
    tree: lxml.html.HtmlElement,
    meta: dict[str, list[str]],
    ld: JsonLd,
    base: str,
    entry: FeedEntry | None,
) -> str | None:
    candidates = [
        _ld_url(ld.get("image")),
        _first(meta, "og:image", "og:image:url", "og:image:secure_url"),
        _first(meta, "twitter:image", "twitter:image:src"),
        _link_href(tree, "image_src"),
        entry.image_url if entry else None,
    ]
    for href in candidates:
        image = _http_or_none(base, href)
        if image:
            return image
    # Last resort: the first real picture inside the article (not icons, not pixels).
    for img in tree.xpath("//article//img[@src or @data-src]"):
        src = img.get("data-src") or img.get("src") or ""
        if src.lower().split("?")[0].endswith((".svg", ".gif")) or img.get("width") in ("1", "0"):
            continue
        image = _http_or_none(base, src)
        if image:
            return image
    return None


#: Pages larger than this get no htmldate fallback (their date is then the feed's, or the
#: time first seen): real article pages are far smaller.
MAX_HTMLDATE_CHARS = 3_000_000


def _htmldate(tree: lxml.html.HtmlElement, url: str) -> datetime | None:
    """Last resort for the publication date: htmldate (ships with trafilatura) reading the
    URL, less common markup and the page's visible dates. On a copy: it edits the tree."""
    import htmldate  # at the first article, like trafilatura (see main_text)

    try:
        found = htmldate.find_date(
            copy.deepcopy(tree), extensive_search=False, original_date=True, url=url or None
        )
    except Exception:  # a date library failing on hostile markup is no date, not a crash
        log.debug("htmldate failed on %s", url, exc_info=True)
        return None
    return parse_time(found) if found else None


def _entry_time(value: datetime | None) -> datetime | None:
    return parse_time(value) if value is not None else None


def extract_article(
    html: str | bytes, url: str, entry: FeedEntry | None = None, source: str = ""
) -> Article:
    """Build the Article for the page fetched from `url` (the final URL after redirects).

    `entry` (the feed item that announced the page) fills what the page lacks; `source`
    names the configured source (default: the entry's). Raises EnrichmentError only when
    neither the page nor the entry has a title.
    """
    text = decode_html(html)
    tree = parse_html(text)
    head_base = tree.find(".//base[@href]")
    base = absolute_url(url, head_base.get("href", "")) if head_base is not None else url
    ld = read_json_ld(tree, url)
    meta = page_meta(tree)

    # Site name first: title clean-up needs it.
    site_name = _clean(
        _first(meta, "og:site_name")
        or _ld_text(ld.get("publisher"))
        or ld.website_name
        or _first(meta, "application-name")
    )
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    site_names = [site_name, host]

    headline = _clean(_ld_text(ld.get("headline")))
    og_title = _clean(_first(meta, "og:title"))
    # Google truncates JSON-LD headlines at 110 characters; a full og:title is better then.
    if headline.endswith(("...", "…")) and og_title.startswith(headline.rstrip(".…").strip()):
        headline = og_title
    title_element = tree.find(".//title")
    h1 = tree.find(".//h1")
    h1_text = h1.text_content()[:MAX_FIELD_CHARS] if h1 is not None else ""
    title = _choose_title(
        (
            headline,
            _ld_text(ld.get("name")),
            og_title,
            _first(meta, "twitter:title"),
            title_element.text_content()[:MAX_FIELD_CHARS] if title_element is not None else "",
            h1_text,
            entry.title if entry else "",
        ),
        site_names,
        _clean_markup(h1_text),
    )
    if not title:
        raise EnrichmentError(
            f"{url}: no title found in JSON-LD, meta tags, <title>, <h1> or the feed entry"
        )

    headings = {t.casefold() for t in (title, headline, og_title, _clean(h1_text)) if t}

    canonical = _canonical_url(tree, meta, ld, url, base)
    image = _image_url(tree, meta, ld, base, entry)
    times: dict[str, str] | None = None

    def page_time(kind: str) -> datetime | None:
        # <time> elements are a late fallback: look them up only when it comes to that.
        nonlocal times
        if times is None:
            times = _time_attrs(tree)
        return parse_time(times.get(kind))

    published = (
        parse_time(ld.get("datePublished"))
        or parse_time(ld.get("dateCreated"))
        or parse_time(
            _first(
                meta,
                "article:published_time",
                "article:published",
                "datepublished",
                "datecreated",
                "og:published_time",
                "pubdate",
                "publishdate",
                "publish-date",
                "parsely-pub-date",
                "sailthru.date",
                "dc.date.issued",
                "dc.date",
                "date",
            )
        )
        or page_time("published")
        or page_time("first")
        or _entry_time(entry.published if entry else None)
        # htmldate reads the whole serialized page in single regex calls, holding the GIL
        # (the event loop waits): not on pages far larger than any article's.
        or (_htmldate(tree, url) if len(text) <= MAX_HTMLDATE_CHARS else None)
    )
    updated = (
        parse_time(ld.get("dateModified"))
        or parse_time(
            _first(
                meta,
                "article:modified_time",
                "article:modified",
                "datemodified",
                "og:updated_time",
                "lastmod",
            )
        )
        or page_time("modified")
        or _entry_time(entry.updated if entry else None)
    )
    declared_language = (
        language_code(ld.get("inLanguage"))
        or language_code(tree.get("lang") or tree.get("xml:lang"))
        or language_code(_first(meta, "og:locale", "content-language", "language", "dc.language"))
    )
    author = _author_name(_ld_text(ld.get("author")), site_names) or _author_name(
        _first(meta, "author", "article:author", "dc.creator", "parsely-author", "byl"),
        site_names,
    )
    # Many sites name themselves as the author in JSON-LD; a "By <name>" line is better then.
    if not author or author.casefold() in {n.casefold() for n in site_names if n}:
        author = (
            find_byline(tree)
            or author
            or _author_name(entry.author or "" if entry else "", site_names)
        )
    # A byline may name the site itself ("By Sample Times"): that is no person.
    if author and author.casefold() in {n.casefold() for n in site_names if n}:
        author = ""
    categories = _dedupe(
        [
            *_ld_list(ld.get("articleSection")),
            *meta.get("article:section", []),
            *(entry.categories if entry else ()),
        ]
    )
    category_keys = {c.casefold() for c in categories}
    tags = tuple(
        tag
        for tag in _dedupe(
            _TAG_PREFIX.sub("", tag)
            for tag in (
                *_ld_list(ld.get("keywords")),
                *meta.get("article:tag", []),
                *_ld_list(_first(meta, "news_keywords")),
            )
        )
        if tag.casefold() not in category_keys  # a section is not repeated as a tag
    )[:20]

    # The body last: the costliest step, and it needs nothing else from the tree.
    furniture = [site_name]
    body = _strip_boilerplate(main_text(tree, url)[:MAX_BODY_CHARS], furniture)
    # trafilatura often keeps the <h1> as the body's first line; the title is posted already.
    first_line, _, rest = body.partition("\n")
    if squash_spaces(first_line).casefold() in headings:
        body = rest.strip()
    descriptions = [
        _strip_boilerplate(_clean_markup(candidate), furniture)
        for candidate in (
            _first(meta, "og:description"),
            _ld_text(ld.get("description")),
            _first(meta, "description", "twitter:description"),
        )
    ]
    descriptions = [d for d in descriptions if d and d.casefold() != site_name.casefold()]
    summary = _strip_boilerplate(_clean_markup(entry.summary if entry else ""))
    lead = choose_lead(descriptions, title, body, summary, site_names)

    language = choose_language(
        declared_language, body or lead, language_code(entry.language if entry else None)
    )

    return Article(
        url=canonical,
        title=title,
        source=source or (entry.source if entry else ""),
        lead=squash_spaces(lead),
        body=body,
        image_url=image,
        published=published,
        updated=updated,
        language=language,
        author=author or None,
        categories=categories,
        tags=tags,
        site_name=site_name or None,
    )
