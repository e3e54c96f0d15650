"""The Meta Graph API client Facebook and Instagram share: one call() with the token as a
Bearer header, Graph error bodies as GraphError, and their mapping to delivery outcomes.
A private helper (the leading `_`): not a platform."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from adapters._http import platform_client
from bot.models import SentPost
from bot.outcomes import (
    AuthFailure,
    CannotTell,
    DeliveryError,
    PermanentFailure,
    RetryLater,
    TemporaryFailure,
    UncertainDelivery,
)
from bot.secrets import Secret, redact

RATE_LIMIT_CODES = {4, 17, 32, 613, 80001, 80002, 80003, 80004, 80005, 80006, 80008, 80014}
AUTH_CODES = {102, 190, 10, 200, 299}
DUPLICATE_CODES = {506}
BLOCKED_CODES = {368}
TRANSIENT_CODES = {1, 2}


class GraphError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: httpx.Headers) -> None:
        error = body.get("error") or {}
        self.status = status
        self.code = int(error.get("code") or 0)
        self.subcode = error.get("error_subcode")
        self.message = str(error.get("message") or f"HTTP {status}")
        self.headers = headers
        super().__init__(self.message)


def usage_delay(headers: httpx.Headers) -> float:
    """Seconds to wait, from X-Business-Use-Case-Usage / X-App-Usage (at least 60)."""
    wait = 0.0
    raw = headers.get("x-business-use-case-usage")
    if raw:
        try:
            for entries in json.loads(raw).values():
                for entry in entries:
                    wait = max(wait, float(entry.get("estimated_time_to_regain_access", 0)) * 60)
        except (ValueError, AttributeError, TypeError):
            pass
    raw = headers.get("x-app-usage")
    if raw and not wait:
        try:
            usage = json.loads(raw)
            peak = max(
                float(usage.get(k, 0)) for k in ("call_count", "total_cputime", "total_time")
            )
            wait = 300.0 if peak >= 100 else 60.0
        except (ValueError, AttributeError, TypeError):
            pass
    return max(wait, 60.0)


def map_graph_error(exc: GraphError, platform: str) -> Exception:
    text = redact(f"{platform}: {exc.message} (code {exc.code})")
    if exc.code in RATE_LIMIT_CODES or exc.status == 429:
        return RetryLater(f"{platform} rate limit: {exc.message}", usage_delay(exc.headers))
    if exc.code in AUTH_CODES or exc.status == 401:
        return AuthFailure(text)
    if exc.code in DUPLICATE_CODES:
        return PermanentFailure(f"duplicate post: {text}")
    if exc.code in BLOCKED_CODES:
        return PermanentFailure(f"blocked: {text}")
    if exc.status >= 500 or exc.code in TRANSIENT_CODES:
        return TemporaryFailure(text)
    return PermanentFailure(text)


#: How many recent posts a read-back asks for (one page of the Graph API's listing).
READ_BACK_LIMIT = 50


def graph_time(value: Any) -> float | None:
    """A Graph API timestamp ("2024-05-01T12:00:00+0000") as UNIX seconds, or None."""
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def match_recent(
    items: list[dict[str, Any]],
    is_this: Callable[[dict[str, Any]], bool],
    time_field: str,
    since: float,
    to_sent: Callable[[dict[str, Any]], SentPost],
    check: str,
) -> SentPost | None:
    """The read-back's verdict over an account's recent posts (newest first): the post found,
    None when it is certainly absent (the listing holds everything since `since`, the time
    the delivery was queued), else CannotTell."""
    for item in items:
        if is_this(item):
            return to_sent(item)
    times = [graph_time(item.get(time_field)) for item in items]
    complete = len(items) < READ_BACK_LIMIT
    reaches_back = bool(times) and times[-1] is not None and times[-1] < since
    if complete or reaches_back:
        return None
    raise CannotTell(
        f"{check}: not among the {len(items)} most recent posts, which do not reach back "
        "to when it was queued"
    )


#: Permissions a Page token needs to publish to the page's feed.
POSTING_SCOPES = frozenset({"pages_manage_posts", "pages_read_engagement"})


def graph_refusal(exc: GraphError, kind: str, node: str) -> str:
    """One line for a setup check from a Graph API refusal (no token in it)."""
    text = redact(exc.message)
    if exc.code == 190:
        return f"the access token was refused (code 190, {text}): make a new token"
    if exc.code in (10, 200) or 200 <= exc.code < 300:
        return f"missing permission (code {exc.code}, {text})"
    if exc.code == 100:
        return f"{kind} {node} not found or not visible to this token (code 100, {text})"
    return f"Graph API refused (code {exc.code}, {text})"


class GraphClient:
    """The few Graph API calls both Meta adapters make; the token goes in a header, never
    in a URL that httpx might log."""

    def __init__(self, base: str, version: str, token: Secret, timeout: float) -> None:
        self.base = f"{base.rstrip('/')}/{version}"
        self.token = token
        self.client = platform_client(timeout)

    async def call(
        self,
        method: str,
        path: str,
        *,
        data: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        may_have_posted: bool = False,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token.get()}"}
        try:
            response = await self.client.request(
                method, f"{self.base}/{path.lstrip('/')}", data=data, params=params, headers=headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TemporaryFailure(f"Graph API unreachable: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            if may_have_posted:
                raise UncertainDelivery(
                    f"no clear answer from the Graph API ({type(exc).__name__}); it may have posted"
                ) from None
            raise TemporaryFailure(f"Graph API: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400 or "error" in body:
            raise GraphError(response.status_code, body, response.headers)
        return body

    async def recent(
        self, edge: str, fields: str, platform: str, what: str
    ) -> list[dict[str, Any]]:
        """An account's recent items for a read-back (newest first); CannotTell, naming `what`
        was tried, when the listing cannot be read."""
        try:
            body = await self.call("GET", edge, params={"fields": fields, "limit": READ_BACK_LIMIT})
        except GraphError as exc:
            raise CannotTell(f"{what}: {map_graph_error(exc, platform)}") from None
        except DeliveryError as exc:
            raise CannotTell(f"{what}: {exc.message}") from None
        return list(body.get("data") or [])

    async def publish_container(self, edge: str, container: str, platform: str) -> str:
        """The one publishing request of a container flow (Instagram's media_publish,
        Threads' threads_publish): the new post's id. No clear answer: UncertainDelivery."""
        try:
            published = await self.call(
                "POST", edge, data={"creation_id": container}, may_have_posted=True
            )
        except GraphError as exc:
            raise map_graph_error(exc, platform) from None
        return str(published["id"])

    async def check_node(self, node: str, platform: str) -> bool:
        """The adapters' health check: the page or account answers a plain GET."""
        try:
            await self.call("GET", node, params={"fields": "id"})
        except GraphError as exc:
            raise map_graph_error(exc, platform) from None
        return True

    async def aclose(self) -> None:
        await self.client.aclose()


def saved_container(progress: dict[str, Any], lifetime: float) -> str | None:
    """The container an earlier prepare() made for this delivery, if still young enough to
    publish (unpublished containers expire on the platform)."""
    container = str(progress.get("container_id") or "")
    created = float(progress.get("container_created") or 0)
    return container if container and time.time() - created < lifetime else None


def with_container(progress: dict[str, Any], container: str) -> dict[str, Any]:
    """`progress` recording a newly made container (what saved_container reads back)."""
    return {**progress, "container_id": container, "container_created": time.time()}
