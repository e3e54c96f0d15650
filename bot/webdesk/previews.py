"""How each platform shows a post, for the desk's previews. Pure: a RenderedPost in, a
Preview out (the measured length against the platform's own limit, the link, safe HTML)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

from markupsafe import Markup

from adapters.base import Adapter
from bot.models import RenderedPost
from bot.render import RenderProblem, guard

# Telegram's HTML parse mode: the tags it renders (everything else is shown escaped).
_TELEGRAM_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "blockquote",
    "a", "tg-spoiler", "span",
}  # fmt: skip


@dataclass(frozen=True)
class Preview:
    target: str
    platform: str
    kind: str  # "telegram", "x", "facebook", "instagram" or "text": which card layout
    body: Markup  # the post's text as the platform shows it, safe to embed
    length: int  # measured the platform's way
    limit: int | None
    unit: str  # what the platform counts: weighted characters, UTF-16 units, ...
    link_url: str | None  # the link card's URL, when the platform shows one
    image_url: str | None
    article_url: str
    link_visible: bool  # the attribution link appears in the text or as the link card

    @property
    def over_limit(self) -> bool:
        return self.limit is not None and self.length > self.limit


class _TelegramSanitiser(HTMLParser):
    """Keeps the tags Telegram renders (links only to http, https or tg), escapes the rest."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TELEGRAM_TAGS:
            return
        if tag == "a":
            href = dict(attrs).get("href") or ""
            if urlsplit(href).scheme not in ("http", "https", "tg"):
                return
            self.out.append(
                f'<a href="{html.escape(href)}" rel="noopener noreferrer" target="_blank">'
            )
        else:
            self.out.append('<span class="tg-spoiler">' if tag == "tg-spoiler" else f"<{tag}>")
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            while self.open:
                last = self.open.pop()
                self.out.append("</span>" if last in ("tg-spoiler", "span") else f"</{last}>")
                if last == tag:
                    break

    def handle_data(self, data: str) -> None:
        self.out.append(html.escape(data))

    def result(self) -> str:
        self.close()
        while self.open:
            self.handle_endtag(self.open[-1])
        return "".join(self.out)


def telegram_html(markup: str) -> Markup:
    parser = _TelegramSanitiser()
    parser.feed(markup)
    return Markup(parser.result())


def preview(post: RenderedPost, adapter: Adapter | None) -> Preview:
    """How `post` looks on its platform, measured by the target's own adapter (None: the
    target is no longer configured, so no length or limit is claimed)."""
    body = telegram_html(post.text) if post.markup == "html" else Markup(html.escape(post.text))
    length = adapter.measure(post) if adapter is not None else None
    kind = post.platform if post.platform in ("telegram", "x", "facebook", "instagram") else "text"
    hyperlinks = adapter.hyperlinks if adapter is not None else True
    return Preview(
        target=post.target,
        platform=post.platform,
        kind=kind,
        body=body,
        length=length.used if length else len(body.striptags()),
        limit=length.limit if length else None,
        unit=length.unit if length else "characters",
        link_url=post.link_url,
        image_url=post.image_url,
        article_url=post.article_url,
        # The same attribution guard every post passes before it may be sent.
        link_visible=not isinstance(guard(post, hyperlinks), RenderProblem),
    )
