"""Exactly once on Bluesky and Mastodon (issue 14 point 1): everything but the one publishing
request happens in prepare() and is saved, so a kill (a lapsed lease) after prepare() and
before publish() resumes from the saved progress (no second upload) and posts once."""

from __future__ import annotations

import asyncio
import time

from adapters.bluesky import BlueskyAdapter
from adapters.mastodon import MastodonAdapter
from bot.config import DispatchConfig
from bot.dispatcher import Dispatcher
from bot.models import Article
from bot.store import DeliveryStatus, Store
from tests.test_bluesky import PUBLISHED
from tests.test_bluesky import World as BskyWorld
from tests.test_bluesky import make_adapter as make_bsky
from tests.test_bluesky import world as world  # the Bluesky stand-in fixture
from tests.test_dispatcher import queue_post
from tests.test_exactly_once_x_threads import dead_sender, final
from tests.test_mastodon import World as MastoWorld
from tests.test_mastodon import make_adapter as make_masto
from tests.test_mastodon import world as masto_world_fixture

S = DeliveryStatus
URL = "https://news.example.com/en/news/16"
UPLOAD_BLOB = "com.atproto.repo.uploadBlob"
CREATE_RECORD = "com.atproto.repo.createRecord"
mworld = masto_world_fixture  # the Mastodon stand-in fixture, under a name of its own


def dispatcher(store: Store, adapter: BlueskyAdapter | MastodonAdapter) -> Dispatcher:
    config = DispatchConfig(backoff_base=0.01, backoff_max=0.01, max_attempts=5, lease=30)
    return Dispatcher(store, {adapter.name: adapter}, config, claimer="test")


async def settle(store: Store, adapter: BlueskyAdapter | MastodonAdapter, delivery_id: int) -> None:
    """Dispatcher passes until the row is no longer waiting (a retry's backoff is 10 ms)."""
    for _ in range(5):
        await dispatcher(store, adapter).run_once()
        if (await final(store, delivery_id)).status not in (S.PENDING, S.SENDING):
            return
        await asyncio.sleep(0.05)


# Mastodon ----------------------------------------------------------------------------------


async def masto_queued(store: Store, adapter: MastodonAdapter, images: str) -> int:
    article = Article(url=URL, title="Harbour plan passes", image_url=f"{images}/photo.jpg")
    return await queue_post(store, article, adapter.render(article))


async def test_mastodon_killed_after_prepare_reuses_the_uploaded_media_and_posts_once(
    store: Store, mworld: MastoWorld
) -> None:
    masto = make_masto(mworld.url)
    delivery_id = await masto_queued(store, masto, mworld.images)
    claimed, ctx = await dead_sender(store, "masto")
    await masto.prepare(claimed.post, ctx)  # uploaded and processed, then killed
    saved = (await final(store, delivery_id)).progress["media_id"]
    assert list(mworld.state.media) == [saved] and mworld.state.status_posts == 0
    await asyncio.sleep(0.02)
    report = await dispatcher(store, masto).run_once()
    row = await final(store, delivery_id)
    assert row.status == S.SENT and report.uncertain == 0
    assert list(mworld.state.media) == [saved]  # no second upload
    (status,) = mworld.state.live_statuses()
    assert status["id"] == row.remote_id and status["media_ids"] == [saved]
    assert mworld.state.status_posts == 1
    await masto.aclose()


async def test_mastodon_resume_uploads_again_when_the_saved_media_is_gone(
    store: Store, mworld: MastoWorld
) -> None:
    masto = make_masto(mworld.url)
    delivery_id = await masto_queued(store, masto, mworld.images)
    claimed, ctx = await dead_sender(store, "masto")
    await masto.prepare(claimed.post, ctx)
    stale = (await final(store, delivery_id)).progress["media_id"]
    del mworld.state.media[stale]  # the instance removed the unattached upload meanwhile
    await asyncio.sleep(0.02)
    await dispatcher(store, masto).run_once()
    row = await final(store, delivery_id)
    (status,) = mworld.state.live_statuses()
    assert row.status == S.SENT and status["id"] == row.remote_id
    (fresh,) = status["media_ids"]
    assert fresh != stale and row.progress["media_id"] == fresh
    await masto.aclose()


async def test_mastodon_killed_after_publishing_is_resent_with_its_key_and_posts_once(
    store: Store, mworld: MastoWorld
) -> None:
    masto = make_masto(mworld.url)
    delivery_id = await masto_queued(store, masto, mworld.images)
    claimed, ctx = await dead_sender(store, "masto")
    await masto.prepare(claimed.post, ctx)
    await store.begin_publish(claimed.id, time.time() + 0.01)
    first = await masto.publish(claimed.post, ctx)  # posted, then killed before recording it
    await asyncio.sleep(0.02)
    report = await dispatcher(store, masto).run_once()
    row = await final(store, delivery_id)
    # Idempotent: the lapsed `sending` row is resent with its key, not flagged for editors.
    assert row.status == S.SENT and row.remote_id == first.remote_id and report.uncertain == 0
    assert len(mworld.state.live_statuses()) == 1 and len(mworld.state.media) == 1
    await masto.aclose()


# Bluesky -----------------------------------------------------------------------------------


async def bsky_queued(store: Store, adapter: BlueskyAdapter, images: str) -> int:
    article = Article(
        url=URL,
        title="Harbour plan passes",
        lead="The vote was close.",
        image_url=f"{images}/big.jpg",
        published=PUBLISHED,
    )
    return await queue_post(store, article, adapter.render(article))


async def test_bluesky_killed_after_prepare_reuses_the_blob_and_posts_once(
    store: Store, world: BskyWorld
) -> None:
    bsky = make_bsky(world.url)
    delivery_id = await bsky_queued(store, bsky, world.images)
    claimed, ctx = await dead_sender(store, "bsky-main")
    await bsky.prepare(claimed.post, ctx)  # session, read-back, blob uploaded; then killed
    thumb = (await final(store, delivery_id)).progress["thumb"]
    assert world.state.calls.count(UPLOAD_BLOB) == 1 and CREATE_RECORD not in world.state.calls
    await asyncio.sleep(0.02)
    report = await dispatcher(store, bsky).run_once()
    row = await final(store, delivery_id)
    assert row.status == S.SENT and report.uncertain == 0
    assert world.state.calls.count(UPLOAD_BLOB) == 1  # the saved blob ref was reused
    (post,) = world.state.live_posts()
    assert post["uri"] == row.remote_id
    assert post["record"]["embed"]["external"]["thumb"] == thumb
    assert world.state.calls.count(CREATE_RECORD) == 1
    await bsky.aclose()


async def test_bluesky_resume_uploads_again_when_the_pds_dropped_the_blob(
    store: Store, world: BskyWorld
) -> None:
    bsky = make_bsky(world.url)
    delivery_id = await bsky_queued(store, bsky, world.images)
    claimed, ctx = await dead_sender(store, "bsky-main")
    await bsky.prepare(claimed.post, ctx)
    world.state.blobs.clear()  # an unreferenced blob the PDS removed meanwhile
    await asyncio.sleep(0.02)
    await settle(store, bsky, delivery_id)
    row = await final(store, delivery_id)
    (post,) = world.state.live_posts()
    assert row.status == S.SENT and post["uri"] == row.remote_id
    assert world.state.calls.count(UPLOAD_BLOB) == 2  # refused as BlobNotFound, uploaded again
    assert post["record"]["embed"]["external"]["thumb"] == row.progress["thumb"]
    assert world.state.calls.count(CREATE_RECORD) == 2  # the refused one posted nothing
    await bsky.aclose()


async def test_bluesky_killed_after_publishing_finds_its_record_without_writing_again(
    store: Store, world: BskyWorld
) -> None:
    bsky = make_bsky(world.url)
    delivery_id = await bsky_queued(store, bsky, world.images)
    claimed, ctx = await dead_sender(store, "bsky-main")
    await bsky.prepare(claimed.post, ctx)
    await store.begin_publish(claimed.id, time.time() + 0.01)
    first = await bsky.publish(claimed.post, ctx)  # posted, then killed before recording it
    await asyncio.sleep(0.02)
    report = await dispatcher(store, bsky).run_once()
    row = await final(store, delivery_id)
    assert row.status == S.SENT and row.remote_id == first.remote_id and report.uncertain == 0
    assert len(world.state.live_posts()) == 1
    # The restart's prepare() read the record back under the same rkey: no second write.
    assert world.state.calls.count(CREATE_RECORD) == 1
    assert world.state.calls.count(UPLOAD_BLOB) == 1
    assert row.progress["found_uri"] == first.remote_id
    await bsky.aclose()
