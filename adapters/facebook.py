"""Facebook Pages through the Graph API (httpx): link posts whose card is the attribution,
or photo posts with the URL in the caption. Edits and deletes are supported."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from adapters._graph import (
    POSTING_SCOPES,
    GraphClient,
    GraphError,
    graph_refusal,
    map_graph_error,
    match_recent,
)
from adapters.base import Adapter, SendContext
from bot.models import Article, PostLength, RenderedPost, SentPost
from bot.outcomes import DeliveryError, SetupCheck, SetupStatus
from bot.secrets import SecretRef
from bot.targets import TargetSettings
from bot.templates import Dialect, article_url
from bot.text import squash_spaces, trim_text

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

    def init_state(self) -> None:
        self._graph: GraphClient | None = None

    def render(self, article: Article) -> RenderedPost:
        s = self.settings
        url = article_url(article, s.utm)
        if s.template:
            text = self.render_template(article, PLAIN)
        else:
            lead = trim_text(squash_spaces(article.lead), s.lead_max_chars)
            tags = " ".join(self.hashtags_for(article))
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

    def measure(self, post: RenderedPost) -> PostLength:
        return self.measure_in(PLAIN, post)

    async def send(self, post: RenderedPost, *, idempotency_key: str | None = None) -> SentPost:
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

    # Facebook has nothing to prepare: the one request is the post (the base's publish).
    read_back: ClassVar[str] = "the Page's recent posts (GET /{page-id}/posts)"

    async def find_published(self, post: RenderedPost, ctx: SendContext) -> SentPost | None:
        """The Page's recent posts, looking for this post's text (or its link)."""
        items = await self._client().recent(
            f"{self.settings.page_id}/posts",
            "id,message,link,permalink_url,created_time",
            "Facebook",
            self.read_back,
        )

        def is_this(item: dict[str, object]) -> bool:
            if str(item.get("message") or "").strip() == post.text.strip():
                return True
            return bool(post.link_url) and item.get("link") == post.link_url

        return match_recent(
            items,
            is_this,
            "created_time",
            ctx.since,
            lambda item: SentPost(
                str(item["id"]),
                item.get("permalink_url") or f"https://www.facebook.com/{item['id']}",
            ),
            self.read_back,
        )

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

    async def verify(self) -> list[SetupCheck]:
        """The page token is valid, is this page's, and may post (pages_manage_posts)."""
        page = self.settings.page_id
        graph = self._client()
        try:
            me = await graph.call("GET", "me", params={"fields": "id,name"})
            node = await graph.call("GET", page, params={"fields": "id,name"})
            # The token goes in a query here (Graph asks so); logs redact resolved secrets.
            token = self.secrets["page_access_token"].get()
            debug = await graph.call("GET", "debug_token", params={"input_token": token})
        except GraphError as exc:
            return [SetupCheck(self.name, SetupStatus.FAILED, graph_refusal(exc, "page", page))]
        except DeliveryError as exc:
            return [SetupCheck(self.name, SetupStatus.FAILED, exc.message)]
        name = node.get("name") or page
        if str(me.get("id")) != page:
            detail = (
                f"the token speaks for {me.get('name') or me.get('id')}, not page {page}:"
                " use that page's Page access token"
            )
            return [SetupCheck(self.name, SetupStatus.FAILED, detail)]
        scopes = set((debug.get("data") or {}).get("scopes") or [])
        missing = sorted(POSTING_SCOPES - scopes)
        if missing:
            detail = (
                f"the page token lacks {', '.join(missing)} (it has: "
                f"{', '.join(sorted(scopes)) or 'none'}): grant it and make a new token"
            )
            return [SetupCheck(self.name, SetupStatus.FAILED, detail)]
        return [SetupCheck(self.name, SetupStatus.OK, f"page {name} ({page}) token may post")]


ADAPTER = FacebookAdapter
