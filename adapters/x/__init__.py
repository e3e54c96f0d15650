"""X (Twitter): posts through the X API v2 with tweepy, images through the v2 media upload.

Length is counted the way X counts it (twitter-text v3: 280 weighted units, each URL 23,
CJK and emoji 2), with the `twitter-text-parser` package. The article URL is always kept.

Images go through the current v2 media endpoints (the `command=` form of POST
/2/media/upload was retired in 2025): a one-shot POST /2/media/upload for small images,
POST /2/media/upload/initialize, /{id}/append, /{id}/finalize (+ GET ?command=STATUS) for
larger ones. Both are signed with the same OAuth 1.0a user credentials as the posts.

Exactly once (issue 14): X takes no idempotency key, but it refuses a post whose text is the
same as a recent post of the account (403 "duplicate content"). So a resend after a lost answer
cannot post twice: it posts (the first never landed) or X refuses it as a duplicate, which
confirms the first went out. The adapter is therefore `idempotent`. The post's id is then
learnt only by reading the account's timeline (GET /2/users/:id/tweets), which X bills: only
with `read_back: true`, counted against the target's daily budget (`cost_per_read`); else the
delivery is marked sent without an id, and its event says so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from pydantic import Field, field_validator

from adapters._cards import image_mime
from adapters._http import platform_client
from adapters.base import Adapter, SendContext, import_deferred
from adapters.x.length import weighted_length
from bot.models import Article, PostLength, RenderedPost, SentPost
from bot.outcomes import (
    CannotTell,
    PermanentFailure,
    SetupCheck,
    SetupStatus,
    UncertainDelivery,
)
from bot.secrets import SecretRef, redact
from bot.targets import TargetSettings
from bot.templates import Dialect, article_url
from bot.text import fit_post, join_blocks, squash_spaces

if TYPE_CHECKING:
    import requests

    from adapters.x.tweepy_api import XClient

log = logging.getLogger("newsbot.x")

LIMIT = 280
HEADLINE_ROOM = 100  # weighted units a headline keeps before hashtags give way
MIN_LEAD = 30  # a lead squeezed below this reads as noise: leave it out
#: What the one-shot upload takes (GIF must go through the chunked flow).
SIMPLE_TYPES = {"image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff"}
PILLOW_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}
#: 403 details that refuse one post, not the account: fail that post, keep the target going.
PER_POST_403 = re.compile(r"duplicate content|too long|not allowed because", re.IGNORECASE)
DUPLICATE_403 = re.compile(r"duplicate content", re.IGNORECASE)
#: How many recent posts a read-back looks at (GET /2/users/:id/tweets allows 5 to 100).
READ_BACK_POSTS = 50
PROCESSING_DEADLINE = 60.0


PLAIN = Dialect(
    "x", lambda s: s, lambda url, _label: url, lambda s: s, weighted_length, LIMIT, "weighted units"
)


class XSettings(TargetSettings):
    api_base: str = "https://api.x.com"
    upload_base: str = "https://api.x.com"
    api_key: SecretRef
    api_secret: SecretRef
    access_token: SecretRef
    access_token_secret: SecretRef
    with_image: bool = True
    #: After an outage, ask GET /2/users/me whether X is back. X bills reads, so this is off
    #: by default: then the next post is the probe.
    health_check: bool = False
    #: Images above this are not downloaded in full nor attached (X takes 5 MB photos).
    max_image_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=5 * 1024 * 1024)
    #: Images above this size go through the chunked initialize/append/finalize upload.
    simple_upload_max: int = Field(default=1024 * 1024, ge=1)
    upload_chunk_bytes: int = Field(default=1024 * 1024, ge=1024, le=4 * 1024 * 1024)
    #: What X bills per post, a post with a URL more: for the core's `timing.daily_budget`.
    cost_per_post: float | None = Field(default=None, ge=0)
    cost_per_post_with_url: float | None = Field(default=None, ge=0)
    #: Read the account's recent posts (GET /2/users/:id/tweets, billed) to find the id of a
    #: post X refused to repeat, or to settle an uncertain one. Off by default.
    read_back: bool = False
    #: The account's numeric user id for those reads (else one more billed GET /2/users/me).
    user_id: str | None = Field(default=None, pattern=r"^[0-9]{1,19}$")
    #: What X bills per read request, counted against `timing.daily_budget`.
    cost_per_read: float | None = Field(default=None, ge=0)

    @field_validator("api_base", "upload_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


# Rendering ---------------------------------------------------------------------------------


#: Unicode's categories Cc (controls) and Cs (surrogates), whole.
_CONTROL_OR_SURROGATE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def clean(text: str) -> str:
    """One line of text X accepts: NFC (what X counts), no control or invalid characters."""
    from twitter_text.regexp.invalid_chars import invalid_chars  # see weighted_length

    text = squash_spaces(unicodedata.normalize("NFC", text))
    text = invalid_chars.sub("", text)  # U+FFFE, U+FEFF, U+FFFF make a tweet invalid
    return squash_spaces(_CONTROL_OR_SURROGATE.sub("", text))


def compose(title: str, lead: str, tags: list[str], url: str) -> str:
    """Headline, lead, hashtags, URL, within 280 weighted units; the URL (the attribution)
    is always kept (bot.text.fit_post)."""
    return fit_post(
        title,
        lead,
        tags,
        lambda t, lead_, tag_line: join_blocks(t, lead_, tag_line, url),
        weighted_length,
        LIMIT,
        headline_room=HEADLINE_ROOM,
        min_lead=MIN_LEAD,
    )


def tweet_problem(text: str) -> str | None:
    """Why X would refuse `text`, or None if it is a valid tweet."""
    from twitter_text import parse_tweet  # see weighted_length

    parsed = parse_tweet(text)
    if parsed.valid:
        return None
    if not text.strip():
        return "post text is empty"
    if parsed.weightedLength > LIMIT:
        return f"post is {parsed.weightedLength} weighted units, over {LIMIT}"
    return "post text has characters X refuses"


# Sending -----------------------------------------------------------------------------------


class MediaError(Exception):
    """The image could not be attached (the post still goes out without it)."""


#: How long an uploaded media id may be attached (X: expires_after_secs, 86400); a resumed
#: delivery uploads again after a bit less.
MEDIA_LIFETIME = 20 * 3600
#: tweepy's side of the adapter, imported at the first call (see tweepy_api.py).
_TWEEPY_API = "adapters.x.tweepy_api"
READ_BACK_CHECK = "the account's recent posts (GET /2/users/:id/tweets, a billed read)"


class XAdapter(Adapter):
    platform: ClassVar[str] = "x"
    hyperlinks: ClassVar[bool] = True  # X links every URL in a post
    #: No key, but X refuses to repeat a recent post's text: a resend cannot post twice.
    idempotent: ClassVar[bool] = True
    Settings: ClassVar[type[TargetSettings]] = XSettings
    deferred_imports: ClassVar[tuple[str, ...]] = (_TWEEPY_API,)
    settings: XSettings

    def init_state(self) -> None:
        self._client: XClient | None = None
        self._api: ModuleType | None = None  # adapters.x.tweepy_api, at the first call
        self._http: httpx.AsyncClient | None = None
        self._user_id: str | None = self.settings.user_id
        #: Keys of sends made by this object (a send() without a stored row: its resend is
        #: known to be one even without saved progress).
        self._attempted: set[str] = set()
        if self.settings.read_back:
            self.read_back = READ_BACK_CHECK  # type: ignore[misc]

    # Rendering -----------------------------------------------------------------------------

    def render(self, article: Article) -> RenderedPost:
        s = self.settings
        url = article_url(article, s.utm)
        tidy = dataclasses.replace(article, title=clean(article.title), lead=clean(article.lead))
        text = ""
        if s.template:
            text = self.render_template(tidy, PLAIN)
        if not s.template or tweet_problem(text) or url not in text:
            # No template, or its output does not make a valid tweet with the link: the
            # default layout always does (unless the URL alone is over 280).
            tags = self.hashtags_for(article)
            text = compose(tidy.title, tidy.lead, tags, url)
        return RenderedPost(
            target=s.name,
            platform=self.platform,
            article_url=article.url,
            text=text,
            markup="plain",
            image_url=article.image_url if s.with_image else None,
        )

    def cost(self, post: RenderedPost) -> float:
        from twitter_text import extract_urls  # see weighted_length

        s = self.settings
        per_post = s.cost_per_post or 0.0
        if extract_urls(post.text) and s.cost_per_post_with_url is not None:
            return s.cost_per_post_with_url
        return per_post

    # Posting -------------------------------------------------------------------------------

    def _secret(self, name: str) -> str:
        return self.secrets[name].get()

    async def _tweepy(self) -> XClient:
        if self._client is None:
            api = await self._tweepy_api()
            self._client = api.XClient(
                self.settings.api_base,
                self.settings.timeout,
                consumer_key=self._secret("api_key"),
                consumer_secret=self._secret("api_secret"),
                access_token=self._secret("access_token"),
                access_token_secret=self._secret("access_token_secret"),
            )
        return self._client

    async def _tweepy_api(self) -> ModuleType:
        """adapters.x.tweepy_api (tweepy, requests and oauthlib), imported at the first call."""
        if self._api is None:
            self._api = await import_deferred(_TWEEPY_API)
        return self._api

    def _httpx(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = platform_client(self.settings.timeout, follow_redirects=True)
        return self._http

    def measure(self, post: RenderedPost) -> PostLength:
        return self.measure_in(PLAIN, post)

    async def prepare(self, post: RenderedPost, ctx: SendContext) -> None:
        """The text check, tweepy loaded, and the image upload (media ids stay usable for a
        day): nothing is posted. A restart reuses a saved media id."""
        problem = tweet_problem(post.text)
        if problem:
            raise PermanentFailure(problem)
        # tweepy is loaded and the client built here, before the post is committed `sending`:
        # a broken install then fails a step that published nothing.
        await self._tweepy()
        uploaded = float(ctx.progress.get("media_uploaded") or 0)
        if not post.image_url or (
            ctx.progress.get("media_id") and time.time() - uploaded < MEDIA_LIFETIME
        ):
            return
        try:
            media_id = await self.upload_image(post.image_url, post.article_url)
        except Exception as exc:  # any image trouble: the post must still go out
            log.warning("target %s: image not attached (%s)", self.name, _describe(exc))
            return
        await ctx.save_progress(
            {**ctx.progress, "media_id": media_id, "media_uploaded": time.time()}
        )

    def read_cost(self, progress: dict[str, Any]) -> float:
        return int(progress.get("billed_reads") or 0) * (self.settings.cost_per_read or 0.0)

    async def publish(self, post: RenderedPost, ctx: SendContext) -> SentPost:
        media_id = ctx.progress.get("media_id")
        media_ids = [str(media_id)] if media_id else []
        attempts = int(ctx.progress.get("tweet_attempts") or 0)
        resend = attempts > 0 or (ctx.idempotency_key or "") in self._attempted
        # Recorded before the request: a later duplicate refusal is then known to be ours.
        await ctx.save_progress({**ctx.progress, "tweet_attempts": attempts + 1})
        if ctx.idempotency_key:
            self._attempted.add(ctx.idempotency_key)
        client = await self._tweepy()
        api = await self._tweepy_api()
        try:
            response = await asyncio.to_thread(
                client.create_tweet, text=post.text, media_ids=media_ids or None, user_auth=True
            )
        except Exception as exc:
            mapped = api.map_error(exc)
            if resend and api.http_status(exc) == 403 and DUPLICATE_403.search(mapped.message):
                return await self._confirm_duplicate(post, ctx)
            raise mapped from None
        try:
            tweet_id = str(response.data["id"])
        except (AttributeError, KeyError, TypeError):
            # X said yes but we cannot tell to what: resending could post twice.
            raise UncertainDelivery("X accepted the post but its answer has no id") from None
        return SentPost(remote_id=tweet_id, remote_url=f"https://x.com/i/web/status/{tweet_id}")

    async def _confirm_duplicate(self, post: RenderedPost, ctx: SendContext) -> SentPost:
        """X refused the resend as a duplicate: the earlier attempt was posted."""
        why = "X refused the resend as duplicate content, so the earlier attempt was posted"
        if not self.settings.read_back:
            return SentPost("", None, f"{why}; its id is unknown (read_back is off)")
        try:
            found = await self._read_back(post, ctx)
        except CannotTell as exc:
            return SentPost("", None, f"{why}; its id is unknown ({exc})")
        if found is None:
            return SentPost("", None, f"{why}; not found among its recent posts, id unknown")
        return SentPost(found.remote_id, found.remote_url, f"{why}; found as {found.remote_id}")

    async def find_published(self, post: RenderedPost, ctx: SendContext) -> SentPost | None:
        """The account's recent posts (billed, only with read_back: true), looking for a post
        that links this post's URL; None if they reach back to when it was queued without it."""
        if not self.settings.read_back:
            return await super().find_published(post, ctx)
        return await self._read_back(post, ctx)

    async def _read_back(self, post: RenderedPost, ctx: SendContext) -> SentPost | None:
        client = await self._tweepy()
        api = await self._tweepy_api()
        reads = 0
        try:
            if self._user_id is None:
                reads += 1
                me = await asyncio.to_thread(client.get_me, user_auth=True)
                self._user_id = str(me.data.id)
            reads += 1
            since = datetime.fromtimestamp(max(0.0, ctx.since - 60), UTC)
            timeline = await asyncio.to_thread(
                client.get_users_tweets,
                self._user_id,
                max_results=READ_BACK_POSTS,
                start_time=since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                tweet_fields=["created_at", "entities"],
                user_auth=True,
            )
        except Exception as exc:
            raise CannotTell(f"{READ_BACK_CHECK}: {api.map_error(exc)}") from None
        finally:
            # Billed whatever the answer: counted against the target's daily budget.
            if reads:
                billed = int(ctx.progress.get("billed_reads") or 0) + reads
                await ctx.save_progress({**ctx.progress, "billed_reads": billed})
        from twitter_text import extract_urls  # see weighted_length

        wanted = set(extract_urls(post.text))
        tweets = list(getattr(timeline, "data", None) or [])
        for tweet in tweets:
            entities = getattr(tweet, "entities", None) or {}
            linked = {str(u.get("expanded_url")) for u in entities.get("urls") or []}
            if wanted & linked:
                tweet_id = str(tweet.id)
                return SentPost(tweet_id, f"https://x.com/i/web/status/{tweet_id}")
        if len(tweets) < READ_BACK_POSTS:  # every post since it was queued: not there
            return None
        raise CannotTell(
            f"{READ_BACK_CHECK}: not among the {len(tweets)} most recent posts, which do not "
            "reach back to when it was queued"
        )

    async def check(self) -> bool:
        if not self.settings.health_check:
            return False
        client = await self._tweepy()
        try:
            await asyncio.to_thread(client.get_me, user_auth=True)
        except Exception as exc:
            raise (await self._tweepy_api()).map_error(exc) from None
        return True

    async def delete(self, remote_id: str) -> None:
        """Delete a post (a retracted article). A post already gone is not an error."""
        client = await self._tweepy()
        api = await self._tweepy_api()
        try:
            await asyncio.to_thread(client.delete_tweet, remote_id, user_auth=True)
        except Exception as exc:
            if api.http_status(exc) == 404:
                return
            raise api.map_error(exc) from None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._client is not None:
            self._client.session.close()
            self._client = None

    # Media upload (X API v2), signed with the same OAuth 1.0a user credentials --------------

    def _sign(self, method: str, url: str) -> dict[str, str]:
        """OAuth 1.0a HMAC-SHA1 header for `url` (its query is signed; JSON and multipart
        bodies are not part of the signature, RFC 5849 section 3.4.1.3)."""
        from oauthlib.oauth1 import Client as OAuth1Client  # here: see tweepy_api's docstring

        oauth = OAuth1Client(
            self._secret("api_key"),
            client_secret=self._secret("api_secret"),
            resource_owner_key=self._secret("access_token"),
            resource_owner_secret=self._secret("access_token_secret"),
        )
        _, headers, _ = oauth.sign(url, http_method=method)
        return dict(headers)

    async def _media_call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        **body: Any,
    ) -> dict[str, Any]:
        url = str(httpx.URL(f"{self.settings.upload_base}{path}", params=params or {}))
        response = await self._httpx().request(method, url, headers=self._sign(method, url), **body)
        if response.status_code >= 400:
            raise MediaError(f"{path} answered {response.status_code}: {_problem_text(response)}")
        if not response.content:
            return {}
        data = response.json().get("data")
        return data if isinstance(data, dict) else {}

    async def upload_image(self, image_url: str, article_url: str = "") -> str:
        """Download the article image and upload it to X; returns the media id."""
        if self.fetch_image is not None:
            try:
                data = await self.fetch_image(image_url, article_url, self.settings.max_image_bytes)
            except Exception as exc:
                raise MediaError(f"image {image_url}: {exc}") from None
        else:
            data = await self._download(image_url)
        media_type = await asyncio.to_thread(sniff_image, data)  # Pillow: off the loop
        if len(data) <= self.settings.simple_upload_max and media_type in SIMPLE_TYPES:
            return await self._upload_simple(data, media_type)
        return await self._upload_chunked(data, media_type)

    async def _upload_simple(self, data: bytes, media_type: str) -> str:
        result = await self._media_call(
            "POST",
            "/2/media/upload",
            data={"media_category": "tweet_image", "media_type": media_type},
            files={"media": ("image", data, media_type)},
        )
        return _media_id(result)

    async def _upload_chunked(self, data: bytes, media_type: str) -> str:
        category = "tweet_gif" if media_type == "image/gif" else "tweet_image"
        init = await self._media_call(
            "POST",
            "/2/media/upload/initialize",
            json={"media_type": media_type, "total_bytes": len(data), "media_category": category},
        )
        media_id = _media_id(init)
        step = self.settings.upload_chunk_bytes
        for index, start in enumerate(range(0, len(data), step)):
            await self._media_call(
                "POST",
                f"/2/media/upload/{media_id}/append",
                data={"segment_index": str(index)},
                files={"media": ("chunk", data[start : start + step], "application/octet-stream")},
            )
        final = await self._media_call("POST", f"/2/media/upload/{media_id}/finalize")
        await self._wait_processing(media_id, final.get("processing_info"))
        return media_id

    async def _wait_processing(self, media_id: str, info: dict[str, Any] | None) -> None:
        """Only media whose processing succeeded may be attached (X answers 400 otherwise)."""
        deadline = time.monotonic() + PROCESSING_DEADLINE
        while info and info.get("state") in ("pending", "in_progress"):
            if time.monotonic() > deadline:
                raise MediaError(f"media processing did not finish in {PROCESSING_DEADLINE:.0f} s")
            await asyncio.sleep(min(max(float(info.get("check_after_secs") or 1), 0.1), 5.0))
            status = await self._media_call(
                "GET", "/2/media/upload", {"command": "STATUS", "media_id": media_id}
            )
            info = status.get("processing_info")
        if info and info.get("state") == "failed":
            raise MediaError(f"media processing failed: {info.get('error')}")

    async def _download(self, url: str) -> bytes:
        limit = self.settings.max_image_bytes
        async with self._httpx().stream("GET", url) as response:
            if response.status_code != 200:
                raise MediaError(f"image {url}: HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise MediaError(f"image {url} is {declared} bytes, over {limit}")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:  # servers may not say, or lie: stop reading at the cap
                    raise MediaError(f"image {url} is over {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks)

    async def verify(self) -> list[SetupCheck]:
        """GET /2/users/me, only when the target opts in: X bills every read."""
        if not self.settings.health_check:
            detail = (
                "not asked: X bills each read; set health_check: true to check the login"
                " with GET /2/users/me"
            )
            return [SetupCheck(self.name, SetupStatus.SKIPPED, detail)]
        client = await self._tweepy()
        try:
            me = await asyncio.to_thread(client.get_me, user_auth=True)
        except Exception as exc:
            mapped = (await self._tweepy_api()).map_error(exc)
            detail = redact(getattr(mapped, "message", None) or str(mapped))
            return [SetupCheck(self.name, SetupStatus.FAILED, detail)]
        username = getattr(getattr(me, "data", None), "username", None)
        return [SetupCheck(self.name, SetupStatus.OK, f"logged in as @{username} (a billed read)")]


def sniff_image(data: bytes) -> str:
    """The image's real MIME type (a CMS's Content-Type is often wrong); MediaError if none."""
    kind = image_mime(data, PILLOW_TYPES)
    if kind is None:
        raise MediaError("the article image is not a JPEG, PNG, GIF, WebP, BMP or TIFF")
    return kind


def _media_id(data: dict[str, Any]) -> str:
    media_id = data.get("id") or data.get("media_id_string")
    if not media_id:
        raise MediaError("media upload answered without a media id")
    return str(media_id)


def _problem_text(response: httpx.Response | requests.Response) -> str:
    """The human part of an X error body (RFC 7807 problem, or v2 `errors`), redacted."""
    try:
        body = response.json()
    except ValueError:
        return redact(response.text[:200])
    if not isinstance(body, dict):
        return redact(str(body)[:200])
    parts = [str(body[k]) for k in ("title", "detail") if body.get(k)]
    for error in body.get("errors") or []:
        if isinstance(error, dict) and error.get("message"):
            parts.append(str(error["message"]))
    return redact(" - ".join(dict.fromkeys(parts)) or response.text[:200])


def _describe(exc: Exception) -> str:
    return redact(str(exc)) or type(exc).__name__


# Error mapping -----------------------------------------------------------------------------


def retry_after(headers: Mapping[str, str], now: float) -> float:
    """Seconds until X lets this target post again.

    A 429 from a spent 24-hour cap still carries the 15-minute window's x-rate-limit-reset;
    waiting for that would only earn another 429, so the exhausted 24-hour reset wins.
    """
    resets: list[int] = []
    for prefix in ("x-app-limit-24hour", "x-user-limit-24hour"):
        if headers.get(f"{prefix}-remaining") == "0":
            resets.append(_int(headers.get(f"{prefix}-reset")))
    if not any(resets):
        resets.append(_int(headers.get("x-rate-limit-reset")))
    latest = max(resets)
    if not latest:
        return 60.0  # no reset header at all: a short, polite wait
    return max(1.0, latest - now)


def _int(value: str | None) -> int:
    return int(value) if value and value.strip().isdigit() else 0


ADAPTER = XAdapter
