"""Facebook Pages through the Graph API (httpx): link posts whose card is the attribution,
or photo posts with the URL in the caption. Edits and deletes are supported."""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field

from adapters.base import Adapter, Outlet, TargetSettings
from bot.hashtags import article_hashtags
from bot.models import Article, RenderedPost, SentPost
from bot.outcomes import (
    AuthFailure,
    PermanentFailure,
    RetryLater,
    TemporaryFailure,
    UncertainDelivery,
)
from bot.secrets import Secret, SecretRef, redact
from bot.templates import Dialect, article_url, render_template
from bot.text import squash_spaces, trim_text

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


class GraphClient:
    """The few Graph API calls both Meta adapters make; the token goes in a header, never
    in a URL that httpx might log."""

    def __init__(self, base: str, version: str, token: Secret, timeout: float) -> None:
        self.base = f"{base.rstrip('/')}/{version}"
        self.token = token
        self.client = httpx.AsyncClient(timeout=timeout)

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

    async def check_node(self, node: str, platform: str) -> bool:
        """The adapters' health check: the page or account answers a plain GET."""
        try:
            await self.call("GET", node, params={"fields": "id"})
        except GraphError as exc:
            raise map_graph_error(exc, platform) from None
        return True

    async def aclose(self) -> None:
        await self.client.aclose()


PLAIN = Dialect("facebook", lambda s: s, lambda url, _l: url, lambda s: s, len, 63206)


class FacebookSettings(TargetSettings):
    api_base: str = "https://graph.facebook.com"
    api_version: str = Field(default="v21.0", pattern=r"^v\d+\.\d+$")
    page_id: str
    page_access_token: SecretRef
    post_as: Literal["link", "photo"] = "link"
    lead_max_chars: int = Field(default=1000, ge=0, le=60000)


class FacebookAdapter(Adapter):
    platform: ClassVar[str] = "facebook"
    hyperlinks: ClassVar[bool] = True
    Settings: ClassVar[type[TargetSettings]] = FacebookSettings
    settings: FacebookSettings

    def __init__(
        self, settings: TargetSettings, secrets: dict[str, Secret], outlet: Outlet
    ) -> None:
        super().__init__(settings, secrets, outlet)
        self._graph: GraphClient | None = None

    def render(self, article: Article) -> RenderedPost:
        s = self.settings
        url = article_url(article, s.utm)
        if s.template:
            text = render_template(
                s.template,
                article,
                PLAIN,
                outlet=self.outlet.name,
                utm=s.utm,
                hashtag_list=article_hashtags(article, s.max_hashtags, self.outlet, s.hashtags),
                category_emoji=s.category_emoji,
            )
        else:
            lead = trim_text(squash_spaces(article.lead), s.lead_max_chars)
            tags = " ".join(article_hashtags(article, s.max_hashtags, self.outlet, s.hashtags))
            blocks = [squash_spaces(article.title), lead, tags, url]
            text = "\n\n".join(b for b in blocks if b)
        photo = s.post_as == "photo" and bool(article.image_url)
        return RenderedPost(
            target=s.name,
            platform=self.platform,
            article_url=article.url,
            text=text,
            markup="plain",
            link_url=None if photo else url,
            image_url=article.image_url if photo else None,
        )

    def _client(self) -> GraphClient:
        if self._graph is None:
            s = self.settings
            self._graph = GraphClient(
                s.api_base, s.api_version, self.secrets["page_access_token"], s.timeout
            )
        return self._graph

    async def send(self, post: RenderedPost) -> SentPost:
        page = self.settings.page_id
        try:
            if post.image_url:
                body = await self._client().call(
                    "POST",
                    f"{page}/photos",
                    data={"url": post.image_url, "caption": post.text},
                    may_have_posted=True,
                )
                post_id = str(body.get("post_id") or body["id"])
            else:
                data = {"message": post.text}
                if post.link_url:
                    data["link"] = post.link_url
                body = await self._client().call(
                    "POST", f"{page}/feed", data=data, may_have_posted=True
                )
                post_id = str(body["id"])
        except GraphError as exc:
            raise map_graph_error(exc, "Facebook") from None
        return SentPost(remote_id=post_id, remote_url=f"https://www.facebook.com/{post_id}")

    async def edit(self, remote_id: str, post: RenderedPost) -> None:
        try:
            await self._client().call("POST", remote_id, data={"message": post.text})
        except GraphError as exc:
            raise map_graph_error(exc, "Facebook") from None

    async def check(self) -> bool:
        return await self._client().check_node(self.settings.page_id, "Facebook")

    async def delete(self, remote_id: str) -> None:
        try:
            await self._client().call("DELETE", remote_id)
        except GraphError as exc:
            if exc.code == 100 and exc.status == 404:
                return
            raise map_graph_error(exc, "Facebook") from None

    async def aclose(self) -> None:
        if self._graph is not None:
            await self._graph.aclose()
            self._graph = None


ADAPTER = FacebookAdapter
