"""A stand-in for the Threads API parts newsbot uses, with Threads' rules and Graph-style errors.

- POST /{version}/{user}/threads: a container (media_type TEXT with text and an optional
  link_attachment, or IMAGE with image_url, which the stand-in downloads like Threads does);
  text over 500 characters (emoji counted by their UTF-8 bytes) or more than 5 links refused.
- GET /{version}/{container}?fields=status: IN_PROGRESS for a few polls, then FINISHED (or
  ERROR with error_message for an image it could not use).
- POST /{version}/{user}/threads_publish: only a FINISHED container; at most `quota_total`
  posts in 24 hours. GET /{version}/{user}/threads_publishing_limit reports the usage.
- GET /{version}/{user}/threads: the user's posts newest first (fields id, permalink, text,
  timestamp, link_attachment_url; `limit`, at most 100), what a read-back looks at.
- DELETE /{version}/{media}; GET /{version}/{user}.
- Errors: {"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}; a token
  check on every call; queued faults (standins.graph.GraphFault), `after_commit` for a publish
  whose answer is lost after the post was made.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import regex
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from standins.contract import MAX_TIMEOUT, Fault, Harness, Published
from standins.graph import GraphFault, graph_error
from standins.server import download

TEXT_LIMIT = 500
LINK_LIMIT = 5
_URL = re.compile(r"https?://[^\s]+", re.IGNORECASE)
_EMOJI = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}")


@dataclass
class ThreadsFault(GraphFault):
    #: For threads_publish: publish first, then hang / fail (the post went out).
    after_commit: bool = False


@dataclass
class State:
    tokens: set[str] = field(default_factory=set)
    user_id: str = "27000000000000001"
    quota_total: int = 250
    in_progress_polls: int = 1
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    posts: dict[str, dict[str, Any]] = field(default_factory=dict)
    published_at: list[float] = field(default_factory=list)
    faults: list[GraphFault] = field(default_factory=list)
    quota_reads: int = 0
    #: (start, end) wall-clock times of every threads_publish request (end 0.0 while open).
    publishing: list[list[float]] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(18_000_000_000_000_001))

    def inject(self, *faults: GraphFault) -> None:
        self.faults.extend(faults)

    def live_posts(self) -> list[dict[str, Any]]:
        return [p for p in self.posts.values() if not p["deleted"]]

    def usage(self) -> int:
        return len([t for t in self.published_at if time.time() - t < 86400])


def text_length(text: str) -> int:
    """Threads' count: characters, each emoji as its UTF-8 bytes."""
    return sum(
        len(g.encode("utf-8")) if _EMOJI.search(g) else len(g) for g in regex.findall(r"\X", text)
    )


def link_count(text: str, attachment: str | None) -> int:
    found = {m.rstrip(".,;:!?)»") for m in _URL.findall(text)}
    if attachment:
        found.add(attachment)
    return len(found)


async def image_problem(url: str) -> str | None:
    """What Threads would say about image_url (it downloads the image itself)."""
    try:
        response = await download(url)
    except httpx.HTTPError:
        return "FAILED_DOWNLOADING_IMAGE"
    if response.status_code != 200:
        return "FAILED_DOWNLOADING_IMAGE"
    try:
        with Image.open(io.BytesIO(response.content)) as image:
            kind = image.format
    except (UnidentifiedImageError, OSError):
        return "UNSUPPORTED_IMAGE_FORMAT"
    if kind not in ("JPEG", "PNG") or len(response.content) > 8 * 1024 * 1024:
        return "UNSUPPORTED_IMAGE_FORMAT"
    return None


def create_app(state: State) -> Starlette:
    async def guard(request: Request, data: dict[str, Any]) -> Response | None:
        header = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        token = header or str(data.get("access_token") or "")
        if token not in state.tokens:
            return graph_error(400, "Invalid OAuth access token - Cannot parse access token", 190)
        if state.faults and not getattr(state.faults[0], "after_commit", False):
            fault = state.faults.pop(0)
            if fault.hang:
                await asyncio.sleep(fault.hang)
            return graph_error(fault.status, fault.message, fault.code, fault.error_type)
        return None

    async def handle(request: Request) -> Response:
        data = dict(request.query_params)
        if request.method == "POST":
            data.update({k: str(v) for k, v in (await request.form()).items()})
        if (refused := await guard(request, data)) is not None:
            return refused
        node, edge = request.path_params["node"], request.path_params.get("edge")
        if node == state.user_id and edge == "threads" and request.method == "GET":
            return listing(data)
        if node == state.user_id and edge == "threads":
            return await create_container(data)
        if node == state.user_id and edge == "threads_publish":
            span = [time.time(), 0.0]
            state.publishing.append(span)
            try:
                return await publish(data)
            finally:
                span[1] = time.time()
        if node == state.user_id and edge == "threads_publishing_limit":
            state.quota_reads += 1
            config = {"quota_total": state.quota_total, "quota_duration": 86400}
            return JSONResponse({"data": [{"quota_usage": state.usage(), "config": config}]})
        if edge is None:
            return node_only(request.method, node)
        return graph_error(400, "Unsupported request", 100, "GraphMethodException", subcode=33)

    async def create_container(data: dict[str, Any]) -> Response:
        media_type = data.get("media_type")
        text = str(data.get("text") or "")
        attachment = data.get("link_attachment")
        if media_type not in ("TEXT", "IMAGE"):
            return graph_error(400, "Param media_type must be one of {TEXT, IMAGE}", 100)
        if media_type == "TEXT" and not text.strip():
            return graph_error(400, "Param text is required for media_type TEXT", 100)
        if attachment and media_type != "TEXT":
            return graph_error(400, "link_attachment is only available on TEXT posts", 100)
        if text_length(text) > TEXT_LIMIT:
            return graph_error(400, f"Param text must be at most {TEXT_LIMIT} characters", 100)
        if link_count(text, attachment) > LINK_LIMIT:
            return graph_error(
                400, "THREADS_API__LINK_LIMIT_EXCEEDED: a post may have at most 5 links", 100
            )
        problem = None
        if media_type == "IMAGE":
            problem = await image_problem(str(data.get("image_url") or ""))
        container_id = str(next(state._ids))
        state.containers[container_id] = {
            "id": container_id,
            "media_type": media_type,
            "text": text,
            "link_attachment": attachment,
            "image_url": data.get("image_url"),
            "status": "ERROR" if problem else "IN_PROGRESS",
            "error_message": problem,
            "polls": state.in_progress_polls,
        }
        return JSONResponse({"id": container_id})

    async def publish(data: dict[str, Any]) -> Response:
        container = state.containers.get(str(data.get("creation_id")))
        if container is None:
            return graph_error(400, "Invalid parameter", 100, subcode=4279009)
        if container["status"] != "FINISHED":
            return graph_error(400, "The media is not ready to be published", 24, subcode=4279009)
        if state.usage() >= state.quota_total:
            return graph_error(400, "Application request limit reached", 4)
        post_id = str(next(state._ids))
        container["status"] = "PUBLISHED"
        state.published_at.append(time.time())
        state.posts[post_id] = {
            **container,
            "id": post_id,
            "deleted": False,
            "published": time.time(),
        }
        if state.faults and getattr(state.faults[0], "after_commit", False):
            fault = state.faults.pop(0)
            await asyncio.sleep(fault.hang)
            return graph_error(fault.status, fault.message, fault.code, fault.error_type)
        return JSONResponse({"id": post_id})

    def listing(data: dict[str, Any]) -> Response:
        limit = str(data.get("limit") or "25")
        if not limit.isdigit() or not 0 < int(limit) <= 100:
            return graph_error(400, "Param limit must be a number from 1 to 100", 100)
        fields = set(str(data.get("fields") or "id").split(","))
        newest = sorted(state.live_posts(), key=lambda p: p["published"], reverse=True)
        items = []
        for post in newest[: int(limit)]:
            view = {
                "id": post["id"],
                "permalink": f"https://www.threads.net/@newsroom/post/{post['id']}",
                "text": post["text"],
                "timestamp": time.strftime(
                    "%Y-%m-%dT%H:%M:%S+0000", time.gmtime(post["published"])
                ),
                "link_attachment_url": post["link_attachment"],
            }
            items.append({k: v for k, v in view.items() if k in fields | {"id"} and v})
        return JSONResponse({"data": items})

    def node_only(method: str, node: str) -> Response:
        if method == "GET" and node in ("me", state.user_id):
            # /me is the token's own user (the stand-in has one user).
            return JSONResponse({"id": state.user_id, "username": "newsroom"})
        container = state.containers.get(node)
        if container is not None and method == "GET":
            if container["status"] == "IN_PROGRESS":
                container["polls"] -= 1
                if container["polls"] < 0:
                    container["status"] = "FINISHED"
            body = {"id": node, "status": container["status"]}
            if container["error_message"]:
                body["error_message"] = container["error_message"]
            return JSONResponse(body)
        post = state.posts.get(node)
        if post is None or post["deleted"]:
            return graph_error(
                404,
                f"Object with ID '{node}' does not exist",
                100,
                "GraphMethodException",
                subcode=33,
            )
        if method == "DELETE":
            post["deleted"] = True
            return JSONResponse({"success": True, "deleted_id": node})
        return JSONResponse({"id": node, "text": post["text"]})

    async def listed(_: Request) -> Response:
        return JSONResponse({"posts": list(state.posts.values())})

    return Starlette(
        routes=[
            Route("/_standin/posts", listed),
            Route("/{version}/{node}", handle, methods=["GET", "POST", "DELETE"]),
            Route("/{version}/{node}/{edge}", handle, methods=["GET", "POST"]),
        ]
    )


# The contract-test harness (standins/contract.py) ------------------------------------------

CONTRACT_TOKEN = "contract-threads-token"


class ThreadsHarness(Harness):
    platform: ClassVar[str] = "threads"

    def __init__(self) -> None:
        self.state = State(tokens={CONTRACT_TOKEN})

    def app(self) -> ASGIApp:
        return create_app(self.state)

    def target(self) -> dict[str, Any]:
        return {
            "name": "threads-contract",
            "platform": "threads",
            "api_base": self.server.url,
            "user_id": self.state.user_id,
            "access_token": {"env": "THREADS_TOKEN"},
            "poll_interval": 0.05,
            "poll_timeout": 5,
            "timeout": MAX_TIMEOUT,
        }

    def env(self) -> dict[str, str]:
        return {"THREADS_TOKEN": CONTRACT_TOKEN}

    def published(self) -> list[Published]:
        # The link attachment is a hyperlink; Threads also links URLs in the text.
        return [
            Published(
                p["id"],
                p["text"],
                tuple(u for u in (p["link_attachment"], *_CONTRACT_URL.findall(p["text"])) if u),
                p["deleted"],
            )
            for p in self.state.posts.values()
        ]

    async def arm(self, fault: Fault) -> float | None:
        match fault:
            case Fault.AUTH:
                self.state.tokens.clear()  # 400 OAuthException code 190
            case Fault.RATE_LIMIT:
                # Code 4 without usage headers: Graph clients wait their floor of 60 s.
                self.state.inject(GraphFault(code=4, status=400, message=RATE_MESSAGE))
                return 60.0
            case Fault.REFUSED:
                await self.server.stop()
            case Fault.TIMEOUT_AFTER_SEND:
                # Published first, the answer after the client has given up.
                self.state.inject(ThreadsFault(hang=MAX_TIMEOUT + 1.0, after_commit=True))
        return None


RATE_MESSAGE = "(#4) Application request limit reached"
_CONTRACT_URL = re.compile(r"https?://[^\s<>\"]*[^\s<>\".,;:!?)\]'»]")

HARNESS = ThreadsHarness
