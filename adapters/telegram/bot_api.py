"""Everything that calls python-telegram-bot, for adapters/telegram.

Imported at a Telegram target's first call, not at start-up: python-telegram-bot is about
4 MB and 180 modules, which a daemon whose Telegram targets have not posted yet need not
hold. Its errors are mapped here, once, into bot.outcomes; nothing above this module sees a
python-telegram-bot type.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
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

from adapters import _http
from bot.models import RenderedPost, SentPost
from bot.outcomes import (
    AuthFailure,
    PermanentFailure,
    RetryLater,
    TemporaryFailure,
    UncertainDelivery,
)
from bot.secrets import redact
from bot.tls import verified_context

if TYPE_CHECKING:
    from adapters.telegram import TelegramSettings

log = logging.getLogger("newsbot.telegram")

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


def telegram_request(connection_pool_size: int = 256, **options: Any) -> HTTPXRequest:
    """python-telegram-bot's request layer (HTTPXRequest's defaults unless given) set up like
    every platform client (adapters/_http.py): idle connections dropped before a server's 5 s
    keep-alive closes them under a post (which would leave it "may have been posted"), and
    the process's shared TLS context instead of a CA bundle per client."""
    limits = httpx.Limits(
        max_connections=connection_pool_size, keepalive_expiry=_http.KEEPALIVE_SECONDS
    )
    return HTTPXRequest(
        connection_pool_size=connection_pool_size,
        **options,
        httpx_kwargs={"verify": verified_context(), "limits": limits},
    )


def new_bot(token: str, api_base: str, request: HTTPXRequest | None = None) -> Bot:
    """A Bot on `api_base` (Telegram's, a local Bot API server or a stand-in), its requests
    made by telegram_request. getUpdates gets a one-connection request of its own: Bot
    requires one, and updates are read one long poll at a time."""
    base = api_base.rstrip("/")
    return Bot(
        token,
        base_url=f"{base}/bot",
        base_file_url=f"{base}/file/bot",
        request=request or telegram_request(),
        get_updates_request=telegram_request(connection_pool_size=1),
    )


class TelegramClient:
    """One target's Bot, its getMe done; every failure raises a bot.outcomes error."""

    def __init__(self, bot: Bot, settings: TelegramSettings) -> None:
        self.bot = bot
        self.settings = settings

    @classmethod
    async def open(cls, settings: TelegramSettings, token: str) -> TelegramClient:
        timeout = settings.timeout
        request = telegram_request(
            connection_pool_size=8,
            read_timeout=timeout,
            write_timeout=timeout,
            connect_timeout=min(timeout, 10.0),
            pool_timeout=timeout,
            media_write_timeout=timeout,
        )
        bot = new_bot(token, settings.api_base, request)
        try:
            await bot.initialize()
        except TelegramError as exc:
            mapped = _map_error(exc)
            if isinstance(mapped, UncertainDelivery):
                # initialize() only calls getMe: nothing can have been posted.
                mapped = TemporaryFailure(mapped.message)
            raise mapped from None
        return cls(bot, settings)

    def _preview(self, post: RenderedPost) -> LinkPreviewOptions:
        p = self.settings.link_preview
        return LinkPreviewOptions(
            is_disabled=p.disabled,
            url=post.article_url,
            prefer_small_media=p.prefer_small_media or None,
            prefer_large_media=p.prefer_large_media or None,
            show_above_text=p.show_above_text or None,
        )

    async def publish(self, post: RenderedPost) -> SentPost:
        s = self.settings
        common = {
            "chat_id": s.chat_id,
            "message_thread_id": s.message_thread_id,
            "disable_notification": s.disable_notification,
            "parse_mode": "HTML",
        }
        with _mapped():
            message = await self._send_with_fallback(post, common)
        remote_id = f"{message.chat_id}/{message.message_id}"
        return SentPost(remote_id=remote_id, remote_url=_link(message))

    async def _send_with_fallback(self, post: RenderedPost, common: dict) -> Message:
        bot = self.bot
        if post.image_url:
            try:
                return await bot.send_photo(photo=post.image_url, caption=post.text, **common)
            except BadRequest as exc:
                if not any(p in exc.message.lower() for p in _PHOTO_PROBLEMS):
                    raise
                log.warning(
                    "target %s: Telegram could not use the photo (%s); posting as text",
                    self.settings.name,
                    exc.message,
                )
        return await bot.send_message(
            text=post.text, link_preview_options=self._preview(post), **common
        )

    async def edit(self, remote_id: str, post: RenderedPost) -> None:
        bot = self.bot
        chat_id, message_id = _split_remote_id(remote_id)
        with _mapped(ignore="message is not modified"):  # an edit already made
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

    async def delete(self, remote_id: str) -> None:
        bot = self.bot
        chat_id, message_id = _split_remote_id(remote_id)
        with _mapped(ignore="message to delete not found"):  # already gone
            await bot.delete_message(chat_id=chat_id, message_id=message_id)

    async def check(self) -> bool:
        with _mapped():
            await self.bot.get_me()
        return True

    async def verify(self) -> tuple[bool, str]:
        s = self.settings
        return await verify_chat(self.bot, s.chat_id, s.message_thread_id, s.photo_posts)

    async def close(self) -> None:
        await self.bot.shutdown()


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


@contextlib.contextmanager
def _mapped(ignore: str = "") -> Iterator[None]:
    """python-telegram-bot's errors raised as bot.outcomes; a BadRequest whose message holds
    `ignore` is no error (what was asked is already so)."""
    try:
        yield
    except BadRequest as exc:
        if not (ignore and ignore in exc.message.lower()):
            raise _map_error(exc) from None
    except TelegramError as exc:
        raise _map_error(exc) from None


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
