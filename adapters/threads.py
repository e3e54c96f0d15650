"""Threads through the Threads API (graph.threads.net, Graph-style; plain httpx via the
shared GraphClient): create a container, wait until it is FINISHED, publish it.

Text posts carry the article as `link_attachment` (the link card); image posts carry the article
image (or a generated card) with the URL in the text, which Threads links. Posts keep to 500
characters, emoji counted as their UTF-8 bytes as Threads counts them, at most 5 links and one
topic tag. The account's `threads_publishing_limit` (250 posts per 24 h) is read before each
post. Threads has no edit and no client idempotency key; deletes serve follow-ups.

Exactly once (issue 14): prepare() checks the quota, creates the container and waits until it
is FINISHED (saved, so a restart reuses it); publish() is the one threads_publish request. An
answer lost there is settled by reading back the user's recent posts
(GET /{user-id}/threads?fields=id,permalink,text,timestamp,link_attachment_url).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import time
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import regex
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
from adapters.base import Adapter, SendContext
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
from bot.text import fit_post, join_blocks, squash_spaces

LIMIT = 500
MAX_LINKS = 5
QUOTA = 250  # API-published posts per 24 h per profile
MAX_TAGS = 1  # Threads makes only one tag per post a topic
MIN_LEAD = 30
#: A container not published within 24 hours expires; a resumed delivery makes a new one a
#: bit before that.
CONTAINER_LIFETIME = 20 * 3600
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_EMOJI = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}")
_GRAPHEME = regex.compile(r"\X")


def threads_length(text: str) -> int:
    """Length as Threads counts it: emoji by their UTF-8 bytes. Other characters count one
    each; here by UTF-16 units, which is never less (the safe side)."""
    total = 0
    for grapheme in _GRAPHEME.findall(text):
        if _EMOJI.search(grapheme):
            total += len(grapheme.encode("utf-8"))
        else:
            total += len(grapheme.encode("utf-16-le")) // 2
    return total


def links_in(text: str, attachment: str | None = None) -> set[str]:
    """Links as Threads counts them: unique URLs in the text, plus a different attachment."""
    found = {m.rstrip(".,;:!?)»") for m in _URL.findall(text)}
    if attachment:
        found.add(attachment)
    return found


def clean(text: str) -> str:
    """One line: NFC, no control characters, and no URLs (the article's is the post's link)."""
    text = _URL.sub("", unicodedata.normalize("NFC", text))
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cs"))
    return squash_spaces(text)


def compose(title: str, lead: str, tags: list[str], url: str | None) -> str:
    """Headline, lead, the URL when it goes in the text (image posts), one topic tag; within
    500 as Threads counts. The URL is never cut (bot.text.fit_post)."""
    return fit_post(
        title,
        lead,
        tags[:1],
        lambda t, lead_, tag: join_blocks(t, lead_, url or "", tag),
        threads_length,
        LIMIT,
        headline_room=0,  # the topic tag is cheap: it stays
        min_lead=MIN_LEAD,
    )


@lru_cache(maxsize=1)
def _dialect() -> Dialect:
    return Dialect("threads", lambda s: s, lambda url, _l: url, lambda s: s, threads_length, LIMIT)


class ThreadsSettings(TargetSettings):
    api_base: str = "https://graph.threads.net"
    api_version: str = Field(default="v1.0", pattern=r"^v\d+\.\d+$")
    user_id: str = Field(min_length=1)
    access_token: SecretRef
    max_hashtags: int = Field(default=1, ge=0, le=MAX_TAGS)
    #: Image posts (article image, else a generated card) instead of text posts with a link card.
    image_posts: bool = False
    #: The account's posts per 24 h (Threads allows 250); never above what Threads reports.
    quota_total: int = Field(default=QUOTA, ge=1, le=QUOTA)
    poll_interval: float = Field(default=2.0, gt=0)
    poll_timeout: float = Field(default=300.0, gt=0)
    #: Where Threads can fetch generated cards (the bot's endpoint serves /cards/...).
    public_base_url: str = "http://127.0.0.1:8080"
    card_dir: str = "cards"
    brand_color: str = "#0b3d91"


class ThreadsAdapter(Adapter):
    platform: ClassVar[str] = "threads"
    hyperlinks: ClassVar[bool] = True  # link_attachment, and URLs in the text are linked
    idempotent: ClassVar[bool] = False  # Threads takes no client key: never resent blindly
    read_back: ClassVar[str] = "the user's recent posts (GET /{user-id}/threads)"
    Settings: ClassVar[type[TargetSettings]] = ThreadsSettings
    settings: ThreadsSettings

    def init_state(self) -> None:
        self._graph: GraphClient | None = None

    def render(self, article: Article) -> RenderedPost:
        s = self.settings
        url = article_url(article, s.utm)
        tidy = dataclasses.replace(article, title=clean(article.title), lead=clean(article.lead))
        tags = self.hashtags_for(article)[:MAX_TAGS]
        in_text = url if s.image_posts else None
        text = ""
        if s.template:
            text = self.render_template(tidy, _dialect())
        attachment = None if s.image_posts else url
        if (
            not s.template
            or threads_length(text) > LIMIT
            or len(links_in(text, attachment)) > MAX_LINKS
            or (s.image_posts and url not in text)
        ):
            text = compose(tidy.title, tidy.lead, tags, in_text)
        return RenderedPost(
            target=s.name,
            platform=self.platform,
            article_url=article.url,
            text=text,
            markup="plain",
            link_url=attachment,
            image_url=article.image_url if s.image_posts else None,
            options={"headline": tidy.title, "image_post": s.image_posts},
        )

    def _client(self) -> GraphClient:
        if self._graph is None:
            s = self.settings
            self._graph = GraphClient(
                s.api_base, s.api_version, self.secrets["access_token"], s.timeout
            )
        return self._graph

    def measure(self, post: RenderedPost) -> PostLength:
        return self.measure_in(_dialect(), post)

    async def prepare(self, post: RenderedPost, ctx: SendContext) -> None:
        """Length and link checks, the quota, the container and its wait: nothing is
        published until threads_publish. A saved container is reused while it is usable."""
        if threads_length(post.text) > LIMIT:
            raise PermanentFailure(f"post is {threads_length(post.text)} characters, over {LIMIT}")
        if len(links_in(post.text, post.link_url)) > MAX_LINKS:
            raise PermanentFailure(f"post has more than {MAX_LINKS} links")
        graph, user = self._client(), self.settings.user_id
        try:
            await self._check_quota(graph, user)
            saved = saved_container(ctx.progress, CONTAINER_LIFETIME)
            if saved:
                try:
                    await self._wait_finished(graph, saved)
                    return  # resumed: the saved container is ready
                except TemporaryFailure:
                    pass  # expired or stuck: make a new one
            data: dict[str, Any] = {"text": post.text}
            if post.options.get("image_post"):
                data.update(media_type="IMAGE", image_url=await self.image_for(post))
            else:
                data["media_type"] = "TEXT"
                if post.link_url:
                    data["link_attachment"] = post.link_url
            container = str((await graph.call("POST", f"{user}/threads", data=data))["id"])
            await ctx.save_progress(with_container(ctx.progress, container))
            await self._wait_finished(graph, container)
        except GraphError as exc:
            raise map_graph_error(exc, "Threads") from None

    async def publish(self, post: RenderedPost, ctx: SendContext) -> SentPost:
        graph, user = self._client(), self.settings.user_id
        post_id = await graph.publish_container(
            f"{user}/threads_publish", ctx.progress["container_id"], "Threads"
        )
        return SentPost(remote_id=post_id, remote_url=None)

    async def find_published(self, post: RenderedPost, ctx: SendContext) -> SentPost | None:
        """The user's recent posts, looking for this post's text or its link attachment."""
        items = await self._client().recent(
            f"{self.settings.user_id}/threads",
            "id,permalink,text,timestamp,link_attachment_url",
            "Threads",
            self.read_back,
        )

        def is_this(item: dict[str, Any]) -> bool:
            if str(item.get("text") or "").strip() == post.text.strip():
                return True
            return bool(post.link_url) and item.get("link_attachment_url") == post.link_url

        return match_recent(
            items,
            is_this,
            "timestamp",
            ctx.since,
            lambda item: SentPost(str(item["id"]), item.get("permalink")),
            self.read_back,
        )

    async def _check_quota(self, graph: GraphClient, user: str) -> None:
        body = await graph.call(
            "GET", f"{user}/threads_publishing_limit", params={"fields": "quota_usage,config"}
        )
        data = (body.get("data") or [{}])[0]
        config = data.get("config") or {}
        total = min(self.settings.quota_total, int(config.get("quota_total", QUOTA)))
        if int(data.get("quota_usage", 0)) >= total:
            duration = int(config.get("quota_duration", 86400))
            raise RetryLater(
                f"Threads publishing limit of {total} posts per {duration // 3600} h reached",
                3600,
            )

    async def _wait_finished(self, graph: GraphClient, container: str) -> None:
        deadline = time.monotonic() + self.settings.poll_timeout
        while True:
            body = await graph.call("GET", container, params={"fields": "status,error_message"})
            status = body.get("status")
            if status in ("FINISHED", "PUBLISHED"):
                return
            if status == "ERROR":
                raise PermanentFailure(
                    f"Threads could not make the post: {body.get('error_message') or 'ERROR'}"
                )
            if status == "EXPIRED":
                raise TemporaryFailure("Threads media container expired before publishing")
            if time.monotonic() > deadline:
                # Nothing was published yet, so trying again later is safe.
                raise TemporaryFailure(
                    f"Threads container still {status} after {self.settings.poll_timeout:g}s"
                )
            await asyncio.sleep(self.settings.poll_interval)

    async def image_for(self, post: RenderedPost) -> str:
        """The article image URL (Threads fetches it), else a generated card's public URL."""
        if post.image_url:
            return post.image_url
        card = await asyncio.to_thread(
            render_card,
            str(post.options.get("headline") or ""),
            self.outlet.name,
            attribution_line(self.outlet.name, post.article_url),
            None,
            self.settings.brand_color,
        )
        name = hashlib.sha256(card).hexdigest()[:24] + ".jpg"
        folder = Path(self.settings.card_dir)
        folder.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread((folder / name).write_bytes, card)
        return f"{self.settings.public_base_url.rstrip('/')}/cards/{name}"

    async def delete(self, remote_id: str) -> None:
        """Delete a post (a retracted article). A post already gone is not an error."""
        try:
            await self._client().call("DELETE", remote_id)
        except GraphError as exc:
            if exc.status == 404 or (exc.code == 100 and exc.subcode == 33):
                return
            raise map_graph_error(exc, "Threads") from None

    async def check(self) -> bool:
        return await self._client().check_node(self.settings.user_id, "Threads")

    async def verify(self) -> list[SetupCheck]:
        """The token is this user's (/me) and may publish (threads_publishing_limit answers,
        with the posts left in 24 h); nothing is posted."""
        user, graph = self.settings.user_id, self._client()
        try:
            me = await graph.call("GET", "me", params={"fields": "id,username"})
            limit = await graph.call(
                "GET", f"{user}/threads_publishing_limit", params={"fields": "quota_usage,config"}
            )
        except GraphError as exc:
            return [SetupCheck(self.name, SetupStatus.FAILED, graph_refusal(exc, "user", user))]
        except DeliveryError as exc:
            return [SetupCheck(self.name, SetupStatus.FAILED, exc.message)]
        if str(me.get("id")) != user:
            detail = (
                f"the token is {me.get('username') or me.get('id')}'s, not user {user}:"
                " set user_id to the token's user or use that user's token"
            )
            return [SetupCheck(self.name, SetupStatus.FAILED, detail)]
        data = (limit.get("data") or [{}])[0]
        total = min(
            self.settings.quota_total, int((data.get("config") or {}).get("quota_total", QUOTA))
        )
        detail = (
            f"user @{me.get('username') or user} may post; {data.get('quota_usage', '?')} of"
            f" {total} posts used in 24 h"
        )
        return [SetupCheck(self.name, SetupStatus.OK, detail)]

    async def aclose(self) -> None:
        if self._graph is not None:
            await self._graph.aclose()
            self._graph = None


ADAPTER = ThreadsAdapter
