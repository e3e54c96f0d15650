"""The Threads adapter against the Threads stand-in on loopback: the container flow, 500
characters as Threads counts them, link_attachment, image posts, the publishing quota, deletes,
errors mapped."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from adapters.threads import LIMIT, ThreadsAdapter, clean, compose, links_in, threads_length
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
from standins import threads as ts
from standins.graph import GraphFault
from standins.server import serve

TOKEN = "threads-SECRET-token-5678"
ENV = {"THREADS_TOKEN": TOKEN}
URL = "https://news.example.com/en/news/2025/11/a-story?id=777"

HOSTILE_TITLES = [
    "東京で大規模な地震、交通機関が停止 — 首相が緊急会見" * 8,
    "Family 👨‍👩‍👧‍👦 and flags 🏳️‍🌈 🇦🇿 at the rally 👩🏽‍🚒" * 12,
    "Azərbaycanın paytaxtı Bakıda ağır şəraitdə işləyən şəhər xidmətləri" * 6,
    "Правительство объявило о новых мерах поддержки экономики регионов" * 6,
    "T" * 300,
]


def jpeg(side: int = 400) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "JPEG")
    return out.getvalue()


IMAGE = jpeg()


@dataclass
class World:
    state: ts.State
    url: str
    images: str
    cards: Path


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    cards = tmp_path / "cards"

    async def image(request: Request) -> Response:
        if request.url.path == "/photo.jpg":
            return Response(IMAGE, media_type="image/jpeg")
        return Response("<html>not an image</html>", media_type="image/jpeg")

    async def card(request: Request) -> Response:
        return FileResponse(cards / request.path_params["name"])

    site = Starlette(routes=[Route("/cards/{name}", card), Route("/{name}", image)])
    state = ts.State()
    state.tokens.add(TOKEN)
    async with serve(ts.create_app(state)) as server, serve(site) as images:
        yield World(state, server.url, images.url, cards)


def make_adapter(world: World, **overrides: object) -> ThreadsAdapter:
    raw: dict[str, object] = {
        "name": "threads",
        "platform": "threads",
        "api_base": world.url,
        "user_id": world.state.user_id,
        "access_token": {"env": "THREADS_TOKEN"},
        "timeout": 2,
        "poll_interval": 0.01,
        "public_base_url": world.images,
        "card_dir": str(world.cards),
    }
    raw.update(overrides)
    target = ThreadsAdapter.Settings.model_validate(raw)
    secrets = {n: ref.resolve(ENV) for n, ref in target.secret_fields().items()}
    return ThreadsAdapter(target, secrets, Outlet(name="Sample Times"))


def article(title: str = "Headline", lead: str = "", **kw: object) -> Article:
    values: dict[str, object] = {"url": URL, "title": title, "lead": lead}
    values.update(kw)
    return Article(**values)  # type: ignore[arg-type]


def test_emoji_count_their_utf8_bytes() -> None:
    assert threads_length("abc") == 3
    assert threads_length("👍") == 4
    assert threads_length("👨‍👩‍👧‍👦") == len("👨‍👩‍👧‍👦".encode())  # 25
    assert threads_length("🇦🇿") == 8
    assert threads_length("ə") == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=st.text(max_size=600), lead=st.text(max_size=1500), image=st.booleans())
def test_compose_always_fits_as_threads_counts(title: str, lead: str, image: bool) -> None:
    text = compose(clean(title), clean(lead), ["#World"], URL if image else None)
    assert threads_length(text) <= LIMIT
    assert ts.text_length(text) <= LIMIT  # the stand-in's own count agrees
    assert len(links_in(text, None if image else URL)) <= 5
    if image:
        assert URL in text


async def test_hostile_text_posts_carry_the_link_attachment(world: World) -> None:
    adapter = make_adapter(world)
    long_lead = "Officials said on Tuesday https://spam.example/x that talks continue. " * 20
    try:
        for index, title in enumerate(HOSTILE_TITLES):
            post = adapter.render(article(title, long_lead, categories=("World", "Economy")))
            check_attribution(post, adapter.hyperlinks)
            sent = await adapter.send(post, idempotency_key=f"d-{index}")
            received = world.state.posts[sent.remote_id]
            assert received["media_type"] == "TEXT"
            assert received["link_attachment"] == URL
            assert received["text"] == post.text
            assert "spam.example" not in received["text"]
            assert received["text"].count("#") <= 1  # one topic tag
    finally:
        await adapter.aclose()
    assert len(world.state.live_posts()) == len(HOSTILE_TITLES)
    assert world.state.quota_reads == len(HOSTILE_TITLES)  # checked before each post


async def test_image_posts_use_the_article_image_or_a_card(world: World) -> None:
    adapter = make_adapter(world, image_posts=True)
    try:
        with_photo = adapter.render(article("Photo story", image_url=f"{world.images}/photo.jpg"))
        check_attribution(with_photo, adapter.hyperlinks)
        first = await adapter.send(with_photo)
        without = adapter.render(article("No photo here"))
        second = await adapter.send(without)
    finally:
        await adapter.aclose()
    photo_post, card_post = world.state.posts[first.remote_id], world.state.posts[second.remote_id]
    assert photo_post["media_type"] == "IMAGE"
    assert photo_post["image_url"] == f"{world.images}/photo.jpg"
    assert URL in photo_post["text"] and photo_post["link_attachment"] is None
    assert card_post["image_url"].startswith(f"{world.images}/cards/")
    assert len(list(world.cards.iterdir())) == 1


async def test_an_image_threads_cannot_use_fails_for_good(world: World) -> None:
    adapter = make_adapter(world, image_posts=True)
    try:
        post = adapter.render(article("Bad image", image_url=f"{world.images}/page.html"))
        with pytest.raises(PermanentFailure, match="UNSUPPORTED_IMAGE_FORMAT"):
            await adapter.send(post)
    finally:
        await adapter.aclose()
    assert world.state.live_posts() == []


async def test_the_publishing_quota_is_honoured(world: World) -> None:
    world.state.quota_total = 2
    adapter = make_adapter(world)
    try:
        await adapter.send(adapter.render(article("One")))
        await adapter.send(adapter.render(article("Two")))
        containers = len(world.state.containers)
        with pytest.raises(RetryLater, match="publishing limit of 2"):
            await adapter.send(adapter.render(article("Three")))
        assert len(world.state.containers) == containers  # nothing was even prepared
    finally:
        await adapter.aclose()
    # A configured quota below the account's is honoured too.
    world.state.quota_total = 250
    strict = make_adapter(world, quota_total=2)
    try:
        with pytest.raises(RetryLater):
            await strict.send(strict.render(article("Three")))
    finally:
        await strict.aclose()
    assert len(world.state.live_posts()) == 2


async def test_delete_for_follow_ups(world: World) -> None:
    adapter = make_adapter(world)
    try:
        sent = await adapter.send(adapter.render(article("Retracted")))
        await adapter.delete(sent.remote_id)
        await adapter.delete(sent.remote_id)  # already gone: not an error
        with pytest.raises(NotImplementedError):
            await adapter.edit(sent.remote_id, adapter.render(article("x")))
    finally:
        await adapter.aclose()
    assert world.state.live_posts() == []


async def test_errors_are_mapped(world: World) -> None:
    adapter = make_adapter(world)
    post = adapter.render(article("Headline"))
    try:
        assert await adapter.check() is True
        world.state.inject(GraphFault(code=2, status=500))
        with pytest.raises(TemporaryFailure):
            await adapter.send(post)
        world.state.inject(GraphFault(code=4, status=400, message="Application request limit"))
        with pytest.raises(RetryLater):
            await adapter.send(post)
        world.state.inject(GraphFault(code=100, status=400, message="Invalid parameter"))
        with pytest.raises(PermanentFailure, match="Invalid parameter"):
            await adapter.send(post)
        world.state.tokens.clear()
        with pytest.raises(AuthFailure) as caught:
            await adapter.send(post)
        assert TOKEN not in str(caught.value)
    finally:
        await adapter.aclose()
    assert world.state.live_posts() == []


async def test_a_lost_publish_answer_is_uncertain_not_resent(world: World) -> None:
    adapter = make_adapter(world, timeout=0.5)
    world.state.inject(ts.ThreadsFault(hang=2.0, after_commit=True))
    try:
        with pytest.raises(UncertainDelivery):
            await adapter.send(adapter.render(article("Maybe posted")))
    finally:
        await adapter.aclose()
    assert len(world.state.live_posts()) == 1  # it did go out: an editor must decide
    assert ThreadsAdapter.idempotent is False
