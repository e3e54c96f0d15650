"""Plain data passed along the pipeline: feed entry -> article -> rendered post -> result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal


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

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
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
