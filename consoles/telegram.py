"""The editors' console in a Telegram chat: approval previews with inline buttons, alerts,
and admin commands, over the Bot API's long polling (python-telegram-bot)."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import warnings
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from telegram import Bot, ForceReply, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import InvalidToken, RetryAfter, TelegramError

from adapters.telegram import verify_chat
from bot.config_types import telegram_chat_id
from bot.desk import Desk
from bot.outcomes import SetupCheck, SetupStatus
from bot.secrets import Secret, SecretRef
from bot.store import Delivery
from consoles.base import Console

log = logging.getLogger("newsbot.console")

BUTTONS = (("Post now", "post"), ("Skip", "skip"), ("Edit text", "edit"), ("Delay 1h", "delay1h"))


class TelegramConsoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: str = "telegram"
    api_base: str = "https://api.telegram.org"
    token: SecretRef
    chat_id: int | str = Field(description="the editors' chat")

    _chat_id = field_validator("chat_id", mode="before")(telegram_chat_id)
    allowed_user_ids: list[int] = Field(min_length=1)
    poll_timeout: float = Field(default=20, ge=0, le=50)


def keyboard(delivery_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(label, callback_data=f"d:{delivery_id}:{action}")]
            for label, action in BUTTONS
        ]
    )


def preview_text(delivery: Delivery) -> str:
    post = delivery.post
    body = post.text if post.markup == "html" else html.escape(post.text, quote=False)
    photo = f"\n[photo: {html.escape(post.image_url)}]" if post.image_url else ""
    return (
        f"<b>Approval needed</b> #{delivery.id} for <b>{html.escape(delivery.target)}</b> "
        f"({html.escape(post.platform)}){photo}\n\n{body}"
    )[:4000]


class TelegramConsole(Console):
    Settings = TelegramConsoleSettings
    settings: TelegramConsoleSettings

    def __init__(
        self, settings: TelegramConsoleSettings, secrets: dict[str, Secret], desk: Desk
    ) -> None:
        super().__init__(settings, secrets, desk)
        base = settings.api_base.rstrip("/")
        self.bot = Bot(secrets["token"].get(), base_url=f"{base}/bot")
        self.editing: dict[int, int] = {}  # user id -> delivery id whose text they are writing
        self.offset = 0
        self.chat_ids = {str(settings.chat_id)}

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.bot.initialize()
        except InvalidToken:
            # One clear line, not a task that dies quietly; the rest of the bot runs on.
            log.error(
                "editors' console is off: Telegram refused its token (401 Unauthorized);"
                " fix editors.token and restart"
            )
            return
        except TelegramError as exc:
            log.error("editors' console is off: Telegram did not answer getMe: %s", exc)
            return
        # Messages carry the chat's numeric id; learn it if the config names the chat by @name.
        try:
            self.chat_ids.add(str((await self.bot.get_chat(self.settings.chat_id)).id))
        except TelegramError as exc:
            log.error("editors' chat %s: %s", self.settings.chat_id, exc)
        try:
            while not stop.is_set():
                try:
                    await self.send_previews()
                    updates = await self.bot.get_updates(
                        offset=self.offset, timeout=int(self.settings.poll_timeout)
                    )
                except TelegramError as exc:
                    log.warning("editors' console: %s", exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 5)
                    continue
                for update in updates:
                    self.offset = update.update_id + 1
                    try:
                        await self.handle(update)
                    except Exception:  # one bad update never stops the console
                        log.exception("editors' console: update %s failed", update.update_id)
        finally:
            await self.bot.shutdown()

    async def say(self, text: str, **options: Any) -> bool:
        """Send to the editors' chat, waiting out flood control rather than losing the line."""
        for _ in range(5):
            try:
                await self.bot.send_message(self.settings.chat_id, text[:4000], **options)
                return True
            except RetryAfter as exc:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    wait = exc.retry_after
                await asyncio.sleep(
                    wait.total_seconds() if hasattr(wait, "total_seconds") else wait
                )
        log.error("editors' console: gave up sending a message after repeated flood control")
        return False

    async def send_previews(self) -> None:
        # The desk remembers which previews were shown (across restarts and leaders).
        for delivery in await self.desk.previews_due():
            sent = await self.say(
                preview_text(delivery), parse_mode="HTML", reply_markup=keyboard(delivery.id)
            )
            if sent:
                await self.desk.mark_previewed(delivery.id, delivery.target, "the editors' chat")

    async def alert(self, text: str) -> None:
        await self.say(f"⚠️ {text}")

    def _in_editors_chat(self, chat: Any) -> bool:
        return chat is not None and str(chat.id) in self.chat_ids

    async def handle(self, update: Update) -> None:
        query = update.callback_query
        if query is not None:
            await self._button(query)
            return
        message = update.message
        if message is None or not message.text or not self._in_editors_chat(message.chat):
            return
        user_id = message.from_user.id if message.from_user else None
        if user_id in self.editing and not message.text.startswith("/"):
            delivery_id = self.editing.pop(user_id)
            reply = await self.desk.edit_text(user_id, delivery_id, message.text_html)
            await self.say(reply.text)
            if reply.ok:
                delivery = await self.desk.awaiting_delivery(delivery_id)
                if delivery is not None:
                    await self.say(
                        preview_text(delivery),
                        parse_mode="HTML",
                        reply_markup=keyboard(delivery_id),
                    )
            return
        reply = await self.desk.command(user_id, message.text)
        if reply is not None:
            await self.say(reply.text, disable_web_page_preview=True)

    async def _button(self, query: Any) -> None:
        user_id = query.from_user.id if query.from_user else None
        try:
            _, raw_id, action = (query.data or "").split(":")
            delivery_id = int(raw_id)
        except ValueError:
            await query.answer("Unknown button")
            return
        if action == "edit":
            if not self.desk.allowed(user_id):
                await query.answer("You are not allowed to edit posts.", show_alert=True)
                return
            self.editing[user_id] = delivery_id
            await query.answer()
            await self.say(
                f"Send the new text for #{delivery_id}. The article link is kept.",
                reply_markup=ForceReply(selective=True),
            )
            return
        reply = await self.desk.decide(user_id, delivery_id, action)
        await query.answer(reply.text, show_alert=not self.desk.allowed(user_id))
        if self.desk.allowed(user_id) and query.message is not None:
            with contextlib.suppress(TelegramError):
                await query.message.edit_reply_markup(reply_markup=None)
            await self.say(f"#{delivery_id}: {reply.text}")

    @staticmethod
    async def verify_settings(
        settings: TelegramConsoleSettings, secrets: dict[str, Secret]
    ) -> list[SetupCheck]:
        """Can the bot read and write the editors' chat? (no console, store or post needed)"""
        base = settings.api_base.rstrip("/")
        bot = Bot(secrets["token"].get(), base_url=f"{base}/bot")
        try:
            ok, detail = await verify_chat(bot, settings.chat_id)
        finally:
            with contextlib.suppress(Exception):
                await bot.shutdown()
        return [SetupCheck("editors' chat", SetupStatus.OK if ok else SetupStatus.FAILED, detail)]


CONSOLE = TelegramConsole
