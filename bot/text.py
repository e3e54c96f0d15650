"""Pure text helpers shared by every renderer: measuring, trimming, hashtags."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from bot.hashtags import HashtagPolicy, editor_hashtags

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
    """Shorten `text` so measure(result) <= limit, cutting where an editor would.

    Prefers ending on a whole sentence (if that keeps at least half the budget; no ellipsis
    then); else, with an ellipsis, a word boundary, or in Japanese and Chinese a character
    boundary, after a closing bracket or before a comma-like mark when one is in the second
    half. Cuts inside a word only when a single word is longer than the limit. Never splits
    a grapheme (an emoji ZWJ sequence, a flag, a letter and its combining marks).
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
    # Grapheme boundaries up to a little past the cut: segmenting only this window keeps
    # the work bounded, and boundaries before the window's end are the whole text's.
    window = text[: lo + len(ellipsis) + _GRAPHEME_LOOKAHEAD]
    bounds = {0}
    bounds.update(m.end() for m in _grapheme().finditer(window))
    cjk = is_cjk_text(window)
    # A whole sentence needs no ellipsis, so it may use the ellipsis's room too.
    ends = _CJK_SENTENCE_END if cjk else _SENTENCE_END
    head = text[: lo + len(ellipsis) + 1]
    # 。！？ end a sentence in any script (a Latin name after a Japanese sentence).
    candidates = sorted(
        {m.end() for m in ends.finditer(head)} | {m.end() for m in _CJK_SENTENCE_END.finditer(head)}
    )
    for end in reversed(candidates):
        if end < lo // 2:
            break
        if end in bounds and measure(text[:end]) <= limit:
            return text[:end].rstrip()
    cut = max(b for b in bounds if b <= lo)
    if cjk:
        soft = [at for at in _cjk_breaks(text[:cut]) if at >= lo // 2 and at in bounds]
        if soft:
            cut = soft[-1]
    elif cut < len(text) and not _WORD_GAP.match(text, cut):
        # Back to the last gap between words, unless the first word alone is too long. A
        # Japanese or Chinese mark parts words too (a Latin name after 、).
        gaps = [m.start() for m in _WORD_GAP.finditer(text[:cut]) if m.start() > 0]
        gaps += [at for at in _cjk_breaks(text[:cut]) if at > 0 and at in bounds]
        if gaps:
            cut = max(gaps)
    stem = text[:cut]
    while stem and stem[-1] in _TRAILING_JUNK and len(stem) - 1 in bounds:
        stem = stem[:-1]
    return stem + ellipsis if stem else ""


def _cjk_breaks(text: str) -> list[int]:
    """Where Japanese and Chinese text may break: after a closing bracket, before a comma-like
    mark."""
    return [m.end() if m.group() in _CJK_CLOSERS else m.start() for m in _CJK_BREAK.finditer(text)]


@cache
def _grapheme() -> Any:
    """One extended grapheme cluster (Unicode's user-perceived character). The regex module
    (1.5 MB) is imported at the first cut, not at start-up: polling never cuts text."""
    import regex

    return regex.compile(r"\X")


_GRAPHEME_LOOKAHEAD = 64
# Where words part: white space, but not a no-break space ("10 km" stays whole).
_WORD_GAP = re.compile(r"[^\S\u00a0\u202f\u2007]")
_TRAILING_JUNK = frozenset(" \t\n\r,;:–—-、，；：")
# Japanese and Chinese: break after a closing bracket, or before a comma-like mark (which an
# ellipsis replaces).
_CJK_CLOSERS = frozenset(")）」』】〕》〉")
_CJK_BREAK = re.compile(r"[)）」』】〕》〉、，；：]")


def _drop_dangling_combiners(text: str) -> str:
    # A cut may leave a base letter separated from its combining mark or a ZWJ sequence open.
    while text and (unicodedata.combining(text[-1]) or text[-1] in "\u200d\ufe0f"):
        text = text[:-1]
    return text


def hashtag(label: str, language: str | None = None) -> str | None:
    """A platform-legal hashtag for one category or tag, or None if nothing usable remains.

    Letters of every script are kept, words joined in CamelCase, acronyms kept, shouted
    words re-cased for `language`; CMS-internal tokens give None (see bot.hashtags).
    """
    tags = editor_hashtags([label], 1, language=language)
    return tags[0] if tags else None


def hashtags(
    labels: Iterable[str],
    limit: int | None = None,
    *,
    language: str | None = None,
    outlet_names: Iterable[str] = (),
    policy: HashtagPolicy | None = None,
) -> list[str]:
    """Distinct hashtags (case-insensitively) in the order given, at most `limit`.

    The keyword arguments are bot.hashtags.editor_hashtags's: the article's language for
    casing, the outlet's names (never a hashtag), the editors' HashtagPolicy.
    """
    return editor_hashtags(
        list(labels), limit, language=language, outlet_names=outlet_names, policy=policy
    )


# -- invisible characters ------------------------------------------------------------------

# Bidi embeddings, overrides and isolates, marks, zero-width space, word joiner, BOM, soft
# hyphen: invisible in a post, yet they reorder text, split hashtags or break search.
_ALWAYS_INVISIBLE = re.compile(
    "[\u00ad\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_EMOJI = re.compile("[\u00a9\u00ae\u203c-\u3299\U0001f000-\U0001faff\ufe0f\U0001f3fb-\U0001f3ff]")


def strip_invisible(text: str) -> str:
    """`text` without bidi controls, zero-width characters and soft hyphens.

    A zero-width joiner between emoji (👩‍💻) stays: it makes one picture of two. A
    zero-width non-joiner stays in scripts that spell with it (Persian, Indic).
    """
    text = _ALWAYS_INVISIBLE.sub("", text)
    if "\u200d" not in text and "\u200c" not in text:
        return text
    kept = []
    for i, char in enumerate(text):
        if char == "\u200d":
            before, after = text[i - 1 : i], text[i + 1 : i + 2]
            if not (before and after and _EMOJI.match(before) and _EMOJI.match(after)):
                continue
        elif char == "\u200c":
            before, after = text[i - 1 : i], text[i + 1 : i + 2]
            if not (before and after and ord(before) >= 0x0600 and ord(after) >= 0x0600):
                continue
        kept.append(char)
    return "".join(kept)


# -- leads ---------------------------------------------------------------------------------

# Japanese and Chinese run sentences together without spaces; they end at 。！？ and break
# best after a comma-like mark.
_CJK_SENTENCE_END = re.compile(r"[。！？][」』）”]*")
_CJK_SOFT_BREAK = re.compile(r"[、，；：]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uff66-\uff9f]")


def is_cjk_text(text: str) -> bool:
    """Whether `text` is mostly Japanese or Chinese (written without word spaces)."""
    sample = text[:200]
    # Letters only: punctuation (、。 or .,) and spaces say nothing about the script.
    letters = sum(1 for ch in sample if ch.isalnum())
    if letters == 0:  # nothing but marks: Japanese and Chinese ones say which
        return bool(_CJK_SENTENCE_END.search(sample) or _CJK_SOFT_BREAK.search(sample))
    return len(_CJK.findall(sample)) * 3 >= letters


def first_sentences(text: str, limit: int) -> str:
    """The opening of `text` in at most `limit` characters, cut only at a boundary.

    Whole sentences if the first one fits; else the first sentence cut at a word boundary
    with an ellipsis (Japanese and Chinese: after punctuation if one is near, else at a
    character). Never ends inside a word.
    """
    text = squash_spaces(text)
    if len(text) <= limit:
        return text
    cjk = is_cjk_text(text)
    ends = _CJK_SENTENCE_END if cjk else _SENTENCE_END
    cut = 0
    for match in ends.finditer(text[: limit + 1]):
        if match.end() <= limit:
            cut = match.end()
    if cut:
        return text[:cut].strip()
    if cjk:
        room = text[: limit - 1]
        soft = [m.end() for m in _CJK_SOFT_BREAK.finditer(room)]
        end = soft[-1] - 1 if soft and soft[-1] >= limit // 2 else len(room)
        return _drop_dangling_combiners(room[:end]) + ELLIPSIS
    cut_text = trim_text(text, limit)
    # trim_text cuts inside a word longer than the room; a lead is better without it.
    stem = cut_text.removesuffix(ELLIPSIS)
    if stem and len(stem) < len(text) and text[len(stem)].isalnum() and stem[-1].isalnum():
        return ""
    return cut_text


_CUT_MIN_CHARS = 120
_CUT_WORD_END = re.compile(r"(?:\.\.\.|…|\[…\]|\[\.\.\.\])\s*$")


def looks_cut(description: str, body: str) -> bool:
    """Whether a page's description is a copy of the body the site cut short.

    Ends with "..." or "…", or stops (without closing punctuation) where the body's same
    text goes on: mid-word ("a gauge of stoc") or mid-sentence.
    """
    text = squash_spaces(description)
    if not text:
        return False
    if _CUT_WORD_END.search(text):
        return True
    if text[-1] in ".!?。！？\"'»”’)]":
        return False
    # A summary of this length is written as sentences; one stopping without punctuation
    # was cut by the CMS at its character limit ("... here’s what’s best for your wal").
    if len(text) >= _CUT_MIN_CHARS and not is_cjk_text(text):
        return True
    flat = squash_spaces(body)
    at = flat.find(text)
    # The description is the body's opening, and the body goes on mid-sentence from there.
    return at >= 0 and len(flat) > at + len(text) and flat[at + len(text)] not in ".!?。！？"


SEPARATOR = "\n\n"


def fit_post(
    title: str,
    lead: str,
    tags: list[str],
    layout: Callable[[str, str, str], str],
    measure: Callable[[str], int],
    limit: int,
    *,
    headline_room: int,
    min_lead: int,
) -> str:
    """A short post (headline, lead, hashtags around a fixed attribution part) within `limit`
    as `measure` counts it. `layout(title, lead, tag_line)` places the pieces and the fixed
    part (the link), which is always kept.

    Hashtags stay while the headline keeps `headline_room`; the headline is trimmed to what is
    left; the lead takes any room that remains (or is left out below `min_lead`). Pieces
    measured apart can count more joined: lead, then hashtags, then headline give way.
    """
    sep = measure(SEPARATOR)
    headline_need = min(measure(title), headline_room) + (sep if title else 0)
    chosen: list[str] = []
    for tag in tags:
        if measure(layout("", "", " ".join([*chosen, tag]))) + headline_need <= limit:
            chosen.append(tag)
    tag_line = " ".join(chosen)
    fixed = measure(layout("", "", tag_line))
    title = trim_text(title, limit - fixed - sep, measure) if title else ""
    room = limit - measure(layout(title, "", tag_line)) - sep
    lead = trim_text(lead, room, measure) if lead and room >= min_lead else ""
    text = layout(title, lead, tag_line)
    while measure(text) > limit:
        if lead:
            lead = ""
        elif tag_line:
            tag_line = tag_line.rpartition(" ")[0]
        elif title:
            title = trim_text(title, max(0, measure(title) - 2), measure)
        else:
            break  # the fixed part alone is over the limit: the platform will refuse it
        text = layout(title, lead, tag_line)
    return text


def join_blocks(*blocks: str) -> str:
    """Blocks of a post, blank-line separated, empty ones left out."""
    return SEPARATOR.join(b for b in blocks if b)
