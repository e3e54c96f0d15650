"""The Bluesky adapter against the PDS stand-in on loopback: limits as Bluesky counts them,
facets and the link card as the stand-in received them, sessions, idempotent retries, errors."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters._cards import CARD_SIZE, attribution_line, render_card
from adapters.bluesky import (
    BlueskyAdapter,
    XrpcError,
    facets_for,
    grapheme_count,
    link_label,
    record_key,
    utf8_len,
)
from bot.attribution import check_attribution
from bot.models import Article
from bot.outcomes import (
    AuthFailure,
    PermanentFailure,
    RetryLater,
    TemporaryFailure,
    UncertainDelivery,
)
from bot.targets import Outlet
from standins import bluesky as bs
from standins.server import serve

HANDLE = "newsroom.bsky.social"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
ENV = {"BSKY_APP_PASSWORD": APP_PASSWORD}
ARTICLE_URL = "https://news.example.com/en/politics/2026/11/30/government-announces-reform"
PUBLISHED = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)


def _noise_jpeg(side: int) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "JPEG", quality=95)
    return out.getvalue()


BIG_PHOTO = _noise_jpeg(1600)  # random pixels: well over 1,000,000 bytes as a JPEG
assert len(BIG_PHOTO) > 1_000_000


def images_app() -> Starlette:
    async def image(request: Request) -> Response:
        if request.url.path == "/big.jpg":
            return Response(BIG_PHOTO, media_type="image/jpeg")
        return Response("<html>not an image</html>", media_type="image/jpeg")

    return Starlette(routes=[Route("/{name}", image)])


@dataclass
class World:
    state: bs.State
    url: str
    images: str


@pytest.fixture
async def world() -> AsyncIterator[World]:
    state = bs.State()
    state.add_account(HANDLE, APP_PASSWORD)
    async with serve(bs.create_app(state)) as pds, serve(images_app()) as images:
        yield World(state, pds.url, images.url)


def make_adapter(api: str, **overrides: object) -> BlueskyAdapter:
    raw: dict[str, object] = {
        "name": "bsky-main",
        "platform": "bluesky",
        "api_base": api,
        "identifier": HANDLE,
        "app_password": {"env": "BSKY_APP_PASSWORD"},
        "timeout": 2,
    }
    raw.update(overrides)
    target = BlueskyAdapter.Settings.model_validate(raw)
    secrets = {n: ref.resolve(ENV) for n, ref in target.secret_fields().items()}
    return BlueskyAdapter(target, secrets, Outlet(name="Sample Times", url="http://127.0.0.1"))


@pytest.fixture
async def bsky(world: World) -> AsyncIterator[BlueskyAdapter]:
    adapter = make_adapter(world.url, card_fallback=False)
    yield adapter
    await adapter.aclose()


def article(title: str, **fields: object) -> Article:
    fields.setdefault("lead", "A lead.")
    fields.setdefault("published", PUBLISHED)
    return Article(url=str(fields.pop("url", ARTICLE_URL)), title=title, **fields)  # type: ignore[arg-type]


def _slice(text: str, index: dict[str, int]) -> str:
    return text.encode()[index["byteStart"] : index["byteEnd"]].decode()


# Hostile text within 300 graphemes and 3,000 bytes -----------------------------------------

FAMILY = "👨‍👩‍👧‍👦"  # one grapheme, 25 bytes
HEADLINES = {
    "en": "Government announces sweeping reforms to the pension system after months " * 6,
    "ru": "Правительство объявило о масштабной реформе пенсионной системы " * 6,
    "zh": "政府宣布在数月谈判后对养老金制度进行全面改革" * 20,
    "az": "Xəbər: Bakıda şəhər parkı açıldı, ğ ş ə ı ö ü ç " * 10,
    "zwj": f"{FAMILY}🇦🇿🏳️‍🌈👩🏽‍💻" * 120,  # far over 3,000 bytes long before 300 graphemes
    "300": "T" * 300,
}


@pytest.mark.parametrize("kind", list(HEADLINES))
async def test_hostile_headlines_fit_as_bluesky_counts(
    world: World, bsky: BlueskyAdapter, kind: str
) -> None:
    post = bsky.render(
        article(
            HEADLINES[kind],
            lead="Lead " * 300,
            categories=("World", "Siyasət", "Политика"),
            language="az" if kind == "az" else "en",
        )
    )
    check_attribution(post, BlueskyAdapter.hyperlinks)
    sent = await bsky.send(post, idempotency_key=f"delivery-{kind}")
    (stored,) = world.state.live_posts()  # the stand-in counted and accepted it
    assert stored["uri"] == sent.remote_id
    text = stored["record"]["text"]
    assert grapheme_count(text) <= 300 and utf8_len(text) <= 3000
    # The room is used: near one of the two limits, not wasted.
    assert grapheme_count(text) >= 250 or utf8_len(text) >= 2700
    assert text.startswith(HEADLINES[kind][:5])
    facets = stored["record"]["facets"]
    links = [f for f in facets if f["features"][0]["$type"].endswith("#link")]
    (link,) = links
    assert link["features"][0]["uri"] == ARTICLE_URL  # the label is clickable to the article
    assert _slice(text, link["index"]) == link_label(ARTICLE_URL)
    assert len(link_label(ARTICLE_URL)) < len(ARTICLE_URL)
    tags = [f["features"][0]["tag"] for f in facets if f["features"][0]["$type"].endswith("#tag")]
    for facet in facets:
        if facet["features"][0]["$type"].endswith("#tag"):
            assert _slice(text, facet["index"]) == "#" + facet["features"][0]["tag"]
    if kind != "zwj":
        assert tags == ["World", "Siyasət", "Политика"]


def test_byte_offsets_are_utf8_not_characters() -> None:
    text = "Ər 👨‍👩‍👧‍👦 #Xəbər da news.example.com/x"
    (tag, link) = sorted(
        facets_for(text, {"news.example.com/x": "https://news.example.com/x"}),
        key=lambda f: f["index"]["byteStart"],
    )
    assert tag["index"] == {"byteStart": 30, "byteEnd": 38}  # "Ər " is 4 bytes, the family 25
    assert tag["features"][0] == {"$type": "app.bsky.richtext.facet#tag", "tag": "Xəbər"}
    assert _slice(text, link["index"]) == "news.example.com/x"


def test_record_key_is_a_stable_tid() -> None:
    key = record_key("article-17:bsky-main", PUBLISHED)
    assert bs.TID.match(key)
    assert key == record_key("article-17:bsky-main", PUBLISHED)
    assert key != record_key("article-17:bsky-other", PUBLISHED)
    assert bs.TID.match(record_key("no-date"))
    # The TID's clock is the article's second (its top 53 bits are microseconds).
    alphabet = "234567abcdefghijklmnopqrstuvwxyz"
    value = 0
    for ch in key:
        value = value * 32 + alphabet.index(ch)
    assert (value >> 10) // 1_000_000 == int(PUBLISHED.timestamp())


# The link card -------------------------------------------------------------------------------


async def test_card_with_the_article_image_under_a_megabyte(world: World) -> None:
    adapter = make_adapter(world.url)
    try:
        post = adapter.render(
            article(
                "Parliament votes", lead="The vote was close.", image_url=f"{world.images}/big.jpg"
            )
        )
        await adapter.send(post, idempotency_key="card-1")
    finally:
        await adapter.aclose()
    (stored,) = world.state.live_posts()
    embed = stored["record"]["embed"]
    assert embed["$type"] == "app.bsky.embed.external"
    external = embed["external"]
    assert external["uri"] == ARTICLE_URL
    assert (external["title"], external["description"]) == (
        "Parliament votes",
        "The vote was close.",
    )
    blob = world.state.blobs[external["thumb"]["ref"]["$link"]]
    assert blob["size"] < 1_000_000 and blob["mimeType"] == "image/jpeg"
    with Image.open(io.BytesIO(blob["data"])) as thumb:
        assert max(thumb.size) <= 1200
    assert "langs" not in stored["record"]  # neither the article nor the target names one


async def test_card_falls_back_to_the_rendered_card(world: World) -> None:
    adapter = make_adapter(world.url, language="az")
    try:
        post = adapter.render(article("Bakıda park açıldı", image_url=f"{world.images}/page.html"))
        await adapter.send(post, idempotency_key="card-2")
    finally:
        await adapter.aclose()
    (stored,) = world.state.live_posts()
    thumb = stored["record"]["embed"]["external"]["thumb"]
    blob = world.state.blobs[thumb["ref"]["$link"]]
    with Image.open(io.BytesIO(blob["data"])) as image:
        assert image.format == "JPEG"
        assert image.size == CARD_SIZE  # uploaded as drawn: well under the size limit
    assert blob["size"] < 1_000_000
    # The card every platform draws for this article: headline and plain attribution line.
    outlet = adapter.outlet.name
    url = post.article_url
    assert blob["data"] == render_card("Bakıda park açıldı", outlet, attribution_line(outlet, url))
    assert stored["record"]["langs"] == ["az"]


async def test_stand_in_refuses_a_thumbnail_over_a_megabyte(
    world: World, bsky: BlueskyAdapter
) -> None:
    post = bsky.render(article("Too big a thumb"))
    session = await bsky._login()
    blob = await bsky._authed(
        "POST", "com.atproto.repo.uploadBlob", content=BIG_PHOTO, content_type="image/jpeg"
    )
    record = bsky.record_for(post, blob["blob"])
    with pytest.raises(XrpcError) as caught:
        await bsky._authed(
            "POST",
            "com.atproto.repo.createRecord",
            json={"repo": session.did, "collection": "app.bsky.feed.post", "record": record},
        )
    assert caught.value.status == 400 and "too large" in caught.value.message


async def test_stand_in_refuses_facets_off_grapheme_boundaries(
    world: World, bsky: BlueskyAdapter
) -> None:
    session = await bsky._login()

    text = f"{FAMILY} news"
    bad = {
        "index": {"byteStart": 0, "byteEnd": 4},
        "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "x"}],
    }
    for facet in (bad, {**bad, "index": {"byteStart": 26, "byteEnd": 99}}):
        record = {
            "$type": "app.bsky.feed.post",
            "text": text,
            "createdAt": "2026-11-30T09:00:00.000Z",
            "facets": [facet],
        }
        with pytest.raises(XrpcError) as caught:
            await bsky._authed(
                "POST",
                "com.atproto.repo.createRecord",
                json={"repo": session.did, "collection": "app.bsky.feed.post", "record": record},
            )
        assert caught.value.error == "InvalidRequest"
    assert world.state.posts == []


# Sessions ------------------------------------------------------------------------------------


async def test_one_session_reused_and_refreshed_not_recreated(
    world: World, bsky: BlueskyAdapter
) -> None:
    for n in range(3):
        await bsky.send(bsky.render(article(f"News {n}")), idempotency_key=f"s-{n}")
    assert world.state.sessions_created(HANDLE) == 1
    world.state.expire_access_tokens()
    await bsky.send(bsky.render(article("After expiry")), idempotency_key="s-exp")
    assert world.state.sessions_created(HANDLE) == 1
    assert "com.atproto.server.refreshSession" in world.state.calls
    assert len(world.state.live_posts()) == 4
    # A revoked session (refresh refused too) logs in again, once.
    world.state.revoke_sessions()
    await bsky.send(bsky.render(article("After revocation")), idempotency_key="s-rev")
    assert world.state.sessions_created(HANDLE) == 2


async def test_create_session_rate_limit_is_retry_later(world: World) -> None:
    world.state.session_caps = (1, 300)
    first, second = make_adapter(world.url), make_adapter(world.url)
    try:
        await first.send(first.render(article("One")), idempotency_key="r-1")
        with pytest.raises(RetryLater) as caught:
            await second.send(second.render(article("Two")), idempotency_key="r-2")
        assert 200 < caught.value.retry_after <= 300
    finally:
        await first.aclose()
        await second.aclose()


# Idempotency: crash and retry ------------------------------------------------------------------


async def test_retry_after_a_crash_does_not_post_twice(world: World) -> None:
    post_article = article("Crash test")
    # The post is made but its answer lost, and the read-back fails too (the process is as
    # good as dead): the outcome is open.
    world.state.inject(bs.BlueskyFault(status=0, drop=True))
    world.state.inject(bs.BlueskyFault(status=503, nsids=("com.atproto.repo.getRecord",), skip=1))
    crashed = make_adapter(world.url, card_fallback=False)
    try:
        with pytest.raises(UncertainDelivery, match="could not be read back"):
            await crashed.send(crashed.render(post_article), idempotency_key="delivery-42")
    finally:
        await crashed.aclose()
    assert len(world.state.live_posts()) == 1  # it was made
    restarted = make_adapter(world.url, card_fallback=False)  # a new process, same delivery
    try:
        sent = await restarted.send(restarted.render(post_article), idempotency_key="delivery-42")
        again = await restarted.send(restarted.render(post_article), idempotency_key="delivery-42")
    finally:
        await restarted.aclose()
    assert len(world.state.posts) == 1
    assert sent.remote_id == again.remote_id == world.state.posts[0]["uri"]


async def test_a_lost_answer_is_settled_by_reading_the_record(
    world: World, bsky: BlueskyAdapter
) -> None:
    world.state.inject(bs.BlueskyFault(status=0, drop=True))
    sent = await bsky.send(bsky.render(article("Lost answer")), idempotency_key="lost-1")
    (stored,) = world.state.posts
    assert sent.remote_id == stored["uri"]


async def test_a_taken_rkey_gets_the_pds_500_and_is_settled(
    world: World, bsky: BlueskyAdapter
) -> None:
    post = bsky.render(article("Twice"))
    first = await bsky.send(post, idempotency_key="k-1")
    # The read-before-write misses it (a replica lagging): the PDS's 500 is then settled.
    world.state.inject(
        bs.BlueskyFault(
            status=400,
            error="RecordNotFound",
            message="Could not locate record",
            nsids=("com.atproto.repo.getRecord",),
        )
    )
    second = await bsky.send(post, idempotency_key="k-1")
    assert second.remote_id == first.remote_id and len(world.state.posts) == 1
    assert world.state.calls.count("com.atproto.repo.createRecord") == 2


# Errors ------------------------------------------------------------------------------------


async def test_errors_are_mapped(world: World, bsky: BlueskyAdapter) -> None:
    post = bsky.render(article("Errors"))
    world.state.inject(
        bs.BlueskyFault(
            status=429, error="RateLimitExceeded", message="Rate Limit Exceeded", retry_after=600
        )
    )
    with pytest.raises(RetryLater) as limited:
        await bsky.send(post, idempotency_key="e-1")
    assert 590 <= limited.value.retry_after <= 600
    world.state.inject(bs.BlueskyFault(status=502, error="UpstreamFailure", message="down"))
    with pytest.raises(TemporaryFailure):
        await bsky.send(post, idempotency_key="e-2")
    # A timeout after sending: read back, not there yet, and the rkey makes a retry safe.
    world.state.inject(bs.BlueskyFault(status=503, hang=3.0))
    with pytest.raises(TemporaryFailure, match="safe to retry"):
        await bsky.send(post, idempotency_key="e-3")
    world.state.inject(bs.BlueskyFault(status=0, hang=3.0))
    with pytest.raises(UncertainDelivery):  # no key: nothing to read back by
        await bsky.send(post)
    with pytest.raises(PermanentFailure, match="graphemes"):
        await bsky.send(post.__class__(**{**post.to_json(), "text": "x" * 301}))


async def test_wrong_app_password_is_auth_failure_without_the_secret(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.state.accounts[0].app_password = "zzzz-zzzz-zzzz-zzzz"
    adapter = make_adapter(world.url)
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(AuthFailure) as caught:
            await adapter.send(adapter.render(article("No login")), idempotency_key="a-1")
    finally:
        await adapter.aclose()
    assert "Invalid identifier or password" in str(caught.value)
    assert APP_PASSWORD not in str(caught.value) and APP_PASSWORD not in caplog.text


async def test_delete_and_check(world: World, bsky: BlueskyAdapter) -> None:
    assert await bsky.check() is True
    sent = await bsky.send(bsky.render(article("To retract")), idempotency_key="d-1")
    assert sent.remote_url and sent.remote_url.startswith("https://bsky.app/profile/did:plc:")
    await bsky.delete(sent.remote_id)
    await bsky.delete(sent.remote_id)  # already gone: fine
    assert world.state.live_posts() == [] and world.state.posts[0]["deleted"]
