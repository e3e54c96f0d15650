"""Instagram through the Graph API content publishing flow: container, status polling,
media_publish, within the account's publishing limit. Every post needs a valid JPEG: the
article photo when it meets Instagram's rules, otherwise a generated card served by the bot."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from pathlib import Path
from typing import ClassVar

import httpx
from pydantic import Field

from adapters._cards import attribution_line, render_card
from adapters._graph import (
    GraphClient,
    GraphError,
    graph_refusal,
    map_graph_error,
    match_recent,
    saved_container,
    with_container,
)
from adapters._http import platform_client
from adapters.base import Adapter, SendContext
from adapters.instagram.images import check_instagram_image
from bot.models import Article, PostLength, RenderedPost, SentPost
from bot.outcomes import (
    DeliveryError,
    PermanentFailure,
    RetryLater,
    SetupCheck,
    SetupStatus,
    TemporaryFailure,
)
from bot.secrets import SecretRef
from bot.targets import TargetSettings
from bot.templates import Dialect, article_url
from bot.text import squash_spaces, trim_text

CAPTION_LIMIT = 2200
#: Instagram drops an unpublished media container after 24 hours; a resumed delivery with an
#: older one makes a new one.
CONTAINER_LIFETIME = 24 * 3600
MAX_MENTIONS = 20
MAX_PHOTO_BYTES = 20 * 1024 * 1024  # an article photo read to crop into a card
_MENTION = re.compile(r"(?<![\w@])@(\w[\w.]*)")

log = logging.getLogger("newsbot.instagram")

PLAIN = Dialect("instagram", lambda s: s, lambda url, _l: url, lambda s: s, len, CAPTION_LIMIT)


def limit_mentions(text: str, keep: int = MAX_MENTIONS) -> str:
    """Instagram refuses a caption with more than 20 @mentions: later ones lose their @."""
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return match.group(0) if count <= keep else match.group(1)

    return _MENTION.sub(replace, text)


class InstagramSettings(TargetSettings):
    api_base: str = "https://graph.facebook.com"
    api_version: str = Field(default="v21.0", pattern=r"^v\d+\.\d+$")
    ig_user_id: str
    access_token: SecretRef
    max_hashtags: int = Field(default=5, ge=0, le=30)
    publishing_limit: int = Field(default=50, ge=1, le=100)
    poll_interval: float = Field(default=3.0, gt=0)
    poll_timeout: float = Field(default=120.0, gt=0)
    #: Where the bot's HTTP endpoint is reachable from Instagram (cards are at /cards/...).
    public_base_url: str = "http://127.0.0.1:8080"
    card_dir: str = "cards"
    first_comment_link: bool = False
    brand_color: str = "#0b3d91"
    lead_max_chars: int = Field(default=600, ge=0, le=2000)


class InstagramAdapter(Adapter):
    platform: ClassVar[str] = "instagram"
    hyperlinks: ClassVar[bool] = False  # caption links are not clickable: attribution as text
    Settings: ClassVar[type[TargetSettings]] = InstagramSettings
    settings: InstagramSettings

    def init_state(self) -> None:
        self._graph: GraphClient | None = None
        self._http: httpx.AsyncClient | None = None

    def render(self, article: Article) -> RenderedPost:
        s = self.settings
        url = article_url(article, s.utm)
        source = attribution_line(self.outlet.name, url)
        if s.template:
            text = self.render_template(article, PLAIN)
        else:
            tags = " ".join(self.hashtags_for(article))
            fixed = "\n\n".join(b for b in (tags, source) if b)
            title = trim_text(squash_spaces(article.title), CAPTION_LIMIT - len(fixed) - 2)
            room = CAPTION_LIMIT - len(title) - len(fixed) - 4
            lead = trim_text(squash_spaces(article.lead), min(room, s.lead_max_chars))
            text = "\n\n".join(b for b in (title, lead, tags, source) if b)
        return RenderedPost(
            target=s.name,
            platform=self.platform,
            article_url=article.url,
            text=limit_mentions(text),
            markup="plain",
            image_url=article.image_url,
            options={"headline": squash_spaces(article.title)},
        )

    async def check(self) -> bool:
        return await self._client().check_node(self.settings.ig_user_id, "Instagram")

    def _client(self) -> GraphClient:
        if self._graph is None:
            s = self.settings
            self._graph = GraphClient(
                s.api_base, s.api_version, self.secrets["access_token"], s.timeout
            )
        return self._graph

    def measure(self, post: RenderedPost) -> PostLength:
        return self.measure_in(PLAIN, post)

    async def prepare(self, post: RenderedPost, ctx: SendContext) -> None:
        """Quota check, image check, container creation and status polling: nothing is
        published until media_publish. The container is saved, so a restart reuses it unless
        it expired (Instagram keeps an unpublished container 24 hours)."""
        graph, ig = self._client(), self.settings.ig_user_id
        try:
            await self._check_quota(graph, ig)
            saved = saved_container(ctx.progress, CONTAINER_LIFETIME)
            if saved and await self._wait_finished(graph, saved, allow_expired=True):
                return  # resumed: the saved container is ready
            image_url = await self.image_for(post)
            made = await graph.call(
                "POST", f"{ig}/media", data={"image_url": image_url, "caption": post.text}
            )
            container = str(made["id"])
            await ctx.save_progress(with_container(ctx.progress, container))
            await self._wait_finished(graph, container)
        except GraphError as exc:
            raise map_graph_error(exc, "Instagram") from None

    async def publish(self, post: RenderedPost, ctx: SendContext) -> SentPost:
        graph, ig = self._client(), self.settings.ig_user_id
        media_id = await graph.publish_container(
            f"{ig}/media_publish", ctx.progress["container_id"], "Instagram"
        )
        await self._comment(graph, media_id, post)
        return SentPost(remote_id=media_id, remote_url=None)

    async def _comment(self, graph: GraphClient, media_id: str, post: RenderedPost) -> None:
        if self.settings.first_comment_link:
            # The post is out; a missing comment is not worth failing it.
            with contextlib.suppress(GraphError, TemporaryFailure):
                await graph.call(
                    "POST",
                    f"{media_id}/comments",
                    data={"message": attribution_line(self.outlet.name, post.article_url)},
                )

    read_back: ClassVar[str] = "the account's recent media (GET /{ig-user-id}/media)"

    async def find_published(self, post: RenderedPost, ctx: SendContext) -> SentPost | None:
        """The account's recent media, looking for this post's caption."""
        items = await self._client().recent(
            f"{self.settings.ig_user_id}/media",
            "id,caption,permalink,timestamp",
            "Instagram",
            self.read_back,
        )
        return match_recent(
            items,
            lambda item: (item.get("caption") or "").strip() == post.text.strip(),
            "timestamp",
            ctx.since,
            lambda item: SentPost(str(item["id"]), item.get("permalink")),
            self.read_back,
        )

    async def _check_quota(self, graph: GraphClient, ig: str) -> None:
        body = await graph.call(
            "GET", f"{ig}/content_publishing_limit", params={"fields": "quota_usage,config"}
        )
        data = (body.get("data") or [{}])[0]
        total = min(
            self.settings.publishing_limit, int((data.get("config") or {}).get("quota_total", 50))
        )
        if int(data.get("quota_usage", 0)) >= total:
            duration = int((data.get("config") or {}).get("quota_duration", 86400))
            raise RetryLater(
                f"Instagram publishing limit of {total} per {duration // 3600}h reached", 3600
            )

    async def _wait_finished(
        self, graph: GraphClient, container: str, *, allow_expired: bool = False
    ) -> bool:
        """True once the container is ready; False if it expired and `allow_expired`."""
        deadline = time.monotonic() + self.settings.poll_timeout
        while True:
            status = (
                await graph.call("GET", container, params={"fields": "status_code,status"})
            ).get("status_code")
            if status == "FINISHED":
                return True
            if status == "PUBLISHED":
                # Only this delivery's own earlier publish can have used it, and a read-back
                # found no such post: never publish again, let an editor look.
                raise PermanentFailure(
                    f"media container {container} is already published: check the account"
                )
            if status == "EXPIRED" and allow_expired:
                return False
            if status in ("ERROR", "EXPIRED"):
                raise PermanentFailure(f"Instagram could not use the media container: {status}")
            if time.monotonic() > deadline:
                # Nothing was published yet, so trying again later is safe.
                raise TemporaryFailure(
                    f"media container still {status} after {self.settings.poll_timeout:g}s"
                )
            await asyncio.sleep(self.settings.poll_interval)

    async def image_for(self, post: RenderedPost) -> str:
        """The article image URL if Instagram accepts it, else a generated card's URL."""
        photo: bytes | None = None
        if post.image_url:
            photo = await self._photo(post)
            # Pillow work (decoding, drawing the card) runs off the event loop.
            if photo is not None and not await asyncio.to_thread(check_instagram_image, photo):
                return post.image_url
        card = await asyncio.to_thread(
            render_card,
            str(post.options.get("headline") or ""),
            self.outlet.name,
            attribution_line(self.outlet.name, post.article_url),
            photo,
            self.settings.brand_color,
        )
        name = hashlib.sha256(card).hexdigest()[:24] + ".jpg"
        folder = Path(self.settings.card_dir)
        folder.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread((folder / name).write_bytes, card)
        return f"{self.settings.public_base_url.rstrip('/')}/cards/{name}"

    async def _photo(self, post: RenderedPost) -> bytes | None:
        """The article photo, or None (then the card is drawn on the brand background)."""
        assert post.image_url
        if self.fetch_image is None:
            return await self._download(post.image_url)
        try:
            return await self.fetch_image(post.image_url, post.article_url, MAX_PHOTO_BYTES)
        except Exception as exc:
            log.warning("target %s: article photo not used (%s)", self.name, exc)
            return None

    async def _download(self, url: str) -> bytes | None:
        if self._http is None:
            self._http = platform_client(self.settings.timeout, follow_redirects=True)
        try:
            async with self._http.stream("GET", url) as response:
                if response.status_code != 200:
                    return None
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_PHOTO_BYTES:
                        return None
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError:
            return None

    async def aclose(self) -> None:
        if self._graph is not None:
            await self._graph.aclose()
            self._graph = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def verify(self) -> list[SetupCheck]:
        """The account answers, and so does its content_publishing_limit (publishing rights)."""
        ig = self.settings.ig_user_id
        graph = self._client()
        try:
            account = await graph.call("GET", ig, params={"fields": "id,username"})
            limit = await graph.call(
                "GET", f"{ig}/content_publishing_limit", params={"fields": "config,quota_usage"}
            )
        except GraphError as exc:
            return [SetupCheck(self.name, SetupStatus.FAILED, graph_refusal(exc, "account", ig))]
        except DeliveryError as exc:
            return [SetupCheck(self.name, SetupStatus.FAILED, exc.message)]
        usage = (limit.get("data") or [{}])[0]
        total = (usage.get("config") or {}).get("quota_total", "?")
        who = account.get("username") or ig
        detail = f"account {who} answers; {usage.get('quota_usage', '?')} of {total} posts used"
        return [SetupCheck(self.name, SetupStatus.OK, detail + " in 24 h")]


ADAPTER = InstagramAdapter
