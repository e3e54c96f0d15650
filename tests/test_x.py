"""The X adapter against the X stand-in: lengths, media, errors, deletes, secrets."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import Outlet
from adapters.x import XAdapter, weighted_length
from bot.demo.site import SampleSite, create_app
from bot.httpserver import serve
from bot.models import Article
from bot.outcomes import (
    AuthFailure,
    PermanentFailure,
    RetryLater,
    TemporaryFailure,
    UncertainDelivery,
)
from standins import x as xs

ENV = {
    "X_KEY": "ck-test-123",
    "X_SECRET": "cs-SECRET-456",
    "X_TOKEN": "at-test-789",
    "X_TOKEN_SECRET": "ats-SECRET-012",
}


@dataclass
class XWorld:
    state: xs.State
    url: str
    images: str


@pytest.fixture
async def xworld() -> AsyncIterator[XWorld]:
    state = xs.State()
    state.allow(
        xs.Credentials(ENV["X_KEY"], ENV["X_SECRET"], ENV["X_TOKEN"], ENV["X_TOKEN_SECRET"])
    )
    async with serve(xs.create_app(state)) as x_server, serve(create_app(SampleSite())) as site:
        yield XWorld(state, x_server.url, site.url)


def adapter(world: XWorld, **overrides: object) -> XAdapter:
    raw: dict[str, object] = {
        "name": "x-main",
        "platform": "x",
        "api_base": world.url,
        "upload_base": world.url,
        "api_key": {"env": "X_KEY"},
        "api_secret": {"env": "X_SECRET"},
        "access_token": {"env": "X_TOKEN"},
        "access_token_secret": {"env": "X_TOKEN_SECRET"},
        "timeout": 3,
    }
    raw.update(overrides)
    settings_ = XAdapter.Settings.model_validate(raw)
    secrets = {n: ref.resolve(ENV) for n, ref in settings_.secret_fields().items()}
    return XAdapter(settings_, secrets, Outlet(name="Sample Times"))


def article(title: str, url: str = "https://news.example.com/en/news/1", **fields: object) -> Article:
    return Article(url=url, title=title, lead=str(fields.pop("lead", "A lead.")), **fields)  # type: ignore[arg-type]


HEADLINES = [
    (
        "Government announces sweeping reforms to the pension system after months of talks " * 4,
        "en",
    ),
    (
        "Правительство объявило о масштабной реформе пенсионной системы после долгих переговоров "
        * 3,
        "ru",
    ),
    ("政府宣布在数月谈判后对养老金制度进行全面改革" * 10, "zh"),
    ("🔥🚨 Breaking 👩‍💻👨‍👩‍👧‍👦 🇦🇿🇬🇧 " * 20, "en"),
    ("Xəbər: Bakıda şəhər parkı açıldı, ğ ş ə ı ö ü ç " * 8, "az"),
]


@pytest.mark.parametrize(("title", "lang"), HEADLINES)
async def test_long_headlines_are_accepted_at_or_below_280(
    xworld: XWorld, title: str, lang: str
) -> None:
    x = adapter(xworld, with_image=False)
    long_url = "https://news.example.com/" + lang + "/news/" + "very-long-slug-" * 30
    post = x.render(
        article(
            title, long_url, lead="Lead " * 200, categories=("World", "Politics"), language=lang
        )
    )
    sent = await x.send(post)
    (stored,) = xworld.state.live_posts()
    assert stored["id"] == sent.remote_id and stored["weighted_length"] <= 280
    assert long_url in stored["text"]
    assert stored["text"].endswith(long_url)
    await x.aclose()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    title=st.text(min_size=1, max_size=600),
    lead=st.text(max_size=600),
    tags=st.lists(st.text(min_size=1, max_size=20), max_size=5),
)
def test_render_always_fits_and_keeps_the_url(title: str, lead: str, tags: list[str]) -> None:
    world = XWorld(xs.State(), "http://127.0.0.1:9", "http://127.0.0.1:9")
    post = adapter(world, max_hashtags=5).render(article(title, lead=lead, categories=tuple(tags)))
    assert weighted_length(post.text) <= 280
    assert post.text.endswith("https://news.example.com/en/news/1")


async def test_image_is_uploaded_and_attached(xworld: XWorld) -> None:
    x = adapter(xworld)
    post = x.render(article("With a picture", image_url=f"{xworld.images}/images/pic.jpg"))
    await x.send(post)
    (stored,) = xworld.state.live_posts()
    assert len(stored["media_ids"]) == 1
    assert xworld.state.media[stored["media_ids"][0]]["state"] == "succeeded"
    await x.aclose()


async def test_large_image_uses_chunked_upload(xworld: XWorld) -> None:
    x = adapter(xworld, simple_upload_max=10_000)
    post = x.render(article("Chunked picture", image_url=f"{xworld.images}/images/big.jpg"))
    await x.send(post)
    (stored,) = xworld.state.live_posts()
    media = xworld.state.media[stored["media_ids"][0]]
    assert len(media["chunks"]) >= 1 and media["state"] == "succeeded"
    await x.aclose()


async def test_broken_image_still_posts_without_it(
    xworld: XWorld, caplog: pytest.LogCaptureFixture
) -> None:
    x = adapter(xworld)
    post = x.render(article("Picture is gone", image_url=f"{xworld.images}/missing.jpg"))
    await x.send(post)
    (stored,) = xworld.state.live_posts()
    assert stored["media_ids"] == [] and "image not attached" in caplog.text
    await x.aclose()


async def test_rate_limit_waits_until_reset(xworld: XWorld) -> None:
    xworld.state.user_cap_15min = 1
    x = adapter(xworld, with_image=False)
    await x.send(x.render(article("First")))
    with pytest.raises(RetryLater) as caught:
        await x.send(x.render(article("Second")))
    assert 800 <= caught.value.retry_after <= 901
    await x.aclose()


async def test_duplicate_is_permanent(xworld: XWorld) -> None:
    x = adapter(xworld, with_image=False)
    post = x.render(article("Same words"))
    await x.send(post)
    with pytest.raises(PermanentFailure, match="duplicate"):
        await x.send(post)
    await x.aclose()


async def test_revoked_credentials_pause(xworld: XWorld, caplog: pytest.LogCaptureFixture) -> None:
    xworld.state.revoke_all()
    x = adapter(xworld, with_image=False)
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthFailure) as caught:
        await x.send(x.render(article("Nobody")))
    text = str(caught.value) + caplog.text
    for secret in ENV.values():
        assert secret not in text
    await x.aclose()


async def test_server_error_is_temporary_and_hang_is_uncertain(xworld: XWorld) -> None:
    x = adapter(xworld, with_image=False, timeout=1)
    xworld.state.inject(xs.XFault(status=503))
    with pytest.raises(TemporaryFailure):
        await x.send(x.render(article("Outage")))
    xworld.state.inject(xs.XFault(status=201, hang=3))
    started = time.monotonic()
    with pytest.raises(UncertainDelivery):
        await x.send(x.render(article("Hang")))
    assert time.monotonic() - started < 3
    await x.aclose()


async def test_delete(xworld: XWorld) -> None:
    x = adapter(xworld, with_image=False)
    sent = await x.send(x.render(article("To be retracted")))
    await x.delete(sent.remote_id)
    assert xworld.state.live_posts() == []
    await x.delete(sent.remote_id)  # already gone: not an error
    await x.aclose()


async def test_stand_in_rejects_a_bad_signature(xworld: XWorld) -> None:
    wrong = dict(ENV, X_SECRET="not-the-secret")
    x = adapter(xworld, with_image=False)
    x.secrets = {n: ref.resolve(wrong) for n, ref in x.settings.secret_fields().items()}
    with pytest.raises(AuthFailure):
        await x.send(x.render(article("Forged")))
    assert xworld.state.posts == []
    await x.aclose()
