"""X (Twitter): posts through the X API v2 with tweepy, images through the v2 media upload.

Length is counted the way X counts it (twitter-text v3: 280 weighted units, each URL 23,
CJK and emoji 2), with the `twitter-text-parser` package. The article URL is always kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar

import httpx
import requests
import tweepy
import urllib3
from oauthlib.oauth1 import Client as OAuth1Client
from pydantic import Field
from twitter_text import extract_urls, parse_tweet

from adapters.base import Adapter, Outlet, TargetSettings
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
from bot.text import hashtags, squash_spaces, trim_text

log = logging.getLogger("newsbot.x")

LIMIT = 280
PRODUCTION = "https://api.twitter.com"  # the host tweepy hard-codes; we rebase it
SIMPLE_UPLOAD_MAX = 5 * 1024 * 1024
CHUNK = 1024 * 1024
HEADLINE_ROOM = 100  # weighted units a headline keeps before hashtags give way


def weighted_length(text: str) -> int:
    """X's weighted length (twitter-text v3)."""
    return parse_tweet(text).weightedLength


PLAIN = Dialect("x", lambda s: s, lambda url, _label: url, lambda s: s, weighted_length, LIMIT)


class XSettings(TargetSettings):
    api_base: str = "https://api.x.com"
    upload_base: str = "https://api.x.com"
    api_key: SecretRef
    api_secret: SecretRef
    access_token: SecretRef
    access_token_secret: SecretRef
    with_image: bool = True
    max_image_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    #: Images above this size go through the chunked INIT/APPEND/FINALIZE upload.
    simple_upload_max: int = Field(default=SIMPLE_UPLOAD_MAX, ge=1)
    #: X bills per post, a post with a URL more: used by `timing.daily_budget`.
    cost_per_post: float = Field(default=0.0, ge=0)
    cost_per_post_with_url: float = Field(default=0.0, ge=0)


def compose(title: str, lead: str, tags: list[str], url: str) -> str:
    """Headline, lead, hashtags, URL, within 280 weighted units.

    The URL (the attribution) is always kept; hashtags are kept while the headline still
    has at least HEADLINE_ROOM units; the headline is trimmed to what is left, and the lead
    takes any room that remains.
    """
    tail = f"\n\n{url}"
    headline_need = min(weighted_length(title), HEADLINE_ROOM)
    chosen: list[str] = []
    for tag in tags:
        line = " ".join([*chosen, tag])
        if weighted_length(f"\n\n{line}{tail}") + headline_need <= LIMIT:
            chosen.append(tag)
    tag_block = f"\n\n{' '.join(chosen)}" if chosen else ""
    title = trim_text(title, LIMIT - weighted_length(tag_block + tail), weighted_length)
    room = LIMIT - weighted_length(title + tag_block + tail) - 2  # "\n\n" before the lead
    lead_block = ""
    if lead and room >= 30:
        lead_block = f"\n\n{trim_text(lead, room, weighted_length)}"
    return f"{title}{lead_block}{tag_block}{tail}"


class _RebasedSession(requests.Session):
    """tweepy's Client calls a fixed host; this session sends it to the configured base."""

    def __init__(self, base: str, timeout: float) -> None:
        super().__init__()
        self.base = base.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if url.startswith(PRODUCTION):
            url = self.base + url[len(PRODUCTION) :]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


class XAdapter(Adapter):
    platform: ClassVar[str] = "x"
    hyperlinks: ClassVar[bool] = True  # X links every URL in a post
    Settings: ClassVar[type[TargetSettings]] = XSettings
    settings: XSettings

    def __init__(
        self, settings: TargetSettings, secrets: dict[str, Secret], outlet: Outlet
    ) -> None:
        super().__init__(settings, secrets, outlet)
        self._client: tweepy.Client | None = None
        self._http: httpx.AsyncClient | None = None

    # Rendering -----------------------------------------------------------------------------

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
                max_hashtags=s.max_hashtags,
                category_emoji=s.category_emoji,
            )
        else:
            tags = hashtags([*article.categories, *article.tags], s.max_hashtags)
            text = compose(squash_spaces(article.title), squash_spaces(article.lead), tags, url)
        return RenderedPost(
            target=s.name,
            platform=self.platform,
            article_url=article.url,
            text=text,
            markup="plain",
            image_url=article.image_url if s.with_image else None,
        )

    def cost(self, post: RenderedPost) -> float:
        has_url = bool(extract_urls(post.text))
        return self.settings.cost_per_post_with_url if has_url else self.settings.cost_per_post

    # Sending -------------------------------------------------------------------------------

    def _secret(self, name: str) -> str:
        return self.secrets[name].get()

    def _tweepy(self) -> tweepy.Client:
        if self._client is None:
            client = tweepy.Client(
                consumer_key=self._secret("api_key"),
                consumer_secret=self._secret("api_secret"),
                access_token=self._secret("access_token"),
                access_token_secret=self._secret("access_token_secret"),
            )
            client.session = _RebasedSession(self.settings.api_base, self.settings.timeout)
            self._client = client
        return self._client

    def _httpx(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.settings.timeout, follow_redirects=True)
        return self._http

    async def send(self, post: RenderedPost) -> SentPost:
        if weighted_length(post.text) > LIMIT:
            raise PermanentFailure(f"post is {weighted_length(post.text)} weighted units, over 280")
        media_ids: list[str] = []
        if post.image_url:
            try:
                media_ids = [await self.upload_image(post.image_url)]
            except Exception as exc:  # the post must still go out without its image
                log.warning("target %s: image not attached (%s)", self.name, redact(str(exc)))
        client = self._tweepy()
        try:
            response = await asyncio.to_thread(
                client.create_tweet, text=post.text, media_ids=media_ids or None, user_auth=True
            )
        except Exception as exc:
            raise _map_error(exc) from None
        tweet_id = str(response.data["id"])
        return SentPost(remote_id=tweet_id, remote_url=f"https://x.com/i/web/status/{tweet_id}")

    async def delete(self, remote_id: str) -> None:
        client = self._tweepy()
        try:
            await asyncio.to_thread(client.delete_tweet, remote_id, user_auth=True)
        except tweepy.NotFound:
            return
        except Exception as exc:
            raise _map_error(exc) from None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._client is not None:
            self._client.session.close()
            self._client = None

    # Media upload (X API v2), signed with the same OAuth 1.0a user credentials --------------

    def _sign(self, method: str, url: str) -> dict[str, str]:
        oauth = OAuth1Client(
            self._secret("api_key"),
            client_secret=self._secret("api_secret"),
            resource_owner_key=self._secret("access_token"),
            resource_owner_secret=self._secret("access_token_secret"),
        )
        _, headers, _ = oauth.sign(url, http_method=method)
        return dict(headers)

    async def _upload_call(
        self, params: dict[str, str], files: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        url = f"{self.settings.upload_base.rstrip('/')}/2/media/upload"
        signed_url = str(httpx.URL(url, params=params))
        response = await self._httpx().post(
            signed_url, headers=self._sign("POST", signed_url), files=files
        )
        if response.status_code >= 400:
            raise RuntimeError(
                f"media upload answered {response.status_code}: {response.text[:200]}"
            )
        if not response.content:  # APPEND answers 204 with no body
            return {}
        return response.json().get("data") or {}

    async def upload_image(self, image_url: str) -> str:
        """Download the article image and upload it to X; returns the media id."""
        data, content_type = await self._download(image_url)
        media_type = content_type if content_type.startswith("image/") else "image/jpeg"
        if len(data) <= self.settings.simple_upload_max:
            result = await self._upload_call(
                {"media_category": "tweet_image"},
                files={"media": ("image", data, media_type)},
            )
            return str(result["id"])
        init = await self._upload_call(
            {
                "command": "INIT",
                "total_bytes": str(len(data)),
                "media_type": media_type,
                "media_category": "tweet_image",
            }
        )
        media_id = str(init["id"])
        for index, start in enumerate(range(0, len(data), CHUNK)):
            await self._upload_call(
                {"command": "APPEND", "media_id": media_id, "segment_index": str(index)},
                files={"media": ("chunk", data[start : start + CHUNK], "application/octet-stream")},
            )
        final = await self._upload_call({"command": "FINALIZE", "media_id": media_id})
        await self._wait_processing(media_id, final.get("processing_info"))
        return media_id

    async def _wait_processing(self, media_id: str, info: dict[str, Any] | None) -> None:
        deadline = time.monotonic() + 60
        while info and info.get("state") in ("pending", "in_progress"):
            if time.monotonic() > deadline:
                raise RuntimeError("media processing did not finish in 60 s")
            await asyncio.sleep(min(float(info.get("check_after_secs", 1)), 5))
            url = f"{self.settings.upload_base.rstrip('/')}/2/media/upload"
            signed = str(httpx.URL(url, params={"command": "STATUS", "media_id": media_id}))
            response = await self._httpx().get(signed, headers=self._sign("GET", signed))
            info = (response.json().get("data") or {}).get("processing_info")
        if info and info.get("state") == "failed":
            raise RuntimeError(f"media processing failed: {info.get('error')}")

    async def _download(self, url: str) -> tuple[bytes, str]:
        limit = self.settings.max_image_bytes
        async with self._httpx().stream("GET", url) as response:
            if response.status_code != 200:
                raise RuntimeError(f"image {url}: HTTP {response.status_code}")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise RuntimeError(f"image {url} is over {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks), response.headers.get("content-type", "")


def _detail(exc: tweepy.HTTPException) -> str:
    try:
        body = exc.response.json()
    except Exception:
        return str(exc)
    return str(body.get("detail") or body.get("title") or exc.api_messages or exc)


def _map_error(exc: Exception) -> Exception:
    """Translate tweepy/requests failures into the outbox's vocabulary."""
    if isinstance(exc, tweepy.TooManyRequests):
        reset = exc.reset_time or int(time.time()) + 60
        return RetryLater("X rate limit reached", max(1.0, reset - time.time()))
    if isinstance(exc, tweepy.Unauthorized):
        return AuthFailure(f"X refused the credentials: {redact(_detail(exc))}")
    if isinstance(exc, tweepy.Forbidden):
        detail = redact(_detail(exc))
        if "duplicate" in detail.lower():
            return PermanentFailure(f"X rejected a duplicate post: {detail}")
        return AuthFailure(f"X forbids this app or account to post: {detail}")
    if isinstance(exc, tweepy.TwitterServerError):
        return TemporaryFailure(f"X server error: {redact(_detail(exc))}")
    if isinstance(exc, tweepy.HTTPException):
        return PermanentFailure(f"X rejected the post: {redact(_detail(exc))}")
    if isinstance(exc, requests.ConnectTimeout):
        return TemporaryFailure("X unreachable (connect timeout)")
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(reason, urllib3.exceptions.NewConnectionError):
            return TemporaryFailure("X unreachable (connection refused)")
        return UncertainDelivery(
            f"connection to X lost mid-request ({type(exc).__name__}); it may have posted"
        )
    if isinstance(exc, requests.Timeout):
        return UncertainDelivery("no answer from X in time; it may have posted")
    return UncertainDelivery(f"unexpected error from X: {type(exc).__name__}: {redact(str(exc))}")


ADAPTER = XAdapter
