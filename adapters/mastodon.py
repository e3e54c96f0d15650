"""Mastodon: statuses through the REST API with plain httpx.

Limits are the instance's own, read once from GET /api/v2/instance
(configuration.statuses.max_characters, characters_reserved_per_url, media limits) and cached;
until then renders assume Mastodon's defaults (500, 23). Length is counted as Mastodon's
StatusLengthValidator does: extended grapheme clusters, every URL with a scheme as
characters_reserved_per_url, a remote mention @user@domain as @user.

The article URL stands in the text (Mastodon builds the link card from it), hashtags are
native, an Idempotency-Key from the delivery goes with every post (the instance answers a
repeated key with the status it already made, for an hour), images go through POST
/api/v2/media (202 while processing: GET /api/v1/media/:id until it answers 200) with the
headline as alt text. Edits are PUT /api/v1/statuses/:id, deletes DELETE.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar, Literal

import httpx
import regex
from pydantic import Field, field_validator

from adapters._cards import image_mime
from adapters._http import platform_client
from adapters.base import Adapter, SendContext
from bot.models import Article, PostLength, RenderedPost, SentPost
from bot.outcomes import (
    AuthFailure,
    DeliveryError,
    PermanentFailure,
    RetryLater,
    SetupCheck,
    SetupStatus,
    TemporaryFailure,
    UncertainDelivery,
)
from bot.secrets import SecretRef, redact
from bot.targets import TargetSettings
from bot.templates import Dialect, article_url
from bot.text import fit_post, join_blocks, squash_spaces, trim_text

log = logging.getLogger("newsbot.mastodon")

MIN_LEAD = 30  # a lead squeezed below this reads as noise: leave it out
HEADLINE_ROOM = 120  # characters a headline keeps before hashtags give way
_REMOTE_MENTION = re.compile(r"(?<![\w@])@(\w+)@[\w.\-]+\w", re.UNICODE)
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
PILLOW_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


@dataclass(frozen=True, slots=True)
class InstanceLimits:
    """What one instance allows, from /api/v2/instance."""

    max_characters: int = 500
    characters_reserved_per_url: int = 23
    max_media_attachments: int = 4
    description_limit: int = 1500
    image_size_limit: int = 16 * 1024 * 1024
    supported_mime_types: tuple[str, ...] = ()

    @classmethod
    def from_instance(cls, body: dict[str, Any]) -> InstanceLimits:
        """Parse /api/v2/instance; a field the instance does not send keeps Mastodon's default."""
        config = body.get("configuration") or {}
        statuses = config.get("statuses") or {}
        media = config.get("media_attachments") or {}
        default = cls()

        def number(section: dict[str, Any], key: str, fallback: int) -> int:
            value = section.get(key)
            return int(value) if isinstance(value, int) and value > 0 else fallback

        return cls(
            max_characters=number(statuses, "max_characters", default.max_characters),
            characters_reserved_per_url=number(
                statuses, "characters_reserved_per_url", default.characters_reserved_per_url
            ),
            max_media_attachments=number(
                statuses, "max_media_attachments", default.max_media_attachments
            ),
            description_limit=number(media, "description_limit", default.description_limit),
            image_size_limit=number(media, "image_size_limit", default.image_size_limit),
            supported_mime_types=tuple(media.get("supported_mime_types") or ()),
        )


DEFAULT_LIMITS = InstanceLimits()


# Counting and rendering (pure) --------------------------------------------------------------


def mastodon_length(text: str, url_chars: int = 23) -> int:
    """Characters as Mastodon counts a status: grapheme clusters, each URL with a scheme as
    `url_chars`, a remote mention as its local part."""
    # At the first render, not at start-up: twitter-text's import loads pkg_resources and an
    # emoji table (~12 MB) that polling never needs.
    from twitter_text import extract_urls_with_indices

    pieces: list[str] = []
    cursor = 0
    for entity in extract_urls_with_indices(text):
        start, end = entity["indices"]
        if not str(entity["url"]).lower().startswith(("http://", "https://")):
            continue  # Mastodon extracts URLs with a scheme only
        pieces.append(text[cursor:start])
        pieces.append("x" * url_chars)
        cursor = end
    pieces.append(text[cursor:])
    countable = _REMOTE_MENTION.sub(lambda m: "@" + m.group(1), "".join(pieces))
    return len(regex.findall(r"\X", countable))


def clean(text: str) -> str:
    """One line of text: NFC, no control characters, single spaces."""
    text = squash_spaces(unicodedata.normalize("NFC", text))
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cs"))


def compose(
    title: str, lead: str, tags: list[str], url: str, limits: InstanceLimits = DEFAULT_LIMITS
) -> str:
    """Headline, lead, URL, hashtags (the way people post on Mastodon) within the instance's
    limit; the URL (the attribution) is always kept (bot.text.fit_post)."""
    return fit_post(
        title,
        lead,
        tags,
        lambda t, lead_, tag_line: join_blocks(t, lead_, url, tag_line),
        lambda text: mastodon_length(text, limits.characters_reserved_per_url),
        limits.max_characters,
        headline_room=HEADLINE_ROOM,
        min_lead=MIN_LEAD,
    )


def language_code(value: str | None) -> str | None:
    """The ISO 639 code Mastodon takes ('en-GB' -> 'en'), or None when there is none."""
    if not value:
        return None
    code = value.strip().replace("_", "-").split("-")[0].lower()
    return code if _LANGUAGE.match(code) else None


@lru_cache(maxsize=16)
def _dialect(limit: int, url_chars: int) -> Dialect:
    return Dialect(
        "mastodon",
        lambda s: s,
        lambda url, _label: url,
        lambda s: s,
        lambda s: mastodon_length(s, url_chars),
        limit,
    )


# Settings and adapter ----------------------------------------------------------------------


class MastodonSettings(TargetSettings):
    #: The instance's base URL, e.g. https://mastodon.social.
    api_base: str
    access_token: SecretRef
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    #: ISO 639 code for every post; None: the article's language.
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}$")
    max_hashtags: int = Field(default=3, ge=0, le=30)
    with_image: bool = True
    media_poll_interval: float = Field(default=1.0, gt=0, le=30)
    media_poll_timeout: float = Field(default=60.0, gt=0, le=600)

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class MastodonError(Exception):
    """An HTTP error answer from the instance, before it is mapped to an outcome."""

    def __init__(self, status: int, message: str, headers: httpx.Headers) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class MediaError(Exception):
    """The image could not be attached (the post still goes out without it)."""


class MastodonAdapter(Adapter):
    platform: ClassVar[str] = "mastodon"
    hyperlinks: ClassVar[bool] = True  # Mastodon links every URL in a status
    #: The instance answers a repeated Idempotency-Key with the status it already made.
    idempotent: ClassVar[bool] = True
    Settings: ClassVar[type[TargetSettings]] = MastodonSettings
    settings: MastodonSettings

    def init_state(self) -> None:
        self._http: httpx.AsyncClient | None = None
        #: The instance's limits once read (None: not yet; renders use Mastodon's defaults).
        self.limits: InstanceLimits | None = None
        self._limits_lock = asyncio.Lock()
        #: (remaining, reset epoch) from the last X-RateLimit-* headers seen.
        self._rate: tuple[int, float] | None = None

    # Rendering -----------------------------------------------------------------------------

    def render(self, article: Article) -> RenderedPost:
        s = self.settings
        limits = self.limits or DEFAULT_LIMITS
        url = article_url(article, s.utm)
        tidy = dataclasses.replace(article, title=clean(article.title), lead=clean(article.lead))
        text = ""
        if s.template:
            dialect = _dialect(limits.max_characters, limits.characters_reserved_per_url)
            text = self.render_template(tidy, dialect)
        if not s.template or url not in text or self.too_long(text, limits):
            text = compose(tidy.title, tidy.lead, self.hashtags_for(article), url, limits)
        language = s.language or language_code(article.language)
        return RenderedPost(
            target=s.name,
            platform=self.platform,
            article_url=article.url,
            text=text,
            markup="plain",
            image_url=article.image_url if s.with_image else None,
            options={"alt": tidy.title, **({"language": language} if language else {})},
        )

    def measure(self, post: RenderedPost) -> PostLength:
        """As this instance counts (Mastodon's defaults until its limits have been read)."""
        limits = self.limits or DEFAULT_LIMITS
        return self.measure_in(
            _dialect(limits.max_characters, limits.characters_reserved_per_url), post
        )

    @staticmethod
    def too_long(text: str, limits: InstanceLimits) -> bool:
        return mastodon_length(text, limits.characters_reserved_per_url) > limits.max_characters

    # HTTP ----------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = platform_client(self.settings.timeout, base_url=self.settings.api_base)
        return self._http

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets['access_token'].get()}"}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        may_have_posted: bool = False,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One API call; MastodonError for an HTTP error, outcomes for transport trouble."""
        try:
            response = await self._client().request(
                method, path, headers={**self._headers(), **(headers or {})}, **kwargs
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TemporaryFailure(
                f"Mastodon instance unreachable ({type(exc).__name__}); nothing was sent"
            ) from None
        except httpx.HTTPError as exc:
            if may_have_posted:
                raise UncertainDelivery(
                    f"no complete answer from Mastodon ({type(exc).__name__}); it may have posted"
                ) from None
            raise TemporaryFailure(f"Mastodon: {type(exc).__name__}") from None
        self._note_rate(response.headers)
        if response.status_code >= 400:
            raise MastodonError(response.status_code, _error_text(response), response.headers)
        return response

    def _note_rate(self, headers: httpx.Headers) -> None:
        remaining, reset = headers.get("x-ratelimit-remaining"), headers.get("x-ratelimit-reset")
        if remaining is not None and remaining.strip().isdigit() and reset:
            when = _parse_reset(reset)
            if when is not None:
                self._rate = (int(remaining), when)

    def _respect_rate_limit(self) -> None:
        """Do not spend a request the instance already said it will refuse."""
        if self._rate is None:
            return
        remaining, reset = self._rate
        wait = reset - time.time()
        if remaining <= 0 and wait > 0:
            raise RetryLater(f"Mastodon rate limit spent until the reset in {wait:.0f} s", wait)

    async def instance_limits(self) -> InstanceLimits:
        """The instance's limits, read from /api/v2/instance once and kept."""
        if self.limits is not None:
            return self.limits
        async with self._limits_lock:
            if self.limits is None:
                try:
                    response = await self._call("GET", "/api/v2/instance")
                    self.limits = InstanceLimits.from_instance(response.json())
                except MastodonError as exc:
                    raise map_error(exc) from None
                except ValueError:
                    raise TemporaryFailure("/api/v2/instance did not answer JSON") from None
        return self.limits

    # Posting -------------------------------------------------------------------------------

    async def prepare(self, post: RenderedPost, ctx: SendContext) -> None:
        """The instance's limits, the length check and the image (upload and processing):
        nothing is posted. The media id is saved; a resume reuses it while it still exists."""
        limits = await self.instance_limits()
        if self.too_long(post.text, limits):
            count = mastodon_length(post.text, limits.characters_reserved_per_url)
            raise PermanentFailure(
                f"post is {count} characters as Mastodon counts, over this instance's "
                f"limit of {limits.max_characters}"
            )
        self._respect_rate_limit()
        progress = {k: v for k, v in ctx.progress.items() if k != "media_id"}
        if post.image_url:
            saved = str(ctx.progress.get("media_id") or "")
            try:
                if saved and await self._media_ready(saved):
                    progress["media_id"] = saved
                else:
                    progress["media_id"] = await self.upload_image(post, limits, ctx)
            except DeliveryError as exc:
                if isinstance(exc, AuthFailure):
                    raise
                log.warning("target %s: image not attached (%s)", self.name, exc.message)
            except (MediaError, MastodonError) as exc:
                log.warning("target %s: image not attached (%s)", self.name, redact(str(exc)))
        if progress != ctx.progress:
            await ctx.save_progress(progress)
        # The uploads may have spent the rate limit: do not spend the publishing request too.
        self._respect_rate_limit()

    async def publish(self, post: RenderedPost, ctx: SendContext) -> SentPost:
        """The one POST /api/v1/statuses, with the delivery's Idempotency-Key."""
        payload: dict[str, Any] = {"status": post.text, "visibility": self.settings.visibility}
        if post.options.get("language"):
            payload["language"] = post.options["language"]
        media_id = ctx.progress.get("media_id") if post.image_url else None
        if media_id:
            payload["media_ids"] = [str(media_id)]
        # Without a key from the core, one derived from the post keeps retries idempotent.
        key = _header_key(ctx.idempotency_key) if ctx.idempotency_key else _derived_key(post)
        try:
            response = await self._call(
                "POST",
                "/api/v1/statuses",
                json=payload,
                headers={"Idempotency-Key": key},
                may_have_posted=True,
            )
        except MastodonError as exc:
            raise map_error(exc) from None
        try:
            body = response.json()
            status_id = str(body["id"])
        except (ValueError, KeyError, TypeError):
            raise UncertainDelivery("Mastodon accepted the post but its answer has no id") from None
        return SentPost(remote_id=status_id, remote_url=body.get("url") or body.get("uri"))

    async def _media_ready(self, media_id: str) -> bool:
        """Whether an uploaded attachment can still be used (waiting while it processes);
        False when the instance no longer has it unattached (404): upload again."""
        try:
            response = await self._call("GET", f"/api/v1/media/{media_id}")
        except MastodonError as exc:
            if exc.status == 404:
                return False
            raise
        if response.status_code != 200 or not response.json().get("url"):
            await self._wait_processed(media_id)
        return True

    async def upload_image(
        self, post: RenderedPost, limits: InstanceLimits, ctx: SendContext | None = None
    ) -> str:
        """Upload the article image with the headline as alt text; the processed media's id.
        With `ctx`, the id is saved before the processing wait (a resume waits on it)."""
        assert post.image_url
        data = await self._image_bytes(post.image_url, post.article_url, limits.image_size_limit)
        media_type = sniff_image(data)
        if limits.supported_mime_types and media_type not in limits.supported_mime_types:
            raise MediaError(f"the instance does not take {media_type} images")
        alt = trim_text(str(post.options.get("alt") or ""), limits.description_limit)
        response = await self._call(
            "POST",
            "/api/v2/media",
            files={"file": ("image", data, media_type)},
            data={"description": alt} if alt else None,
        )
        media = response.json()
        media_id = str(media["id"])
        if ctx is not None:
            await ctx.save_progress({**ctx.progress, "media_id": media_id})
        if response.status_code == 202 or not media.get("url"):
            await self._wait_processed(media_id)
        return media_id

    async def _wait_processed(self, media_id: str) -> None:
        """A status may only attach processed media (422 otherwise): poll until url is set."""
        s = self.settings
        deadline = time.monotonic() + s.media_poll_timeout
        while True:
            await asyncio.sleep(s.media_poll_interval)
            response = await self._call("GET", f"/api/v1/media/{media_id}")
            if response.status_code == 200 and response.json().get("url"):
                return
            if time.monotonic() > deadline:
                raise MediaError(f"media {media_id} still processing after {s.media_poll_timeout}s")

    async def _image_bytes(self, image_url: str, article: str, cap: int) -> bytes:
        if self.fetch_image is not None:
            try:
                return await self.fetch_image(image_url, article, cap)
            except Exception as exc:
                raise MediaError(f"image {image_url}: {exc}") from None
        async with platform_client(self.settings.timeout) as client:
            try:
                async with client.stream("GET", image_url) as response:
                    if response.status_code != 200:
                        raise MediaError(f"image {image_url}: HTTP {response.status_code}")
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > cap:
                            raise MediaError(f"image {image_url} is over {cap} bytes")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.HTTPError as exc:
                raise MediaError(f"image {image_url}: {type(exc).__name__}") from None

    async def edit(self, remote_id: str, post: RenderedPost) -> None:
        limits = await self.instance_limits()
        if self.too_long(post.text, limits):
            raise PermanentFailure(f"edited post is over the limit of {limits.max_characters}")
        try:
            current = (await self._call("GET", f"/api/v1/statuses/{remote_id}")).json()
            # Keep the attachments: an edit names every attachment the status keeps.
            media_ids = [str(m["id"]) for m in current.get("media_attachments") or []]
            payload: dict[str, Any] = {"status": post.text, "media_ids": media_ids}
            if post.options.get("language"):
                payload["language"] = post.options["language"]
            await self._call("PUT", f"/api/v1/statuses/{remote_id}", json=payload)
        except MastodonError as exc:
            raise map_error(exc) from None

    async def delete(self, remote_id: str) -> None:
        """Delete a status (a retracted article). A status already gone is not an error."""
        try:
            await self._call("DELETE", f"/api/v1/statuses/{remote_id}")
        except MastodonError as exc:
            if exc.status == 404:
                return
            raise map_error(exc) from None

    async def check(self) -> bool:
        """The token is accepted, and the instance's limits are read while at it."""
        try:
            await self._call("GET", "/api/v1/accounts/verify_credentials")
        except MastodonError as exc:
            raise map_error(exc) from None
        await self.instance_limits()
        return True

    async def warm_up(self) -> None:
        """Read the instance's limits before the first render (the service calls this at
        start), so the first post is laid out for this instance, not Mastodon's defaults."""
        await self.instance_limits()

    async def verify(self) -> list[SetupCheck]:
        """The token is accepted (verify_credentials names the account) and the instance's
        limits are read; nothing is posted."""
        try:
            account = (await self._call("GET", "/api/v1/accounts/verify_credentials")).json()
            limits = await self.instance_limits()
        except MastodonError as exc:
            if exc.status == 403:
                detail = (
                    f"the token may not read its account ({exc.message}): give the app the"
                    " profile (or read:accounts), write:statuses and write:media scopes"
                )
            else:
                detail = map_error(exc).message
            return [SetupCheck(self.name, SetupStatus.FAILED, detail)]
        except DeliveryError as exc:
            return [SetupCheck(self.name, SetupStatus.FAILED, exc.message)]
        except ValueError:
            detail = "verify_credentials did not answer JSON: is api_base a Mastodon instance?"
            return [SetupCheck(self.name, SetupStatus.FAILED, detail)]
        who = account.get("acct") or account.get("username") or account.get("id")
        detail = (
            f"account @{who} on {self.settings.api_base}; posts up to "
            f"{limits.max_characters} characters (URLs count "
            f"{limits.characters_reserved_per_url})"
        )
        return [SetupCheck(self.name, SetupStatus.OK, detail)]

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if self.limits is not None:
            info["max_characters"] = self.limits.max_characters
        return info


def _header_key(key: str) -> str:
    """The key as a header value: printable ASCII kept, anything else hashed (stable)."""
    if key.isascii() and key.isprintable() and len(key) <= 128:
        return key
    return hashlib.sha256(key.encode()).hexdigest()


def _derived_key(post: RenderedPost) -> str:
    return hashlib.sha256(f"{post.target}\n{post.article_url}".encode()).hexdigest()


def sniff_image(data: bytes) -> str:
    """The image's real MIME type (a CMS's Content-Type is often wrong); MediaError if none."""
    kind = image_mime(data, PILLOW_TYPES)
    if kind is None:
        raise MediaError("the article image is not a JPEG, PNG, GIF or WebP")
    return kind


# Error mapping -----------------------------------------------------------------------------


def _error_text(response: httpx.Response) -> str:
    """Mastodon's {"error": "..."} (plus error_description where OAuth adds it), redacted."""
    try:
        body = response.json()
    except ValueError:
        return redact(response.text[:200]) or f"HTTP {response.status_code}"
    if isinstance(body, dict) and body.get("error"):
        parts = [str(body["error"]), str(body.get("error_description") or "")]
        return redact(": ".join(p for p in parts if p))
    return redact(str(body)[:200])


def _parse_reset(value: str) -> float | None:
    """X-RateLimit-Reset: an ISO 8601 time on Mastodon (epoch seconds accepted too)."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def map_error(exc: MastodonError) -> DeliveryError:
    """Translate an instance's HTTP error into the outbox's vocabulary, once."""
    status, detail = exc.status, exc.message
    if status == 429:
        reset = _parse_reset(exc.headers.get("x-ratelimit-reset", ""))
        wait = max(1.0, reset - time.time()) if reset else 60.0
        return RetryLater(f"Mastodon rate limit reached: {detail}", wait)
    if status == 401:
        return AuthFailure(f"Mastodon refused the access token: {detail}")
    if status == 403:
        return AuthFailure(f"Mastodon forbids this account or token to post: {detail}")
    if status == 422 and "not finished processing" in detail:
        return TemporaryFailure(f"Mastodon: {detail}")
    if status >= 500:
        return TemporaryFailure(f"Mastodon server error {status}: {detail}")
    return PermanentFailure(f"Mastodon rejected the post ({status}): {detail}")


ADAPTER = MastodonAdapter
