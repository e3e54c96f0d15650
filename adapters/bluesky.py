"""Bluesky (AT Protocol): posts as app.bsky.feed.post records through a PDS's XRPC API.

Plain httpx, no SDK: newsbot needs six XRPC calls (createSession, refreshSession,
getSession, uploadBlob, createRecord/getRecord/deleteRecord) and must count text, lay
facets and fit the card itself anyway; the `atproto` SDK would add its generated models
and its own session handling for no work saved (see the README).

- Length as Bluesky counts it: at most 300 graphemes (extended grapheme clusters, `regex`'s
  \\X) AND 3,000 UTF-8 bytes.
- The article link is a short label in the text ("example.com/news/…") made clickable by a
  link facet; hashtags get tag facets. Facet offsets are UTF-8 byte offsets.
- A link card (app.bsky.embed.external) with title, description and a thumbnail blob under
  1,000,000 bytes: the article image re-encoded, or the rendered image card.
- One session per adapter (createSession is limited to a few a day): refreshed with
  refreshSession when the access token expires, created again only when that fails.
- With an idempotency key the record key (rkey) is a TID derived from it: the PDS refuses a
  second record with the same key, so a retry after a crash cannot post twice; an answer
  that leaves the outcome open is settled by reading the record back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import logging
import math
import re
import time
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import regex
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import Field, field_validator

from adapters._cards import attribution_line, render_card
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

log = logging.getLogger("newsbot.bluesky")

MAX_GRAPHEMES = 300
MAX_BYTES = 3000
THUMB_MAX_BYTES = 1_000_000
THUMB_MAX_SIDE = 1200  # for article photos: the link card shows at most about this wide
MAX_LANGS = 3
TAG_MAX_GRAPHEMES = 64
TAG_MAX_BYTES = 640
LABEL_GRAPHEMES = 32  # a link label like the app's: host and the start of the path
CARD_TITLE_GRAPHEMES = 300
CARD_DESCRIPTION_GRAPHEMES = 1000
MIN_LEAD = 40
HEADLINE_ROOM = 120  # graphemes a headline keeps before hashtags give way
POST = "app.bsky.feed.post"
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
#: Where keys without an article date put their TID clock (any fixed instant would do).
TID_FALLBACK_EPOCH_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
_GRAPHEME = regex.compile(r"\X")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_URL = re.compile(r"https?://[^\s<>\"']+")
# A hashtag as the Bluesky app detects one: '#' after start or space, then a word that is
# not only digits; trailing punctuation is not part of it.
_HASHTAG = regex.compile(r"(?<!\S)[#＃]([^\s#＃]*[^\d\s\p{P}][^\s#＃]*)")
_TRAILING_PUNCT = regex.compile(r"\p{P}+$")


# Counting ----------------------------------------------------------------------------------


def grapheme_count(text: str) -> int:
    """Extended grapheme clusters, the unit of Bluesky's 300 (a ZWJ family emoji is one)."""
    return len(_GRAPHEME.findall(text))


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def post_length(text: str) -> int:
    """One measure for both limits: <= 300 exactly when graphemes <= 300 and bytes <= 3000."""
    return max(grapheme_count(text), math.ceil(utf8_len(text) / (MAX_BYTES / MAX_GRAPHEMES)))


def text_problem(text: str) -> str | None:
    """Why the PDS would refuse `text` as a post's text, or None."""
    if grapheme_count(text) > MAX_GRAPHEMES:
        return f"post is {grapheme_count(text)} graphemes, over {MAX_GRAPHEMES}"
    if utf8_len(text) > MAX_BYTES:
        return f"post is {utf8_len(text)} bytes, over {MAX_BYTES}"
    return None


def trim_graphemes(text: str, limit: int) -> str:
    """`text` shortened to `limit` graphemes (with an ellipsis), never inside a cluster."""
    clusters = _GRAPHEME.findall(text)
    if len(clusters) <= limit:
        return text
    return trim_text("".join(clusters[:limit]), limit, grapheme_count) or "".join(
        clusters[: max(0, limit - 1)]
    )


PLAIN = Dialect(
    "bluesky",
    lambda s: s,
    lambda url, _label: url,
    lambda s: s,
    post_length,
    MAX_GRAPHEMES,
    "graphemes (or tenths of 3,000 bytes, when more)",
)


# Settings ----------------------------------------------------------------------------------


class BlueskySettings(TargetSettings):
    #: The account's PDS (bsky.social's entryway for hosted accounts).
    api_base: str = "https://bsky.social"
    #: The account's handle (or DID) used to log in.
    identifier: str = Field(min_length=3)
    #: An app password (Settings > Privacy and security > App passwords), never the main one.
    app_password: SecretRef
    #: Language of posts whose article names none (BCP 47, e.g. "en", "az", "pt-BR").
    language: str | None = None
    #: A link card (title, description, thumbnail) under each post.
    link_card: bool = True
    #: When the article has no usable image, the card's thumbnail is the rendered image card.
    card_fallback: bool = True
    brand_color: str = "#0b3d91"
    #: Article images above this are not downloaded (the thumbnail is re-encoded below 1 MB).
    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=50 * 1024 * 1024)

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is not None and not _LANGUAGE.match(value):
            raise ValueError("must be a BCP 47 language tag such as en, az or pt-BR")
        return value


# Rendering (pure) --------------------------------------------------------------------------


def clean(text: str) -> str:
    """One line of NFC text without control characters."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cs"))
    return squash_spaces(text)


def link_label(url: str) -> str:
    """How the Bluesky app shows a link: host and path without the scheme, shortened."""
    parts = urlsplit(url)
    host = parts.netloc.removeprefix("www.")
    rest = parts.path.rstrip("/") + (f"?{parts.query}" if parts.query else "")
    label = host + rest
    if grapheme_count(label) <= LABEL_GRAPHEMES:
        return label
    clusters = _GRAPHEME.findall(label)
    return "".join(clusters[: LABEL_GRAPHEMES - 1]).rstrip("/?&.-_") + "…"


def compose(title: str, lead: str, tags: list[str], label: str) -> str:
    """Headline, lead, hashtags and the link label within 300 graphemes and 3,000 bytes
    (post_length measures both); the link label is always kept (bot.text.fit_post)."""
    return fit_post(
        title,
        lead,
        tags,
        lambda t, lead_, tag_line: join_blocks(t, lead_, tag_line, label),
        post_length,
        MAX_GRAPHEMES,
        headline_room=HEADLINE_ROOM,
        min_lead=MIN_LEAD,
    )


def languages(article: Article, default: str | None) -> list[str]:
    """`langs` of the post: the article's language, else the target's, if a valid tag."""
    for candidate in (article.language, default):
        if candidate and _LANGUAGE.match(candidate.strip()):
            return [candidate.strip()]
    return []


def facets_for(text: str, links: Mapping[str, str]) -> list[dict[str, Any]]:
    """Rich-text facets for `text`: each label in `links` and each bare URL as a link,
    each hashtag as a tag. byteStart/byteEnd are UTF-8 byte offsets (end exclusive)."""
    spans: list[tuple[int, int, dict[str, Any]]] = []

    def add(start: int, end: int, feature: dict[str, Any]) -> None:
        if any(start < e and s < end for s, e, _ in spans):
            return  # facets must not overlap
        spans.append((start, end, feature))

    for label, uri in links.items():
        at = text.rfind(label) if label else -1
        if at >= 0:
            add(at, at + len(label), {"$type": "app.bsky.richtext.facet#link", "uri": uri})
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?)»")
        add(
            match.start(),
            match.start() + len(url),
            {"$type": "app.bsky.richtext.facet#link", "uri": url},
        )
    for match in _HASHTAG.finditer(text):
        tag = _TRAILING_PUNCT.sub("", match.group(1))
        if not tag or tag.isdigit():
            continue
        if grapheme_count(tag) > TAG_MAX_GRAPHEMES or utf8_len(tag) > TAG_MAX_BYTES:
            continue
        start = match.start()
        add(start, match.start(1) + len(tag), {"$type": "app.bsky.richtext.facet#tag", "tag": tag})
    facets = []
    for start, end, feature in sorted(spans, key=lambda s: s[0]):
        byte_start = utf8_len(text[:start])
        facets.append(
            {
                "index": {
                    "byteStart": byte_start,
                    "byteEnd": byte_start + utf8_len(text[start:end]),
                },
                "features": [feature],
            }
        )
    return facets


def record_key(idempotency_key: str, when: datetime | None = None) -> str:
    """A TID (the key type app.bsky.feed.post requires) that only depends on the key.

    The 53-bit microsecond clock is the article's date (its sub-second part and the 10-bit
    clock id from the key's hash, so targets posting one article to one account differ),
    or a fixed instant plus hash bits when the article has no date.
    """
    digest = int.from_bytes(hashlib.sha256(idempotency_key.encode()).digest()[:8], "big")
    clock_id = digest & 0x3FF
    spread = (digest >> 10) % 1_000_000
    if when is not None:
        stamp = int(when.astimezone(UTC).timestamp()) * 1_000_000 + spread
    else:
        stamp = TID_FALLBACK_EPOCH_US + ((digest >> 10) % (1 << 40))
    value = ((stamp & ((1 << 53) - 1)) << 10) | clock_id
    return "".join(TID_ALPHABET[(value >> (5 * i)) & 31] for i in range(12, -1, -1))


# Thumbnails (CPU work: run off the event loop) ---------------------------------------------


def make_thumbnail(photo: bytes) -> bytes:
    """The photo as a JPEG under 1,000,000 bytes, at most 1200 px a side; ValueError if the
    bytes are not an image."""
    try:
        with Image.open(io.BytesIO(photo)) as image:
            image.load()
            picture = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(f"not an image ({exc})") from None
    picture.thumbnail((THUMB_MAX_SIDE, THUMB_MAX_SIDE), Image.Resampling.LANCZOS)
    for quality in (85, 75, 65, 50, 35):
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=quality, optimize=True)
        if out.tell() < THUMB_MAX_BYTES:
            return out.getvalue()
        if quality == 50:
            picture.thumbnail((800, 800), Image.Resampling.LANCZOS)
    raise ValueError("the image does not compress below 1,000,000 bytes")


# The adapter -------------------------------------------------------------------------------


@dataclasses.dataclass
class _Session:
    did: str
    access: str
    refresh: str


class XrpcError(Exception):
    """An XRPC error answer: HTTP status, the `error` name, `message` and headers."""

    def __init__(self, status: int, error: str, message: str, headers: Mapping[str, str]) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers


class BlueskyAdapter(Adapter):
    platform: ClassVar[str] = "bluesky"
    hyperlinks: ClassVar[bool] = True  # the label is a link facet to the article
    #: The client-chosen rkey makes a repeated post impossible (the PDS refuses the key).
    idempotent: ClassVar[bool] = True
    Settings: ClassVar[type[TargetSettings]] = BlueskySettings
    settings: BlueskySettings

    def init_state(self) -> None:
        self._http: httpx.AsyncClient | None = None
        self._session: _Session | None = None
        self._session_lock = asyncio.Lock()
        #: createSession calls made (the real service allows few a day; tests watch it).
        self.sessions_created = 0

    # Rendering -----------------------------------------------------------------------------

    def render(self, article: Article) -> RenderedPost:
        s = self.settings
        url = article_url(article, s.utm)
        label = link_label(url)
        tidy = dataclasses.replace(article, title=clean(article.title), lead=clean(article.lead))
        text = ""
        if s.template:
            text = self.render_template(tidy, PLAIN)
        if not s.template or text_problem(text) or url not in text:
            text = compose(tidy.title, tidy.lead, self.hashtags_for(article), label)
        options: dict[str, Any] = {
            "link_label": label,
            "langs": languages(article, s.language),
            "key_time": (article.published or article.updated).isoformat()
            if (article.published or article.updated)
            else None,
        }
        if s.link_card:
            options["card"] = {
                "uri": url,
                "title": trim_graphemes(tidy.title, CARD_TITLE_GRAPHEMES),
                "description": trim_graphemes(tidy.lead, CARD_DESCRIPTION_GRAPHEMES),
                "headline": tidy.title,
            }
        return RenderedPost(
            target=s.name,
            platform=self.platform,
            article_url=article.url,
            text=text,
            markup="plain",
            link_url=url,
            image_url=article.image_url,
            options=options,
        )

    def measure(self, post: RenderedPost) -> PostLength:
        return self.measure_in(PLAIN, post)

    def record_for(
        self, post: RenderedPost, thumb: dict[str, Any] | None = None, now: datetime | None = None
    ) -> dict[str, Any]:
        """The app.bsky.feed.post record for `post` (pure given the thumbnail blob ref)."""
        links = {}
        label = post.options.get("link_label")
        if label and post.link_url:
            links[label] = post.link_url
        record: dict[str, Any] = {
            "$type": POST,
            "text": post.text,
            "createdAt": (now or datetime.now(UTC))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }
        facets = facets_for(post.text, links)
        if facets:
            record["facets"] = facets
        langs = [lang for lang in post.options.get("langs") or [] if _LANGUAGE.match(lang)]
        if langs:
            record["langs"] = langs[:MAX_LANGS]
        card = post.options.get("card")
        if card:
            external: dict[str, Any] = {
                "uri": card["uri"],
                "title": card.get("title", ""),
                "description": card.get("description", ""),
            }
            if thumb:
                external["thumb"] = thumb
            record["embed"] = {"$type": "app.bsky.embed.external", "external": external}
        return record

    # XRPC ----------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = platform_client(self.settings.timeout, follow_redirects=False)
        return self._http

    async def _xrpc(
        self,
        method: str,
        nsid: str,
        *,
        token: str | None = None,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """One XRPC call; XrpcError for an error answer, httpx errors pass through."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if content_type:
            headers["Content-Type"] = content_type
        response = await self._client().request(
            method,
            f"{self.settings.api_base}/xrpc/{nsid}",
            params=params,
            json=json,
            content=content,
            headers=headers,
        )
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        if response.status_code >= 400:
            if not isinstance(body, dict):
                body = {}
            raise XrpcError(
                response.status_code,
                str(body.get("error") or f"HTTP{response.status_code}"),
                redact(str(body.get("message") or response.text[:200])),
                response.headers,
            )
        return body if isinstance(body, dict) else {}

    async def _login(self) -> _Session:
        """The current session, created when there is none (once per process normally)."""
        async with self._session_lock:
            if self._session is None:
                self.sessions_created += 1
                body = await self._xrpc(
                    "POST",
                    "com.atproto.server.createSession",
                    json={
                        "identifier": self.settings.identifier,
                        "password": self.secrets["app_password"].get(),
                    },
                )
                self._session = _session_from(body)
            return self._session

    async def _refresh(self, stale: _Session) -> _Session:
        """A fresh access token from refreshSession; a new session only if that fails."""
        async with self._session_lock:
            if self._session is not stale and self._session is not None:
                return self._session  # another call refreshed it meanwhile
            try:
                body = await self._xrpc(
                    "POST", "com.atproto.server.refreshSession", token=stale.refresh
                )
                self._session = _session_from(body)
                return self._session
            except XrpcError as exc:
                if exc.status == 429 or exc.status >= 500:
                    raise
                log.info("target %s: refresh refused (%s), logging in again", self.name, exc.error)
                self._session = None
        return await self._login()

    async def _authed(self, method: str, nsid: str, **kwargs: Any) -> dict[str, Any]:
        """An authenticated call; an expired access token is refreshed and the call made
        again (an ExpiredToken answer means the PDS did nothing)."""
        session = await self._login()
        try:
            return await self._xrpc(method, nsid, token=session.access, **kwargs)
        except XrpcError as exc:
            # Both mean the PDS did nothing: an expired access token, or a session revoked
            # (the refresh then fails too and the adapter logs in again).
            if exc.error not in ("ExpiredToken", "InvalidToken"):
                raise
        session = await self._refresh(session)
        return await self._xrpc(method, nsid, token=session.access, **kwargs)

    # Sending -------------------------------------------------------------------------------

    def _rkey(self, post: RenderedPost, ctx: SendContext) -> str | None:
        if not ctx.idempotency_key:
            return None
        return record_key(ctx.idempotency_key, _parse_time(post.options.get("key_time")))

    async def prepare(self, post: RenderedPost, ctx: SendContext) -> None:
        """The session (created or refreshed), the read-back of a record already under this
        delivery's rkey, and the thumbnail blob: nothing is posted. The blob ref is saved and
        reused on a resume; a record found is saved for publish() to return."""
        problem = text_problem(post.text)
        if problem:
            raise PermanentFailure(problem)
        rkey = self._rkey(post, ctx)
        progress = {k: v for k, v in ctx.progress.items() if k != "found_uri"}
        try:
            session = await self._login()
            if rkey is not None:
                # A crash after the post left may have left it there: read before writing.
                found = await self._existing(session.did, rkey)
                if found is not None:
                    progress["found_uri"] = found.remote_id
            wants_thumb = post.options.get("card") and "found_uri" not in progress
            if wants_thumb and not isinstance(progress.get("thumb"), dict):
                thumb = await self._thumbnail(post)
                if thumb is not None:
                    progress["thumb"] = thumb
        except XrpcError as exc:
            raise map_xrpc(exc) from None
        except httpx.HTTPError as exc:
            # Nothing publishes before publish(): a lost answer here posted nothing.
            error = map_transport(exc)
            if isinstance(error, UncertainDelivery):
                raise TemporaryFailure(f"{error.message} (before posting)") from None
            raise error from None
        if progress != ctx.progress:
            await ctx.save_progress(progress)

    async def publish(self, post: RenderedPost, ctx: SendContext) -> SentPost:
        """The one createRecord (or the record prepare() found already there)."""
        found = ctx.progress.get("found_uri")
        if isinstance(found, str):
            return _sent(found)
        rkey = self._rkey(post, ctx)
        thumb = ctx.progress.get("thumb") if post.options.get("card") else None
        try:
            session = await self._login()
            body: dict[str, Any] = {
                "repo": session.did,
                "collection": POST,
                "record": self.record_for(post, thumb if isinstance(thumb, dict) else None),
            }
            if rkey is not None:
                body["rkey"] = rkey
            answer = await self._authed("POST", "com.atproto.repo.createRecord", json=body)
        except XrpcError as exc:
            if exc.error == "BlobNotFound" and thumb is not None:
                # A saved blob the PDS has since dropped (unreferenced blobs are removed):
                # nothing was posted; forget it so the next prepare() uploads it again.
                await ctx.save_progress({k: v for k, v in ctx.progress.items() if k != "thumb"})
                raise TemporaryFailure(
                    f"Bluesky no longer has the thumbnail: {exc.message}"
                ) from None
            if rkey is not None and (exc.status >= 500 or exc.status == 409):
                # The PDS answers 500 (newer ones 409) when the key is taken: settle by reading.
                return await self._settle(rkey, map_xrpc(exc))
            raise map_xrpc(exc) from None
        except httpx.HTTPError as exc:
            error = map_transport(exc)
            if rkey is not None and isinstance(error, UncertainDelivery):
                return await self._settle(rkey, error)
            raise error from None
        uri = answer.get("uri")
        if not isinstance(uri, str) or not uri.startswith("at://"):
            raise UncertainDelivery("Bluesky accepted the post but its answer has no record URI")
        return _sent(uri)

    async def _existing(self, did: str, rkey: str) -> SentPost | None:
        try:
            body = await self._authed(
                "GET",
                "com.atproto.repo.getRecord",
                params={"repo": did, "collection": POST, "rkey": rkey},
            )
        except XrpcError as exc:
            if exc.error == "RecordNotFound" or exc.status == 404:
                return None
            raise
        uri = body.get("uri")
        return _sent(uri) if isinstance(uri, str) else None

    async def _settle(self, rkey: str, error: DeliveryError) -> SentPost:
        """After an answer that leaves the post's fate open: is the record there?"""
        try:
            session = await self._login()
            found = await self._existing(session.did, rkey)
        except (XrpcError, httpx.HTTPError) as exc:
            raise UncertainDelivery(
                f"{error.message}; and the record could not be read back ({_describe(exc)})"
            ) from None
        if found is not None:
            log.info("target %s: post %s was already there", self.name, found.remote_id)
            return found
        if isinstance(error, UncertainDelivery):
            # Not there: the same rkey makes a retry safe (the PDS refuses a second record).
            raise TemporaryFailure(f"{error.message}; the record is not there, safe to retry")
        raise error

    async def _thumbnail(self, post: RenderedPost) -> dict[str, Any] | None:
        """The card's thumbnail blob ref: the article image, else the image card; None when
        neither can be had (the post goes out with a card without a picture)."""
        photo: bytes | None = None
        if post.image_url:
            try:
                photo = await self._download(post.image_url, post.article_url)
            except Exception as exc:
                log.warning("target %s: article image not used (%s)", self.name, _describe(exc))
        data: bytes | None = None
        if photo is not None:
            try:
                data = await asyncio.to_thread(make_thumbnail, photo)
            except ValueError as exc:
                log.warning("target %s: article image not used (%s)", self.name, exc)
        if data is None and self.settings.card_fallback:
            card = post.options["card"]
            jpeg = await asyncio.to_thread(
                render_card,
                card.get("headline") or card.get("title", ""),
                self.outlet.name,
                attribution_line(self.outlet.name, post.article_url),
                None,
                self.settings.brand_color,
            )
            # Drawn here, without the photo: a JPEG far under the limit, uploaded as drawn
            # (re-encoding it cost twice the drawing).
            data = (
                jpeg
                if len(jpeg) < THUMB_MAX_BYTES
                else await asyncio.to_thread(make_thumbnail, jpeg)
            )
        if data is None:
            return None
        try:
            body = await self._authed(
                "POST",
                "com.atproto.repo.uploadBlob",
                content=data,
                content_type="image/jpeg",
            )
        except XrpcError as exc:
            if exc.status in (401, 429) or exc.status >= 500:
                raise  # the post would fail the same way: report it as the post's failure
            log.warning("target %s: thumbnail refused (%s)", self.name, exc)
            return None
        blob = body.get("blob")
        return blob if isinstance(blob, dict) else None

    async def _download(self, url: str, article: str) -> bytes:
        limit = self.settings.max_image_bytes
        if self.fetch_image is not None:
            return await self.fetch_image(url, article, limit)
        async with self._client().stream("GET", url) as response:
            if response.status_code != 200:
                raise ValueError(f"image {url}: HTTP {response.status_code}")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:  # servers may not say, or lie: stop reading at the cap
                    raise ValueError(f"image {url} is over {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks)

    async def check(self) -> bool:
        try:
            await self._authed("GET", "com.atproto.server.getSession")
        except XrpcError as exc:
            raise map_xrpc(exc) from None
        except httpx.HTTPError as exc:
            raise map_transport(exc) from None
        return True

    async def verify(self) -> list[SetupCheck]:
        """The app password opens a session (createSession) and getSession names the account
        the settings name (handle or DID); nothing is posted."""
        want = self.settings.identifier.removeprefix("@").lower()
        try:
            body = await self._authed("GET", "com.atproto.server.getSession")
        except XrpcError as exc:
            error = map_xrpc(exc)
            if isinstance(error, AuthFailure):
                detail = (
                    f"Bluesky refused the login of {want} ({exc.error}): check the identifier"
                    " and make a new app password (Settings > Privacy and security)"
                )
                return [SetupCheck(self.name, SetupStatus.FAILED, detail)]
            return [SetupCheck(self.name, SetupStatus.FAILED, error.message)]
        except httpx.HTTPError as exc:
            return [SetupCheck(self.name, SetupStatus.FAILED, map_transport(exc).message)]
        handle, did = str(body.get("handle") or ""), str(body.get("did") or "")
        if want not in (handle.lower(), did.lower()):
            detail = f"the session is {handle or did}'s, not {want}: check identifier"
            return [SetupCheck(self.name, SetupStatus.FAILED, detail)]
        detail = f"logged in as @{handle} ({did}) on {self.settings.api_base}"
        return [SetupCheck(self.name, SetupStatus.OK, detail)]

    async def delete(self, remote_id: str) -> None:
        """Delete a post (a retracted article; Bluesky has no edit). Gone already is fine."""
        repo, collection, rkey = _parse_uri(remote_id)
        try:
            await self._authed(
                "POST",
                "com.atproto.repo.deleteRecord",
                json={"repo": repo, "collection": collection, "rkey": rkey},
            )
        except XrpcError as exc:
            raise map_xrpc(exc) from None
        except httpx.HTTPError as exc:
            raise map_transport(exc) from None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


# Helpers and error mapping -----------------------------------------------------------------


def _session_from(body: Mapping[str, Any]) -> _Session:
    try:
        return _Session(str(body["did"]), str(body["accessJwt"]), str(body["refreshJwt"]))
    except KeyError as exc:
        raise XrpcError(502, "BadSession", f"session answer without {exc}", {}) from None


def _sent(uri: str) -> SentPost:
    repo, _, rkey = _parse_uri(uri)
    return SentPost(remote_id=uri, remote_url=f"https://bsky.app/profile/{repo}/post/{rkey}")


def _parse_uri(uri: str) -> tuple[str, str, str]:
    parts = uri.removeprefix("at://").split("/")
    if not uri.startswith("at://") or len(parts) != 3 or not all(parts):
        raise PermanentFailure(f"not a Bluesky record URI: {uri!r}")
    return parts[0], parts[1], parts[2]


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _describe(exc: BaseException) -> str:
    return redact(str(exc)) or type(exc).__name__


def retry_after(headers: Mapping[str, str], now: float) -> float:
    """Seconds until the limit named by ratelimit-reset (epoch seconds) lifts."""
    reset = headers.get("ratelimit-reset", "")
    if reset.strip().isdigit():
        return max(1.0, int(reset) - now)
    after = headers.get("retry-after", "")
    return float(after) if after.strip().isdigit() else 60.0


AUTH_ERRORS = {
    "AuthenticationRequired",
    "InvalidToken",
    "AccountTakedown",
    "AuthFactorTokenRequired",
}


def map_xrpc(exc: XrpcError) -> DeliveryError:
    """An XRPC error answer in the outbox's vocabulary."""
    what = f"{exc.error}: {exc.message}"
    if exc.status == 429:
        return RetryLater(f"Bluesky rate limit: {what}", retry_after(exc.headers, time.time()))
    if exc.status in (401, 403) or exc.error in AUTH_ERRORS:
        return AuthFailure(f"Bluesky refused the login: {what}")
    if exc.error == "ExpiredToken":  # the refresh token itself expired and login failed
        return AuthFailure(f"Bluesky session expired: {what}")
    if exc.status >= 500:
        return TemporaryFailure(f"Bluesky server error {exc.status}: {what}")
    return PermanentFailure(f"Bluesky refused the post ({exc.status}): {what}")


def map_transport(exc: httpx.HTTPError) -> DeliveryError:
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return TemporaryFailure(f"Bluesky unreachable ({type(exc).__name__}); nothing was sent")
    return UncertainDelivery(
        f"no complete answer from Bluesky ({type(exc).__name__}); it may have posted"
    )


ADAPTER = BlueskyAdapter
