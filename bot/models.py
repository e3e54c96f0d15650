"""Plain data passed along the pipeline: feed entry -> article -> rendered post -> result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

# Caps on outside text, applied when an entry or article is built, before anything measures,
# parses or renders it: a post shows a few hundred characters, and a 5 MB headline must cost
# no more than a long one (issue 15).
MAX_TITLE_CHARS = 1_000
MAX_SUMMARY_CHARS = 20_000
MAX_LEAD_CHARS = 5_000
MAX_BODY_CHARS = 200_000
MAX_LABEL_CHARS = 200
MAX_LABELS = 50


def cap_text(value: str | None, limit: int) -> str | None:
    """`value` cut to at most `limit` characters (None stays None)."""
    if value is None or len(value) <= limit:
        return value
    return value[:limit]


def _cap_labels(labels: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(label[:MAX_LABEL_CHARS] for label in labels[:MAX_LABELS])


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One item as a source announced it, before the article page is fetched."""

    source: str
    link: str
    guid: str | None = None
    title: str | None = None
    summary: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    categories: tuple[str, ...] = ()
    image_url: str | None = None
    author: str | None = None
    language: str | None = None
    # Set by feeds that mark a withdrawn article (issue 5 follow-ups use it).
    retracted: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", cap_text(self.title, MAX_TITLE_CHARS))
        object.__setattr__(self, "summary", cap_text(self.summary, MAX_SUMMARY_CHARS))
        object.__setattr__(self, "author", cap_text(self.author, MAX_LABEL_CHARS))
        object.__setattr__(self, "categories", _cap_labels(tuple(self.categories)))


@dataclass(frozen=True, slots=True)
class Article:
    """An article with everything a post may need. `url` is the canonical URL: the attribution."""

    url: str
    title: str
    source: str = ""
    lead: str = ""
    body: str = ""
    image_url: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    language: str | None = None
    author: str | None = None
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    site_name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", cap_text(self.title, MAX_TITLE_CHARS) or "")
        object.__setattr__(self, "lead", cap_text(self.lead, MAX_LEAD_CHARS) or "")
        object.__setattr__(self, "body", cap_text(self.body, MAX_BODY_CHARS) or "")
        object.__setattr__(self, "author", cap_text(self.author, MAX_LABEL_CHARS))
        object.__setattr__(self, "site_name", cap_text(self.site_name, MAX_LABEL_CHARS))
        object.__setattr__(self, "categories", _cap_labels(tuple(self.categories)))
        object.__setattr__(self, "tags", _cap_labels(tuple(self.tags)))

    def to_json(self) -> dict[str, Any]:
        # Field by field, not dataclasses.asdict: its deep copy of every value was most of
        # the cost of recording a big feed's 5,000 entries (issue 18).
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for key in ("published", "updated"):
            value = data[key]
            data[key] = value.isoformat() if value else None
        data["categories"] = list(self.categories)
        data["tags"] = list(self.tags)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Article:
        values = dict(data)
        for key in ("published", "updated"):
            if values.get(key):
                values[key] = datetime.fromisoformat(values[key])
        values["categories"] = tuple(values.get("categories") or ())
        values["tags"] = tuple(values.get("tags") or ())
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in known})


Markup = Literal["html", "plain"]


@dataclass(frozen=True, slots=True)
class RenderedPost:
    """A post exactly as it will be sent to one target.

    `text` is the platform's payload text in `markup`; `link_url` is a URL the platform shows
    as a clickable link outside the text (a link card), if any; `image_url` the photo to attach.
    `article_url` is the canonical URL the attribution guard checks for.
    """

    target: str
    platform: str
    article_url: str
    text: str
    markup: Markup = "plain"
    link_url: str | None = None
    image_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RenderedPost:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class SentPost:
    """What a platform answered to a successful post."""

    remote_id: str
    remote_url: str | None = None
    #: Set when the answer confirmed an earlier attempt instead of posting (X's duplicate
    #: refusal of a resend): how it was confirmed, recorded as the delivery's event. An empty
    #: remote_id then means the post's id could not be learnt.
    confirmed: str | None = None


@dataclass(frozen=True, slots=True)
class PostLength:
    """How long a post is as its platform counts it (weighted units, UTF-16 units, graphemes,
    characters...), against the platform's limit for that kind of post."""

    used: int
    limit: int
    unit: str = "characters"

    @property
    def fits(self) -> bool:
        return self.used <= self.limit

    def __str__(self) -> str:
        return f"{self.used}/{self.limit} {self.unit}"
