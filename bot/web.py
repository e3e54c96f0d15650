"""The bot's own HTTP endpoint: the CMS push trigger, health checks, Prometheus metrics and
served image cards."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from bot.metrics import CONTENT_TYPE, Metrics
from bot.secrets import Secret
from bot.urls import is_http_url

log = logging.getLogger("newsbot.web")

PushHandler = Callable[[str, str | None], Awaitable[Any]]
Check = Callable[[], Awaitable[dict[str, bool]]]


def create_app(
    on_push: PushHandler,
    readiness: Check,
    push_token: Secret | None = None,
    cards_dir: Path | None = None,
    metrics: Metrics | None = None,
    metrics_token: Secret | None = None,
    desk_app: ASGIApp | None = None,
) -> Starlette:
    def refused(request: Request, token: Secret | None) -> Response | None:
        if token is None:
            return None
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if hmac.compare_digest(given.encode(), token.get().encode()):
            return None
        return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)

    async def push(request: Request) -> Response:
        """POST {"url": "...", "source": "optional source name"}: this URL was just published."""
        if (refusal := refused(request, push_token)) is not None:
            return refusal
        try:
            if request.headers.get("content-type", "").startswith("application/json"):
                body = await request.json()
            else:
                body = dict(await request.form())
        except Exception:
            return JSONResponse({"error": "body must be JSON or a form"}, status_code=400)
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not is_http_url(url):
            return JSONResponse(
                {"error": "field 'url' must be an http(s) article URL"}, status_code=400
            )
        source = body.get("source") if isinstance(body.get("source"), str) else None
        await on_push(url, source)
        return JSONResponse({"accepted": url}, status_code=202)

    async def live(_: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def ready(_: Request) -> Response:
        checks = await readiness()
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    async def prometheus(request: Request) -> Response:
        # Aggregate counts only (no URLs, no secrets); a bearer token only if configured.
        if metrics is None:
            return Response(status_code=404)
        if (refusal := refused(request, metrics_token)) is not None:
            return refusal
        return Response(await metrics.scrape(), media_type=CONTENT_TYPE)

    async def card(request: Request) -> Response:
        name = request.path_params["name"]
        if cards_dir is None or "/" in name or name.startswith("."):
            return Response(status_code=404)
        path = cards_dir / name
        if not path.is_file():
            return Response(status_code=404)
        return FileResponse(path, media_type="image/jpeg")

    return Starlette(
        routes=[
            Route("/push", push, methods=["POST"]),
            Route("/health/live", live),
            Route("/health/ready", ready),
            Route("/metrics", prometheus),
            Route("/cards/{name}", card),
            *([Mount("/desk", desk_app)] if desk_app is not None else []),
        ]
    )
