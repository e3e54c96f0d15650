"""verify() (check-config --online, the daemon's start-up self-test) for Bluesky, Mastodon and
Threads against their stand-ins, and Mastodon's start-up limits (Adapter.prepare)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import validate
from bot.models import Article, RenderedPost
from bot.outcomes import SetupStatus
from bot.service import Service
from standins.contract import Fault, harness_for
from tests.test_contract import build

NEW = ["bluesky", "mastodon", "threads"]


@pytest.mark.parametrize("platform", NEW)
async def test_verify_ok_names_the_account(platform: str) -> None:
    async with harness_for(platform) as harness:
        adapter = build(harness)
        try:
            [check] = await adapter.verify()
        finally:
            await adapter.aclose()
    assert check.status is SetupStatus.OK, check
    assert check.name == adapter.name
    assert {"bluesky": "@contract.bsky.social", "mastodon": "@newsroom", "threads": "@newsroom"}[
        platform
    ] in check.detail
    assert harness.published() == [], "a setup check never posts"


@pytest.mark.parametrize("platform", NEW)
async def test_verify_fails_on_refused_credentials_without_the_secret(platform: str) -> None:
    async with harness_for(platform) as harness:
        adapter = build(harness)
        await harness.arm(Fault.AUTH)
        try:
            [check] = await adapter.verify()
        finally:
            await adapter.aclose()
    assert check.status is SetupStatus.FAILED, check
    assert "\n" not in check.detail
    for secret in harness.env().values():
        assert secret not in check.detail


async def test_verify_reports_the_instances_limit() -> None:
    async with harness_for("mastodon") as harness:
        harness.state.max_characters = 321
        adapter = build(harness)
        try:
            [check] = await adapter.verify()
        finally:
            await adapter.aclose()
    assert "321 characters" in check.detail, check


async def test_threads_verify_reports_the_publishing_limit() -> None:
    async with harness_for("threads") as harness:
        adapter = build(harness)
        try:
            [check] = await adapter.verify()
        finally:
            await adapter.aclose()
    assert harness.state.quota_reads == 1
    assert "0 of 250 posts used" in check.detail, check


async def test_mastodon_first_post_uses_the_instances_limit_after_warm_up() -> None:
    """The service prepares adapters at start: the very first render is laid out for the
    instance's own (smaller) limit, so the first post is not refused as too long."""
    article = Article(
        url="https://news.example.com/en/a/1",
        title="A headline long enough to matter " * 4,
        lead="A lead that would fill a default Mastodon status to the brim. " * 12,
        source="s",
        language="en",
    )
    async with harness_for("mastodon") as harness:
        harness.state.max_characters = 200
        adapter = build(harness)
        try:
            assert adapter.measure(adapter.render(article)).used > 200  # defaults: 500
            await adapter.warm_up()
            post = adapter.render(article)
            length = adapter.measure(post)
            assert length.limit == 200 and length.fits, length
            sent = await adapter.send(post)
        finally:
            await adapter.aclose()
    assert [p.remote_id for p in harness.published()] == [sent.remote_id]


async def test_the_service_warms_up_its_adapters_at_start(tmp_path: Path) -> None:
    """Service.start() is what calls warm_up(): a Mastodon target knows its instance's limit
    before the first article is planned."""
    async with harness_for("mastodon") as harness:
        harness.state.max_characters = 321
        target = {**harness.target(), "name": "masto"}
        raw = {
            "database": f"sqlite:///{tmp_path}/state.db",
            "http": {"enabled": False},
            "sources": [{"name": "s", "url": "http://127.0.0.1:9/feed.xml"}],
            "targets": [target],
        }
        service = Service(validate(raw, environ=harness.env()))
        try:
            post = RenderedPost(
                target="masto", platform="mastodon", article_url="https://a.example/1", text="x"
            )
            assert service.adapters["masto"].measure(post).limit == 500  # Mastodon's default
            await service.start()
            assert service.adapters["masto"].measure(post).limit == 321  # the instance's own
        finally:
            await service.close()
