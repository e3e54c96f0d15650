"""Telegram channels, groups and forum topics through the Bot API (python-telegram-bot).

Posts are HTML: bold headline, lead, hashtags, and the article as a real hyperlink. A photo
post when the article has an image (caption limit 1024), a text post otherwise (4096).
Lengths are counted as Telegram counts them: UTF-16 code units of the text after entity
parsing, so escaping (&amp;) and tags cost nothing.

Exactly once (issue 14): the Bot API offers no way to read a channel's history (a bot sees
only updates sent to it, and no idempotency key), so there is no read-back here: an uncertain
delivery stays for the editors. The window is kept narrow instead: prepare() does getMe and the
pacing wait, and the delivery is committed `sending` only right before sendMessage/sendPhoto.
"""

from __future__ import annotations

import asyncio
import html
import time
from dataclasses import replace
from html.parser import HTMLParser
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.base import Adapter, SendContext, import_deferred
from bot.config_types import telegram_chat_id
from bot.models import Article, PostLength, RenderedPost, SentPost
from bot.outcomes import AuthFailure, DeliveryError, SetupCheck, SetupStatus
from bot.secrets import SecretRef, redact
from bot.targets import TargetSettings
from bot.templates import Dialect, article_url
from bot.text import squash_spaces, trim_text, utf16_len

if TYPE_CHECKING:
    from adapters.telegram.bot_api import TelegramClient

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

DEFAULT_LINK_LABELS = {
    "en": "Read more at {outlet}",
    "ru": "Читать на {outlet}",
    "az": "{outlet} saytında oxuyun",
}


class LinkPreview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disabled: bool = False
    prefer_small_media: bool = False
    prefer_large_media: bool = True
    show_above_text: bool = False


class TelegramSettings(TargetSettings):
    api_base: str = "https://api.telegram.org"
    token: SecretRef
    chat_id: int | str = Field(description="numeric id or @channelusername")

    _chat_id = field_validator("chat_id", mode="before")(telegram_chat_id)
    message_thread_id: int | None = Field(default=None, description="forum topic id")
    photo_posts: bool = True
    link_preview: LinkPreview = LinkPreview()
    #: Label of the attribution hyperlink, by article language ("*" for any other).
    link_label: dict[str, str] = Field(default_factory=dict)
    lead_max_chars: int = Field(default=600, ge=0, le=4000)
    disable_notification: bool = False
    #: Seconds between two posts to the same chat (Telegram: about 1/s per chat, 20/min in
    #: groups); a post that comes sooner waits.
    min_interval: float = Field(default=3.0, ge=0, le=3600)


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def _anchor(url: str, label: str) -> str:
    return f'<a href="{html.escape(url, quote=True)}">{_escape(label)}</a>'


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_text(markup: str) -> str:
    """What a reader sees of Telegram HTML (tags gone, entities decoded, ends trimmed)."""
    parser = _TextOnly()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts).strip()


HTML_TEXT = Dialect("telegram-text", _escape, _anchor, visible_text, utf16_len, TEXT_LIMIT)
HTML_CAPTION = Dialect("telegram-caption", _escape, _anchor, visible_text, utf16_len, CAPTION_LIMIT)


def link_label(settings: TelegramSettings, language: str | None, outlet: str) -> str:
    lang = (language or "").split("-")[0].lower()
    labels = {**DEFAULT_LINK_LABELS, **settings.link_label}
    template = labels.get(lang) or labels.get("*") or DEFAULT_LINK_LABELS["en"]
    return template.replace("{outlet}", outlet)


def compose(title: str, lead: str, tags: list[str], url: str, label: str, limit: int) -> str:
    """The HTML post, its visible length (UTF-16, after entity parsing) within `limit`.

    Room is made by trimming the lead first, then the headline; hashtags go before either
    is cut to nothing, and the link is never touched.
    """
    link = _anchor(url, label)
    tag_line = " ".join(tags)

    def visible(parts: list[str]) -> int:
        return utf16_len("\n\n".join(p for p in parts if p))

    fixed = visible([tag_line, label])
    sep = 2  # one "\n\n" between blocks
    title_budget = limit - fixed - sep
    if title_budget < 20 and tag_line:  # too little room: drop the hashtags
        tag_line, fixed = "", visible([label])
        title_budget = limit - fixed - sep
    title = trim_text(title, max(title_budget, 0), utf16_len)
    lead_budget = limit - visible([title, tag_line, label]) - sep
    lead = trim_text(lead, lead_budget, utf16_len) if lead_budget >= 20 else ""
    blocks = [f"<b>{_escape(title)}</b>" if title else "", _escape(lead), tag_line, link]
    return "\n\n".join(b for b in blocks if b)


#: python-telegram-bot's side of the adapter, imported at the first call (see bot_api.py).
_BOT_API = "adapters.telegram.bot_api"


class TelegramAdapter(Adapter):
    platform: ClassVar[str] = "telegram"
    hyperlinks: ClassVar[bool] = True
    Settings: ClassVar[type[TargetSettings]] = TelegramSettings
    deferred_imports: ClassVar[tuple[str, ...]] = (_BOT_API,)
    settings: TelegramSettings

    def init_state(self) -> None:
        self._bot: TelegramClient | None = None
        self._next_slot = 0.0
        self._pace_lock = asyncio.Lock()

    # Rendering (pure) ------------------------------------------------------------------

    def render(self, article: Article) -> RenderedPost:
        s = self.settings
        with_photo = bool(s.photo_posts and article.image_url)
        limit = CAPTION_LIMIT if with_photo else TEXT_LIMIT
        lead = trim_text(squash_spaces(article.lead), s.lead_max_chars)
        article = replace(article, lead=lead)
        if s.template:
            text = self.render_template(article, HTML_CAPTION if with_photo else HTML_TEXT)
        else:
            tags = self.hashtags_for(article)
            label = link_label(s, article.language, self.outlet.name)
            url = article_url(article, s.utm)
            text = compose(squash_spaces(article.title), lead, tags, url, label, limit)
        return RenderedPost(
            target=s.name,
            platform=self.platform,
            article_url=article.url,
            text=text,
            markup="html",
            image_url=article.image_url if with_photo else None,
        )

    # Sending ---------------------------------------------------------------------------

    async def _client(self) -> TelegramClient:
        if self._bot is None:
            api = await import_deferred(_BOT_API)
            self._bot = await api.TelegramClient.open(self.settings, self.secrets["token"].get())
        return self._bot

    async def _pace(self) -> None:
        # Sequential per chat: reserve the next slot, then wait for it.
        async with self._pace_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.settings.min_interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def measure(self, post: RenderedPost) -> PostLength:
        # A photo post's text is its caption (1,024); a text post has 4,096.
        return self.measure_in(HTML_CAPTION if post.image_url else HTML_TEXT, post)

    async def prepare(self, post: RenderedPost, ctx: SendContext) -> None:
        """getMe (once) and the pacing wait: neither posts anything."""
        await self._client()
        await self._pace()

    async def publish(self, post: RenderedPost, ctx: SendContext) -> SentPost:
        return await (await self._client()).publish(post)

    async def edit(self, remote_id: str, post: RenderedPost) -> None:
        await (await self._client()).edit(remote_id, post)

    async def delete(self, remote_id: str) -> None:
        await (await self._client()).delete(remote_id)

    async def check(self) -> bool:
        return await (await self._client()).check()

    async def aclose(self) -> None:
        if self._bot is not None:
            await self._bot.close()
            self._bot = None

    async def verify(self) -> list[SetupCheck]:
        try:
            client = await self._client()  # its getMe refuses a wrong token
        except AuthFailure:
            detail = "Telegram refused the bot token (401 Unauthorized): check the token"
            return [SetupCheck(self.name, SetupStatus.FAILED, detail)]
        except DeliveryError as exc:
            return [SetupCheck(self.name, SetupStatus.FAILED, redact(exc.message))]
        ok, detail = await client.verify()
        return [SetupCheck(self.name, SetupStatus.OK if ok else SetupStatus.FAILED, detail)]


ADAPTER = TelegramAdapter
