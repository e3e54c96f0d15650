"""Pure text helpers shared by every renderer: measuring, trimming, hashtags."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

ELLIPSIS = "…"

_SPACES = re.compile(r"\s+")
# A sentence ends at . ! ? … (optionally followed by a closing quote or bracket) before a space.
_SENTENCE_END = re.compile(r"[.!?…][\"'»”’)\]]*(?=\s)")


def parse_iso_datetime(value: object) -> datetime | None:
    """An ISO 8601 / W3C datetime as an aware datetime (naive ones are taken as UTC)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the way Telegram (and JavaScript) counts."""
    return len(text.encode("utf-16-le")) // 2


def squash_spaces(text: str) -> str:
    """Collapse runs of white space (newlines included) to single spaces."""
    return _SPACES.sub(" ", text).strip()


def trim_text(
    text: str,
    limit: int,
    measure: Callable[[str], int] = len,
    ellipsis: str = ELLIPSIS,
) -> str:
    """Shorten `text` so measure(result) <= limit.

    Prefers ending on a whole sentence (if that keeps at least half the budget), then a
    word boundary with an ellipsis, and only cuts inside a word when a single word is
    longer than the limit. Never splits a surrogate pair or a combining sequence.
    """
    if limit <= 0:
        return ""
    if measure(ellipsis) > limit:
        return text if len(text) <= limit + 1 and measure(text) <= limit else ""
    # Never measure more than about twice what can fit: a measure may be a full parse (X's
    # twitter-text), and a 5 MB headline must cost no more than a short one. Every measure
    # counts at least one unit per character except X's URLs (23 units whatever their
    # length), so galloping from `limit` characters finds an upper bound in a few steps.
    room = limit - measure(ellipsis)
    hi = min(len(text), limit + 1)
    while hi < len(text) and measure(text[:hi]) <= room:
        hi = min(len(text), hi * 2)
    if hi == len(text) and measure(text) <= limit:
        return text
    # Largest prefix (by characters) whose measure plus the ellipsis fits.
    lo = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(text[:mid]) <= room:
            lo = mid
        else:
            hi = mid - 1
    prefix = text[:lo]
    # Sentence boundary: a whole sentence needs no ellipsis.
    sentence_cut = -1
    for match in _SENTENCE_END.finditer(text[: lo + len(ellipsis) + 1]):
        if measure(text[: match.end()]) <= limit:
            sentence_cut = match.end()
    if sentence_cut > 0 and sentence_cut >= lo // 2:
        return text[:sentence_cut].rstrip()
    # Word boundary.
    if lo < len(text) and not text[lo].isspace():
        space = prefix.rfind(" ")
        if space > 0:
            prefix = prefix[:space]
    prefix = _drop_dangling_combiners(prefix.rstrip(" ,;:–—-"))
    if not prefix:
        return ""
    return prefix + ellipsis


def _drop_dangling_combiners(text: str) -> str:
    # A cut may leave a base letter separated from its combining mark or a ZWJ sequence open.
    while text and (unicodedata.combining(text[-1]) or text[-1] in "\u200d\ufe0f"):
        text = text[:-1]
    return text


def hashtag(label: str) -> str | None:
    """A platform-legal hashtag for a category or tag, or None if nothing usable remains.

    Letters of every script are kept (Cyrillic, Azerbaijani ə ğ ş ...), words are joined
    in CamelCase, punctuation and spaces dropped; an all-digit result is not a hashtag.
    """
    words = re.split(r"[^\w]+", unicodedata.normalize("NFC", label))
    parts = [w for w in words if w and w != "_"]
    if not parts:
        return None
    # Sections are often shouted (WORLD, ЭКОНОМИКА): a hashtag reads better as #World.
    parts = [p.capitalize() if p.isupper() and len(p) > 1 else p for p in parts]
    joined = "".join(p[0].upper() + p[1:] if len(parts) > 1 else p for p in parts)
    joined = joined.strip("_")
    if not joined or joined.isdigit():
        return None
    return "#" + joined


def hashtags(labels: Iterable[str], limit: int | None = None) -> list[str]:
    """Distinct hashtags (case-insensitively) in the order given, at most `limit`."""
    seen: set[str] = set()
    result: list[str] = []
    for label in labels:
        tag = hashtag(label)
        if tag is None or tag.casefold() in seen:
            continue
        seen.add(tag.casefold())
        result.append(tag)
        if limit is not None and len(result) >= limit:
            break
    return result
