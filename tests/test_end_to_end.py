"""The whole path on loopback: sample site -> newsbot -> Telegram stand-in.

Real HTTP servers, a real SQLite state database, real python-telegram-bot calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.config import Config, validate
from bot.demo.site import SampleSite, create_app, make_sample
from bot.httpserver import LoopbackServer
from bot.service import Service
from bot.store import DeliveryStatus
from standins import telegram as tg

TOKEN = "424242:e2e-SECRET-token-value"
PUSH_TOKEN = "push-SECRET-value-123"


@dataclass
class World:
    site: SampleSite
    site_url: str
    tg: tg.State
    tg_url: str
    tmp: Path

    def config(self, **overrides: Any) -> Config:
        raw: dict[str, Any] = {
            "outlet": {"name": "Sample Times", "url": self.site_url},
            "database": f"sqlite:///{self.tmp}/state.db",
            "sources": [
                {
                    "name": lang,
                    "url": f"{self.site_url}/{lang}/rss.xml",
                    "interval": 1,
                    "language": lang,
                }
                for lang in ("en", "ru", "az")
            ],
            "targets": [
                {
                    "name": f"tg-{lang}",
                    "platform": "telegram",
                    "api_base": self.tg_url,
                    "token": {"env": "TG_TOKEN"},
                    "chat_id": f"@chan_{lang}",
                    "languages": [lang],
                    "min_interval": 0,
                    "timeout": 3,
                }
                for lang in ("en", "ru", "az")
            ],
            "dispatch": {"interval": 0.2, "backoff_base": 0.2, "lease": 5},
            "http": {"port": 0, "push_token": {"env": "PUSH_TOKEN"}},
        }
        raw.update(overrides)
        return validate(raw, environ={"TG_TOKEN": TOKEN, "PUSH_TOKEN": PUSH_TOKEN})

    def posts(self, chat: str = "@chan_en") -> list[dict[str, Any]]:
        return self.tg.in_chat(chat)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    site = SampleSite()
    state = tg.State()
    state.valid_tokens.add(TOKEN)
    for lang in ("en", "ru", "az"):
        state.add_channel(f"@chan_{lang}")
    site_server = LoopbackServer(create_app(site))
    tg_server = LoopbackServer(tg.create_app(state))
    await site_server.start()
    await tg_server.start()
    site.base_url = site_server.url
    try:
        yield World(site, site_server.url, state, tg_server.url, tmp_path)
    finally:
        await site_server.stop()
        await tg_server.stop()


async def run_once(world: World, **overrides: Any) -> Service:
    service = Service(world.config(**overrides))
    try:
        await service.run_once()
    finally:
        await service.close()
    return service


async def wait_for(predicate: Any, timeout: float, explain: Any = None) -> float:
    """Seconds until predicate() is true; fails the test after `timeout`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            detail = f": {explain()}" if explain else ""
            raise AssertionError(f"condition not met within {timeout}s{detail}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_first_run_records_backlog_then_posts_new_article_once(world: World) -> None:
    await run_once(world)
    assert world.tg.messages == []  # the backlog is recorded, not posted
    article = await world.site.publish_next()
    assert article is not None
    await run_once(world)
    posts = world.posts(f"@chan_{article.sample.lang}")
    assert len(posts) == 1
    post = posts[0]
    assert post["caption"].startswith(article.sample.title)
    links = [e for e in post["caption_entities"] if e["type"] == "text_link"]
    assert [e["url"] for e in links] == [world.site_url + article.path]
    assert post["photo_url"] == f"{world.site_url}/images/{article.sample.slug}.jpg"
    # Restart: a new process with the same database posts nothing again.
    await run_once(world)
    await run_once(world)
    assert len(world.tg.messages) == 1


async def test_second_identical_poll_costs_a_304(world: World) -> None:
    await run_once(world)
    before = world.site.not_modified["/en/rss.xml"]
    await run_once(world)
    assert world.site.not_modified["/en/rss.xml"] == before + 1


async def test_daemon_posts_within_one_poll_interval_and_push_within_a_second(
    world: World,
) -> None:
    service = Service(world.config())
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await wait_for(lambda: service.web_server is not None, 5)
        await wait_for(lambda: world.site.hits["/en/rss.xml"] >= 1, 5)
        await asyncio.sleep(0.5)  # let the first poll record the backlog
        assert world.tg.messages == []

        polled = await world.site.publish(make_sample("polled", "Found by polling"))
        elapsed = await wait_for(lambda: len(world.posts()) == 1, 3)
        assert elapsed <= 1.0 + 1.0  # one poll interval (1 s) plus delivery
        assert world.posts()[0]["caption"].startswith(polled.sample.title)

        # Push: the sources now poll rarely, so only the push can explain a fast post.
        assert service.polls is not None
        for source in service.config.sources:
            service.polls.set(replace(source, interval=3600), time.monotonic() + 3600)
        pushed = await world.site.publish(make_sample("pushed", "Pushed by the CMS"))
        async with httpx.AsyncClient() as client:
            started = time.monotonic()
            answer = await client.post(
                f"{service.web_server.url}/push",  # type: ignore[union-attr]
                json={"url": world.site_url + pushed.path},
                headers={"Authorization": f"Bearer {PUSH_TOKEN}"},
            )
            assert answer.status_code == 202
            await wait_for(lambda: len(world.posts()) == 2, 2)
            assert time.monotonic() - started < 1.0
            refused = await client.post(
                f"{service.web_server.url}/push",  # type: ignore[union-attr]
                json={"url": world.site_url + pushed.path},
            )
            assert refused.status_code == 401
            ready = await client.get(f"{service.web_server.url}/health/ready")  # type: ignore[union-attr]
            assert ready.json() == {
                "status": "ready",
                "checks": {"database": True, "scheduler": True},
            }
        assert world.posts()[1]["caption"].startswith("Pushed by the CMS")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert task.exception() is None


async def test_hostile_article_gives_a_valid_post_within_limits(world: World) -> None:
    await run_once(world)
    hostile = make_sample(
        "hostile",
        '<script>alert("x")</script> & <b>stray 😀 ə ğ ş Привет',
        lead="Lead with <i>tags</b> & entities &amp; emoji 🇦🇿 " * 40,
        paragraphs=("Body sentence that goes on and on. " * 600,),
    )
    await world.site.publish(hostile)
    await run_once(world)
    (post,) = world.posts()
    # Paired tags are markup, stripped as in the lead (issue #12); a stray "<b>" stays text.
    assert post["caption"].startswith('alert("x") & <b>stray 😀 ə ğ ş Привет')
    assert tg.visible_length(post["caption"]) <= tg.CAPTION_LIMIT
    assert any(e["type"] == "text_link" for e in post["caption_entities"])


async def test_a_broken_feed_or_site_error_does_not_stop_the_others(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    await run_once(world)
    world.site.broken_feeds.add("/ru/rss.xml")
    world.site.failing_paths["/az/rss.xml"] = 500
    article = await world.site.publish(make_sample("still-works", "Still works"))
    with caplog.at_level(logging.ERROR):
        await run_once(world)
    assert "malformed feed" in caplog.text and "/ru/rss.xml" in caplog.text
    assert "HTTP 500" in caplog.text and "/az/rss.xml" in caplog.text
    assert [p["caption"].split("\n")[0] for p in world.posts()] == [article.sample.title]


async def test_flood_control_waits_and_never_drops(world: World) -> None:
    await run_once(world)
    world.tg.inject(tg.Fault(retry_after=1))
    await world.site.publish(make_sample("flood", "Flood controlled"))
    service = Service(world.config())
    try:
        _, report = await service.run_once()
        assert report.retried == 1 and report.sent == 0
        assert world.posts() == []
        await asyncio.sleep(1.1)
        report = await service.dispatch()
        assert report.sent == 1
    finally:
        await service.close()
    assert len(world.posts()) == 1


async def test_answer_lost_after_sending_is_flagged_not_resent(world: World) -> None:
    await run_once(world)
    world.tg.inject(tg.Fault(hang=4.0, status=200))  # the answer never comes in time
    await world.site.publish(make_sample("lost", "Answer lost"))
    await run_once(world)
    await run_once(world)
    service = Service(world.config())
    await service.start()
    try:
        rows = await service.store.recent_deliveries(10)
    finally:
        await service.close()
    assert [r.status for r in rows] == [DeliveryStatus.UNCERTAIN]
    assert "may have posted" in (rows[0].last_error or "")
    assert world.posts() == []  # the stand-in hung, and nothing was sent twice
    assert len([r for r in world.tg.requests if r["method"] == "sendPhoto"]) == 1


async def test_revoked_token_pauses_the_target(world: World) -> None:
    await run_once(world)
    world.tg.valid_tokens.clear()
    await world.site.publish(make_sample("paused", "Paused target"))
    service = Service(world.config())
    try:
        _, report = await service.run_once()
        assert report.paused == ["tg-en"]
        assert "tg-en" in await service.store.paused_targets()
        world.tg.valid_tokens.add(TOKEN)
        await service.store.set_paused("tg-en", False)
        report = await service.dispatch()
        assert report.sent == 1
        (row,) = await service.store.recent_deliveries(5, [DeliveryStatus.SENT])
        assert row.remote_url and row.remote_url.startswith("https://t.me/chan_en/")
    finally:
        await service.close()


async def test_secrets_never_reach_logs_or_database(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await run_once(world)
        world.tg.inject(tg.Fault(status=500, description="Internal Server Error"))
        await world.site.publish(make_sample("s1", "Secret check"))
        await run_once(world)
        world.tg.valid_tokens.clear()
        await world.site.publish(make_sample("s2", "Secret check two"))
        await run_once(world)
    written = caplog.text + "".join(
        p.read_bytes().decode("utf-8", "replace") for p in world.tmp.glob("state.db*")
    )
    assert written  # something was logged and stored
    assert TOKEN not in written and PUSH_TOKEN not in written
    assert TOKEN.split(":")[1] not in written


async def test_news_sitemap_source(world: World) -> None:
    sitemap = {"name": "map", "type": "sitemap", "url": f"{world.site_url}/sitemap-news.xml"}
    await run_once(world, sources=[sitemap])
    assert world.tg.messages == []
    article = await world.site.publish(make_sample("from-map", "Seen in the sitemap", lang="ru"))
    await run_once(world, sources=[sitemap])
    (post,) = world.posts("@chan_ru")
    assert post["caption"].startswith("Seen in the sitemap")
    assert world.site_url + article.path in [e.get("url") for e in post["caption_entities"]]


async def test_sigterm_stops_the_daemon_cleanly(world: World) -> None:
    config = world.tmp / "daemon.yaml"
    import yaml

    config.write_text(
        yaml.safe_dump(
            {
                "database": f"sqlite:///{world.tmp}/daemon.db",
                "sources": [{"name": "en", "url": f"{world.site_url}/en/rss.xml"}],
                "targets": [
                    {
                        "name": "t",
                        "platform": "telegram",
                        "api_base": world.tg_url,
                        "token": {"env": "TG_TOKEN"},
                        "chat_id": "@chan_en",
                    }
                ],
                "http": {"port": 0},
            }
        )
    )
    env = {**os.environ, "TG_TOKEN": TOKEN}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "-c",
        str(config),
        "run",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    started = b""
    while b"newsbot running" not in started:
        line = await asyncio.wait_for(process.stderr.readline(), 20)
        assert line, started.decode()
        started += line
    await wait_for(lambda: world.site.hits["/en/rss.xml"] >= 1, 10)
    process.send_signal(signal.SIGTERM)
    rest = await asyncio.wait_for(process.stderr.read(), 20)
    assert await process.wait() == 0
    assert b"stopping" in rest
    assert TOKEN.encode() not in started + rest


async def test_first_run_can_post_the_newest_n(world: World) -> None:
    await run_once(world, first_run={"post_newest": 1})
    newest_en = world.site.listed("en")[0]
    (post,) = world.posts("@chan_en")
    assert post["caption"].startswith(newest_en.sample.title)
    assert len(world.posts("@chan_ru")) == 1 and len(world.posts("@chan_az")) == 1
    await run_once(world, first_run={"post_newest": 1})
    assert len(world.tg.messages) == 3
