"""The Mastodon adapter against the Mastodon stand-in on loopback: the instance's own limits,
hostile text, idempotent retries, media with alt text, edits, deletes, errors mapped."""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.mastodon import MastodonAdapter, compose, mastodon_length
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
from standins import mastodon as ms
from standins.server import serve

TOKEN = "masto-SECRET-token-1234"
ENV = {"MASTODON_TOKEN": TOKEN}
URL = "https://news.example.com/en/news/2025/11/some-long-slug-about-the-story?id=12345"

HOSTILE_TITLES = [
    "東京で大規模な地震、交通機関が停止 — 首相が緊急会見" * 8,
    "Family 👨‍👩‍👧‍👦 and flags 🏳️‍🌈 🇦🇿 at the rally 👩🏽‍🚒" * 12,
    "Azərbaycanın paytaxtı Bakıda ağır şəraitdə işləyən şəhər xidmətləri" * 6,
    "Правительство объявило о новых мерах поддержки экономики регионов" * 6,
    "T" * 300,
]


def jpeg(side: int = 64) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "JPEG")
    return out.getvalue()


IMAGE = jpeg()


def images_app() -> Starlette:
    async def image(request: Request) -> Response:
        if request.url.path == "/photo.jpg":
            return Response(IMAGE, media_type="image/jpeg")
        return Response("<html>not an image</html>", media_type="image/jpeg")

    return Starlette(routes=[Route("/{name}", image)])


@dataclass
class World:
    state: ms.State
    url: str
    images: str


@pytest.fixture
async def world() -> AsyncIterator[World]:
    state = ms.State()
    state.tokens.add(TOKEN)
    async with serve(ms.create_app(state)) as server, serve(images_app()) as images:
        yield World(state, server.url, images.url)


def make_adapter(api: str, **overrides: object) -> MastodonAdapter:
    raw: dict[str, object] = {
        "name": "masto",
        "platform": "mastodon",
        "api_base": api,
        "access_token": {"env": "MASTODON_TOKEN"},
        "timeout": 2,
        "media_poll_interval": 0.01,
    }
    raw.update(overrides)
    target = MastodonAdapter.Settings.model_validate(raw)
    secrets = {n: ref.resolve(ENV) for n, ref in target.secret_fields().items()}
    return MastodonAdapter(target, secrets, Outlet(name="Sample Times"))


def article(title: str = "Headline", lead: str = "", **kw: object) -> Article:
    values: dict[str, object] = {"url": URL, "title": title, "lead": lead}
    values.update(kw)
    return Article(**values)  # type: ignore[arg-type]


# Counting ----------------------------------------------------------------------------------


def test_length_counts_graphemes_urls_and_remote_mentions() -> None:
    assert mastodon_length("👨‍👩‍👧‍👦") == 1  # one grapheme, seven code points
    assert mastodon_length("a\u0301") == 1
    assert mastodon_length(f"read {URL}") == 5 + 23
    assert mastodon_length(f"read {URL}", url_chars=40) == 5 + 40
    assert mastodon_length("hi @alice@social.example.org") == len("hi @alice")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=st.text(min_size=0, max_size=400),
    lead=st.text(max_size=1500),
    limit=st.sampled_from([100, 500, 1000]),
)
def test_compose_always_fits_and_keeps_the_link(title: str, lead: str, limit: int) -> None:
    from adapters.mastodon import InstanceLimits, clean

    limits = InstanceLimits(max_characters=limit)
    text = compose(clean(title), clean(lead), ["#World", "#Économie"], URL, limits)
    assert mastodon_length(text) <= limit
    # The stand-in's independent count agrees that it fits.
    assert ms.status_length(text, 23) <= limit
    assert URL in text


# Rendering with the instance's own limit -------------------------------------------------


@pytest.mark.parametrize("limit", [500, 1000])
async def test_the_instances_own_limit_is_read_once_and_used(world: World, limit: int) -> None:
    world.state.max_characters = limit
    adapter = make_adapter(world.url)
    long_lead = "Ministers met again on Tuesday to discuss the budget. " * 40
    try:
        assert await adapter.check() is True
        for title in HOSTILE_TITLES:
            post = adapter.render(article(title, long_lead, categories=("World", "Economy")))
            check_attribution(post, adapter.hyperlinks)
            assert mastodon_length(post.text) <= limit
            # The lead fills the room the instance gives: close to its limit, not to 500.
            assert mastodon_length(post.text) > limit - 80
            sent = await adapter.send(post, idempotency_key=f"k-{limit}-{title[:5]}")
            assert world.state.statuses[sent.remote_id]["text"] == post.text
        assert world.state.instance_reads == 1  # read once, then cached
    finally:
        await adapter.aclose()
    assert len(world.state.live_statuses()) == len(HOSTILE_TITLES)


async def test_a_render_before_the_limits_are_known_is_checked_against_them(world: World) -> None:
    world.state.max_characters = 200
    adapter = make_adapter(world.url)
    try:
        post = adapter.render(article("Headline", "Lead sentence here. " * 40))
        assert mastodon_length(post.text) > 200  # rendered for Mastodon's default 500
        with pytest.raises(PermanentFailure, match="over this instance's limit of 200"):
            await adapter.send(post)
        # Now known: a fresh render fits this instance.
        post = adapter.render(article("Headline", "Lead sentence here. " * 40))
        assert mastodon_length(post.text) <= 200
        await adapter.send(post)
    finally:
        await adapter.aclose()
    assert world.state.status_posts == 1


def test_native_layout_language_and_hashtags() -> None:
    adapter = make_adapter("http://127.0.0.1:9")
    post = adapter.render(
        article(
            "Big news",
            "The lead.",
            categories=("World News",),
            tags=("élection",),
            language="az-AZ",
        )
    )
    assert post.text == f"Big news\n\nThe lead.\n\n{URL}\n\n#WorldNews #élection"
    assert post.options == {"alt": "Big news", "language": "az"}


# Posting -----------------------------------------------------------------------------------


async def test_post_carries_visibility_language_and_image_with_alt_text(world: World) -> None:
    adapter = make_adapter(world.url, visibility="unlisted", language="ru")
    try:
        post = adapter.render(
            article("Заголовок новости", "Лид.", image_url=f"{world.images}/photo.jpg")
        )
        sent = await adapter.send(post, idempotency_key="delivery-1")
    finally:
        await adapter.aclose()
    status = world.state.statuses[sent.remote_id]
    assert status["visibility"] == "unlisted"
    assert status["language"] == "ru"
    assert status["idempotency_key"] == "delivery-1"
    [media_id] = status["media_ids"]
    media = world.state.media[media_id]
    assert media["description"] == "Заголовок новости"
    assert media["bytes"] == len(IMAGE)
    assert media["polls_left"] < 0  # the adapter waited until processing finished
    assert sent.remote_url and sent.remote_url.endswith(sent.remote_id)


async def test_a_broken_image_does_not_stop_the_post(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = make_adapter(world.url)
    caplog.set_level(logging.WARNING, "newsbot.mastodon")
    try:
        post = adapter.render(article("Headline", image_url=f"{world.images}/page.html"))
        sent = await adapter.send(post)
    finally:
        await adapter.aclose()
    assert world.state.statuses[sent.remote_id]["media_ids"] == []
    assert "image not attached" in caplog.text


async def test_a_retry_with_the_same_key_does_not_post_twice(world: World) -> None:
    """The answer is lost after the instance made the status; the retry gets that status."""
    world.state.inject(ms.MastodonFault(hang=3.0, after_commit=True))
    adapter = make_adapter(world.url, timeout=0.5)
    post = adapter.render(article("Only once"))
    try:
        with pytest.raises(UncertainDelivery):
            await adapter.send(post, idempotency_key="delivery-42")
        # A restarted bot (a new adapter) retries the delivery with its key.
        again = make_adapter(world.url)
        try:
            sent = await again.send(post, idempotency_key="delivery-42")
        finally:
            await again.aclose()
    finally:
        await adapter.aclose()
    assert len(world.state.live_statuses()) == 1
    assert world.state.status_posts == 2
    assert sent.remote_id == world.state.live_statuses()[0]["id"]


async def test_without_a_key_from_the_core_a_derived_one_still_deduplicates(world: World) -> None:
    adapter = make_adapter(world.url)
    try:
        post = adapter.render(article("Same story"))
        first = await adapter.send(post)
        second = await adapter.send(post)
    finally:
        await adapter.aclose()
    assert first.remote_id == second.remote_id
    assert len(world.state.live_statuses()) == 1


async def test_edit_keeps_attachments_and_delete_is_idempotent(world: World) -> None:
    adapter = make_adapter(world.url)
    try:
        post = adapter.render(article("Old headline", image_url=f"{world.images}/photo.jpg"))
        sent = await adapter.send(post)
        edited = adapter.render(
            article("Corrected headline", image_url=f"{world.images}/photo.jpg")
        )
        await adapter.edit(sent.remote_id, edited)
        status = world.state.statuses[sent.remote_id]
        assert status["text"].startswith("Corrected headline")
        assert status["edits"] == [post.text]
        assert len(status["media_ids"]) == 1
        await adapter.delete(sent.remote_id)
        await adapter.delete(sent.remote_id)  # already gone: not an error
    finally:
        await adapter.aclose()
    assert world.state.live_statuses() == []


# Errors ------------------------------------------------------------------------------------


async def test_errors_are_mapped_once_at_the_boundary(world: World) -> None:
    adapter = make_adapter(world.url)
    post = adapter.render(article("Headline"))
    try:
        await adapter.check()
        world.state.inject(ms.MastodonFault(503, "Service Unavailable"))
        with pytest.raises(TemporaryFailure, match="503"):
            await adapter.send(post, idempotency_key="a")
        world.state.inject(
            ms.MastodonFault(422, "Validation failed: Text character limit of 500 exceeded")
        )
        with pytest.raises(PermanentFailure, match="character limit"):
            await adapter.send(post, idempotency_key="b")
        world.state.tokens.clear()
        with pytest.raises(AuthFailure, match="The access token is invalid") as caught:
            await adapter.send(post, idempotency_key="c")
        assert TOKEN not in str(caught.value)
    finally:
        await adapter.aclose()
    assert world.state.live_statuses() == []


async def test_rate_limit_headers_are_honoured(world: World) -> None:
    world.state.rate_limit = 3  # instance_reads is unauthenticated; check + 2 posts spend it
    adapter = make_adapter(world.url)
    try:
        await adapter.check()
        await adapter.send(adapter.render(article("One")), idempotency_key="1")
        await adapter.send(adapter.render(article("Two")), idempotency_key="2")
        before = world.state.status_posts
        with pytest.raises(RetryLater) as caught:
            await adapter.send(adapter.render(article("Three")), idempotency_key="3")
        # Remaining 0 was seen: the adapter waits for the reset without asking again.
        assert world.state.status_posts == before
        assert 200 < caught.value.retry_after <= 300
        fresh = make_adapter(world.url)  # one that has not seen the headers gets the 429
        try:
            with pytest.raises(RetryLater, match="Too many requests"):
                await fresh.send(fresh.render(article("Three")), idempotency_key="3")
        finally:
            await fresh.aclose()
    finally:
        await adapter.aclose()
    assert len(world.state.live_statuses()) == 2


async def test_unreachable_instance_is_temporary() -> None:
    adapter = make_adapter("http://127.0.0.1:9")
    try:
        with pytest.raises(TemporaryFailure, match="unreachable"):
            await adapter.send(adapter.render(article("Headline")))
    finally:
        await adapter.aclose()


def test_reset_header_is_iso_8601() -> None:
    state = ms.State()
    headers = state.rate_headers(time.time())
    reset = datetime.fromisoformat(headers["X-RateLimit-Reset"])
    assert reset.tzinfo is not None and reset > datetime.now(UTC)
