"""A stand-in for the parts of the X API v2 newsbot uses, for the demo and the tests.

It answers the way X does (status codes, RFC 7807 problem bodies, x-rate-limit-* headers)
and enforces what X enforces on a post:

- OAuth 1.0a: a well-formed `Authorization: OAuth ...` header whose HMAC-SHA1 signature
  matches credentials the State knows, a fresh timestamp and an unused nonce; else 401.
- text: twitter-text v3 weighted length at most 280 and no invalid characters; duplicate
  text of a live post is refused with X's 403.
- caps: per user (access token) 100 posts per 15 minutes, per app (consumer key) 10,000 per
  24 hours (both adjustable), 429 with X's headers when spent.
- reads: GET /2/users/:id/tweets lists the user's live posts newest first, as X does: URLs in
  `text` wrapped as t.co links, the originals in `entities.urls[].expanded_url`, `max_results`
  5 to 100, `start_time` honoured; each read is counted (`reads`), since X bills them.
- media: the current v2 upload endpoints (one-shot POST /2/media/upload; initialize, append,
  finalize and GET ?command=STATUS), bytes that Pillow opens as an image within the size cap,
  and only processed media ids in posts.

Faults (XFault) make the next matching calls fail, hang or lose the connection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from oauthlib.oauth1.rfc5849 import signature, utils
from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from twitter_text import parse_tweet

from standins.contract import Fault, Harness, Published, close_port

DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
TOO_LONG = (
    "Your Tweet text is too long. For more information on how Twitter determines text "
    "length see https://github.com/twitter/twitter-text."
)
INVALID_REQUEST = "https://api.twitter.com/2/problems/invalid-request"
USER_WINDOW = 15 * 60
APP_WINDOW = 24 * 60 * 60
TIMESTAMP_SKEW = 15 * 60  # X refuses OAuth timestamps far from its clock
IMAGE_TYPES = {
    "image/jpeg",
    "image/pjpeg",
    "image/png",
    "image/webp",
    "image/bmp",
    "image/tiff",
    "image/gif",
}
IMAGE_CATEGORIES = {"tweet_image", "tweet_gif", "dm_image", "dm_gif"}
PILLOW_FORMATS = {"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO"}
MEDIA_ID = re.compile(r"^[0-9]{1,19}$")
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found Error",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Credentials:
    consumer_key: str
    consumer_secret: str
    token: str
    token_secret: str


@dataclass
class XFault:
    """What the next call to one of `paths` (by prefix) with one of `methods` gets.

    status: answer with this status and an X-shaped body (title/detail override the
    defaults; a 429 carries the rate-limit headers). 0: no error, use with hang or drop.
    hang: sit on the call this many seconds first; with status 0 it then goes through,
    so a client that gave up meanwhile has posted after all.
    drop: handle the call (the post is made), then cut the connection mid-answer.
    """

    status: int = 503
    title: str | None = None
    detail: str | None = None
    hang: float = 0.0
    drop: bool = False
    paths: tuple[str, ...] = ("/2/tweets",)
    methods: tuple[str, ...] = ("POST",)


@dataclass
class State:
    credentials: list[Credentials] = field(default_factory=list)
    #: Every post made: id, text, media_ids, weighted_length, deleted, token, created_at.
    posts: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[XFault] = field(default_factory=list)
    #: (method, path) of every call, in order, to check upload flows.
    calls: list[tuple[str, str]] = field(default_factory=list)
    #: GET /2/users/:id/tweets calls answered (X bills each).
    reads: int = 0
    #: (start, end) wall-clock times of every POST /2/tweets request, for the crash experiment
    #: (end 0.0 while it is still in progress).
    publishing: list[list[float]] = field(default_factory=list)
    user_cap_15min: int = 100
    app_cap_24h: int = 10_000
    max_image_bytes: int = 5 * 1024 * 1024
    #: STATUS calls a finalized chunked upload stays "in_progress" (0: done at finalize).
    processing_polls: int = 1
    _ids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(1_900_000_000_000_000_001)
    )
    _sent: list[tuple[float, Credentials]] = field(default_factory=list)
    _nonces: set[tuple[str, str]] = field(default_factory=set)

    def allow(self, creds: Credentials) -> None:
        self.credentials.append(creds)

    def revoke_all(self) -> None:
        """Every token revoked: each call now answers 401."""
        self.credentials.clear()

    def inject(self, *faults: XFault, times: int = 1) -> None:
        """Queue faults; `times` repeats them (the next N matching calls fail)."""
        for _ in range(times):
            self.faults.extend(faults)

    def live_posts(self) -> list[dict[str, Any]]:
        return [p for p in self.posts if not p["deleted"]]

    def next_id(self) -> str:
        return str(next(self._ids))


# Answers -----------------------------------------------------------------------------------


def problem(status: int, detail: str, title: str | None = None, **extra: Any) -> dict[str, Any]:
    """An X v2 error body (RFC 7807 problem details)."""
    body: dict[str, Any] = {
        "title": title or TITLES.get(status, "Error"),
        "detail": detail,
        "type": "about:blank",
        "status": status,
    }
    body.update(extra)
    return body


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


def _error(status: int, detail: str, title: str | None = None, **headers: str) -> Response:
    return _answer(status, problem(status, detail, title), headers)


def _invalid(detail: str, parameter: str, value: Any) -> Response:
    """X's 400 for a request parameter it does not accept."""
    body = {
        "errors": [{"parameters": {parameter: [value]}, "message": detail}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": INVALID_REQUEST,
    }
    return _answer(400, body)


def _unauthorized() -> Response:
    return _error(401, "Unauthorized")


class _CutShort(Response):
    """Sends the status line, headers and half the body, then stops: uvicorn closes the
    connection (an ASGI app that returns mid-response), so the client sees a broken read."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send(
            {
                "type": "http.response.body",
                "body": self.body[: len(self.body) // 2],
                "more_body": True,
            }
        )


# OAuth 1.0a --------------------------------------------------------------------------------


def oauth_params(header: str) -> dict[str, str]:
    """The parameters of an `OAuth k="v", ...` header ({} if it is not one)."""
    if not header.startswith("OAuth "):
        return {}
    params = {}
    for part in header[6:].split(","):
        key, eq, value = part.strip().partition("=")
        if not eq or not (value.startswith('"') and value.endswith('"')):
            return {}
        params[key] = unquote(value[1:-1])
    return params


def hmac_sha1(base: str, consumer_secret: str, token_secret: str) -> str:
    """RFC 5849 section 3.4.2: the key is the escaped secrets joined by '&'."""
    key = f"{utils.escape(consumer_secret)}&{utils.escape(token_secret)}"
    return base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()).decode()


def verify_oauth(state: State, request: Request) -> Credentials | None:
    """The known credentials whose signature matches the request, or None.

    Only the URL query is signed here: X's JSON and multipart bodies are not form-encoded,
    so RFC 5849 leaves them out of the signature base string.
    """
    header = request.headers.get("authorization", "")
    params = oauth_params(header)
    required = ("oauth_consumer_key", "oauth_token", "oauth_nonce", "oauth_timestamp")
    if params.get("oauth_signature_method") != "HMAC-SHA1" or not all(
        params.get(k) for k in (*required, "oauth_signature")
    ):
        return None
    timestamp = params["oauth_timestamp"]
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TIMESTAMP_SKEW:
        return None
    creds = next(
        (
            c
            for c in state.credentials
            if c.consumer_key == params["oauth_consumer_key"] and c.token == params["oauth_token"]
        ),
        None,
    )
    if creds is None:
        return None
    collected = signature.collect_parameters(
        uri_query=request.url.query,
        headers={"Authorization": header},
        exclude_oauth_signature=True,
    )
    base = signature.signature_base_string(
        request.method.upper(),
        signature.base_string_uri(str(request.url)),
        signature.normalize_parameters(collected),
    )
    expected = hmac_sha1(base, creds.consumer_secret, creds.token_secret)
    if not hmac.compare_digest(expected, params["oauth_signature"]):
        return None
    nonce = (params["oauth_nonce"], timestamp)
    if nonce in state._nonces:  # a replayed request
        return None
    state._nonces.add(nonce)
    return creds


# Rate limits -------------------------------------------------------------------------------


def rate_headers(state: State, creds: Credentials, now: float) -> dict[str, str]:
    """x-rate-limit-* for the user's 15-minute window, x-app-limit-24hour-* for the app."""
    user = [t for t, c in state._sent if c.token == creds.token and now - t < USER_WINDOW]
    app = [
        t for t, c in state._sent if c.consumer_key == creds.consumer_key and now - t < APP_WINDOW
    ]
    return {
        "x-rate-limit-limit": str(state.user_cap_15min),
        "x-rate-limit-remaining": str(max(0, state.user_cap_15min - len(user))),
        "x-rate-limit-reset": str(int((min(user) if user else now) + USER_WINDOW)),
        "x-app-limit-24hour-limit": str(state.app_cap_24h),
        "x-app-limit-24hour-remaining": str(max(0, state.app_cap_24h - len(app))),
        "x-app-limit-24hour-reset": str(int((min(app) if app else now) + APP_WINDOW)),
    }


def _spent(headers: dict[str, str]) -> bool:
    return (
        headers["x-rate-limit-remaining"] == "0" or headers["x-app-limit-24hour-remaining"] == "0"
    )


def _any_rate_headers(state: State, now: float) -> dict[str, str]:
    if not state.credentials:
        return {}
    return rate_headers(state, state.credentials[0], now)


# Media -------------------------------------------------------------------------------------


def check_image(state: State, data: bytes) -> str | None:
    """Why X would refuse these bytes as an image, or None."""
    if not data:
        return "media is required"
    if len(data) > state.max_image_bytes:
        return f"File size exceeds {state.max_image_bytes} bytes"
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            image.verify()
    except Exception:
        return "media type unrecognized."
    if image_format not in PILLOW_FORMATS:
        return f"media type {image_format} is not supported."
    return None


def media_view(media: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": media["id"],
        "media_key": f"3_{media['id']}",
        "expires_after_secs": 86400,
    }
    if "size" in media:
        view["size"] = media["size"]
    if media["state"] in ("pending", "in_progress", "failed"):
        view["processing_info"] = {"state": media["state"], "check_after_secs": 1}
    elif media["state"] == "succeeded" and media.get("processed"):
        view["processing_info"] = {"state": "succeeded", "progress_percent": 100}
    return view


async def _form_file(request: Request) -> tuple[dict[str, str], bytes | None]:
    """The multipart form's text fields and its `media` file (None if absent)."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    upload = form.get("media")
    data = await upload.read() if isinstance(upload, UploadFile) else None
    return fields, data


# The app -----------------------------------------------------------------------------------


def create_app(state: State) -> Starlette:
    async def fault_for(request: Request) -> tuple[Response | None, XFault | None]:
        """Apply the first queued fault matching this call: (error answer, fault)."""
        path, method = request.url.path, request.method
        fault = next(
            (
                f
                for f in state.faults
                if method in f.methods and any(path.startswith(p) for p in f.paths)
            ),
            None,
        )
        if fault is None:
            return None, None
        state.faults.remove(fault)
        if fault.hang:
            await asyncio.sleep(fault.hang)
        if not fault.status:
            return None, fault
        headers = _any_rate_headers(state, time.time()) if fault.status == 429 else {}
        detail = fault.detail or TITLES.get(fault.status, "Error")
        return _error(fault.status, detail, fault.title, **headers), fault

    async def authenticated(request: Request) -> tuple[Credentials | None, Response | None]:
        state.calls.append((request.method, request.url.path))
        # Read the whole request first, as X does before it works on it: a hang after this
        # still makes the post even if the client has given up and hung up.
        await request.body()
        faulted, fault = await fault_for(request)
        if faulted is not None:
            return None, faulted
        creds = verify_oauth(state, request)
        if creds is None:
            return None, _unauthorized()
        request.state.fault = fault
        return creds, None

    def finish(request: Request, response: JSONResponse) -> Response:
        fault: XFault | None = getattr(request.state, "fault", None)
        if fault is not None and fault.drop:
            return _CutShort(response.body, response.status_code, dict(response.headers))
        return response

    async def create_tweet(request: Request) -> Response:
        span = [time.time(), 0.0]
        state.publishing.append(span)
        try:
            return await _create_tweet(request)
        finally:
            span[1] = time.time()

    async def _create_tweet(request: Request) -> Response:
        creds, refused = await authenticated(request)
        if creds is None:
            return refused or _unauthorized()
        now = time.time()
        headers = rate_headers(state, creds, now)
        if _spent(headers):
            return _error(429, "Too Many Requests", **headers)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "Request body is not valid JSON", "Invalid Request")
        if not isinstance(body, dict):
            return _error(400, "Request body must be a JSON object", "Invalid Request")
        outcome = _validate_tweet(state, body)
        if isinstance(outcome, Response):
            return outcome
        text, media_ids = outcome
        if any(p["text"] == text for p in state.live_posts() if p["token"] == creds.token):
            return _error(403, DUPLICATE)
        tweet_id = state.next_id()
        state._sent.append((now, creds))
        state.posts.append(
            {
                "id": tweet_id,
                "text": text,
                "media_ids": media_ids,
                "weighted_length": parse_tweet(text).weightedLength,
                "deleted": False,
                "token": creds.token,
                "created_at": now,
            }
        )
        data = {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}
        answer = JSONResponse({"data": data}, 201, rate_headers(state, creds, now))
        return finish(request, answer)

    async def delete_tweet(request: Request) -> Response:
        creds, refused = await authenticated(request)
        if creds is None:
            return refused or _unauthorized()
        tweet_id = request.path_params["tweet_id"]
        post = next((p for p in state.live_posts() if p["id"] == tweet_id), None)
        if post is None:
            return _error(404, f"Could not find tweet with id: [{tweet_id}].")
        if post["token"] != creds.token:
            return _error(403, "You are not allowed to delete a Tweet that you do not own.")
        post["deleted"] = True
        state.deleted.append(tweet_id)
        return finish(request, JSONResponse({"data": {"deleted": True}}))

    async def users_me(request: Request) -> Response:
        creds, refused = await authenticated(request)
        if creds is None:
            return refused or _unauthorized()
        user = {"id": user_id(creds), "name": "Sample Times", "username": "sampletimes"}
        return finish(request, JSONResponse({"data": user}))

    async def users_tweets(request: Request) -> Response:
        creds, refused = await authenticated(request)
        if creds is None:
            return refused or _unauthorized()
        state.reads += 1
        params = request.query_params
        wanted = request.path_params["user_id"]
        count = params.get("max_results", "10")
        if not count.isdigit() or not 5 <= int(count) <= 100:
            return _invalid(
                "The `max_results` query parameter value is not between 5 and 100",
                "max_results",
                count,
            )
        since = _iso_time(params.get("start_time"))
        if params.get("start_time") and since is None:
            return _invalid("Invalid start_time", "start_time", params.get("start_time"))
        owned = [
            p
            for p in reversed(state.live_posts())
            if user_id_of_token(state, p["token"]) == wanted and p["created_at"] >= (since or 0)
        ][: int(count)]
        fields = set(params.get("tweet.fields", "").split(","))
        data = [tweet_view(p, fields) for p in owned]
        meta: dict[str, Any] = {"result_count": len(data)}
        if data:
            meta.update(newest_id=data[0]["id"], oldest_id=data[-1]["id"])
        body: dict[str, Any] = {"meta": meta}
        if data:
            body["data"] = data
        return finish(request, JSONResponse(body))

    async def upload_simple(request: Request) -> Response:
        creds, refused = await authenticated(request)
        if creds is None:
            return refused or _unauthorized()
        if "multipart/form-data" not in request.headers.get("content-type", ""):
            return _error(400, "media must be sent as multipart/form-data", "Invalid Request")
        fields, data = await _form_file(request)
        if "command" in fields or "command" in request.query_params:
            # The command= form was retired for the dedicated endpoints in 2025.
            return _invalid("command is not a valid parameter", "command", fields.get("command"))
        category = fields.get("media_category", "")
        if category not in IMAGE_CATEGORIES:
            return _invalid("media_category is missing or invalid", "media_category", category)
        if data is None:
            return _invalid("media is required", "media", None)
        reason = check_image(state, data)
        if reason:
            return _error(400, reason, "Invalid Request")
        media_id = state.next_id()
        state.media[media_id] = {
            "id": media_id,
            "kind": "simple",
            "size": len(data),
            "state": "succeeded",
            "owner": creds.token,
        }
        return finish(request, JSONResponse({"data": media_view(state.media[media_id])}))

    async def upload_initialize(request: Request) -> Response:
        creds, refused = await authenticated(request)
        if creds is None:
            return refused or _unauthorized()
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, "Request body must be a JSON object", "Invalid Request")
        media_type = str(body.get("media_type", ""))
        total = body.get("total_bytes")
        if media_type not in IMAGE_TYPES:
            return _invalid("media_type is not supported", "media_type", media_type)
        if not isinstance(total, int) or not 0 < total <= state.max_image_bytes:
            return _invalid("total_bytes is missing or too large", "total_bytes", total)
        if body.get("media_category") not in IMAGE_CATEGORIES:
            return _invalid(
                "media_category is invalid", "media_category", body.get("media_category")
            )
        media_id = state.next_id()
        state.media[media_id] = {
            "id": media_id,
            "kind": "chunked",
            "state": "initialized",
            "total": total,
            "chunks": {},
            "status_polls": 0,
            "owner": creds.token,
        }
        return finish(request, JSONResponse({"data": media_view(state.media[media_id])}))

    async def upload_append(request: Request) -> Response:
        creds, refused = await authenticated(request)
        if creds is None:
            return refused or _unauthorized()
        media = state.media.get(request.path_params["media_id"])
        if media is None or media["state"] != "initialized" or media["owner"] != creds.token:
            return _invalid("Invalid media_id", "id", request.path_params["media_id"])
        fields, data = await _form_file(request)
        index = fields.get("segment_index", "")
        if not index.isdigit() or int(index) > 999:
            return _invalid("segment_index must be 0 to 999", "segment_index", index)
        if not data:
            return _invalid("media is required", "media", None)
        media["chunks"][int(index)] = data
        return finish(request, JSONResponse({"data": {"expires_at": int(time.time()) + 86400}}))

    async def upload_finalize(request: Request) -> Response:
        creds, refused = await authenticated(request)
        if creds is None:
            return refused or _unauthorized()
        media = state.media.get(request.path_params["media_id"])
        if media is None or media["state"] != "initialized" or media["owner"] != creds.token:
            return _invalid("Invalid media_id", "id", request.path_params["media_id"])
        chunks = media["chunks"]
        if sorted(chunks) != list(range(len(chunks))):
            return _error(
                400, "Segments are missing: upload every segment_index", "Invalid Request"
            )
        blob = b"".join(chunks[i] for i in sorted(chunks))
        if len(blob) != media["total"]:
            return _error(400, "File size mismatch with total_bytes", "Invalid Request")
        reason = check_image(state, blob)
        if reason:
            media["state"] = "failed"
            return _error(400, reason, "Invalid Request")
        media.update(size=len(blob), polls=state.processing_polls, processed=True)
        media["state"] = "in_progress" if state.processing_polls > 0 else "succeeded"
        return finish(request, JSONResponse({"data": media_view(media)}))

    async def upload_status(request: Request) -> Response:
        creds, refused = await authenticated(request)
        if creds is None:
            return refused or _unauthorized()
        params = request.query_params
        media = state.media.get(params.get("media_id", ""))
        if params.get("command") != "STATUS" or media is None:
            return _invalid("Invalid media_id", "media_id", params.get("media_id"))
        media["status_polls"] = media.get("status_polls", 0) + 1
        if media["state"] == "in_progress":
            media["polls"] -= 1
            if media["polls"] <= 0:
                media["state"] = "succeeded"
        return finish(request, JSONResponse({"data": media_view(media)}))

    async def recorded(_: Request) -> Response:
        return JSONResponse(state.posts)

    return Starlette(
        routes=[
            Route("/2/tweets", create_tweet, methods=["POST"]),
            Route("/2/tweets/{tweet_id}", delete_tweet, methods=["DELETE"]),
            Route("/2/users/me", users_me, methods=["GET"]),
            Route("/2/users/{user_id}/tweets", users_tweets, methods=["GET"]),
            Route("/2/media/upload", upload_simple, methods=["POST"]),
            Route("/2/media/upload", upload_status, methods=["GET"]),
            Route("/2/media/upload/initialize", upload_initialize, methods=["POST"]),
            Route("/2/media/upload/{media_id}/append", upload_append, methods=["POST"]),
            Route("/2/media/upload/{media_id}/finalize", upload_finalize, methods=["POST"]),
            Route("/_standin/posts", recorded),
        ]
    )


def user_id(creds: Credentials) -> str:
    """The numeric id of the user an access token acts for (stable per token)."""
    return str(
        1_500_000_000_000_000_000 + int(hashlib.sha256(creds.token.encode()).hexdigest()[:8], 16)
    )


def user_id_of_token(state: State, token: str) -> str | None:
    creds = next((c for c in state.credentials if c.token == token), None)
    return user_id(creds) if creds else None


def _iso_time(value: str | None) -> float | None:
    """X's start_time: ISO 8601 `YYYY-MM-DDTHH:mm:ssZ` (fractions allowed)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def tweet_view(post: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    """A post as X lists it: every URL in the text is a t.co link, the original in entities."""
    text, urls = post["text"], []
    for match in list(_URL.finditer(post["text"])):
        short = "https://t.co/" + hashlib.sha256(match.group().encode()).hexdigest()[:10]
        urls.append({"url": short, "expanded_url": match.group(), "display_url": match.group()})
        text = text.replace(match.group(), short, 1)
    for entity in urls:
        entity["start"] = text.find(entity["url"])
        entity["end"] = entity["start"] + len(entity["url"])
    view: dict[str, Any] = {
        "id": post["id"],
        "text": text,
        "edit_history_tweet_ids": [post["id"]],
    }
    if "created_at" in fields:
        stamp = datetime.fromtimestamp(post["created_at"], UTC)
        view["created_at"] = stamp.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if "entities" in fields and urls:
        view["entities"] = {"urls": urls}
    return view


def _validate_tweet(state: State, body: dict[str, Any]) -> tuple[str, list[str]] | Response:
    """(text, media ids) of a POST /2/tweets body, or X's 400 for it."""
    text = body.get("text", "")
    if not isinstance(text, str):
        return _invalid("text must be a string", "text", text)
    media = body.get("media") or {}
    media_ids = media.get("media_ids") if isinstance(media, dict) else None
    media_ids = media_ids or []
    if not isinstance(media_ids, list) or len(media_ids) > 4:
        return _invalid(
            "media.media_ids must be a list of at most 4 ids", "media.media_ids", media_ids
        )
    for media_id in media_ids:
        if not isinstance(media_id, str) or not MEDIA_ID.match(media_id):
            return _invalid(
                "media.media_ids must be strings of digits", "media.media_ids", media_id
            )
        record = state.media.get(media_id)
        if record is None or record["state"] != "succeeded":
            return _invalid("Your media IDs are invalid.", "media.media_ids", media_id)
    if not text.strip() and not media_ids:
        return _error(400, "Post text or media is required", "Invalid Request")
    parsed = parse_tweet(text)
    if parsed.weightedLength > 280:
        return _error(400, TOO_LONG)
    if text and not parsed.valid:
        return _error(400, "Your Tweet text has invalid characters.", "Invalid Request")
    return text, [str(m) for m in media_ids]


# Contract harness --------------------------------------------------------------------------

_URL = re.compile(r"https?://[^\s<>\"]+")
_CONTRACT_ENV = {
    "X_KEY": "contract-ck",
    "X_SECRET": "contract-cs-SECRET",
    "X_TOKEN": "contract-at",
    "X_TOKEN_SECRET": "contract-ats-SECRET",
}


class XHarness(Harness):
    """The X stand-in for tests/test_contract.py (see standins/contract.py)."""

    platform = "x"
    TIMEOUT = 1.0

    def __init__(self) -> None:
        self.state = State()
        e = _CONTRACT_ENV
        self.state.allow(Credentials(e["X_KEY"], e["X_SECRET"], e["X_TOKEN"], e["X_TOKEN_SECRET"]))

    def app(self) -> ASGIApp:
        return create_app(self.state)

    def target(self) -> dict[str, Any]:
        assert self.server is not None, "start() first"
        return {
            "name": "x-contract",
            "platform": "x",
            "api_base": self.server.url,
            "upload_base": self.server.url,
            "api_key": {"env": "X_KEY"},
            "api_secret": {"env": "X_SECRET"},
            "access_token": {"env": "X_TOKEN"},
            "access_token_secret": {"env": "X_TOKEN_SECRET"},
            "timeout": self.TIMEOUT,
            # A resend refused as a duplicate finds the first post's id (a billed read).
            "read_back": True,
        }

    def env(self) -> dict[str, str]:
        return dict(_CONTRACT_ENV)

    def published(self) -> list[Published]:
        # X makes every URL in a post a link.
        return [
            Published(p["id"], p["text"], tuple(_URL.findall(p["text"])), p["deleted"])
            for p in self.state.posts
        ]

    async def arm(self, fault: Fault) -> float | None:
        match fault:
            case Fault.AUTH:
                self.state.revoke_all()
            case Fault.RATE_LIMIT:
                # The user's 15-minute window is spent: X answers 429 with a reset a window away.
                self.state.user_cap_15min = 0
                return float(USER_WINDOW)
            case Fault.REFUSED:
                assert self.server is not None
                await close_port(self.server)
            case Fault.TIMEOUT_AFTER_SEND:
                self.state.inject(XFault(status=0, hang=self.TIMEOUT + 1))
        return None


HARNESS = XHarness
