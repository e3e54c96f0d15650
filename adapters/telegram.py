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
import logging
import time
import warnings
from dataclasses import replace
from html.parser import HTMLParser
from typing import ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator
from telegram import Bot, LinkPreviewOptions, Message
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from adapters.base import Adapter, SendContext
from bot.config_types import telegram_chat_id
from bot.models import Article, PostLength, RenderedPost, SentPost
from bot.outcomes import (
    AuthFailure,
    DeliveryError,
    PermanentFailure,
    RetryLater,
    SetupCheck,
    SetupStatus,
    TemporaryFailure,
    UncertainDelivery,
)
from bot.secrets import SecretRef, redact
from bot.targets import TargetSettings
from bot.templates import Dialect, article_url
from bot.text import squash_spaces, trim_text, utf16_len

log = logging.getLogger("newsbot.telegram")

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

DEFAULT_LINK_LABELS = {
    "en": "Read more at {outlet}",
    "ru": "Читать на {outlet}",
    "az": "{outlet} saytında oxuyun",
}

# Answers meaning the target itself is misconfigured: pause it rather than fail every post.
_TARGET_PROBLEMS = (
    "chat not found",
    "not enough rights",
    "need administrator rights",
    "have no rights",
    "bot was kicked",
    "message thread not found",
)
# Telegram could not use the photo URL: the post goes out as text with a link preview.
_PHOTO_PROBLEMS = (
    "wrong file identifier",
    "failed to get http url content",
    "wrong type of the web page content",
    "image_process_failed",
    "photo_invalid_dimensions",
    "wrong remote file",
)
# Errors after which the request certainly never reached Telegram.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


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


class TelegramAdapter(Adapter):
    platform: ClassVar[str] = "telegram"
    hyperlinks: ClassVar[bool] = True
    Settings: ClassVar[type[TargetSettings]] = TelegramSettings
    settings: TelegramSettings

    def init_state(self) -> None:
        self._bot: Bot | None = None
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

    async def _client(self) -> Bot:
        if self._bot is None:
            base = self.settings.api_base.rstrip("/")
            timeout = self.settings.timeout
            request = HTTPXRequest(
                connection_pool_size=8,
                read_timeout=timeout,
                write_timeout=timeout,
                connect_timeout=min(timeout, 10.0),
                pool_timeout=timeout,
                media_write_timeout=timeout,
            )
            bot = Bot(
                self.secrets["token"].get(),
                base_url=f"{base}/bot",
                base_file_url=f"{base}/file/bot",
                request=request,
                get_updates_request=HTTPXRequest(connection_pool_size=1),
            )
            try:
                await bot.initialize()
            except TelegramError as exc:
                mapped = _map_error(exc)
                if isinstance(mapped, UncertainDelivery):
                    # initialize() only calls getMe: nothing can have been posted.
                    mapped = TemporaryFailure(mapped.message)
                raise mapped from None
            self._bot = bot
        return self._bot

    async def _pace(self) -> None:
        # Sequential per chat: reserve the next slot, then wait for it.
        async with self._pace_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.settings.min_interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def _preview(self, post: RenderedPost) -> LinkPreviewOptions:
        p = self.settings.link_preview
        return LinkPreviewOptions(
            is_disabled=p.disabled,
            url=post.article_url,
            prefer_small_media=p.prefer_small_media or None,
            prefer_large_media=p.prefer_large_media or None,
            show_above_text=p.show_above_text or None,
        )

    def measure(self, post: RenderedPost) -> PostLength:
        # A photo post's text is its caption (1,024); a text post has 4,096.
        return self.measure_in(HTML_CAPTION if post.image_url else HTML_TEXT, post)

    async def prepare(self, post: RenderedPost, ctx: SendContext) -> None:
        """getMe (once) and the pacing wait: neither posts anything."""
        await self._client()
        await self._pace()

    async def publish(self, post: RenderedPost, ctx: SendContext) -> SentPost:
        bot = await self._client()
        s = self.settings
        common = {
            "chat_id": s.chat_id,
            "message_thread_id": s.message_thread_id,
            "disable_notification": s.disable_notification,
            "parse_mode": "HTML",
        }
        try:
            message = await self._send_with_fallback(bot, post, common)
        except TelegramError as exc:
            raise _map_error(exc) from None
        remote_id = f"{message.chat_id}/{message.message_id}"
        return SentPost(remote_id=remote_id, remote_url=_link(message))

    async def _send_with_fallback(self, bot: Bot, post: RenderedPost, common: dict) -> Message:
        if post.image_url:
            try:
                return await bot.send_photo(photo=post.image_url, caption=post.text, **common)
            except BadRequest as exc:
                if not any(p in exc.message.lower() for p in _PHOTO_PROBLEMS):
                    raise
                log.warning(
                    "target %s: Telegram could not use the photo (%s); posting as text",
                    self.name,
                    exc.message,
                )
        return await bot.send_message(
            text=post.text, link_preview_options=self._preview(post), **common
        )

    async def edit(self, remote_id: str, post: RenderedPost) -> None:
        bot = await self._client()
        chat_id, message_id = _split_remote_id(remote_id)
        try:
            if post.image_url:
                await bot.edit_message_caption(
                    chat_id=chat_id, message_id=message_id, caption=post.text, parse_mode="HTML"
                )
            else:
                await bot.edit_message_text(
                    chat_id=chat_id,
                    message_id=message_id,
                    text=post.text,
                    parse_mode="HTML",
                    link_preview_options=self._preview(post),
                )
        except BadRequest as exc:
            if "message is not modified" in exc.message.lower():
                return
            raise _map_error(exc) from None
        except TelegramError as exc:
            raise _map_error(exc) from None

    async def delete(self, remote_id: str) -> None:
        bot = await self._client()
        chat_id, message_id = _split_remote_id(remote_id)
        try:
            await bot.delete_message(chat_id=chat_id, message_id=message_id)
        except BadRequest as exc:
            if "message to delete not found" in exc.message.lower():
                return
            raise _map_error(exc) from None
        except TelegramError as exc:
            raise _map_error(exc) from None

    async def check(self) -> bool:
        bot = await self._client()
        try:
            await bot.get_me()
        except TelegramError as exc:
            raise _map_error(exc) from None
        return True

    async def aclose(self) -> None:
        if self._bot is not None:
            await self._bot.shutdown()
            self._bot = None

    async def verify(self) -> list[SetupCheck]:
        s = self.settings
        try:
            bot = await self._client()  # its getMe refuses a wrong token
        except AuthFailure:
            detail = "Telegram refused the bot token (401 Unauthorized): check the token"
            return [SetupCheck(self.name, SetupStatus.FAILED, detail)]
        except DeliveryError as exc:
            return [SetupCheck(self.name, SetupStatus.FAILED, redact(exc.message))]
        ok, detail = await verify_chat(bot, s.chat_id, s.message_thread_id, s.photo_posts)
        return [SetupCheck(self.name, SetupStatus.OK if ok else SetupStatus.FAILED, detail)]


def _split_remote_id(remote_id: str) -> tuple[int | str, int]:
    chat, _, message = remote_id.rpartition("/")
    return (int(chat) if chat.lstrip("-").isdigit() else chat), int(message)


def _link(message: Message) -> str | None:
    chat = message.chat
    if chat.username:
        return f"https://t.me/{chat.username}/{message.message_id}"
    internal = str(chat.id).removeprefix("-100")
    if str(chat.id).startswith("-100"):
        return f"https://t.me/c/{internal}/{message.message_id}"
    return None


def _map_error(exc: TelegramError) -> Exception:
    """Translate a python-telegram-bot error into the outbox's vocabulary."""
    text = redact(str(exc.message if hasattr(exc, "message") else exc))
    lowered = text.lower()
    if isinstance(exc, RetryAfter):
        with warnings.catch_warnings():  # PTB 22 warns that the type will become timedelta
            warnings.simplefilter("ignore")
            seconds = exc.retry_after
        seconds = seconds.total_seconds() if hasattr(seconds, "total_seconds") else float(seconds)
        return RetryLater(f"Telegram flood control: retry after {seconds:g}s", seconds)
    if isinstance(exc, InvalidToken | Forbidden):
        return AuthFailure(f"Telegram refused the bot: {text}")
    if isinstance(exc, ChatMigrated):
        return AuthFailure(
            f"the group became a supergroup; set chat_id to {exc.new_chat_id} in the config"
        )
    if isinstance(exc, BadRequest):
        if any(p in lowered for p in _TARGET_PROBLEMS):
            return AuthFailure(f"Telegram: {text}")
        return PermanentFailure(f"Telegram rejected the post: {text}")
    if isinstance(exc, TimedOut | NetworkError):
        cause = exc.__cause__
        if isinstance(cause, _NOT_SENT):
            return TemporaryFailure(f"Telegram unreachable: {text}")
        if cause is None or isinstance(cause, TelegramError):
            # Telegram answered with an HTTP error status: nothing was posted, unless a
            # gateway timed out while Telegram may still have processed the request.
            if "(504)" in text:
                return UncertainDelivery(f"Telegram gateway timeout: {text}")
            return TemporaryFailure(f"Telegram server error: {text}")
        return UncertainDelivery(f"no clear answer from Telegram ({text}); it may have posted")
    return UncertainDelivery(f"unexpected Telegram error: {text}")


# What getChatMember says about the bot, by chat type: can it post there?
_ADMIN = ("administrator", "creator")


async def verify_chat(
    bot: Bot, chat_id: int | str, thread_id: int | None = None, photos: bool = False
) -> tuple[bool, str]:
    """(works, why) for posting to `chat_id` as this bot: getMe, getChat, getChatMember of
    the bot itself, and for a forum topic a harmless sendChatAction into it. Posts nothing.
    The answer never carries the token (python-telegram-bot's InvalidToken text does)."""
    try:
        me = await bot.get_me()
    except InvalidToken:
        return False, "Telegram refused the bot token (401 Unauthorized): check the token"
    except TelegramError as exc:
        return False, _unreachable(exc)
    try:
        chat = await bot.get_chat(chat_id)
    except BadRequest as exc:
        if "chat not found" in exc.message.lower():
            return False, (
                f"chat {chat_id} not found: check chat_id and that @{me.username} was added"
            )
        return False, f"getChat {chat_id}: {redact(exc.message)}"
    except Forbidden as exc:
        return False, f"no access to chat {chat_id}: {redact(exc.message)}"
    except TelegramError as exc:
        return False, _unreachable(exc)
    where = f"{chat.type} {chat_id}" + (f" ({chat.title})" if chat.title else "")
    try:
        member = await bot.get_chat_member(chat.id, me.id)
    except Forbidden as exc:
        return False, f"@{me.username} cannot see its rights in {where}: {redact(exc.message)}"
    except TelegramError as exc:
        return False, f"getChatMember in {where}: {redact(str(exc))}"
    status = member.status
    if status in ("left", "kicked"):
        return False, f"@{me.username} is not a member of {where} ({status}): add it"
    if chat.type == "channel":
        if status != "creator" and not (
            status == "administrator" and getattr(member, "can_post_messages", False)
        ):
            return False, (
                f"@{me.username} cannot post in {where}: make it an administrator with the"
                " 'Post messages' right"
            )
    elif status == "restricted":
        if not getattr(member, "can_send_messages", False):
            return False, f"@{me.username} is restricted in {where}: it may not send messages"
        if photos and not getattr(member, "can_send_photos", True):
            return False, f"@{me.username} may not send photos in {where} (photo_posts: true)"
    if thread_id is not None:
        if not chat.is_forum:
            return False, f"message_thread_id {thread_id} is set but {where} is not a forum"
        # The Bot API has no call that reads a topic; a chat action into it is refused with
        # "message thread not found" for an id that is not a topic (a recently deleted topic
        # may still pass: tdlib/telegram-bot-api#732).
        try:
            await bot.send_chat_action(chat.id, "typing", message_thread_id=thread_id)
        except BadRequest as exc:
            if "thread not found" in exc.message.lower():
                return False, f"topic {thread_id} not found in {where}: check message_thread_id"
            return False, f"topic {thread_id} in {where}: {redact(exc.message)}"
        except TelegramError as exc:
            return False, _unreachable(exc)
        where += f", topic {thread_id}"
    return True, f"@{me.username} can post in {where} ({status})"


def _unreachable(exc: TelegramError) -> str:
    return f"no clear answer from Telegram: {redact(str(exc))}"


ADAPTER = TelegramAdapter
