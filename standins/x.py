"""A stand-in for the X API v2 (posts and media upload), for the demo and the tests.

It checks OAuth 1.0a HMAC-SHA1 signatures against the credentials it knows, the weighted
length (twitter-text), duplicate text, per-user 15-minute and per-app daily caps with the
x-rate-limit-* headers, and media ids; and answers with X's error bodies.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import itertools
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from oauthlib.oauth1.rfc5849 import signature
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twitter_text import parse_tweet

DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
TOO_LONG = (
    "Your Tweet text is too long. For more information on how Twitter determines text "
    "length see https://github.com/twitter/twitter-text."
)


@dataclass
class Credentials:
    consumer_key: str
    consumer_secret: str
    token: str
    token_secret: str


@dataclass
class XFault:
    status: int = 503
    hang: float = 0.0
    paths: tuple[str, ...] = ("/2/tweets",)


@dataclass
class State:
    credentials: list[Credentials] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[XFault] = field(default_factory=list)
    user_cap_15min: int = 100
    app_cap_24h: int = 1500
    max_image_bytes: int = 5 * 1024 * 1024
    processing_polls: int = 1  # STATUS calls a chunked upload stays "in_progress"
    _ids: itertools.count = field(
        default_factory=lambda: itertools.count(1_900_000_000_000_000_001)
    )
    _sent: list[tuple[float, str]] = field(default_factory=list)

    def allow(self, creds: Credentials) -> None:
        self.credentials.append(creds)

    def revoke_all(self) -> None:
        self.credentials.clear()

    def inject(self, *faults: XFault) -> None:
        self.faults.extend(faults)

    def live_posts(self) -> list[dict[str, Any]]:
        return [p for p in self.posts if not p["deleted"]]


def _problem(status: int, title: str, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"title": title, "detail": detail, "type": "about:blank", "status": status},
        status_code=status,
        headers=headers,
    )


def _oauth_params(header: str) -> dict[str, str]:
    if not header.startswith("OAuth "):
        return {}
    params = {}
    for part in header[6:].split(","):
        key, _, value = part.strip().partition("=")
        params[key] = unquote(value.strip('"'))
    return params


def verify_oauth(
    state: State, request: Request, body_params: list[tuple[str, str]]
) -> Credentials | None:
    """The credentials whose HMAC-SHA1 signature matches the request, if any."""
    params = _oauth_params(request.headers.get("authorization", ""))
    if params.get("oauth_signature_method") != "HMAC-SHA1":
        return None
    for creds in state.credentials:
        if (
            params.get("oauth_consumer_key") != creds.consumer_key
            or params.get("oauth_token") != creds.token
        ):
            continue
        uri = str(request.url)
        collected = signature.collect_parameters(
            uri_query=request.url.query,
            body=body_params,
            headers={"Authorization": request.headers["authorization"]},
            exclude_oauth_signature=True,
        )
        base = signature.signature_base_string(
            request.method.upper(),
            signature.base_string_uri(uri),
            signature.normalize_parameters(collected),
        )
        expected = _hmac_sha1(base, creds.consumer_secret, creds.token_secret)
        if signature.safe_string_equals(expected, params.get("oauth_signature", "")):
            return creds
    return None


def _hmac_sha1(base: str, consumer_secret: str, token_secret: str) -> str:
    """RFC 5849 section 3.4.2: key is the escaped secrets joined by '&'."""
    key = f"{signature.utils.escape(consumer_secret)}&{signature.utils.escape(token_secret)}"
    digest = hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _rate_headers(state: State, now: float) -> dict[str, str]:
    window = [t for t, _ in state._sent if now - t < 900]
    reset = int((min(window) if window else now) + 900)
    return {
        "x-rate-limit-limit": str(state.user_cap_15min),
        "x-rate-limit-remaining": str(max(0, state.user_cap_15min - len(window))),
        "x-rate-limit-reset": str(reset),
    }


def create_app(state: State) -> Starlette:
    async def fault_for(path: str) -> Response | None:
        fault = next((f for f in state.faults if any(path.startswith(p) for p in f.paths)), None)
        if fault is None:
            return None
        state.faults.remove(fault)
        if fault.hang:
            await asyncio.sleep(fault.hang)
        if fault.status == 429:
            return _problem(
                429, "Too Many Requests", "Too Many Requests", **_rate_headers(state, time.time())
            )
        return _problem(fault.status, "Service Unavailable", "Service Unavailable")

    async def create_tweet(request: Request) -> Response:
        if (faulted := await fault_for(request.url.path)) is not None:
            return faulted
        if verify_oauth(state, request, []) is None:
            return _problem(401, "Unauthorized", "Unauthorized")
        now = time.time()
        headers = _rate_headers(state, now)
        day = [t for t, _ in state._sent if now - t < 86400]
        if int(headers["x-rate-limit-remaining"]) <= 0 or len(day) >= state.app_cap_24h:
            return _problem(429, "Too Many Requests", "Too Many Requests", **headers)
        try:
            body = await request.json()
        except ValueError:
            return _problem(400, "Invalid Request", "Request body is not valid JSON")
        text = str(body.get("text") or "")
        parsed = parse_tweet(text)
        if not text.strip() or parsed.weightedLength > 280 or not parsed.valid:
            return _problem(
                400, "Bad Request", TOO_LONG if parsed.weightedLength > 280 else "Invalid text"
            )
        media_ids = [str(m) for m in (body.get("media") or {}).get("media_ids") or []]
        for media_id in media_ids:
            media = state.media.get(media_id)
            if media is None or media.get("state") != "succeeded":
                return _problem(400, "Invalid Request", f"Your media IDs are invalid: {media_id}")
        if any(p["text"] == text for p in state.live_posts()):
            return _problem(403, "Forbidden", DUPLICATE)
        tweet_id = str(next(state._ids))
        state._sent.append((now, tweet_id))
        state.posts.append(
            {
                "id": tweet_id,
                "text": text,
                "media_ids": media_ids,
                "weighted_length": parsed.weightedLength,
                "deleted": False,
            }
        )
        headers = _rate_headers(state, now)
        return JSONResponse(
            {"data": {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}},
            status_code=201,
            headers=headers,
        )

    async def delete_tweet(request: Request) -> Response:
        if verify_oauth(state, request, []) is None:
            return _problem(401, "Unauthorized", "Unauthorized")
        tweet_id = request.path_params["tweet_id"]
        for post in state.posts:
            if post["id"] == tweet_id and not post["deleted"]:
                post["deleted"] = True
                return JSONResponse({"data": {"deleted": True}})
        return _problem(404, "Not Found Error", f"Could not find tweet with id: [{tweet_id}].")

    async def media_upload(request: Request) -> Response:
        if (faulted := await fault_for(request.url.path)) is not None:
            return faulted
        if verify_oauth(state, request, []) is None:
            return _problem(401, "Unauthorized", "Unauthorized")
        params = dict(parse_qsl(request.url.query))
        command = params.get("command", "").upper()
        if command == "STATUS":
            return _status(params.get("media_id", ""))
        form = await request.form() if request.method == "POST" else None
        upload = form.get("media") if form is not None else None
        data = await upload.read() if upload is not None and hasattr(upload, "read") else b""
        if command == "INIT":
            media_id = str(next(state._ids))
            state.media[media_id] = {
                "id": media_id,
                "chunks": {},
                "state": "init",
                "total": int(params.get("total_bytes", "0")),
            }
            return JSONResponse({"data": _media_view(state.media[media_id])}, status_code=202)
        if command == "APPEND":
            media = state.media.get(params.get("media_id", ""))
            if media is None:
                return _problem(400, "Invalid Request", "Invalid media_id")
            media["chunks"][int(params.get("segment_index", "0"))] = data
            return Response(status_code=204)
        if command == "FINALIZE":
            media = state.media.get(params.get("media_id", ""))
            if media is None:
                return _problem(400, "Invalid Request", "Invalid media_id")
            blob = b"".join(media["chunks"][i] for i in sorted(media["chunks"]))
            problem = _check_image(state, blob)
            if problem:
                return _problem(400, "Invalid Request", problem)
            media.update(size=len(blob), state="in_progress", polls=state.processing_polls)
            return JSONResponse({"data": _media_view(media)})
        problem = _check_image(state, data)
        if problem:
            return _problem(400, "Invalid Request", problem)
        media_id = str(next(state._ids))
        state.media[media_id] = {"id": media_id, "size": len(data), "state": "succeeded"}
        return JSONResponse({"data": _media_view(state.media[media_id])})

    def _status(media_id: str) -> Response:
        media = state.media.get(media_id)
        if media is None:
            return _problem(400, "Invalid Request", "Invalid media_id")
        if media["state"] == "in_progress":
            media["polls"] -= 1
            if media["polls"] < 0:
                media["state"] = "succeeded"
        return JSONResponse({"data": _media_view(media)})

    async def recorded(_: Request) -> Response:
        return JSONResponse(state.posts)

    return Starlette(
        routes=[
            Route("/2/tweets", create_tweet, methods=["POST"]),
            Route("/2/tweets/{tweet_id}", delete_tweet, methods=["DELETE"]),
            Route("/2/media/upload", media_upload, methods=["GET", "POST"]),
            Route("/_standin/posts", recorded),
        ]
    )


def _media_view(media: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": media["id"],
        "media_key": f"3_{media['id']}",
        "expires_after_secs": 86400,
    }
    if "size" in media:
        view["size"] = media["size"]
    if media.get("state") in ("in_progress", "pending", "failed"):
        view["processing_info"] = {"state": media["state"], "check_after_secs": 1}
    elif media.get("state") == "succeeded" and "polls" in media:
        view["processing_info"] = {"state": "succeeded", "progress_percent": 100}
    return view


def _check_image(state: State, data: bytes) -> str | None:
    if not data:
        return "media is required"
    if len(data) > state.max_image_bytes:
        return f"File size exceeds {state.max_image_bytes} bytes"
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception:
        return "media type unrecognized"
    return None
