"""The X adapter against the X stand-in on loopback: lengths, media, errors, deletes, secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import time
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twitter_text import parse_tweet

from adapters.base import SendContext
from adapters.x import XAdapter, clean, weighted_length
from bot.models import Article, RenderedPost
from bot.outcomes import (
    AuthFailure,
    PermanentFailure,
    RetryLater,
    TemporaryFailure,
    UncertainDelivery,
)
from bot.targets import ImageFetcher, Outlet
from standins import x as xs
from standins.server import serve

ENV = {
    "X_KEY": "ck-test-123",
    "X_SECRET": "cs-SECRET-456",
    "X_TOKEN": "at-test-789",
    "X_TOKEN_SECRET": "ats-SECRET-012",
}
CREDENTIALS = xs.Credentials(ENV["X_KEY"], ENV["X_SECRET"], ENV["X_TOKEN"], ENV["X_TOKEN_SECRET"])
ARTICLE_URL = "https://news.example.com/en/news/1"


def _jpeg(side: int = 80) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "JPEG")
    return out.getvalue()


def _noise_png(side: int = 400) -> bytes:
    # Random pixels do not compress: a PNG of about side*side*3 bytes.
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG")
    return out.getvalue()


IMAGES = {"/small.jpg": _jpeg(), "/big.png": _noise_png()}
assert len(IMAGES["/small.jpg"]) > 4096  # the over-cap case needs it above 2 KB


def images_app() -> Starlette:
    """The newsroom's image host: two real images, a 404 and an HTML page."""

    async def image(request: Request) -> Response:
        data = IMAGES.get(request.url.path)
        if data is None:
            return Response("not found", 404)
        # A CMS that labels everything image/jpeg: the adapter must sniff the real type.
        return Response(data, media_type="image/jpeg")

    async def page(_: Request) -> Response:
        return Response("<html>not an image</html>", media_type="image/jpeg")

    return Starlette(
        routes=[
            Route("/page.html", page),
            Route("/{name}", image),
        ]
    )


@dataclass
class XWorld:
    state: xs.State
    url: str
    images: str


@pytest.fixture
async def xworld() -> AsyncIterator[XWorld]:
    state = xs.State()
    state.allow(CREDENTIALS)
    async with serve(xs.create_app(state)) as x_server, serve(images_app()) as images:
        yield XWorld(state, x_server.url, images.url)


def make_adapter(
    api: str,
    env: dict[str, str] | None = None,
    fetch_image: ImageFetcher | None = None,
    **overrides: object,
) -> XAdapter:
    """Built the way the core builds it: validated settings, secrets resolved from env."""
    raw: dict[str, object] = {
        "name": "x-main",
        "platform": "x",
        "api_base": api,
        "upload_base": api,
        "api_key": {"env": "X_KEY"},
        "api_secret": {"env": "X_SECRET"},
        "access_token": {"env": "X_TOKEN"},
        "access_token_secret": {"env": "X_TOKEN_SECRET"},
        "timeout": 3,
    }
    raw.update(overrides)
    target = XAdapter.Settings.model_validate(raw)
    secrets = {n: ref.resolve(env or ENV) for n, ref in target.secret_fields().items()}
    outlet = Outlet(name="Sample Times", url="http://127.0.0.1")
    return XAdapter(target, secrets, outlet, fetch_image=fetch_image)


@pytest.fixture
async def x(xworld: XWorld) -> AsyncIterator[XAdapter]:
    adapter = make_adapter(xworld.url, with_image=False)
    yield adapter
    await adapter.aclose()


def article(title: str, url: str = ARTICLE_URL, **fields: object) -> Article:
    lead = str(fields.pop("lead", "A lead."))
    return Article(url=url, title=title, lead=lead, **fields)  # type: ignore[arg-type]


# Rendering ---------------------------------------------------------------------------------

HEADLINES = {
    "en": "Government announces sweeping reforms to the pension system after months of talks " * 4,
    "ru": "Правительство объявило о масштабной реформе пенсионной системы после долгих "
    "переговоров " * 3,
    "zh": "政府宣布在数月谈判后对养老金制度进行全面改革" * 10,
    "emoji": "🔥🚨 Breaking 👩‍💻👨‍👩‍👧‍👦 🇦🇿🇬🇧 " * 20,
    "az": "Xəbər: Bakıda şəhər parkı açıldı, ğ ş ə ı ö ü ç " * 8,
}


@pytest.mark.parametrize("lang", list(HEADLINES))
async def test_long_headlines_are_accepted_at_or_below_280(
    xworld: XWorld, x: XAdapter, lang: str
) -> None:
    long_url = f"https://news.example.com/{lang}/news/" + "very-long-slug-" * 30
    post = x.render(
        article(HEADLINES[lang], long_url, lead="Lead " * 200, categories=("World", "Politics"))
    )
    sent = await x.send(post)
    (stored,) = xworld.state.live_posts()
    assert stored["id"] == sent.remote_id
    assert sent.remote_url == f"https://x.com/i/web/status/{sent.remote_id}"
    # The stand-in counted it with twitter-text too; the room is used, not wasted.
    assert 250 <= stored["weighted_length"] <= 280
    assert parse_tweet(stored["text"]).valid
    assert stored["text"].endswith(long_url)
    assert "#World #Politics" in stored["text"]
    assert stored["text"].startswith(HEADLINES[lang][:10])


def test_a_url_weighs_23_whatever_its_length(x: XAdapter) -> None:
    short = x.render(article("Long headline words " * 30, "https://n.example.com/a"))
    long_url = "https://n.example.com/" + "a" * 500
    long = x.render(article("Long headline words " * 30, long_url))
    # The same headline room is left: X counts every URL as 23.
    assert short.text.removesuffix("https://n.example.com/a") == long.text.removesuffix(long_url)
    assert weighted_length(long.text) <= 280


def test_render_fields(x: XAdapter) -> None:
    post = x.render(article("Short news", image_url="https://img.example.com/a.jpg"))
    assert post.text == f"Short news\n\nA lead.\n\n{ARTICLE_URL}"
    assert (post.markup, post.article_url, post.platform, post.target) == (
        "plain",
        ARTICLE_URL,
        "x",
        "x-main",
    )
    assert post.image_url is None  # with_image=False for this adapter
    with_image = make_adapter("http://127.0.0.1:9").render(
        article("Short news", image_url="https://img.example.com/a.jpg")
    )
    assert with_image.image_url == "https://img.example.com/a.jpg"


def test_characters_x_refuses_are_dropped() -> None:
    assert clean("Bad\ufeff\ufffe head\x00line\u0007 here ") == "Bad headline here"
    post = make_adapter("http://127.0.0.1:9").render(article("\ufeff\ufeff", lead="\ufffe"))
    assert post.text == ARTICLE_URL and parse_tweet(post.text).valid


PROPERTY_ADAPTER = make_adapter("http://127.0.0.1:9", max_hashtags=5)
# Pieces random text rarely produces: emoji ZWJ and flag sequences, CJK, combining marks,
# URLs inside a headline, words of several scripts.
PIECES = [
    "👩‍💻",
    "👨‍👩‍👧‍👦",
    "🇦🇿",
    "🔥",
    "❤️",
    "政府",
    "改革。",
    "e\u0301",
    "Xəbər",
    "Правительство",
    "example.com/path",
    "https://a.example.org/" + "x" * 60,
    "#tag",
    "@someone",
    " ",
    "\n",
    "...",
    "—",
]
HEADLINE_TEXT = st.one_of(
    st.text(min_size=1, max_size=600),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=200).map("".join),
)
URLS = st.sampled_from(
    [ARTICLE_URL, "https://news.example.com/ru/новости/" + "очень-длинный-" * 40, "https://t.co/x"]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=HEADLINE_TEXT,
    lead=HEADLINE_TEXT,
    tags=st.lists(st.text(min_size=1, max_size=30), max_size=6),
    url=URLS,
)
def test_render_always_yields_a_valid_tweet_with_the_url(
    title: str, lead: str, tags: list[str], url: str
) -> None:
    post = PROPERTY_ADAPTER.render(article(title, url, lead=lead, categories=tuple(tags)))
    parsed = parse_tweet(post.text)
    assert parsed.valid and parsed.weightedLength <= 280
    assert post.text.endswith(url)


# Images ------------------------------------------------------------------------------------


async def test_small_image_goes_through_the_one_shot_upload(xworld: XWorld) -> None:
    x = make_adapter(xworld.url)
    try:
        await x.send(x.render(article("With a picture", image_url=f"{xworld.images}/small.jpg")))
    finally:
        await x.aclose()
    (stored,) = xworld.state.live_posts()
    (media_id,) = stored["media_ids"]
    assert xworld.state.media[media_id]["kind"] == "simple"
    assert xworld.state.media[media_id]["size"] == len(IMAGES["/small.jpg"])
    assert ("POST", "/2/media/upload/initialize") not in xworld.state.calls


async def test_large_image_goes_through_the_chunked_upload(xworld: XWorld) -> None:
    x = make_adapter(xworld.url, simple_upload_max=50_000, upload_chunk_bytes=128 * 1024)
    try:
        await x.send(x.render(article("Chunked picture", image_url=f"{xworld.images}/big.png")))
    finally:
        await x.aclose()
    (stored,) = xworld.state.live_posts()
    (media_id,) = stored["media_ids"]
    media = xworld.state.media[media_id]
    segments = -(-len(IMAGES["/big.png"]) // (128 * 1024))
    assert segments >= 3 and sorted(media["chunks"]) == list(range(segments))
    assert media["kind"] == "chunked" and media["state"] == "succeeded"
    assert media["status_polls"] >= 1  # finalize said in_progress: the adapter waited
    media_calls = [c for c in xworld.state.calls if c[1].startswith("/2/media")]
    assert media_calls == [
        ("POST", "/2/media/upload/initialize"),
        *[("POST", f"/2/media/upload/{media_id}/append")] * segments,
        ("POST", f"/2/media/upload/{media_id}/finalize"),
        *[("GET", "/2/media/upload")] * media["status_polls"],
    ]


@pytest.mark.parametrize(
    ("path", "overrides", "fault"),
    [
        ("/missing.jpg", {}, None),
        ("/page.html", {}, None),
        ("/small.jpg", {"max_image_bytes": 2048}, None),
        ("/small.jpg", {}, xs.XFault(status=503, paths=("/2/media",))),
        ("/big.png", {"simple_upload_max": 1000}, xs.XFault(status=400, paths=("/2/media",))),
    ],
    ids=["404", "not-an-image", "over-cap", "upload-503", "chunked-400"],
)
async def test_image_failure_still_posts_without_it(
    xworld: XWorld,
    caplog: pytest.LogCaptureFixture,
    path: str,
    overrides: dict[str, object],
    fault: xs.XFault | None,
) -> None:
    if fault:
        xworld.state.inject(fault)
    x = make_adapter(xworld.url, **overrides)
    try:
        sent = await x.send(x.render(article("Picture trouble", image_url=xworld.images + path)))
    finally:
        await x.aclose()
    (stored,) = xworld.state.live_posts()
    assert stored["id"] == sent.remote_id and stored["media_ids"] == []
    assert "image not attached" in caplog.text


# Errors ------------------------------------------------------------------------------------


async def test_user_rate_limit_waits_until_the_window_resets(xworld: XWorld, x: XAdapter) -> None:
    xworld.state.user_cap_15min = 1
    await x.send(x.render(article("First")))
    first = xworld.state.posts[0]["created_at"]
    with pytest.raises(RetryLater) as caught:
        await x.send(x.render(article("Second")))
    expected = int(first) + 900 - time.time()  # x-rate-limit-reset minus now
    assert abs(caught.value.retry_after - expected) < 3
    assert len(xworld.state.posts) == 1


async def test_spent_daily_app_cap_waits_for_the_day_not_the_window(
    xworld: XWorld, x: XAdapter
) -> None:
    xworld.state.app_cap_24h = 1
    await x.send(x.render(article("Only one today")))
    with pytest.raises(RetryLater) as caught:
        await x.send(x.render(article("One too many")))
    # The 15-minute window still has room; x-app-limit-24hour-reset is what counts.
    assert 86_000 < caught.value.retry_after <= 86_400


async def test_rate_limit_without_headers_still_waits_a_while(xworld: XWorld, x: XAdapter) -> None:
    xworld.state.revoke_all()  # a 429 fault answered before auth: no known user, no headers
    xworld.state.inject(xs.XFault(status=429))
    with pytest.raises(RetryLater) as caught:
        await x.send(x.render(article("Throttled")))
    assert caught.value.retry_after == 60.0


@pytest.mark.parametrize(
    ("fault", "outcome", "words"),
    [
        (
            xs.XFault(429, "UsageCapExceeded", "Usage cap exceeded: Monthly product cap"),
            AuthFailure,
            "usage cap",
        ),
        (
            xs.XFault(402, "CreditsDepleted", "Your enrolled account does not have any credits"),
            AuthFailure,
            "credits",
        ),
        (
            xs.XFault(
                403,
                "Forbidden",
                "Your client app is not configured with the appropriate oauth1 app "
                "permissions for this endpoint.",
            ),
            AuthFailure,
            "oauth1 app permissions",
        ),
        (xs.XFault(403, "Forbidden", "Your Tweet text is too long."), PermanentFailure, "long"),
        (
            xs.XFault(400, "Invalid Request", "One or more parameters to your request was invalid"),
            PermanentFailure,
            "parameters to your request was invalid",
        ),
        (xs.XFault(503), TemporaryFailure, "503"),
        (xs.XFault(500), TemporaryFailure, "500"),
    ],
    ids=["usage-cap", "no-credits", "app-not-permitted", "403-too-long", "400", "503", "500"],
)
async def test_error_answers_map_to_outcomes(
    xworld: XWorld, x: XAdapter, fault: xs.XFault, outcome: type[Exception], words: str
) -> None:
    xworld.state.inject(fault)
    with pytest.raises(outcome) as caught:
        await x.send(x.render(article("Refused")))
    assert type(caught.value) is outcome
    assert words.lower() in str(caught.value).lower()
    assert xworld.state.posts == []


async def test_duplicate_is_permanent(xworld: XWorld, x: XAdapter) -> None:
    post = x.render(article("Same words"))
    await x.send(post)
    with pytest.raises(PermanentFailure, match="duplicate content"):
        await x.send(post)
    assert len(xworld.state.live_posts()) == 1


async def test_server_errors_retry_until_x_is_back(xworld: XWorld, x: XAdapter) -> None:
    xworld.state.inject(xs.XFault(status=503), times=2)
    post = x.render(article("Outage"))
    for _ in range(2):
        with pytest.raises(TemporaryFailure):
            await x.send(post)
    sent = await x.send(post)
    assert [p["id"] for p in xworld.state.posts] == [sent.remote_id]


async def test_unreachable_x_is_temporary() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    x = make_adapter(f"http://127.0.0.1:{port}", with_image=False)
    try:
        with pytest.raises(TemporaryFailure, match="nothing was sent"):
            await x.send(x.render(article("Nobody home")))
    finally:
        await x.aclose()


async def test_hang_is_uncertain_because_x_may_post_anyway(xworld: XWorld) -> None:
    x = make_adapter(xworld.url, with_image=False, timeout=0.5)
    xworld.state.inject(xs.XFault(status=0, hang=2.0))
    started = time.monotonic()
    try:
        with pytest.raises(UncertainDelivery):
            await x.send(x.render(article("Hang")))
    finally:
        await x.aclose()
    assert time.monotonic() - started < 1.5  # gave up at its own timeout, not X's answer
    assert xworld.state.posts == []
    # The stand-in finishes the call after the adapter gave up: a resend would duplicate.
    for _ in range(60):
        if xworld.state.posts:
            break
        await asyncio.sleep(0.05)
    assert [p["text"] for p in xworld.state.posts] == [f"Hang\n\nA lead.\n\n{ARTICLE_URL}"]


async def test_connection_cut_mid_answer_is_uncertain(xworld: XWorld, x: XAdapter) -> None:
    xworld.state.inject(xs.XFault(status=0, drop=True))
    with pytest.raises(UncertainDelivery, match="may have posted"):
        await x.send(x.render(article("Cut off")))
    assert len(xworld.state.posts) == 1  # it did post


async def test_over_long_text_is_refused_before_calling_x(xworld: XWorld, x: XAdapter) -> None:
    post = replace(x.render(article("Fine")), text="字" * 141)  # 282 weighted units
    with pytest.raises(PermanentFailure, match="282 weighted units"):
        await x.send(post)
    assert xworld.state.calls == []


# Credentials and secrets -------------------------------------------------------------------


async def test_revoked_credentials_pause_without_leaking_secrets(
    xworld: XWorld, caplog: pytest.LogCaptureFixture
) -> None:
    xworld.state.revoke_all()
    x = make_adapter(xworld.url)
    caplog.set_level(logging.DEBUG)  # tweepy, httpx and urllib3 debug output included
    try:
        with pytest.raises(AuthFailure) as caught:
            await x.send(x.render(article("Nobody", image_url=f"{xworld.images}/small.jpg")))
    finally:
        await x.aclose()
    assert "image not attached" in caplog.text  # the upload was refused too
    seen = " ".join([str(caught.value), repr(caught.value), caplog.text, repr(x.secrets)])
    for secret in ENV.values():
        assert secret not in seen
    assert xworld.state.posts == []


async def test_stand_in_rejects_a_bad_signature(xworld: XWorld) -> None:
    x = make_adapter(xworld.url, dict(ENV, X_SECRET="not-the-secret"), with_image=False)
    try:
        with pytest.raises(AuthFailure, match="credentials"):
            await x.send(x.render(article("Forged")))
    finally:
        await x.aclose()
    assert xworld.state.posts == []


def test_settings_refuse_literal_secrets_and_bad_bases() -> None:
    with pytest.raises(ValidationError, match="secrets are not written in the config"):
        make_adapter("http://127.0.0.1:9", api_key="ck-literal")
    with pytest.raises(ValidationError, match="http"):
        make_adapter("api.x.com")
    defaults = make_adapter("https://api.x.com/").settings
    assert defaults.api_base == "https://api.x.com"
    assert XAdapter.Settings.model_fields["upload_base"].default == "https://api.x.com"


# Delete, edit, cost ------------------------------------------------------------------------


async def test_delete_a_retracted_post(xworld: XWorld, x: XAdapter) -> None:
    sent = await x.send(x.render(article("To be retracted")))
    await x.delete(sent.remote_id)
    assert xworld.state.live_posts() == [] and xworld.state.deleted == [sent.remote_id]
    await x.delete(sent.remote_id)  # already gone: not an error
    xworld.state.revoke_all()
    with pytest.raises(AuthFailure):
        await x.delete(sent.remote_id)


async def test_edit_is_not_supported(x: XAdapter) -> None:
    with pytest.raises(NotImplementedError):
        await x.edit("1", x.render(article("Edited")))


def test_cost_distinguishes_posts_with_links() -> None:
    x = make_adapter("http://127.0.0.1:9", cost_per_post=0.01, cost_per_post_with_url=0.2)
    with_url = x.render(article("Linked"))
    assert x.cost(with_url) == 0.2
    assert x.cost(replace(with_url, text="No link")) == 0.01
    flat = make_adapter("http://127.0.0.1:9", cost_per_post=0.05)
    assert flat.cost(with_url) == 0.05
    assert make_adapter("http://127.0.0.1:9").cost(with_url) == 0.0


# The stand-in on its own (what it enforces) ------------------------------------------------


async def _signed_post(x: XAdapter, url: str, **body: object) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(url, headers=x._sign("POST", url), **body)  # type: ignore[arg-type]


async def test_stand_in_enforces_x_rules(xworld: XWorld, x: XAdapter) -> None:
    tweets = f"{xworld.url}/2/tweets"
    too_long = await _signed_post(x, tweets, json={"text": "a" * 281})
    assert too_long.status_code == 400 and too_long.json()["detail"] == xs.TOO_LONG
    bad_media = await _signed_post(x, tweets, json={"text": "hi", "media": {"media_ids": ["42"]}})
    assert bad_media.status_code == 400
    assert bad_media.json()["errors"][0]["message"] == "Your media IDs are invalid."
    retired = await _signed_post(
        x, f"{xworld.url}/2/media/upload", data={"command": "INIT"}, files={"x": ("x", b"x")}
    )
    assert retired.status_code == 400
    not_image = await _signed_post(
        x,
        f"{xworld.url}/2/media/upload",
        data={"media_category": "tweet_image"},
        files={"media": ("a", b"<html>", "image/jpeg")},
    )
    assert not_image.status_code == 400
    async with httpx.AsyncClient() as client:
        unsigned = await client.post(tweets, json={"text": "hi"})
        headers = x._sign("POST", tweets)
        first = await client.post(tweets, json={"text": "once"}, headers=headers)
        replayed = await client.post(tweets, json={"text": "twice"}, headers=headers)
        listed = await client.get(f"{xworld.url}/_standin/posts")
    assert unsigned.status_code == 401 and unsigned.json()["title"] == "Unauthorized"
    assert first.status_code == 201 and replayed.status_code == 401
    assert first.headers["x-rate-limit-remaining"] == "99"
    assert set(first.json()["data"]) == {"id", "text", "edit_history_tweet_ids"}
    assert [p["text"] for p in listed.json()] == ["once"]


async def test_outbox_states_for_rate_limit_duplicate_and_budget(tmp_path: Path) -> None:
    """Through the core: a rate-limited post waits, a budget holds it, a duplicate fails."""
    from bot.config import Config, validate
    from bot.demo.site import SampleSite, make_sample
    from bot.demo.site import create_app as create_site_app
    from bot.service import Service
    from bot.store import DeliveryStatus

    site = SampleSite()
    state = xs.State()
    state.allow(CREDENTIALS)
    async with serve(xs.create_app(state)) as x_server, serve(create_site_app(site)) as server:
        site.base_url = server.url

        def config(**timing: object) -> Config:
            return validate(
                {
                    "database": f"sqlite:///{tmp_path}/x.db",
                    "sources": [{"name": "en", "url": f"{server.url}/en/rss.xml"}],
                    "targets": [
                        {
                            "name": "x",
                            "platform": "x",
                            "api_base": x_server.url,
                            "upload_base": x_server.url,
                            "with_image": False,
                            "api_key": {"env": "X_KEY"},
                            "api_secret": {"env": "X_SECRET"},
                            "access_token": {"env": "X_TOKEN"},
                            "access_token_secret": {"env": "X_TOKEN_SECRET"},
                            "cost_per_post": 0.2,
                            "cost_per_post_with_url": 0.5,
                            "timing": timing,
                        }
                    ],
                    "http": {"enabled": False},
                },
                environ=ENV,
            )

        async def once(**timing: object) -> None:
            service = Service(config(**timing))
            try:
                await service.run_once()
            finally:
                await service.close()

        async def statuses() -> list[str]:
            service = Service(config())
            await service.start()
            try:
                rows = await service.store.recent_deliveries(20)
            finally:
                await service.close()
            return [r.status for r in sorted(rows, key=lambda r: r.id)]

        def fake_post(post_id: str, text: str) -> dict[str, object]:
            return {
                "id": post_id,
                "text": text,
                "media_ids": [],
                "weighted_length": 0,
                "deleted": False,
                "token": ENV["X_TOKEN"],
                "created_at": time.time(),
            }

        await once()
        await site.publish_next()
        await once()
        assert await statuses() == [DeliveryStatus.SENT]

        state.user_cap_15min = 1  # the next post meets X's 15-minute cap
        await site.publish(make_sample("rl", "Rate limited one"))
        await once()
        assert await statuses() == [DeliveryStatus.SENT, DeliveryStatus.PENDING]
        assert len(state.live_posts()) == 1

        state.user_cap_15min = 100
        state.posts.append(fake_post("1", ""))
        # Budget: 0.2 a post (loopback URLs are not links to X), 0.3 a day: it waits.
        service = Service(config(daily_budget=0.3))
        await service.start()
        try:
            (row,) = await service.store.recent_deliveries(1, [DeliveryStatus.PENDING])
            await service.store.reschedule(row.id, time.time())
            report = await service.dispatch()
            rows = await service.store.recent_deliveries(5)
            assert report.sent == 0, [(r.status, r.last_error) for r in rows]
            (row,) = await service.store.recent_deliveries(1, [DeliveryStatus.PENDING])
            assert "daily budget of 0.3 reached" in (row.last_error or "")
        finally:
            await service.close()
        service = Service(config(daily_budget=0.3, over_cap="drop"))
        await service.start()
        try:
            await service.store.reschedule(row.id, time.time())  # due now, under the drop rule
            await service.dispatch()
        finally:
            await service.close()
        assert await statuses() == [DeliveryStatus.SENT, DeliveryStatus.SKIPPED]

        # A duplicate of an existing post: terminal, not retried.
        existing = state.live_posts()[0]["text"]
        state.posts = [p for p in state.posts if p["id"] != "1"]
        state.posts.append(fake_post("2", existing))
        await site.publish(make_sample("dup", "Duplicate later"))
        service = Service(config(), dispatch_on_new=False)
        await service.start()
        try:
            await service.poll_all()
            (row,) = await service.store.recent_deliveries(1, [DeliveryStatus.PENDING])
            fixed = RenderedPost(**{**row.post.to_json(), "text": existing})
            await service.store.update_payload(row.id, fixed)
            await service.dispatch()
        finally:
            await service.close()
        assert (await statuses())[-1] == DeliveryStatus.FAILED


async def test_health_check_is_opt_in_and_answers_from_users_me(xworld: XWorld) -> None:
    quiet = make_adapter(xworld.url)
    checked = make_adapter(xworld.url, health_check=True)
    try:
        assert await quiet.check() is False  # off: no billed read, the next post probes
        assert ("GET", "/2/users/me") not in xworld.state.calls
        assert await checked.check() is True
        assert ("GET", "/2/users/me") in xworld.state.calls
        xworld.state.revoke_all()
        with pytest.raises(AuthFailure):
            await checked.check()
    finally:
        await quiet.aclose()
        await checked.aclose()


async def test_images_come_through_the_cores_downloader_when_it_gives_one(
    xworld: XWorld,
) -> None:
    asked: list[tuple[str, str, int]] = []

    async def core_download(url: str, article_url: str, max_bytes: int) -> bytes:
        asked.append((url, article_url, max_bytes))
        if url.endswith("/refused.jpg"):
            raise RuntimeError("refused: 127.0.0.1 is a loopback address")
        return IMAGES["/small.jpg"]

    adapter = make_adapter(xworld.url, fetch_image=core_download)
    try:
        first = await adapter.send(
            adapter.render(article("With photo", image_url="https://cdn.example/a.jpg"))
        )
        second = await adapter.send(
            adapter.render(
                article(
                    "Photo refused",
                    url=ARTICLE_URL + "-2",
                    image_url="http://127.0.0.1/refused.jpg",
                )
            )
        )
    finally:
        await adapter.aclose()
    assert asked[0] == ("https://cdn.example/a.jpg", ARTICLE_URL, adapter.settings.max_image_bytes)
    posts = {p["id"]: p for p in xworld.state.posts}
    assert posts[first.remote_id]["media_ids"]  # the core's bytes were uploaded
    assert not posts[second.remote_id]["media_ids"]  # refused image: posted without it


async def test_a_post_after_a_pause_does_not_ride_a_connection_the_server_drops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that closes an idle keep-alive connection as the next request arrives (as
    load balancers and uvicorn do): a post on it would have an unknown fate. After a pause
    the adapter dials anew, so both posts get a clear answer."""
    import adapters.x.tweepy_api as x_module

    monkeypatch.setattr(x_module, "FRESH_AFTER", 0.2)
    answered: list[int] = []

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            if served:  # a reused connection: hang up without an answer
                writer.close()
                return
            served += 1
            answered.append(1)
            body = json.dumps({"data": {"id": str(1000 + len(answered)), "text": "t"}}).encode()
            writer.write(
                b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    adapter = make_adapter(f"http://127.0.0.1:{port}", with_image=False)
    try:
        first = await adapter.send(adapter.render(article("First")))
        await asyncio.sleep(0.4)  # idle longer than FRESH_AFTER
        second = await adapter.send(adapter.render(article("Second", url=ARTICLE_URL + "-2")))
    finally:
        await adapter.aclose()
        server.close()
        await server.wait_closed()
    assert (first.remote_id, second.remote_id) == ("1001", "1002")
    assert len(answered) == 2


async def test_tweepy_fails_in_prepare_not_in_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform library is loaded in prepare(), before the post is committed `sending`:
    an install without it fails a step that published nothing (retried, not 'may have
    been posted')."""
    import adapters.x as x_module

    async def missing(module: str) -> None:
        raise ModuleNotFoundError(f"No module named {module!r}")

    monkeypatch.setattr(x_module, "import_deferred", missing)
    adapter = make_adapter("http://127.0.0.1:9")
    post = RenderedPost(
        "x-main", "x", "https://sample.example/a", "A headline https://sample.example/a"
    )
    with pytest.raises(ModuleNotFoundError, match=r"adapters\.x\.tweepy_api"):
        await adapter.prepare(post, SendContext())


# Pieces of news text, links and the characters around the fast count's edges: emoji and the
# marks that make one, composing sequences, line endings, scripts X weighs 1 or 2.
_PIECES = [
    "a",
    "Z",
    "7",
    " ",
    ".",
    ",",
    ":",
    "/",
    "-",
    "#",
    "@",
    "?",
    "=",
    "&",
    "\r\n",
    "\r",
    "\n",
    "Привет",
    "Bakı",
    "Ə",
    "İ",
    "ş",
    "ğ",
    "ö",
    "ἀ",
    "\u1100",
    "\u10ff",
    "日本語",
    "한",
    "—",
    "–",
    "“",
    "”",
    "‘",
    "’",
    "…",
    "•",
    "‰",
    "′",
    "‹",
    "»",
    "«",
    "€",
    "₼",
    "₽",
    "\u2000",
    "\u200b",
    "\u200d",
    "\ufe0f",
    "\u20e3",
    "©",
    "®",
    "™",
    "‼",
    "😷",
    "👨\u200d🎤",
    "#\ufe0f\u20e3",
    "🇦🇿",
    "e\u0301",
    "=\u0338",
    "\u0338",
    "https://example.com/a?b=1",
    "http://t.co/x",
    "example.az",
    "www.report.az/news/1",
    "x.y",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map("".join))
def test_weighted_length_is_twitter_texts_count(text: str) -> None:
    assert weighted_length(text) == parse_tweet(text).weightedLength


def test_weighted_length_of_every_character_below_the_emoji_blocks() -> None:
    """Each character the fast count takes, alone and after a digit (a keycap's start)."""
    for code in range(0x20C1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        for text in (chr(code), f"1{chr(code)}x"):
            assert weighted_length(text) == parse_tweet(text).weightedLength, hex(code)


def test_clean_drops_every_control_and_surrogate_and_nothing_else() -> None:
    kept = "".join(chr(c) for c in range(0x21, 0x3000) if c not in range(0x7F, 0xA0))
    dropped = "".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0), 0xD800, 0xDBFF, 0xDFFF])
    assert clean(f"a{dropped}b") == "a b"  # the line breaks and tabs among them: one space
    assert all(unicodedata.category(ch) not in ("Cc", "Cs") for ch in clean(kept + dropped))
    visible = "Bakı — «Ə» “quotes” € ₼ ‰ … ©™ 日本語 Привет"
    assert clean(visible) == visible
