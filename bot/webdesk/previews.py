"""How each platform shows a post, for the desk's previews. Pure: a RenderedPost in, a
Preview out (the measured length against the platform's own limit, the link, safe HTML)."""

from __future__ import annotations

import html
import importlib
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

from markupsafe import Markup

from adapters import adapter_class
from bot.attribution import AttributionMissing, check_attribution
from bot.models import RenderedPost
from bot.templates import Dialect

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


def platform_dialect(post: RenderedPost) -> Dialect | None:
    """The dialect the post's adapter writes and measures in (telegram: caption or text)."""
    try:
        module = importlib.import_module(f"adapters.{post.platform}")
    except ImportError:
        return None
    dialects = [v for v in vars(module).values() if isinstance(v, Dialect)]
    if post.platform == "telegram":
        wanted = "telegram-caption" if post.image_url else "telegram-text"
        dialects = [d for d in dialects if d.name == wanted] or dialects
    return dialects[0] if dialects else None


def preview(post: RenderedPost) -> Preview:
    dialect = platform_dialect(post)
    if post.markup == "html":
        body = telegram_html(post.text)
        visible = dialect.visible(post.text) if dialect else body.striptags()
    else:
        body = Markup(html.escape(post.text))
        visible = post.text
    length = dialect.measure(visible) if dialect else len(visible)
    kind = post.platform if post.platform in ("telegram", "x", "facebook", "instagram") else "text"
    return Preview(
        target=post.target,
        platform=post.platform,
        kind=kind,
        body=body,
        length=length,
        limit=dialect.limit if dialect else None,
        link_url=post.link_url,
        image_url=post.image_url,
        article_url=post.article_url,
        link_visible=_carries_link(post),
    )


def _carries_link(post: RenderedPost) -> bool:
    """The same attribution check every post passes before it may be sent."""
    try:
        hyperlinks = adapter_class(post.platform).hyperlinks
    except ValueError:
        hyperlinks = True
    try:
        check_attribution(post, hyperlinks)
    except AttributionMissing:
        return False
    return True
