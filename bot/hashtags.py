"""Hashtags an editor would choose, from an article's categories and tags. Pure functions.

A label becomes a hashtag when it reads as a topic: CMS-internal tokens (``ctp_video``,
``FrontPage``, ``GizmodoCom``), the outlet's own name and over-long labels are dropped;
acronyms keep their capitals (NATO, COP29); shouted sections are re-cased for the article's
language, Turkic dotted and dotless i included (``SİYASƏT`` -> ``#Siyasət``, ``QIZIL`` ->
``#Qızıl`` in Azerbaijani). Editors steer the result per outlet and per target with a
HashtagPolicy: a map from label to hashtag, an allow list and a deny list.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from bot.models import Article

__all__ = [
    "MAX_HASHTAG_CHARS",
    "HashtagPolicy",
    "article_hashtags",
    "capitalize_word",
    "editor_hashtags",
    "is_junk_label",
    "lower_word",
    "merge_policies",
]

#: A hashtag longer than this (without "#") is a sentence or a machine token, not a topic.
MAX_HASHTAG_CHARS = 30
#: Labels of more words than this are headlines pasted into the tag field.
_MAX_WORDS = 4
# Languages whose i has a dotted and a dotless form (I/ı, İ/i).
_TURKIC = frozenset({"az", "tr", "crh", "gag", "tt", "kk", "ba"})
# Layout and workflow words CMSs put in categories and tags; no reader follows them.
_LAYOUT_WORDS = frozenset(
    {
        "frontpage",
        "homepage",
        "home",
        "slider",
        "featured",
        "feature",
        "featuredpost",
        "hero",
        "top",
        "topstory",
        "topstories",
        "mainnews",
        "main",
        "sticky",
        "uncategorized",
        "uncategorised",
        "general",
        "default",
        "carousel",
        "widget",
        "sidebar",
        "headline",
        "headlines",
        "latest",
        "latestnews",
        "trending",
        "editorspick",
        "editorpick",
        "amp",
        "hp",
        "push",
        "breakingnewsbar",
        "smartnews",
        "googlenews",
        "msn",
        "flipboard",
        "applenews",
        "yandexnews",
        "yandex",
        "zen",
        "instantarticles",
        "fbia",
        "rss",
        "feed",
        "noindex",
        "sponsored",
        "test",
        "draft",
        "главная",
        "главное",
        "слайдер",
        "основное",
        "manşet",
        "slayder",
        "əsas",
        "destaque",
        "destaques",
        "startseite",
        "aufmacher",
    }
)
_DOMAIN_TAIL = re.compile(r"(?:com|net|org|ru|az|de|info|co|uk|io|news)$", re.IGNORECASE)
_CAMEL_PARTS = re.compile(r"[A-ZÀ-ÞА-ЯƏİ][a-zß-ÿа-яəı]+|[A-ZÀ-ÞА-ЯƏİ]+(?![a-zß-ÿа-яəı])|\d+")


class HashtagPolicy(BaseModel):
    """An editor's steering of hashtags (per outlet, per target).

    ``map``: category or tag (case-insensitive) -> hashtag ("#Elections" or "Elections");
    an empty value drops that label. ``allow``: when given, only these hashtags are posted.
    ``deny``: hashtags never posted. Hashtags compare case-insensitively, "#" optional.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    map: dict[str, str] = Field(default_factory=dict)
    allow: list[str] | None = None
    deny: list[str] = Field(default_factory=list)


def merge_policies(outlet: HashtagPolicy | None, target: HashtagPolicy | None) -> HashtagPolicy:
    """The target's policy over the outlet's: maps merged (target wins), denies added,
    the target's allow list if it has one, else the outlet's."""
    if outlet is None:
        return target or HashtagPolicy()
    if target is None:
        return outlet
    return HashtagPolicy(
        map={**outlet.map, **target.map},
        allow=target.allow if target.allow is not None else outlet.allow,
        deny=[*outlet.deny, *target.deny],
    )


def _key(tag: str) -> str:
    return unicodedata.normalize("NFC", tag).lstrip("#").casefold()


def _is_turkic(language: str | None) -> bool:
    return (language or "").split("-")[0].split("_")[0].lower() in _TURKIC


def lower_word(word: str, language: str | None = None) -> str:
    """Lower case for `language`: Turkic I -> ı and İ -> i; never a stray U+0307."""
    if _is_turkic(language):
        word = word.replace("I", "ı").replace("İ", "i")
    # Elsewhere İ lowers to i + U+0307 (combining dot): the plain i is what a reader types.
    return word.lower().replace("i\u0307", "i")


def capitalize_word(word: str, language: str | None = None) -> str:
    """First letter upper, the rest lower, for `language` (Turkic i -> İ)."""
    if not word:
        return word
    first = word[0]
    if _is_turkic(language) and first == "i":
        head = "İ"
    elif _is_turkic(language) and first == "ı":
        head = "I"
    else:
        head = first.upper() if len(first.upper()) == 1 else first
    return head + lower_word(word[1:], language)


def _letters(word: str) -> int:
    return sum(1 for c in word if c.isalpha())


def _is_acronym(word: str, shouting: bool) -> bool:
    """An all-capitals word kept as written: NATO, COP29, USA (EA, MSFT, PC)."""
    if not word.isupper() or _letters(word) < 2:
        return False
    if any(c.isdigit() for c in word):
        return True
    # When every label of the article is in capitals (a CMS shouting its sections), only
    # short words are taken for acronyms; otherwise capitals were typed on purpose.
    return _letters(word) <= (3 if shouting else 4)


def _guess_language(word: str, language: str | None) -> str | None:
    # A page without a language still tells Turkic text by its letters.
    if language is None and any(c in word for c in "İıƏəĞğŞş"):
        return "az"
    return language


def is_junk_label(label: str, outlet_names: Iterable[str] = ()) -> bool:
    """Whether a category or tag is CMS furniture rather than a topic a reader follows."""
    text = unicodedata.normalize("NFC", label).strip()
    if not text or "_" in text or "=" in text or "/" in text or "@" in text:
        return True
    if re.search(r"\.\w{2,}$", text) and " " not in text:  # gizmodo.com
        return True
    compact = re.sub(r"[\W_]+", "", text).casefold()
    if not compact or compact.isdigit() or compact in _LAYOUT_WORDS:
        return True
    if len(compact) > MAX_HASHTAG_CHARS or len(text.split()) > _MAX_WORDS:
        return True
    names = {re.sub(r"[\W_]+", "", n).casefold() for n in outlet_names if n}
    names |= {n.removesuffix(t) for n in names for t in ("com", "net", "org") if n.endswith(t)}
    if compact in names - {""}:
        return True
    if " " not in text and "-" not in text:
        parts = _CAMEL_PARTS.findall(text)
        lowered = [p.casefold() for p in parts]
        # Machine-joined words: "SmartNewsSmartNewsScience" repeats its parts,
        # "GizmodoCom" ends in a domain, "SiteNameFeedSection" has many humps.
        if len(parts) >= 2 and (
            len(set(lowered)) < len(lowered)
            or (_DOMAIN_TAIL.fullmatch(parts[-1]) and parts[-1][0].isupper())
            or len(parts) >= 4
        ):
            return True
    return False


def _hashtag(label: str, language: str | None, shouting: bool) -> str | None:
    words = [w for w in re.split(r"[^\w]+", unicodedata.normalize("NFC", label)) if w]
    words = [w.strip("_") for w in words if w.strip("_")]
    if not words:
        return None
    cased = []
    for word in words:
        lang = _guess_language(word, language)
        if _is_acronym(word, shouting):
            cased.append(word)
        elif word.isupper() and _letters(word) > 1:
            cased.append(capitalize_word(word, lang))
        elif len(words) > 1:
            # Joined words keep their own capitals (iPhone) but start with one (CamelCase).
            cased.append(capitalize_word(word[0], lang) + word[1:])
        else:
            cased.append(word)
    joined = "".join(cased)
    if joined.isdigit() or len(joined) > MAX_HASHTAG_CHARS:
        return None
    return "#" + joined


def editor_hashtags(
    labels: Sequence[str],
    limit: int | None = None,
    *,
    language: str | None = None,
    outlet_names: Iterable[str] = (),
    policy: HashtagPolicy | None = None,
    sections: Sequence[str] = (),
) -> list[str]:
    """Distinct hashtags (case-insensitively) from `sections` then `labels` in order, at
    most `limit`.

    `language` picks the casing rules; `outlet_names` (the outlet's and site's names) are
    never hashtags; `policy` maps, allows and denies (see HashtagPolicy). When `sections`
    (a CMS's categories) are given apart, `labels` are the editors' tags: the two are
    judged apart for shouting, since a CMS that shouts its sections ("WORLD") says nothing
    of tags typed in capitals ("NATO"); each counts as shouted only when a long all-capital
    word ("İQTİSADİYYAT") shows it.
    """
    from bot.text import strip_invisible  # text imports this module for hashtags()

    policy = policy or HashtagPolicy()
    mapping = {_key(k): v for k, v in policy.map.items()}
    allow = {_key(a) for a in policy.allow} if policy.allow is not None else None
    deny = {_key(d) for d in policy.deny}
    names = list(outlet_names)
    groups = [[strip_invisible(label) for label in labels]]
    if sections:
        groups.insert(0, [strip_invisible(label) for label in sections])
    shouted = [_shouting(group, names) for group in groups]
    if sections:
        # Judged apart, each group needs a long word in capitals to count as shouted: a
        # lone "CITY" or "NATO" cannot be told from an acronym such as "MSFT".
        shouted = [
            shout and any(_long_capitals(label) for label in group)
            for group, shout in zip(groups, shouted, strict=True)
        ]
    seen: set[str] = set()
    result: list[str] = []
    for label, shouting in (
        (label, shouting)
        for group, shouting in zip(groups, shouted, strict=True)
        for label in group
    ):
        mapped = mapping.get(_key(label))
        if mapped is not None:
            tag = _hashtag(mapped, language, shouting=False) if mapped.strip("# ") else None
        elif is_junk_label(label, names):
            tag = None
        else:
            tag = _hashtag(label, language, shouting)
        if tag is None or _key(tag) in seen or _key(tag) in deny:
            continue
        if allow is not None and _key(tag) not in allow:
            continue
        seen.add(_key(tag))
        result.append(tag)
        if limit is not None and len(result) >= limit:
            break
    return result


def _shouting(labels: list[str], names: list[str]) -> bool:
    lettered = [c for c in labels if any(ch.isalpha() for ch in c) and not is_junk_label(c, names)]
    return bool(lettered) and all(c.isupper() for c in lettered)


def _long_capitals(label: str) -> bool:
    return any(w.isupper() and w.isalpha() and len(w) >= 5 for w in label.split())


class _Outlet(Protocol):
    name: str
    hashtags: HashtagPolicy


def article_hashtags(
    article: Article, limit: int | None, outlet: _Outlet, target: HashtagPolicy | None = None
) -> list[str]:
    """The hashtags one target posts for `article`: its categories then tags, cased for its
    language, never the outlet's or site's own name, steered by the outlet's then the
    target's policy."""
    return editor_hashtags(
        article.tags,
        limit,
        sections=article.categories,
        language=article.language,
        outlet_names=(outlet.name, article.site_name or ""),
        policy=merge_policies(outlet.hashtags, target),
    )
