"""A stand-in for the Telegram Bot API, for the demo and the tests. Loopback only.

It enforces what the real API enforces on the calls newsbot makes: the HTML parse mode's
tag and entity rules, text (4096) and caption (1024) limits counted in UTF-16 code units after
entity parsing, per-chat flood control answered with 429 and retry_after, unknown chats and
forum topics, bad tokens; and it answers with Telegram's own JSON shapes and descriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, NoReturn

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from standins.contract import Fault as ContractFault
from standins.contract import Harness, Published, close_port
from standins.server import download

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

# Tag -> entity type, per the Bot API's "HTML style" section.
_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);")
_ATTR = re.compile(r"""\s*([a-zA-Z_-]+)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")


class ParseError(ValueError):
    """The text is not valid Telegram HTML; the message is Telegram's description."""


def _u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML parse mode: (plain text, entities with UTF-16 offsets)."""
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, int, dict[str, Any]]] = []
    out_len = 0  # UTF-16 length of the text produced so far
    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "&":
            match = _ENTITY.match(source, i)
            decoded = _decode_entity(match.group(1)) if match else None
            if match and decoded is not None:
                out.append(decoded)
                out_len += _u16(decoded)
                i = match.end()
                continue
            out.append("&")  # a bare & is kept as text, as Telegram does
            out_len += 1
            i += 1
            continue
        if ch != "<":
            out.append(ch)
            out_len += _u16(ch)
            i += 1
            continue
        offset = len(source[:i].encode("utf-8"))
        end = source.find(">", i)
        if end == -1:
            raise ParseError(f"can't parse entities: Unclosed start tag at byte offset {offset}")
        inside = source[i + 1 : end]
        if inside.startswith("/"):
            name = inside[1:].strip().lower()
            if not stack:
                raise ParseError(
                    f"can't parse entities: Unexpected end tag at byte offset {offset}"
                )
            open_name, start, entity = stack.pop()
            if name != open_name:
                raise ParseError(
                    f"can't parse entities: Unmatched end tag at byte offset {offset}, "
                    f'expected "</{open_name}>", found "</{name}>"'
                )
            length = out_len - start
            if length > 0:
                entities.append({**entity, "offset": start, "length": length})
        else:
            name_match = re.match(r"([a-zA-Z][a-zA-Z0-9-]*)", inside)
            name = name_match.group(1).lower() if name_match else ""
            if name not in _TAGS:
                raise ParseError(
                    f'can\'t parse entities: Unsupported start tag "{name}" at byte offset {offset}'
                )
            attrs = {
                m.group(1).lower(): html.unescape(m.group(2) or m.group(3) or m.group(4) or "")
                for m in _ATTR.finditer(inside[len(name) :])
                if m.group(1)
            }
            stack.append((name, out_len, _entity_for(name, attrs, offset)))
        i = end + 1
    if stack:
        raise ParseError(
            "can't parse entities: Can't find end tag corresponding to start tag "
            f'"{stack[-1][0]}"'
        )
    return "".join(out), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def _decode_entity(body: str) -> str | None:
    if body.startswith("#x"):
        return chr(int(body[2:], 16)) if int(body[2:], 16) < 0x110000 else None
    if body.startswith("#"):
        return chr(int(body[1:])) if int(body[1:]) < 0x110000 else None
    return _NAMED_ENTITIES.get(body)


def _entity_for(name: str, attrs: dict[str, str], offset: int) -> dict[str, Any]:
    kind = _TAGS[name]
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise ParseError(
            f'can\'t parse entities: Unsupported start tag "span" at byte offset {offset}'
        )
    if kind == "text_link":
        url = attrs.get("href", "")
        if not re.match(r"^(https?|tg)://\S+$", url):
            raise ParseError(f"can't parse entities: Wrong HTTP URL at byte offset {offset}")
        return {"type": "text_link", "url": url}
    return {"type": kind}


def visible_length(text: str) -> int:
    """Length as Telegram checks it: UTF-16 units, surrounding white space trimmed."""
    return _u16(text.strip())


# The server --------------------------------------------------------------------------------


class TelegramError(Exception):
    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


@dataclass
class Fault:
    """An injected answer for the next matching call: an error, a hang, or a dropped line."""

    status: int = 500
    description: str = "Internal Server Error"
    retry_after: int | None = None
    hang: float = 0.0
    methods: tuple[str, ...] = ("sendMessage", "sendPhoto")


@dataclass
class Outage:
    """Every call fails until `until` (time.time()): a 5xx, a 429, or no answer (`hang`)."""

    until: float
    status: int = 502
    description: str = "Bad Gateway"
    retry_after: int | None = None
    hang: float = 0.0


@dataclass
class State:
    outage: Outage | None = None
    valid_tokens: set[str] = field(default_factory=set)
    chats: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    #: Flood control: at most `per_chat_burst` messages then one per `per_chat_interval` s.
    per_chat_interval: float = 1.0
    per_chat_burst: int = 3
    group_per_minute: int = 20
    fetch_photos: bool = True
    #: (start, end) wall-clock times of every sendMessage/sendPhoto request, for the crash
    #: experiment (end 0.0 while it is still in progress).
    publishing: list[list[float]] = field(default_factory=list)
    #: Seconds the next sendMessage/sendPhoto waits before it posts (then back to 0): holds a
    #: publishing request open so the crash experiment can kill the bot inside it.
    hold_next_publish: float = 0.0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1001))
    _chat_ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _buckets: dict[int, tuple[float, float]] = field(default_factory=dict)
    _group_sends: dict[int, list[float]] = field(default_factory=dict)
    _update_ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _new_update: asyncio.Event = field(default_factory=asyncio.Event)

    def add_chat(
        self,
        username: str,
        kind: str = "channel",
        is_forum: bool = False,
        topics: tuple[int, ...] = (),
        bot_status: str = "administrator",
        can_post: bool = True,
    ) -> dict[str, Any]:
        """A chat the bot is in as `bot_status` (administrator, member, restricted, left,
        kicked); `can_post`: an administrator's can_post_messages in a channel, a restricted
        member's can_send_messages in a group."""
        chat = {
            "id": -(1000000000000 + next(self._chat_ids)),
            "type": kind,
            "title": username.lstrip("@").replace("_", " ").title(),
            "username": username.lstrip("@"),
            "is_forum": is_forum,
            "topics": set(topics),
            "bot_status": bot_status,
            "can_post": can_post,
        }
        self.chats[username] = chat
        self.chats[str(chat["id"])] = chat
        return chat

    def add_channel(self, username: str) -> dict[str, Any]:
        return self.add_chat(username, "channel")

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update (a message or a callback_query) for getUpdates."""
        update = {"update_id": next(self._update_ids), **update}
        self.updates.append(update)
        self._new_update.set()
        return update

    def in_chat(self, chat: str) -> list[dict[str, Any]]:
        target = self.chats[chat]["id"]
        return [m for m in self.messages if m["chat"]["id"] == target and not m["deleted"]]

    # Flood control: a token bucket per chat, plus Telegram's 20/minute for groups.
    def _flood_check(self, chat: dict[str, Any], now: float) -> int | None:
        tokens, last = self._buckets.get(chat["id"], (float(self.per_chat_burst), now))
        tokens = min(self.per_chat_burst, tokens + (now - last) / self.per_chat_interval)
        if tokens < 1:
            self._buckets[chat["id"]] = (tokens, now)
            return max(1, int((1 - tokens) * self.per_chat_interval + 0.999))
        if chat["type"] in ("group", "supergroup"):
            recent = [t for t in self._group_sends.get(chat["id"], []) if now - t < 60]
            if len(recent) >= self.group_per_minute:
                return max(1, int(60 - (now - recent[0]) + 0.999))
            self._group_sends[chat["id"]] = [*recent, now]
        self._buckets[chat["id"]] = (tokens - 1, now)
        return None


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=code)


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if request.method == "POST":
        if content_type.startswith("application/json"):
            params.update(await request.json())
        elif content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            form = await request.form()
            for key, value in form.multi_items():
                params[key] = await value.read() if hasattr(value, "read") else value
    for key in ("reply_markup", "link_preview_options", "reply_parameters", "allowed_updates"):
        if isinstance(params.get(key), str):
            try:
                params[key] = json.loads(params[key])
            except ValueError:
                raise TelegramError(400, f"Bad Request: can't parse {key} JSON object") from None
    return params


async def _fail(failure: Fault | Outage) -> NoReturn:
    """Answer as an injected failure says: after an optional hang, a 429 or an error."""
    if failure.hang:
        await asyncio.sleep(failure.hang)
    if failure.retry_after is not None:
        raise TelegramError(
            429,
            f"Too Many Requests: retry after {failure.retry_after}",
            {"retry_after": failure.retry_after},
        )
    raise TelegramError(failure.status, failure.description)


#: The methods that publish a post (the publishing request of the bot's flow).
PUBLISHING = ("sendMessage", "sendPhoto")


def create_app(state: State) -> Starlette:
    methods = _Methods(state)

    async def endpoint(request: Request) -> Response:
        if request.path_params["method"] not in PUBLISHING:
            return await answer(request)
        span = [time.time(), 0.0]
        state.publishing.append(span)
        try:
            if state.hold_next_publish:
                hold, state.hold_next_publish = state.hold_next_publish, 0.0
                await asyncio.sleep(hold)
            return await answer(request)
        finally:
            span[1] = time.time()

    async def answer(request: Request) -> Response:
        token, method = request.path_params["token"], request.path_params["method"]
        if token not in state.valid_tokens:
            return _error(401, "Unauthorized")
        try:
            params = await _params(request)
            state.requests.append({"method": method, "params": params, "at": time.time()})
            if state.outage is not None and time.time() < state.outage.until:
                await _fail(state.outage)
            fault = next((f for f in state.faults if method in f.methods), None)
            if fault is not None:
                state.faults.remove(fault)
                await _fail(fault)
            handler = getattr(methods, method, None)
            if handler is None or method.startswith("_"):
                return _error(404, "Not Found")
            result = await handler(params)
        except TelegramError as exc:
            return _error(exc.code, exc.description, exc.parameters)
        return JSONResponse({"ok": True, "result": result})

    async def recorded(_: Request) -> Response:
        return JSONResponse([_public(m) for m in state.messages])

    return Starlette(
        routes=[
            Route("/_standin/messages", recorded),
            Route("/bot{token}/{method}", endpoint, methods=["GET", "POST"]),
        ]
    )


def _public(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != "topics"}


#: The stand-in bot's own user id (getMe).
BOT_ID = 100000001


class _Methods:
    """One coroutine per Bot API method; each returns the `result` or raises TelegramError."""

    def __init__(self, state: State) -> None:
        self.state = state

    async def getMe(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Newsbot stand-in",
            "username": "newsbot_standin_bot",
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = str(params.get("chat_id", ""))
        chat = self.state.chats.get(chat_id) or self.state.chats.get("@" + chat_id.lstrip("@"))
        if chat is None or not chat_id:
            raise TelegramError(400, "Bad Request: chat not found")
        return chat

    def _thread(self, chat: dict[str, Any], params: dict[str, Any]) -> int | None:
        thread = params.get("message_thread_id")
        if thread in (None, ""):
            return None
        thread_id = int(thread)
        if chat["is_forum"] and thread_id not in chat["topics"]:
            raise TelegramError(400, "Bad Request: message thread not found")
        return thread_id

    def _formatted(
        self, params: dict[str, Any], key: str, limit: int, what: str
    ) -> tuple[str, list]:
        raw = str(params.get(key) or "")
        text, entities = raw, []
        if str(params.get("parse_mode", "")).upper() == "HTML":
            try:
                text, entities = parse_html(raw)
            except ParseError as exc:
                raise TelegramError(400, f"Bad Request: {exc}") from None
        stripped = text.strip()
        if key == "text" and not stripped:
            raise TelegramError(400, "Bad Request: message text is empty")
        if visible_length(text) > limit:
            raise TelegramError(400, f"Bad Request: {what} is too long")
        lead = _u16(text) - _u16(text.lstrip())
        entities = [{**e, "offset": e["offset"] - lead} for e in entities if e["offset"] >= lead]
        return stripped, entities

    def _record(
        self, chat: dict[str, Any], thread: int | None, params: dict[str, Any], **content: Any
    ) -> dict[str, Any]:
        retry_after = self.state._flood_check(chat, time.monotonic())
        if retry_after is not None:
            raise TelegramError(
                429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
            )
        chat_view = {k: chat[k] for k in ("id", "type", "title", "username")}
        message = {
            "message_id": next(self.state._ids),
            "date": int(time.time()),
            "chat": chat_view,
            **({"sender_chat": chat_view} if chat["type"] == "channel" else {}),
            **({"message_thread_id": thread, "is_topic_message": True} if thread else {}),
            **content,
        }
        self.state.messages.append(
            {
                **message,
                "chat_id": (chat.get("username") and "@" + chat["username"]) or chat["id"],
                "recorded_at": time.time(),
                "link_preview_options": params.get("link_preview_options"),
                "reply_markup": params.get("reply_markup"),
                "edited": False,
                "deleted": False,
            }
        )
        return message

    def _may_post(self, chat: dict[str, Any]) -> None:
        """Telegram's refusals for a bot that is not allowed to post in the chat."""
        status, kind = chat["bot_status"], chat["type"]
        if status in ("left", "kicked"):
            raise TelegramError(403, f"Forbidden: bot is not a member of the {kind} chat")
        if kind == "channel" and not (status == "administrator" and chat["can_post"]):
            raise TelegramError(400, "Bad Request: need administrator rights in the channel chat")
        if status == "restricted" and not chat["can_post"]:
            raise TelegramError(
                400, "Bad Request: not enough rights to send text messages to the chat"
            )

    async def sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        self._may_post(chat)
        thread = self._thread(chat, params)
        text, entities = self._formatted(params, "text", TEXT_LIMIT, "message")
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        return self._record(chat, thread, params, **content)

    async def sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        self._may_post(chat)
        thread = self._thread(chat, params)
        caption, entities = self._formatted(params, "caption", CAPTION_LIMIT, "message caption")
        photo = params.get("photo")
        if isinstance(photo, str) and self.state.fetch_photos:
            await _check_photo_url(photo)
        content: dict[str, Any] = {
            "photo": [
                {
                    "file_id": f"photo-{len(self.state.messages)}",
                    "file_unique_id": "u",
                    "width": 1280,
                    "height": 720,
                }
            ],
            "photo_url": photo if isinstance(photo, str) else None,
        }
        if caption:
            content["caption"] = caption
        if entities:
            content["caption_entities"] = entities
        return self._record(chat, thread, params, **content)

    def _find(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        message_id = int(params.get("message_id") or 0)
        for message in self.state.messages:
            same = message["chat"]["id"] == chat["id"] and message["message_id"] == message_id
            if same and not message["deleted"]:
                return message
        raise TelegramError(400, "Bad Request: message to edit not found")

    async def editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find(params)
        if "text" not in message:
            raise TelegramError(400, "Bad Request: there is no text in the message to edit")
        text, entities = self._formatted(params, "text", TEXT_LIMIT, "message")
        markup = params.get("reply_markup")
        same_markup = markup == message.get("reply_markup")
        if text == message["text"] and entities == message.get("entities", []) and same_markup:
            raise TelegramError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        message.update(text=text, entities=entities, edited=True, edit_date=int(time.time()))
        # As Telegram does: editMessageText replaces the whole message, and one sent without
        # reply_markup loses its inline keyboard (the Bot API docs are silent; checked against
        # the real API in TelegramBots/Telegram.Bot#402 "removing reply_markup while editing
        # just the text is the default behavior", go-telegram-bot-api#158, and
        # LasterAlex/teloxide_tests#31 "Make editMessageText delete reply markup to match
        # Telegram's behavior"). To keep the buttons, send them again.
        message["reply_markup"] = markup
        return _api_view(message)

    async def editMessageCaption(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find(params)
        caption, entities = self._formatted(params, "caption", CAPTION_LIMIT, "message caption")
        message.update(caption=caption, caption_entities=entities, edited=True)
        return _api_view(message)

    async def editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._find(params)
        message["reply_markup"] = params.get("reply_markup")
        return _api_view(message)

    async def deleteMessage(self, params: dict[str, Any]) -> bool:
        try:
            message = self._find(params)
        except TelegramError:
            raise TelegramError(400, "Bad Request: message to delete not found") from None
        message["deleted"] = True
        return True

    async def getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 5.0)  # bounded long poll
        deadline = time.monotonic() + timeout
        while True:
            pending = [u for u in self.state.updates if u["update_id"] >= offset]
            if pending or time.monotonic() >= deadline:
                # Confirmed updates (below offset) are forgotten, as Telegram does.
                self.state.updates = pending
                return pending[: int(params.get("limit") or 100)]
            self.state._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.state._new_update.wait(), max(0.01, deadline - time.monotonic())
                )

    async def answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        if not params.get("callback_query_id"):
            raise TelegramError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        return True

    async def getChat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        return {k: chat[k] for k in ("id", "type", "title", "username")} | {
            "is_forum": chat["is_forum"],
            "accent_color_id": 0,
            "max_reaction_count": 11,
        }

    async def getChatMember(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        user_id = int(params.get("user_id") or 0)
        if user_id != BOT_ID:
            raise TelegramError(400, "Bad Request: user not found")
        status = chat["bot_status"]
        if status in ("left", "kicked") and chat["type"] == "channel":
            # A channel hides its member list from a bot that is not in it.
            raise TelegramError(403, "Forbidden: bot is not a member of the channel chat")
        user = {"id": BOT_ID, "is_bot": True, "first_name": "Newsbot stand-in"}
        member: dict[str, Any] = {"status": status, "user": user}
        if status == "administrator":
            member |= {
                "can_be_edited": False,
                "is_anonymous": False,
                "can_manage_chat": True,
                "can_delete_messages": True,
                "can_manage_video_chats": False,
                "can_restrict_members": False,
                "can_promote_members": False,
                "can_change_info": False,
                "can_invite_users": True,
                "can_post_stories": False,
                "can_edit_stories": False,
                "can_delete_stories": False,
            }
            if chat["type"] == "channel":
                member |= {"can_post_messages": chat["can_post"], "can_edit_messages": True}
        elif status == "restricted":
            can = chat["can_post"]
            member |= {"is_member": True, "until_date": 0} | {
                name: can
                for name in (
                    "can_send_messages",
                    "can_send_audios",
                    "can_send_documents",
                    "can_send_photos",
                    "can_send_videos",
                    "can_send_video_notes",
                    "can_send_voice_notes",
                    "can_send_polls",
                    "can_send_other_messages",
                    "can_add_web_page_previews",
                    "can_change_info",
                    "can_invite_users",
                    "can_pin_messages",
                    "can_manage_topics",
                    "can_edit_tag",
                    "can_react_to_messages",
                )
            }
        elif status == "kicked":
            member["until_date"] = 0
        return member

    async def sendChatAction(self, params: dict[str, Any]) -> bool:
        chat = self._chat(params)
        self._may_post(chat)
        self._thread(chat, params)
        return True

    async def setMyCommands(self, _: dict[str, Any]) -> bool:
        return True

    async def deleteWebhook(self, _: dict[str, Any]) -> bool:
        return True


def _api_view(message: dict[str, Any]) -> dict[str, Any]:
    hidden = {"chat_id", "link_preview_options", "reply_markup", "edited", "deleted", "photo_url"}
    return {k: v for k, v in message.items() if k not in hidden}


async def _check_photo_url(url: str) -> None:
    """Telegram downloads a photo given by URL; one it cannot fetch as an image is refused."""
    try:
        response = await download(url)
    except httpx.HTTPError:
        raise TelegramError(400, "Bad Request: failed to get HTTP URL content") from None
    if response.status_code != 200:
        raise TelegramError(400, "Bad Request: failed to get HTTP URL content")
    if not response.headers.get("content-type", "").startswith("image/"):
        raise TelegramError(400, "Bad Request: wrong type of the web page content")


# Contract harness --------------------------------------------------------------------------

_CONTRACT_TOKEN = "123456:contract-SECRET-token"
_URL = re.compile(r"https?://[^\s<>\"]+")


class TelegramHarness(Harness):
    """The Telegram stand-in for tests/test_contract.py (see standins/contract.py)."""

    platform = "telegram"
    TIMEOUT = 1.0
    CHANNEL = "@contract_news"

    def __init__(self) -> None:
        self.state = State(valid_tokens={_CONTRACT_TOKEN})
        self.state.add_channel(self.CHANNEL)

    def app(self) -> ASGIApp:
        return create_app(self.state)

    def target(self) -> dict[str, Any]:
        assert self.server is not None, "start() first"
        return {
            "name": "telegram-contract",
            "platform": "telegram",
            "api_base": self.server.url,
            "token": {"env": "TELEGRAM_TOKEN"},
            "chat_id": self.CHANNEL,
            "min_interval": 0,
            "timeout": self.TIMEOUT,
        }

    def env(self) -> dict[str, str]:
        return {"TELEGRAM_TOKEN": _CONTRACT_TOKEN}

    def published(self) -> list[Published]:
        records = []
        for m in self.state.messages:
            text = m.get("text", m.get("caption", ""))
            entities = m.get("entities", m.get("caption_entities")) or []
            links = [e["url"] for e in entities if e.get("type") == "text_link"]
            if any(e.get("type") == "url" for e in entities):
                links.extend(_URL.findall(text))
            remote_id = f"{m['chat']['id']}/{m['message_id']}"  # as the adapter names it
            records.append(Published(remote_id, text, tuple(links), m["deleted"]))
        return records

    async def arm(self, fault: ContractFault) -> float | None:
        match fault:
            case ContractFault.AUTH:
                self.state.valid_tokens.clear()
            case ContractFault.RATE_LIMIT:
                self.state.inject(Fault(retry_after=37))
                return 37.0
            case ContractFault.REFUSED:
                assert self.server is not None
                await close_port(self.server)
            case ContractFault.TIMEOUT_AFTER_SEND:
                self.state.inject(Fault(hang=self.TIMEOUT + 1))
        return None


HARNESS = TelegramHarness
