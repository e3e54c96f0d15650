"""A stand-in for the Meta Graph API parts newsbot uses: Facebook Page posts (feed, photos,
edit, delete) and Instagram content publishing (containers with an IN_PROGRESS phase, status,
media_publish, the publishing limit, comments). Real error shapes, token checks, rate limits."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from standins.contract import Fault, Harness, Published, close_port
from standins.server import LoopbackServer, download


@dataclass
class GraphFault:
    code: int = 2
    status: int = 500
    message: str = "An unexpected error has occurred. Please retry your request later."
    error_type: str = "OAuthException"
    hang: float = 0.0
    usage: dict[str, Any] | None = None  # X-Business-Use-Case-Usage body to send
    #: Only calls to these edges meet the fault (e.g. ("feed", "media_publish")); None: any.
    edges: tuple[str, ...] | None = None
    #: The request is carried out first (the post is made), then the answer is lost: the
    #: fault's hang and error replace it. The case only a read-back can settle.
    after: bool = False


@dataclass
class State:
    tokens: set[str] = field(default_factory=set)
    expired_tokens: set[str] = field(default_factory=set)
    page_id: str = "1000001"
    ig_user_id: str = "17841400000000001"
    posts: dict[str, dict[str, Any]] = field(default_factory=dict)
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: list[dict[str, Any]] = field(default_factory=list)
    faults: list[GraphFault] = field(default_factory=list)
    in_progress_polls: int = 2
    quota_total: int = 50
    published_at: list[float] = field(default_factory=list)
    page_name: str = "Sample Times"
    #: (start, end) wall-clock times of every Page post request (POST feed/photos), for the
    #: crash experiment (end 0.0 while it is still in progress).
    publishing: list[list[float]] = field(default_factory=list)
    #: The same for every Instagram POST media_publish request.
    media_publishing: list[list[float]] = field(default_factory=list)
    #: Permissions of the page token (debug_token scopes); posting needs pages_manage_posts.
    scopes: list[str] = field(
        default_factory=lambda: [
            "pages_show_list",
            "pages_read_engagement",
            "pages_manage_posts",
            "instagram_basic",
            "instagram_content_publish",
        ]
    )
    _ids: itertools.count = field(default_factory=lambda: itertools.count(5_000_000_001))

    def inject(self, *faults: GraphFault) -> None:
        self.faults.extend(faults)

    def live_posts(self) -> list[dict[str, Any]]:
        return [p for p in self.posts.values() if not p["deleted"]]


def _graph_time(at: float) -> str:
    """Graph API timestamps: ISO 8601 in UTC with a +0000 offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(at))


def graph_error(
    status: int,
    message: str,
    code: int,
    error_type: str = "OAuthException",
    subcode: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {
        "message": message,
        "type": error_type,
        "code": code,
        "fbtrace_id": "AbCdEfGhIjK",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return JSONResponse({"error": error}, status_code=status, headers=headers)


async def fetch_problem(url: str) -> str | None:
    """Instagram downloads image_url itself; what it would refuse."""
    if not url.startswith(("http://", "https://")):
        return "image_url is not a URL"
    try:
        response = await download(url)
    except httpx.HTTPError:
        return "the image could not be downloaded"
    if response.status_code != 200:
        return f"the image URL answered {response.status_code}"
    data = response.content
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError):
        return "not an image"
    if kind != "JPEG":
        return "only JPEG images are supported"
    if not 0.795 <= width / height <= 1.915:
        return "the aspect ratio is not supported"
    if not 320 <= width <= 1440 or len(data) > 8 * 1024 * 1024:
        return "the image size is not supported"
    return None


class _Graph:
    def __init__(self, state: State) -> None:
        self.state = state

    async def guard(self, request: Request, data: dict[str, Any]) -> Response | None:
        edge = request.path_params.get("edge")
        header = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        token = header or str(data.get("access_token") or "")
        if token in self.state.expired_tokens:
            return graph_error(
                400,
                "Error validating access token: Session has expired on Tuesday, "
                "25-Nov-25 03:00:00 PST.",
                190,
                subcode=463,
            )
        if token not in self.state.tokens:
            return graph_error(400, "Invalid OAuth access token - Cannot parse access token", 190)
        fault = self.fault_for(edge, after=False)
        if fault is not None:
            return await self.fail(fault)
        return None

    def fault_for(self, edge: str | None, *, after: bool) -> GraphFault | None:
        for fault in self.state.faults:
            if fault.after == after and (fault.edges is None or edge in fault.edges):
                self.state.faults.remove(fault)
                return fault
        return None

    async def fail(self, fault: GraphFault) -> Response:
        if fault.hang:
            await asyncio.sleep(fault.hang)
        headers = {}
        if fault.usage is not None:
            headers["X-Business-Use-Case-Usage"] = json.dumps(fault.usage)
        return graph_error(
            fault.status, fault.message, fault.code, fault.error_type, headers=headers
        )

    async def handle(self, request: Request) -> Response:
        spans = self.publishing_spans(request)
        if spans is None:
            return await self.answered(request)
        span = [time.time(), 0.0]
        spans.append(span)
        try:
            return await self.answered(request)
        finally:
            span[1] = time.time()

    def publishing_spans(self, request: Request) -> list[list[float]] | None:
        """Where a publishing request's window is recorded; None for any other request."""
        node, edge = request.path_params["node"], request.path_params.get("edge")
        state = self.state
        if request.method != "POST":
            return None
        if node == state.page_id and edge in ("feed", "photos"):
            return state.publishing
        if node == state.ig_user_id and edge == "media_publish":
            return state.media_publishing
        return None

    async def answered(self, request: Request) -> Response:
        answer = await self.answer(request)
        fault = self.fault_for(request.path_params.get("edge"), after=True)
        return answer if fault is None else await self.fail(fault)

    async def answer(self, request: Request) -> Response:
        data = dict(request.query_params)
        if request.method == "POST":
            data.update(dict(await request.form()))
        if (refused := await self.guard(request, data)) is not None:
            return refused
        node, edge = request.path_params["node"], request.path_params.get("edge")
        state = self.state
        if edge is None:
            return self.node_only(request.method, node, data)
        if node == state.page_id and edge in ("feed", "photos"):
            return self.page_post(edge, data)
        if request.method == "GET" and edge in ("posts", "media"):
            listed = self.recent(node, edge, data)
            if listed is not None:
                return listed
        if node == state.ig_user_id and edge == "media":
            return await self.create_container(data)
        if node == state.ig_user_id and edge == "media_publish":
            return self.publish(data)
        if node == state.ig_user_id and edge == "content_publishing_limit":
            window = [t for t in state.published_at if time.time() - t < 86400]
            config = {"quota_total": state.quota_total, "quota_duration": 86400}
            return JSONResponse({"data": [{"quota_usage": len(window), "config": config}]})
        if edge == "comments" and node in state.media:
            comment_id = str(next(state._ids))
            state.comments.append({"id": comment_id, "media": node, "message": data.get("message")})
            return JSONResponse({"id": comment_id})
        return graph_error(
            400,
            f"Unsupported request - method type: {request.method.lower()}",
            100,
            "GraphMethodException",
            subcode=33,
        )

    def recent(self, node: str, edge: str, data: dict[str, Any]) -> Response | None:
        """GET /{page-id}/posts and /{ig-user-id}/media: newest first, only the fields asked
        for (Graph returns just `id` without `fields`), at most `limit` (default 25)."""
        state = self.state
        if node == state.page_id and edge == "posts":
            items = [
                {
                    "id": p["id"],
                    "message": p["message"],
                    "link": p["link"],
                    "permalink_url": f"https://www.facebook.com/{p['id']}",
                    "created_time": _graph_time(p["created"]),
                }
                for p in state.live_posts()
            ]
        elif node == state.ig_user_id and edge == "media":
            items = [
                {
                    "id": m["id"],
                    "caption": m["caption"],
                    "permalink": f"https://www.instagram.com/p/{m['id']}/",
                    "timestamp": _graph_time(m["created"]),
                }
                for m in state.media.values()
            ]
        else:
            return None
        fields = {"id", *str(data.get("fields") or "").split(",")}
        try:
            limit = max(1, min(100, int(data.get("limit") or 25)))
        except ValueError:
            return graph_error(400, "(#100) Param limit must be an integer", 100)
        items.sort(key=lambda item: item["created_time" if "created_time" in item else "timestamp"])
        newest = [{k: v for k, v in item.items() if k in fields} for item in reversed(items)]
        return JSONResponse({"data": newest[:limit]})

    def page_post(self, edge: str, data: dict[str, Any]) -> Response:
        state = self.state
        if "pages_manage_posts" not in state.scopes:
            return graph_error(
                403,
                "(#200) If posting to a page, requires both pages_read_engagement and"
                " pages_manage_posts as an admin with sufficient administrative permission",
                200,
            )
        message = str(data.get("message") or data.get("caption") or "")
        if edge == "feed" and not (message or data.get("link")):
            return graph_error(400, "(#100) Missing message or attachment", 100)
        now = time.time()
        if any(p["message"] == message and now - p["created"] < 3600 for p in state.live_posts()):
            return graph_error(400, "(#506) Duplicate status message", 506)
        post_id = f"{state.page_id}_{next(state._ids)}"
        state.posts[post_id] = {
            "id": post_id,
            "kind": edge,
            "message": message,
            "link": data.get("link"),
            "url": data.get("url"),
            "created": now,
            "edited": False,
            "deleted": False,
        }
        if edge == "photos":
            return JSONResponse({"id": str(next(state._ids)), "post_id": post_id})
        return JSONResponse({"id": post_id})

    async def create_container(self, data: dict[str, Any]) -> Response:
        caption = str(data.get("caption") or "")
        if len(caption) > 2200:
            return graph_error(400, "The caption is too long.", 100, subcode=2207010)
        mentions = [w for w in caption.split() if w.startswith("@")]
        if caption.count("#") > 30 or len(mentions) > 20:
            return graph_error(400, "Too many tags or mentions in the caption.", 100)
        problem = await fetch_problem(str(data.get("image_url") or ""))
        container_id = str(next(self.state._ids))
        self.state.containers[container_id] = {
            "id": container_id,
            "caption": caption,
            "image_url": data.get("image_url"),
            "status": "ERROR" if problem else "IN_PROGRESS",
            "problem": problem,
            "polls": self.state.in_progress_polls,
        }
        return JSONResponse({"id": container_id})

    def publish(self, data: dict[str, Any]) -> Response:
        state = self.state
        container = state.containers.get(str(data.get("creation_id")))
        if container is None:
            return graph_error(400, "Invalid parameter", 100, subcode=2207008)
        if container["status"] != "FINISHED":
            return graph_error(400, "Media ID is not available", 9007, subcode=2207027)
        window = [t for t in state.published_at if time.time() - t < 86400]
        if len(window) >= state.quota_total:
            return graph_error(400, "Application request limit reached", 9, subcode=2207042)
        media_id = str(next(state._ids))
        container["status"] = "PUBLISHED"
        state.published_at.append(time.time())
        state.media[media_id] = {
            "id": media_id,
            "caption": container["caption"],
            "image_url": container["image_url"],
            "created": state.published_at[-1],
        }
        return JSONResponse({"id": media_id})

    def node_only(self, method: str, node: str, data: dict[str, Any]) -> Response:
        if method == "GET" and node == "me":
            # A Page access token's /me is the page itself.
            return JSONResponse({"id": self.state.page_id, "name": self.state.page_name})
        if method == "GET" and node == "debug_token":
            return JSONResponse(
                {
                    "data": {
                        "app_id": "1000000000000001",
                        "type": "PAGE",
                        "application": "newsbot",
                        "expires_at": 0,
                        "is_valid": data.get("input_token") in self.state.tokens,
                        "scopes": list(self.state.scopes),
                        "profile_id": self.state.page_id,
                        "user_id": "1000000000000002",
                    }
                }
            )
        if method == "GET" and node == self.state.page_id:
            return JSONResponse({"id": node, "name": self.state.page_name})
        if method == "GET" and node in (self.state.page_id, self.state.ig_user_id):
            return JSONResponse({"id": node})
        container = self.state.containers.get(node)
        if container is not None:
            if container["status"] == "IN_PROGRESS":
                container["polls"] -= 1
                if container["polls"] < 0:
                    container["status"] = "FINISHED"
            return JSONResponse(
                {
                    "id": node,
                    "status_code": container["status"],
                    "status": container["problem"] or container["status"],
                }
            )
        post = self.state.posts.get(node)
        if post is None or post["deleted"]:
            return graph_error(
                404,
                f"(#100) Object with ID '{node}' does not exist",
                100,
                "GraphMethodException",
                subcode=33,
            )
        if method == "DELETE":
            post["deleted"] = True
            return JSONResponse({"success": True})
        if method == "POST":
            post.update(message=str(data.get("message") or post["message"]), edited=True)
            return JSONResponse({"success": True})
        return JSONResponse({"id": node, "message": post["message"]})


def create_app(state: State) -> Starlette:
    graph = _Graph(state)

    async def listed(_: Request) -> Response:
        return JSONResponse(
            {"posts": list(state.posts.values()), "media": list(state.media.values())}
        )

    return Starlette(
        routes=[
            Route("/_standin/posts", listed),
            Route("/{version}/{node}", graph.handle, methods=["GET", "POST", "DELETE"]),
            Route("/{version}/{node}/{edge}", graph.handle, methods=["GET", "POST"]),
        ]
    )


# Contract harnesses (standins/facebook.py and standins/instagram.py name them HARNESS) -------

_CONTRACT_TOKEN = "EAAB-contract-SECRET-token"
_URL = re.compile(r"https?://[^\s<>\"]+")


class _GraphHarness(Harness):
    """The Graph stand-in for tests/test_contract.py (see standins/contract.py)."""

    TIMEOUT = 1.0
    #: The edges where a post is made: a hang there leaves the post's fate unknown.
    POST_EDGES: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.state = State(tokens={_CONTRACT_TOKEN}, in_progress_polls=1)

    def app(self) -> ASGIApp:
        return create_app(self.state)

    def env(self) -> dict[str, str]:
        return {"GRAPH_TOKEN": _CONTRACT_TOKEN}

    @property
    def url(self) -> str:
        assert self.server is not None, "start() first"
        return self.server.url

    async def arm(self, fault: Fault) -> float | None:
        match fault:
            case Fault.AUTH:
                self.state.tokens.clear()  # Graph answers 400 with OAuthException code 190
            case Fault.RATE_LIMIT:
                minutes = 7
                usage = {
                    self.state.page_id: [
                        {
                            "type": "pages",
                            "call_count": 100,
                            "total_cputime": 20,
                            "total_time": 30,
                            "estimated_time_to_regain_access": minutes,
                        }
                    ]
                }
                message = (
                    "(#80001) There have been too many calls to this Page account. "
                    "Wait a bit and try again."
                )
                self.state.inject(GraphFault(code=80001, status=400, message=message, usage=usage))
                return minutes * 60.0
            case Fault.REFUSED:
                assert self.server is not None
                await close_port(self.server)
            case Fault.TIMEOUT_AFTER_SEND:
                self.state.inject(
                    GraphFault(status=500, hang=self.TIMEOUT + 1, edges=self.POST_EDGES)
                )
        return None


class FacebookHarness(_GraphHarness):
    platform = "facebook"
    POST_EDGES = ("feed", "photos")

    def target(self) -> dict[str, Any]:
        return {
            "name": "facebook-contract",
            "platform": "facebook",
            "api_base": self.url,
            "page_id": self.state.page_id,
            "page_access_token": {"env": "GRAPH_TOKEN"},
            "timeout": self.TIMEOUT,
        }

    def published(self) -> list[Published]:
        # A link post's card is a hyperlink; Facebook also links the URLs in the message.
        return [
            Published(
                p["id"],
                p["message"],
                tuple(u for u in (p["link"], *_URL.findall(p["message"])) if u),
                p["deleted"],
            )
            for p in self.state.posts.values()
        ]


class InstagramHarness(_GraphHarness):
    """Instagram fetches each image itself: the harness also serves the bot's /cards."""

    platform = "instagram"
    POST_EDGES = ("media_publish",)

    def __init__(self) -> None:
        super().__init__()
        self.cards = Path(tempfile.mkdtemp(prefix="contract-cards-"))
        self.cards_server: LoopbackServer | None = None

    async def start(self) -> None:
        await super().start()

        async def card(request: Request) -> Response:
            path = self.cards / request.path_params["name"]
            return FileResponse(path) if path.is_file() else Response(status_code=404)

        self.cards_server = LoopbackServer(Starlette(routes=[Route("/cards/{name}", card)]))
        await self.cards_server.start()

    async def stop(self) -> None:
        await super().stop()
        if self.cards_server is not None:
            await self.cards_server.stop()
        shutil.rmtree(self.cards, ignore_errors=True)

    def target(self) -> dict[str, Any]:
        assert self.cards_server is not None, "start() first"
        return {
            "name": "instagram-contract",
            "platform": "instagram",
            "api_base": self.url,
            "ig_user_id": self.state.ig_user_id,
            "access_token": {"env": "GRAPH_TOKEN"},
            "public_base_url": self.cards_server.url,
            "card_dir": str(self.cards),
            "poll_interval": 0.05,
            "poll_timeout": 5,
            "timeout": self.TIMEOUT,
        }

    def published(self) -> list[Published]:
        # Instagram captions have no hyperlinks.
        return [Published(m["id"], m["caption"]) for m in self.state.media.values()]
