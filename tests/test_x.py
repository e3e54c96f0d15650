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
from bot.demo.site import SampleSite, create_app, make_sample
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


def article(
    title: str, url: str = "https://news.example.com/en/news/1", **fields: object
) -> Article:
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


async def test_outbox_states_for_rate_limit_duplicate_and_budget(tmp_path) -> None:
    from bot.config import validate
    from bot.service import Service
    from bot.store import FAILED, PENDING, SENT, SKIPPED

    site = SampleSite()
    state = xs.State()
    state.allow(
        xs.Credentials(ENV["X_KEY"], ENV["X_SECRET"], ENV["X_TOKEN"], ENV["X_TOKEN_SECRET"])
    )
    async with serve(xs.create_app(state)) as x_server, serve(create_app(site)) as site_server:
        site.base_url = site_server.url

        def config(**timing: object):
            return validate(
                {
                    "database": f"sqlite:///{tmp_path}/x.db",
                    "sources": [{"name": "en", "url": f"{site_server.url}/en/rss.xml"}],
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

        async def once(**timing: object) -> Service:
            service = Service(config(**timing))
            try:
                await service.run_once()
            finally:
                await service.close()
            return service

        async def statuses() -> list[str]:
            service = Service(config())
            await service.start()
            try:
                rows = await service.store.recent_deliveries(20)
            finally:
                await service.close()
            return [r.status for r in sorted(rows, key=lambda r: r.id)]

        await once()
        await site.publish_next()
        await once()
        assert await statuses() == [SENT]

        state.user_cap_15min = 1  # the next post meets X's 15-minute cap
        await site.publish(make_sample("rl", "Rate limited one"))
        await once()
        assert await statuses() == [SENT, PENDING]
        assert len(state.live_posts()) == 1

        state.user_cap_15min = 100
        state.posts.append(
            {"id": "1", "text": "", "media_ids": [], "weighted_length": 0, "deleted": False}
        )
        # Budget: 0.2 a post (loopback URLs are not links to X), 0.3 a day: it waits.
        service = Service(config(daily_budget=0.3))
        await service.start()
        try:
            (row,) = await service.store.recent_deliveries(1, [PENDING])
            await service.store.set_status(row.id, PENDING)
            report = await service.dispatch()
            rows = await service.store.recent_deliveries(5)
            assert report.sent == 0, [(r.status, r.last_error) for r in rows]
            (row,) = await service.store.recent_deliveries(1, [PENDING])
            assert "daily budget of 0.3 reached" in (row.last_error or "")
        finally:
            await service.close()
        service = Service(config(daily_budget=0.3, over_cap="drop"))
        await service.start()
        try:
            await service.store.set_status(row.id, PENDING)  # due now, under the drop rule
            await service.dispatch()
        finally:
            await service.close()
        assert await statuses() == [SENT, SKIPPED]

        # A duplicate of an existing post: terminal, not retried.
        existing = state.live_posts()[0]["text"]
        state.posts.append(
            {"id": "2", "text": existing, "media_ids": [], "weighted_length": 0, "deleted": False}
        )
        state.posts = [p for p in state.posts if p["id"] != "1"]
        await site.publish(make_sample("dup", "Duplicate later"))
        service = Service(config(), dispatch_on_new=False)
        await service.start()
        try:
            await service.poll_all()
            (row,) = await service.store.recent_deliveries(1, [PENDING])
            fixed = row.post.__class__(**{**row.post.to_json(), "text": existing})
            await service.store.update_payload(row.id, fixed)
            await service.dispatch()
        finally:
            await service.close()
        assert (await statuses())[-1] == FAILED


def test_cost_distinguishes_posts_with_links() -> None:
    world = XWorld(xs.State(), "http://127.0.0.1:9", "http://127.0.0.1:9")
    x = adapter(world, cost_per_post=0.01, cost_per_post_with_url=0.2)
    with_url = x.render(article("Linked"))
    assert x.cost(with_url) == 0.2
    assert x.cost(with_url.__class__(**{**with_url.to_json(), "text": "No link"})) == 0.01
