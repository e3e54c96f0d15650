"""The editors' console in a Telegram chat: approval previews with inline buttons, alerts,
and admin commands, over the Bot API's long polling (python-telegram-bot)."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import re
import time
import warnings
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from telegram import ForceReply, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import InvalidToken, RetryAfter, TelegramError

from adapters.telegram.bot_api import new_bot, verify_chat
from bot.config_types import telegram_chat_id
from bot.desk import Desk, Editor, Reply, parse_id
from bot.logs import escape_log
from bot.outcomes import SetupCheck, SetupStatus
from bot.secrets import Secret, SecretRef
from bot.store import Delivery
from consoles.base import Console

log = logging.getLogger("newsbot.console")

# Button data as this console writes it; anything else is answered "Unknown button".
BUTTON_DATA = re.compile(r"d:(\d{1,10}):(post|skip|edit|delay1h)")
RECORD_WINDOW = 7 * 86400  # previews whose record is kept up to date (seconds)

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


def preview_text(delivery: Delivery, record: str | None = None) -> str:
    """The approval preview; once decided (`record`: the desk's record lines), the record's
    first line (the outcome) replaces "Approval needed" and the others follow it."""
    post = delivery.post
    body = post.text if post.markup == "html" else html.escape(post.text, quote=False)
    photo = f"\n[photo: {html.escape(post.image_url)}]" if post.image_url else ""
    head, *details = (record or "Approval needed").split("\n")
    detail = "".join(f"\n{html.escape(line, quote=False)}" for line in details)
    return (
        f"<b>{html.escape(head, quote=False)}</b> #{delivery.id} for"
        f" <b>{html.escape(delivery.target)}</b> ({html.escape(post.platform)}){detail}{photo}"
        f"\n\n{body}"
    )[:4000]


class TelegramConsole(Console):
    Settings = TelegramConsoleSettings
    settings: TelegramConsoleSettings

    def __init__(
        self, settings: TelegramConsoleSettings, secrets: dict[str, Secret], desk: Desk
    ) -> None:
        super().__init__(settings, secrets, desk)
        self.bot = new_bot(secrets["token"].get(), settings.api_base)
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

    async def say(self, text: str, **options: Any) -> Any:
        """Send to the editors' chat, waiting out flood control rather than losing the line.
        Returns the sent message, or None."""
        for _ in range(5):
            try:
                return await self.bot.send_message(self.settings.chat_id, text[:4000], **options)
            except RetryAfter as exc:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    wait = exc.retry_after
                await asyncio.sleep(
                    wait.total_seconds() if hasattr(wait, "total_seconds") else wait
                )
        log.error("editors' console: gave up sending a message after repeated flood control")
        return None

    async def reply(self, reply: Reply) -> None:
        """A desk answer in messages that fit (a long /history is not cut off): HTML
        (previews) split between blocks, plain text between lines."""
        options: dict[str, Any] = {"disable_web_page_preview": True}
        if reply.html:
            options["parse_mode"] = "HTML"
        separator = "\n\n" if reply.html else "\n"
        chunk = ""
        for block in reply.text.split(separator):
            if chunk and len(chunk) + len(block) + len(separator) > 4000:
                await self.say(chunk, **options)
                chunk = ""
            chunk = f"{chunk}{separator}{block}" if chunk else block
        if chunk:
            await self.say(chunk[:4000], **options)

    async def send_previews(self) -> None:
        # The desk remembers which previews were shown (across restarts and leaders), and
        # where: the record of the decision replaces that message's buttons later.
        for delivery in await self.desk.previews_due():
            sent = await self.say(
                preview_text(delivery), parse_mode="HTML", reply_markup=keyboard(delivery.id)
            )
            if sent:
                await self.desk.mark_previewed(
                    delivery.id, delivery.target, f"telegram:{sent.chat.id}:{sent.message_id}"
                )
        await self.update_records()

    async def update_records(self) -> None:
        """Each decided preview shows what happened, who decided, and the published link."""
        since = time.time() - RECORD_WINDOW
        for delivery, where, record, timed_out in await self.desk.preview_records(since):
            place = re.search(r"telegram:(-?\d+):(\d+)$", where)
            if place is not None:
                try:
                    # An edit without reply_markup removes the inline keyboard (Telegram's
                    # behaviour; see standins/telegram.py editMessageText): the buttons go.
                    await self.bot.edit_message_text(
                        preview_text(delivery, record),
                        chat_id=int(place.group(1)),
                        message_id=int(place.group(2)),
                        parse_mode="HTML",
                        disable_web_page_preview=True,
                    )
                except TelegramError as exc:
                    log.warning(
                        "editors' console: preview of #%s not updated: %s",
                        delivery.id,
                        escape_log(exc, 200),
                    )
            if timed_out:  # nobody pressed a button: say so where the editors will see it
                await self.say(f"#{delivery.id} {delivery.target}: {record}")
            await self.desk.record_shown(delivery, where)

    async def alert(self, text: str) -> None:
        await self.say(f"⚠️ {text}")

    def _in_editors_chat(self, chat: Any) -> bool:
        return chat is not None and str(chat.id) in self.chat_ids

    @staticmethod
    def editor(user: Any) -> Editor | None:
        if user is None:
            return None
        name = user.username or " ".join(p for p in (user.first_name, user.last_name) if p)
        return Editor(user.id, escape_log(name or f"user {user.id}", 60))

    async def handle(self, update: Update) -> None:
        query = update.callback_query
        if query is not None:
            await self._button(query)
            return
        message = update.message
        if message is None or not message.text or not self._in_editors_chat(message.chat):
            return
        editor = self.editor(message.from_user)
        user_id = editor.id if editor else None
        if user_id in self.editing and not message.text.startswith("/"):
            delivery_id = self.editing.pop(user_id)
            reply = await self.desk.edit_text(editor, delivery_id, message.text_html)
            await self.say(reply.text)
            if reply.ok:
                delivery = await self.desk.awaiting_delivery(delivery_id)
                if delivery is not None:
                    sent = await self.say(
                        preview_text(delivery),
                        parse_mode="HTML",
                        reply_markup=keyboard(delivery_id),
                    )
                    if sent:  # this preview, too, becomes the record once decided
                        await self.desk.mark_previewed(
                            delivery.id,
                            delivery.target,
                            f"telegram:{sent.chat.id}:{sent.message_id}",
                        )
            return
        reply = await self.desk.command(editor if editor else None, message.text)
        if reply is not None:
            await self.reply(reply)

    async def _button(self, query: Any) -> None:
        editor = self.editor(query.from_user)
        user_id = editor.id if editor else None
        parsed = BUTTON_DATA.fullmatch(query.data or "")
        delivery_id = parse_id(parsed.group(1)) if parsed else None
        if parsed is None or delivery_id is None:
            log.warning(
                "ignored a button press from user %s: unknown data %s",
                escape_log(user_id, 40),
                escape_log(query.data, 80),
            )
            await self._answer(query, "Unknown button")
            return
        action = parsed.group(2)
        if not self.desk.allowed(editor):
            log.warning("refused button %s from user %s", action, escape_log(user_id, 40))
            await self._answer(query, "You are not allowed to decide on posts.", alert=True)
            return
        if action == "edit":
            if await self.desk.awaiting_delivery(delivery_id) is None:
                earlier = await self.desk.who_decided(delivery_id)
                text = f"#{delivery_id} was already decided" + (f": {earlier}." if earlier else ".")
                await self._answer(query, text, alert=True)
                return
            self.editing[user_id] = delivery_id
            await self._answer(query)
            await self.say(
                f"Send the new text for #{delivery_id}. The article link is kept.",
                reply_markup=ForceReply(selective=True),
            )
            return
        reply = await self.desk.decide(editor, delivery_id, action)
        # The presser sees the answer on the button; the chat sees who decided (or, for a
        # press that came too late, what had already been decided, by whom and when).
        await self._answer(query, reply.text, alert=not reply.ok)
        await self.say(reply.text)
        await self.update_records()

    @staticmethod
    async def _answer(query: Any, text: str | None = None, alert: bool = False) -> None:
        """answerCallbackQuery (its text is 0-200 characters); a query too old to answer is
        one log line, never a traceback."""
        try:
            await query.answer(text[:200] if text else None, show_alert=alert)
        except TelegramError as exc:
            log.info("editors' console: button press not answered: %s", escape_log(exc, 200))

    @staticmethod
    async def verify_settings(
        settings: TelegramConsoleSettings, secrets: dict[str, Secret]
    ) -> list[SetupCheck]:
        """Can the bot read and write the editors' chat? (no console, store or post needed)"""
        bot = new_bot(secrets["token"].get(), settings.api_base)
        try:
            ok, detail = await verify_chat(bot, settings.chat_id)
        finally:
            with contextlib.suppress(Exception):
                await bot.shutdown()
        return [SetupCheck("editors' chat", SetupStatus.OK if ok else SetupStatus.FAILED, detail)]


CONSOLE = TelegramConsole
