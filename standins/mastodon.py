"""A stand-in for a Mastodon instance: the parts newsbot uses, with an instance's real rules.

- GET /api/v2/instance: configuration.statuses (max_characters, characters_reserved_per_url,
  max_media_attachments) and media_attachments limits, from the State (500 by default).
- POST /api/v1/statuses: Bearer token; the status counted as Mastodon's StatusLengthValidator
  counts (grapheme clusters, each URL with a scheme as characters_reserved_per_url, a remote
  mention as its local part); 422 {"error": "Validation failed: Text character limit of N
  exceeded"}; media must be processed; an Idempotency-Key already used in the last hour answers
  the status made then, without posting again.
- POST /api/v2/media: 202 with url null while "processing"; GET /api/v1/media/:id answers 206
  until done, then 200 with the url. Size, type and alt-text length checked.
- GET/PUT/DELETE /api/v1/statuses/:id, GET /api/v1/accounts/verify_credentials.
- X-RateLimit-Limit/Remaining/Reset (ISO 8601) on every authenticated answer; 429
  {"error": "Too many requests"} once spent; 401 {"error": "The access token is invalid"}.
- Faults: a queued MastodonFault answers the next API call with its status and error, or
  hangs (after committing the status when `after_commit`, like a lost answer).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import regex
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from standins.contract import MAX_TIMEOUT, Fault, Harness, Published

IDEMPOTENCY_TTL = 3600.0
VISIBILITIES = {"public", "unlisted", "private", "direct"}
_URL = re.compile(r"https?://[^\s<>\"]*[^\s<>\".,;:!?)\]'»]", re.IGNORECASE)
_REMOTE_MENTION = re.compile(r"(?<![\w@])@(\w+)@[\w.\-]+\w")
IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


@dataclass
class MastodonFault:
    status: int = 503
    error: str = "Service Unavailable"
    #: Seconds to wait before answering (longer than the client's timeout: a lost answer).
    hang: float = 0.0
    #: For POST /api/v1/statuses: make the status first, then fault (the post went out).
    after_commit: bool = False
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class State:
    tokens: set[str] = field(default_factory=set)
    domain: str = "mastodon.example"
    max_characters: int = 500
    characters_reserved_per_url: int = 23
    max_media_attachments: int = 4
    description_limit: int = 1500
    image_size_limit: int = 16 * 1024 * 1024
    #: GET /api/v1/media/:id polls that still answer 206 (0: POST /api/v2/media answers 200).
    processing_polls: int = 2
    rate_limit: int = 300
    rate_window: float = 300.0
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, float]] = field(default_factory=dict)
    faults: list[MastodonFault] = field(default_factory=list)
    instance_reads: int = 0
    status_posts: int = 0  # POST /api/v1/statuses requests, replays included
    #: (start, end) wall-clock times of every POST /api/v1/statuses request, for the crash
    #: experiment (end 0.0 while it is still in progress).
    publishing: list[list[float]] = field(default_factory=list)
    _used: list[float] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(110_000_000_000_000_001))

    def inject(self, *faults: MastodonFault) -> None:
        self.faults.extend(faults)

    def live_statuses(self) -> list[dict[str, Any]]:
        return [s for s in self.statuses.values() if not s["deleted"]]

    def next_id(self) -> str:
        return str(next(self._ids))

    def rate_headers(self, now: float) -> dict[str, str]:
        self._used = [t for t in self._used if now - t < self.rate_window]
        reset = (self._used[0] if self._used else now) + self.rate_window
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_limit - len(self._used))),
            "X-RateLimit-Reset": datetime.fromtimestamp(reset, UTC).isoformat(
                timespec="milliseconds"
            ),
        }


def status_length(text: str, url_chars: int) -> int:
    """What Mastodon's StatusLengthValidator counts (an independent reading of its rules)."""
    countable = _URL.sub("x" * url_chars, text)
    countable = _REMOTE_MENTION.sub(lambda m: "@" + m.group(1), countable)
    return len(regex.findall(r"\X", countable))


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _image_kind(data: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return IMAGE_TYPES.get(image.format or "")
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def create_app(state: State) -> Starlette:
    def status_view(status: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": status["id"],
            "uri": f"https://{state.domain}/users/newsroom/statuses/{status['id']}",
            "url": f"https://{state.domain}/@newsroom/{status['id']}",
            "created_at": status["created_at"],
            "edited_at": status["edited_at"],
            "content": status["text"],
            "visibility": status["visibility"],
            "language": status["language"],
            "media_attachments": [media_view(state.media[m]) for m in status["media_ids"]],
        }

    def media_view(media: dict[str, Any]) -> dict[str, Any]:
        done = media["polls_left"] < 0
        return {
            "id": media["id"],
            "type": "image",
            "url": f"https://{state.domain}/media/{media['id']}.jpg" if done else None,
            "preview_url": f"https://{state.domain}/media/{media['id']}_small.jpg",
            "description": media["description"],
        }

    async def guard(request: Request) -> tuple[Response | None, dict[str, str]]:
        """Token, rate limit and injected faults: (refusal or None, rate headers)."""
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token not in state.tokens:
            return error(401, "The access token is invalid"), {}
        now = time.time()
        headers = state.rate_headers(now)
        if headers["X-RateLimit-Remaining"] == "0":
            return error(429, "Too many requests", headers), headers
        state._used.append(now)
        headers = state.rate_headers(now)
        if state.faults and not state.faults[0].after_commit:
            fault = state.faults.pop(0)
            if fault.hang:
                await asyncio.sleep(fault.hang)
            return error(fault.status, fault.error, {**headers, **fault.headers}), headers
        return None, headers

    async def instance(_: Request) -> Response:
        state.instance_reads += 1
        return JSONResponse(
            {
                "domain": state.domain,
                "title": "Stand-in instance",
                "version": "4.3.0",
                "configuration": {
                    "urls": {"streaming": f"wss://{state.domain}"},
                    "statuses": {
                        "max_characters": state.max_characters,
                        "max_media_attachments": state.max_media_attachments,
                        "characters_reserved_per_url": state.characters_reserved_per_url,
                    },
                    "media_attachments": {
                        "supported_mime_types": sorted(IMAGE_TYPES.values()),
                        "description_limit": state.description_limit,
                        "image_size_limit": state.image_size_limit,
                        "image_matrix_limit": 33177600,
                    },
                },
            }
        )

    async def verify_credentials(request: Request) -> Response:
        refused, headers = await guard(request)
        if refused is not None:
            return refused
        return JSONResponse(
            {"id": "1", "username": "newsroom", "acct": "newsroom"}, headers=headers
        )

    async def params(request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").startswith("application/json"):
            body = await request.json()
            return body if isinstance(body, dict) else {}
        form = await request.form()
        data: dict[str, Any] = {k: v for k, v in form.items() if not k.endswith("[]")}
        if "media_ids[]" in form:
            data["media_ids"] = form.getlist("media_ids[]")
        return data

    def validate(data: dict[str, Any]) -> tuple[str, list[str]] | Response:
        text = str(data.get("status") or "")
        media_ids = [str(m) for m in data.get("media_ids") or []]
        if not text.strip() and not media_ids:
            return error(422, "Validation failed: Text can't be blank")
        if status_length(text, state.characters_reserved_per_url) > state.max_characters:
            return error(
                422, f"Validation failed: Text character limit of {state.max_characters} exceeded"
            )
        if len(media_ids) > state.max_media_attachments:
            return error(422, "Validation failed: Media attachments are too many")
        for media_id in media_ids:
            media = state.media.get(media_id)
            if media is None:
                return error(422, "Validation failed: Media attachments are invalid")
            if media["polls_left"] >= 0:
                return error(
                    422,
                    "Cannot attach files that have not finished processing. Try again in a moment!",
                )
        return text, media_ids

    async def post_status(request: Request) -> Response:
        span = [time.time(), 0.0]
        state.publishing.append(span)
        try:
            return await _post_status(request)
        finally:
            span[1] = time.time()

    async def _post_status(request: Request) -> Response:
        state.status_posts += 1
        refused, headers = await guard(request)
        if refused is not None:
            return refused
        key = request.headers.get("idempotency-key")
        now = time.time()
        if key and key in state.idempotency and now - state.idempotency[key][1] < IDEMPOTENCY_TTL:
            # Mastodon answers a repeated key with the status it already made.
            return JSONResponse(
                status_view(state.statuses[state.idempotency[key][0]]), headers=headers
            )
        data = await params(request)
        checked = validate(data)
        if isinstance(checked, Response):
            return checked
        visibility = str(data.get("visibility") or "public")
        if visibility not in VISIBILITIES:
            return error(422, "Validation failed: Visibility is not included in the list")
        text, media_ids = checked
        status_id = state.next_id()
        state.statuses[status_id] = {
            "id": status_id,
            "text": text,
            "visibility": visibility,
            "language": data.get("language"),
            "media_ids": media_ids,
            "idempotency_key": key,
            "created_at": datetime.now(UTC).isoformat(),
            "edited_at": None,
            "edits": [],
            "deleted": False,
        }
        if key:
            state.idempotency[key] = (status_id, now)
        if state.faults and state.faults[0].after_commit:
            fault = state.faults.pop(0)
            await asyncio.sleep(fault.hang)
            return error(fault.status, fault.error, headers)
        return JSONResponse(status_view(state.statuses[status_id]), headers=headers)

    async def one_status(request: Request) -> Response:
        refused, headers = await guard(request)
        if refused is not None:
            return refused
        status = state.statuses.get(request.path_params["id"])
        if status is None or status["deleted"]:
            return error(404, "Record not found", headers)
        if request.method == "DELETE":
            status["deleted"] = True
            return JSONResponse({**status_view(status), "text": status["text"]}, headers=headers)
        if request.method == "PUT":
            data = await params(request)
            if "media_ids" not in data:
                data["media_ids"] = status["media_ids"]
            checked = validate(data)
            if isinstance(checked, Response):
                return checked
            status["edits"].append(status["text"])
            status["text"], status["media_ids"] = checked
            status["language"] = data.get("language") or status["language"]
            status["edited_at"] = datetime.now(UTC).isoformat()
        return JSONResponse(status_view(status), headers=headers)

    async def upload_media(request: Request) -> Response:
        refused, headers = await guard(request)
        if refused is not None:
            return refused
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return error(422, "Validation failed: File can't be blank")
        data = await upload.read()
        description = str(form.get("description") or "")
        if len(data) > state.image_size_limit:
            limit_mb = state.image_size_limit // (1024 * 1024)
            return error(422, f"Validation failed: File file size must be less than {limit_mb} MB")
        if _image_kind(data) is None:
            return error(
                422,
                "Validation failed: File has contents that are not what they are reported to be",
            )
        if len(description) > state.description_limit:
            return error(
                422,
                "Validation failed: Description is too long "
                f"(maximum is {state.description_limit} characters)",
            )
        media_id = state.next_id()
        state.media[media_id] = {
            "id": media_id,
            "bytes": len(data),
            "description": description,
            "polls_left": state.processing_polls - 1,
        }
        code = 202 if state.processing_polls > 0 else 200
        return JSONResponse(media_view(state.media[media_id]), status_code=code, headers=headers)

    async def get_media(request: Request) -> Response:
        refused, headers = await guard(request)
        if refused is not None:
            return refused
        media = state.media.get(request.path_params["id"])
        if media is None:
            return error(404, "Record not found", headers)
        if media["polls_left"] >= 0:
            media["polls_left"] -= 1
            return JSONResponse(media_view(media), status_code=206, headers=headers)
        return JSONResponse(media_view(media), headers=headers)

    async def recorded(_: Request) -> Response:
        return JSONResponse({"statuses": list(state.statuses.values())})

    return Starlette(
        routes=[
            Route("/_standin/statuses", recorded),
            Route("/api/v2/instance", instance),
            Route("/api/v1/accounts/verify_credentials", verify_credentials),
            Route("/api/v1/statuses", post_status, methods=["POST"]),
            Route("/api/v1/statuses/{id}", one_status, methods=["GET", "PUT", "DELETE"]),
            Route("/api/v2/media", upload_media, methods=["POST"]),
            Route("/api/v1/media/{id}", get_media),
        ]
    )


# The contract-test harness (standins/contract.py) ------------------------------------------

CONTRACT_TOKEN = "contract-mastodon-token"


class MastodonHarness(Harness):
    platform: ClassVar[str] = "mastodon"

    def __init__(self) -> None:
        self.state = State(tokens={CONTRACT_TOKEN})

    def app(self) -> ASGIApp:
        return create_app(self.state)

    def target(self) -> dict[str, Any]:
        return {
            "name": "mastodon-contract",
            "platform": "mastodon",
            "api_base": self.server.url,
            "access_token": {"env": "MASTODON_TOKEN"},
            "timeout": MAX_TIMEOUT,
        }

    def env(self) -> dict[str, str]:
        return {"MASTODON_TOKEN": CONTRACT_TOKEN}

    def published(self) -> list[Published]:
        # Mastodon links every URL with a scheme in a status.
        return [
            Published(s["id"], s["text"], tuple(_URL.findall(s["text"])), s["deleted"])
            for s in self.state.statuses.values()
        ]

    async def arm(self, fault: Fault) -> float | None:
        match fault:
            case Fault.AUTH:
                self.state.tokens.clear()  # 401 {"error": "The access token is invalid"}
            case Fault.RATE_LIMIT:
                wait = 240.0
                reset = datetime.fromtimestamp(time.time() + wait, UTC)
                headers = {
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": reset.isoformat(timespec="milliseconds"),
                }
                self.state.inject(MastodonFault(429, "Too many requests", headers=headers))
                return wait
            case Fault.REFUSED:
                await self.server.stop()
            case Fault.TIMEOUT_AFTER_SEND:
                # The status is made, the answer comes after the client has given up.
                self.state.inject(MastodonFault(hang=MAX_TIMEOUT + 1.0, after_commit=True))
        return None


HARNESS = MastodonHarness
