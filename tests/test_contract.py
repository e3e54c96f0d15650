"""The adapter contract, run over every platform `available_platforms()` finds.

Each platform meets its own stand-in through the harness in standins/contract.py. A platform
without a harness fails here (it is not skipped): a new platform gets this coverage by existing.
Per-platform details (media, flood control, template dialects) stay in the platform's own tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from adapters import adapter_class, available_platforms
from adapters.base import Adapter
from bot.models import Article, PostLength, RenderedPost
from bot.outcomes import AuthFailure, RetryLater, TemporaryFailure, UncertainDelivery
from bot.targets import Outlet, TargetSettings
from bot.urls import normalize_url
from standins.contract import MAX_TIMEOUT, Fault, Harness, Published, harness_for

PLATFORMS = available_platforms()
ARTICLE_URL = "https://news.example.com/en/news/2025/contract-story?id=7"
OUTLET = Outlet(name="Contract Times", url="https://news.example.com")

HOSTILE_TITLES = {
    "300 chars": "Parliament passes the budget after a long night of debate " * 5 + "end",
    "5000 chars": ("Long headline with many words, commas, and clauses; " * 100)[:5000],
    "CJK": "政府宣布在数月谈判后对养老金制度进行全面改革" * 12,
    "emoji ZWJ": "🔥🚨 Breaking 👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 🇦🇿🇬🇧 " * 25,
    "Azerbaijani": "Azərbaycan hökuməti pensiya sistemində geniş islahatlar elan etdi " * 6,
    "Cyrillic": "Правительство объявило о масштабной реформе пенсионной системы " * 6,
    "HTML": '<b>Bold</b> & <a href="https://evil.example/">click</a> <script>x()</script> '
    "</i><tg-spoiler>&amp;&lt;&#0;" * 8,
}

EXPECTED = {
    Fault.AUTH: AuthFailure,
    Fault.RATE_LIMIT: RetryLater,
    Fault.REFUSED: TemporaryFailure,
    Fault.TIMEOUT_AFTER_SEND: UncertainDelivery,
}


@dataclass
class World:
    harness: Harness
    adapter: Adapter


def article(title: str = "Contract story", n: int = 0) -> Article:
    return Article(
        url=ARTICLE_URL if not n else f"{ARTICLE_URL}{n}",
        title=title,
        lead="A lead paragraph for the contract test.",
        source="contract",
        language="en",
        categories=("Politics",),
        tags=("budget",),
    )


def build(harness: Harness) -> Adapter:
    """The adapter built the way the core builds it: validated settings, env secrets."""
    cls = adapter_class(harness.platform)
    raw = harness.target()
    settings = cls.Settings.model_validate(raw)
    assert settings.timeout <= MAX_TIMEOUT, "the harness's target timeout is too long"
    env = harness.env()
    secrets = {name: ref.resolve(env) for name, ref in settings.secret_fields().items()}
    return cls(settings, secrets, OUTLET)


@pytest.fixture(params=PLATFORMS)
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    harness = harness_for(request.param)  # LookupError (a failure) when a platform has none
    async with harness:
        adapter = build(harness)
        try:
            yield World(harness, adapter)
        finally:
            await adapter.aclose()


def _same(a: str, b: str) -> bool:
    return normalize_url(a) == normalize_url(b)


def assert_attributed(adapter: Adapter, post: Published, url: str) -> None:
    """The article link is there: as a hyperlink where the platform has them."""
    if adapter.hyperlinks:
        assert any(_same(link, url) for link in post.links), (post.links, url)
    else:
        shown = [u.rstrip(".,;:!?)»") for u in re.findall(r"https?://[^\s<>\"]+", post.text)]
        assert any(_same(u, url) for u in shown), post.text


async def send(world: World, item: Article) -> tuple[RenderedPost, Published]:
    before = len(world.harness.published())
    post = world.adapter.render(item)
    sent = await world.adapter.send(post)
    published = world.harness.published()
    assert len(published) == before + 1, "exactly one post per send"
    assert published[-1].remote_id == sent.remote_id
    return post, published[-1]


def test_every_platform_is_covered() -> None:
    seven = {"telegram", "x", "facebook", "instagram", "bluesky", "mastodon", "threads"}
    assert seven <= set(PLATFORMS)
    assert not [p for p in PLATFORMS if p.startswith("_") or p == "base"]


async def test_measure_finds_an_overlong_post(world: World) -> None:
    """measure() is each platform's own count: a post far over any limit never fits."""
    post = RenderedPost(
        target=world.adapter.name,
        platform=world.adapter.platform,
        article_url=ARTICLE_URL,
        text="word " * 20_000,
    )
    length = world.adapter.measure(post)
    assert not length.fits and length.used > length.limit, length


async def test_post_carries_the_article_link(world: World) -> None:
    _, published = await send(world, article())
    assert_attributed(world.adapter, published, ARTICLE_URL)
    assert "Contract story" in published.text


@pytest.mark.parametrize("kind", list(HOSTILE_TITLES))
async def test_limits_hold_for_hostile_titles(world: World, kind: str) -> None:
    # The stand-ins enforce each platform's limits as it counts them: an overlong post fails.
    post, published = await send(world, article(HOSTILE_TITLES[kind]))
    assert_attributed(world.adapter, published, ARTICLE_URL)
    # The adapter's own measure (the desk re-checks edits with it) agrees with the stand-in.
    length = world.adapter.measure(post)
    assert length.fits, f"{kind}: {length}"
    assert length.used > 0
    if post.markup == "html":
        # Markup in a title is text, never markup: it cannot smuggle in a link.
        assert not [link for link in published.links if "evil.example" in link]


@pytest.mark.parametrize("fault", list(Fault))
async def test_fault_maps_to_its_outcome(world: World, fault: Fault) -> None:
    post = world.adapter.render(article(f"Fault {fault}"))
    wait = await world.harness.arm(fault)
    with pytest.raises(EXPECTED[fault]) as caught:
        await world.adapter.send(post)
    if fault is Fault.RATE_LIMIT:
        assert wait is not None
        assert isinstance(caught.value, RetryLater)
        assert abs(caught.value.retry_after - wait) <= max(5.0, wait * 0.05)
    if fault is not Fault.TIMEOUT_AFTER_SEND:
        assert world.harness.published() == [], "nothing is published on a refused send"


async def test_uncertain_send_may_have_posted_but_is_never_resent(world: World) -> None:
    post = world.adapter.render(article("Slow answer"))
    await world.harness.arm(Fault.TIMEOUT_AFTER_SEND)
    with pytest.raises(UncertainDelivery):
        await world.adapter.send(post)
    await asyncio.sleep(MAX_TIMEOUT + 0.5)  # the stand-in finishes the call it received
    assert len(world.harness.published()) <= 1  # the adapter itself never retried


async def test_keyed_timeout_never_makes_a_second_post(world: World) -> None:
    """A lost answer to a send with the delivery's key. A platform that honours the key
    (`idempotent`) may settle it itself: the post it finds (read back), or TemporaryFailure
    ("not there, safe to retry"), or UncertainDelivery; a resend with the same key then
    publishes nothing new. Any other platform must say UncertainDelivery (never resent)."""
    key = "delivery-contract-42"
    post = world.adapter.render(article("Keyed slow answer"))
    await world.harness.arm(Fault.TIMEOUT_AFTER_SEND)
    if not world.adapter.idempotent:
        with pytest.raises(UncertainDelivery):
            await world.adapter.send(post, idempotency_key=key)
        return
    with contextlib.suppress(TemporaryFailure, UncertainDelivery):
        await world.adapter.send(post, idempotency_key=key)
    await asyncio.sleep(MAX_TIMEOUT + 0.5)  # the stand-in finishes the call it received
    again = await world.adapter.send(post, idempotency_key=key)
    live = [p for p in world.harness.published() if not p.deleted]
    assert len(live) == 1, live
    assert live[0].remote_id == again.remote_id
    assert_attributed(world.adapter, live[0], ARTICLE_URL)


async def test_edit_where_supported(world: World) -> None:
    if type(world.adapter).edit is Adapter.edit:
        with pytest.raises(NotImplementedError):
            await world.adapter.edit("1", world.adapter.render(article()))
        return
    _, published = await send(world, article("Before the correction"))
    fixed = world.adapter.render(article("After the correction"))
    await world.adapter.edit(published.remote_id, fixed)
    now = next(p for p in world.harness.published() if p.remote_id == published.remote_id)
    assert "After the correction" in now.text and "Before" not in now.text
    assert_attributed(world.adapter, now, ARTICLE_URL)


async def test_delete_where_supported(world: World) -> None:
    if type(world.adapter).delete is Adapter.delete:
        with pytest.raises(NotImplementedError):
            await world.adapter.delete("1")
        return
    _, published = await send(world, article("To be withdrawn"))
    await world.adapter.delete(published.remote_id)
    now = next(p for p in world.harness.published() if p.remote_id == published.remote_id)
    assert now.deleted


def test_a_platform_without_a_harness_fails_not_skips() -> None:
    with pytest.raises(LookupError, match=r"standins/nosuch\.py"):
        harness_for("nosuch")


def test_an_adapter_must_write_send_or_publish() -> None:
    """The base's send() runs publish() and its publish() runs send(): a platform that wrote
    neither would loop, so it is refused when built."""

    class Neither(Adapter):
        platform = "neither"

        def render(self, article: Article) -> RenderedPost:
            raise NotImplementedError

        def measure(self, post: RenderedPost) -> PostLength:
            raise NotImplementedError

    settings = TargetSettings(name="n", platform="neither", api_base="http://127.0.0.1:9")
    with pytest.raises(TypeError, match="Neither must define send\\(\\) or publish\\(\\)"):
        Neither(settings, {}, OUTLET)
