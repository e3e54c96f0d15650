"""Follow-ups reach the stand-in: edits after a headline change, takedowns deleted or flagged."""

from __future__ import annotations

from dataclasses import replace

from bot.demo.site import make_sample
from bot.service import Service
from bot.store import DeliveryStatus
from tests.test_end_to_end import World, run_once
from tests.test_end_to_end import world as world


async def test_headline_change_edits_the_sent_post(world: World) -> None:
    await run_once(world)
    await world.site.publish(make_sample("typo", "Parliment passes budjet", lead="Old lead."))
    await run_once(world)
    (post,) = world.posts()
    assert post["caption"].startswith("Parliment passes budjet")
    world.site.update("typo", title="Parliament passes budget", lead="Corrected lead.")
    await run_once(world)
    (post,) = world.posts()  # the same message, edited; nothing new posted
    assert post["edited"] is True
    assert post["caption"].startswith("Parliament passes budget\n\nCorrected lead.")
    assert len(world.tg.messages) == 1


async def test_follow_up_edit_without_the_link_is_refused(world: World) -> None:
    await run_once(world)
    article = await world.site.publish(make_sample("typo2", "Parliment passes budjet"))
    await run_once(world)
    (before,) = world.posts()
    service = Service(world.config())
    await service.start()
    try:
        # A template that drops the link (check-config refuses it; here it slipped through).
        service.adapters["tg-en"].settings.template = "{{ title }}"
        stored = await service.store.find_article(
            [f"url:{world.site_url.replace('http:', 'https:')}{article.path}"]
        )
        assert stored is not None
        fixed = replace(stored.article, title="Parliament passes budget")
        edits = await service.followups.article_changed(stored.id, stored.article, fixed)
        events = await service.store.recent_events(20)
    finally:
        await service.close()
    assert edits == 0
    (after,) = world.posts()
    assert after["edited"] is False and after["caption"] == before["caption"]
    refused = [e for e in events if e["kind"] == "edit-refused"]
    assert len(refused) == 1 and "does not carry the article URL" in refused[0]["message"]


async def test_takedown_flags_by_default_and_deletes_by_rule(world: World) -> None:
    rules = {
        "rules": [
            {
                "name": "delete-ru",
                "match": {"languages": ["ru"]},
                "targets": ["tg-ru"],
                "on_takedown": "delete",
            },
            {"name": "en", "match": {"languages": ["en"]}, "targets": ["tg-en"]},
        ]
    }
    await run_once(world, **rules)
    await world.site.publish(make_sample("gone-en", "English story"))
    await world.site.publish(make_sample("gone-ru", "Русская история", lang="ru"))
    await run_once(world, **rules)
    assert len(world.posts("@chan_en")) == 1 and len(world.posts("@chan_ru")) == 1
    world.site.retract("gone-en")
    world.site.retract("gone-ru")
    service = Service(world.config(**rules))
    await service.start()
    try:
        assert await service.followups.recheck() == 2
        events = await service.store.recent_events(20)
    finally:
        await service.close()
    assert world.posts("@chan_ru") == []  # deleted
    assert len(world.posts("@chan_en")) == 1  # flagged for an editor instead
    kinds = {e["kind"] for e in events}
    assert {"takedown", "deleted"} <= kinds


async def test_retracted_article_is_never_posted(world: World) -> None:
    await run_once(world)
    article = await world.site.publish(make_sample("pulled", "Pulled before posting"))
    service = Service(world.config(), dispatch_on_new=False)  # keep it queued
    await service.start()
    try:
        await service.poll_all()  # queued, not yet dispatched
        stored = await service.store.find_article(
            [f"url:{world.site_url.replace('http:', 'https:')}{article.path}"]
        )
        assert stored is not None
        await service.followups.retract(stored.id, "HTTP 410")
        report = await service.dispatch()
        rows = await service.store.deliveries_for_article(stored.id)
    finally:
        await service.close()
    assert report.sent == 0 and world.posts() == []
    assert [r.status for r in rows] == [DeliveryStatus.SKIPPED]
