"""Monitoring over real HTTP: /metrics after real cycles (sample site -> Telegram stand-in),
/health/ready when the database or the scheduler is gone, and structured JSON log lines."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.demo.site import make_sample
from bot.logs import JsonFormatter
from bot.service import Service
from standins import telegram as tg
from tests.conftest import PG_HOST, PG_PORT
from tests.test_end_to_end import TOKEN, World, wait_for
from tests.test_end_to_end import world as world

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

QUIET = {"interval": 3600}  # polls and dispatches only when the test says so


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(service: Service) -> Samples:
    assert service.web_server is not None
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{service.web_server.url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


async def ready(service: Service) -> httpx.Response:
    assert service.web_server is not None
    async with httpx.AsyncClient() as client:
        return await client.get(f"{service.web_server.url}/health/ready")


@contextlib.asynccontextmanager
async def daemon(world: World, **overrides: Any) -> AsyncIterator[Service]:
    """A running Service whose sources were polled once (the backlog recorded)."""
    sources = [
        {"name": lang, "url": f"{world.site_url}/{lang}/rss.xml", "language": lang, **QUIET}
        for lang in ("en", "ru", "az")
    ]
    dispatch = {"interval": 3600, "backoff_base": 0.2, "lease": 5}
    config = world.config(sources=sources, dispatch=dispatch, **overrides)
    service = Service(config, dispatch_on_new=False)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await wait_for(lambda: service.web_server is not None, 5)

        async def polled() -> bool:
            states = [await service.store.source_state(lang) for lang in ("en", "ru", "az")]
            return all(s.initialized for s in states)

        for _ in range(250):
            if await polled():
                break
            await asyncio.sleep(0.02)
        assert await polled()
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert task.exception() is None


async def poll_en(service: Service) -> None:
    (source,) = [s for s in service.config.sources if s.name == "en"]
    report = await service.pipeline.poll(source)
    assert report.outcome == "ok", report


async def test_metrics_count_a_cycle_with_failures(world: World) -> None:
    backlog = len(world.site.listed("en"))
    async with daemon(world) as service:
        samples = await scrape(service)
        assert value(samples, "newsbot_up") == 1
        seen = "newsbot_articles_seen_total"
        assert value(samples, seen, source="en", outcome="recorded") == backlog
        assert value(samples, "newsbot_queue_depth", target="tg-en") == 0

        # One article waits in the outbox, then goes.
        await world.site.publish(make_sample("m1", "Metrics one"))
        await poll_en(service)
        samples = await scrape(service)
        assert value(samples, seen, source="en", outcome="new") == 1
        assert value(samples, seen, source="en", outcome="known") == backlog
        assert value(samples, "newsbot_queue_depth", target="tg-en") == 1
        assert value(samples, "newsbot_queue_due", target="tg-en") == 1
        assert value(samples, "newsbot_outbox_deliveries", target="tg-en", status="pending") == 1
        report = await service.dispatch()
        assert report.sent == 1
        samples = await scrape(service)
        assert value(samples, "newsbot_queue_depth", target="tg-en") == 0
        assert value(samples, "newsbot_deliveries_total", target="tg-en", status="sent") == 1

        # A server error: retried after backoff, then sent.
        world.tg.inject(tg.Fault(status=500))
        await world.site.publish(make_sample("m2", "Metrics two"))
        await poll_en(service)
        assert (await service.dispatch()).retried == 1
        await asyncio.sleep(0.5)  # backoff_base is 0.2 s
        assert (await service.dispatch()).sent == 1

        # A rejected post: failed for good.
        world.tg.inject(tg.Fault(status=400, description="Bad Request: entities are invalid"))
        await world.site.publish(make_sample("m3", "Metrics three"))
        await poll_en(service)
        assert (await service.dispatch()).failed == 1

        # A revoked token pauses the target; its post waits in the queue.
        world.tg.valid_tokens.clear()
        await world.site.publish(make_sample("m4", "Metrics four"))
        await poll_en(service)
        assert (await service.dispatch()).paused == ["tg-en"]
        samples = await scrape(service)
        assert value(samples, "newsbot_target_paused", target="tg-en") == 1
        assert value(samples, "newsbot_target_paused", target="tg-ru") == 0
        assert value(samples, "newsbot_queue_depth", target="tg-en") == 1

        # Resumed with a good token: the queue drains to 0.
        world.tg.valid_tokens.add(TOKEN)
        await service.store.set_paused("tg-en", False)
        assert (await service.dispatch()).sent == 1
        samples = await scrape(service)
        assert value(samples, "newsbot_queue_depth", target="tg-en") == 0
        assert value(samples, "newsbot_target_paused", target="tg-en") == 0

        # No answer in time (the adapter's timeout is 3 s): uncertain, never resent.
        world.tg.inject(tg.Fault(status=200, hang=4.0))
        await world.site.publish(make_sample("m5", "Metrics five"))
        await poll_en(service)
        assert (await service.dispatch()).uncertain == 1

        samples = await scrape(service)
        sent = len(world.posts("@chan_en"))
        assert sent == 3
        total = "newsbot_deliveries_total"
        assert value(samples, total, target="tg-en", status="sent") == sent
        assert value(samples, total, target="tg-en", status="retry") == 1
        assert value(samples, total, target="tg-en", status="failed") == 1
        assert value(samples, total, target="tg-en", status="uncertain") == 1
        assert value(samples, total, target="tg-en", status="paused") == 1
        assert value(samples, "newsbot_delivery_retries_total", target="tg-en") == 1
        assert value(samples, total, target="tg-ru", status="sent") == 0
        latency = "newsbot_publication_to_post_seconds"
        assert value(samples, f"{latency}_count", target="tg-en") == sent
        assert value(samples, f"{latency}_sum", target="tg-en") > 0
        assert value(samples, f"{latency}_bucket", target="tg-en", le="+Inf") == sent
        assert value(samples, seen, source="en", outcome="new") == 5
        outbox = "newsbot_outbox_deliveries"
        assert value(samples, outbox, target="tg-en", status="sent") == sent
        assert value(samples, outbox, target="tg-en", status="failed") == 1
        assert value(samples, outbox, target="tg-en", status="uncertain") == 1
        assert value(samples, "newsbot_queue_depth", target="tg-en") == 0
        assert value(samples, "newsbot_source_failures", source="en") == 0
        assert value(samples, "newsbot_source_last_poll_timestamp_seconds", source="en") > 0


async def test_a_failing_source_shows_in_the_gauges(world: World) -> None:
    async with daemon(world) as service:
        world.site.failing_paths["/en/rss.xml"] = 500
        (source,) = [s for s in service.config.sources if s.name == "en"]
        for _ in range(2):
            assert (await service.pipeline.poll(source)).outcome == "error"
        samples = await scrape(service)
        assert value(samples, "newsbot_source_failures", source="en") == 2
        assert value(samples, "newsbot_source_failures", source="ru") == 0


class TcpProxy:
    """A loopback TCP forwarder to the database; closing it is the database going away."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


async def test_ready_is_503_while_the_database_is_unreachable(world: World, pg_url: str) -> None:
    proxy = TcpProxy(PG_HOST, PG_PORT)
    await proxy.start()
    proxied = pg_url.replace(f"@{PG_HOST}:{PG_PORT}/", f"@127.0.0.1:{proxy.port}/")
    assert proxied != pg_url
    async with daemon(world, database=proxied) as service:
        answer = await ready(service)
        assert answer.status_code == 200
        assert answer.json()["checks"] == {"database": True, "scheduler": True}

        await proxy.stop()
        answer = await ready(service)
        assert answer.status_code == 503
        assert answer.json() == {
            "status": "not ready",
            "checks": {"database": False, "scheduler": True},
        }
        samples = await scrape(service)
        assert value(samples, "newsbot_up") == 0
        assert not any(name == "newsbot_queue_depth" for name, _ in samples)
        live = await httpx.AsyncClient().get(f"{service.web_server.url}/health/live")  # type: ignore[union-attr]
        assert live.status_code == 200  # alive: the process itself is fine

        await proxy.start()  # the database is back
        answer = await ready(service)
        assert answer.status_code == 200, answer.text
        assert value(await scrape(service), "newsbot_up") == 1


async def test_ready_is_503_while_the_scheduler_is_not_running(world: World) -> None:
    async with daemon(world) as service:
        assert (await ready(service)).status_code == 200
        assert service.scheduler is not None
        service.scheduler.shutdown(wait=False)
        answer = await ready(service)
        assert answer.status_code == 503
        assert answer.json()["checks"] == {"database": True, "scheduler": False}
        service.scheduler.start(paused=True)  # so the daemon stops as usual
        assert (await ready(service)).status_code == 200


async def test_json_log_lines_are_objects_with_delivery_and_source_fields(
    world: World,
) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    try:
        async with daemon(world) as service:
            article = await world.site.publish(make_sample("j1", "JSON lines"))
            await poll_en(service)
            assert (await service.dispatch()).sent == 1
            world.site.failing_paths["/ru/rss.xml"] = 500
            (ru,) = [s for s in service.config.sources if s.name == "ru"]
            await service.pipeline.poll(ru)
            logging.getLogger("newsbot.test").warning(
                "extra fields are scrubbed too", extra={"detail": f"token {TOKEN}"}
            )
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]  # every line is JSON
    assert lines
    posted = [r for r in lines if r["message"].startswith("target tg-en: posted")]
    assert len(posted) == 1
    assert posted[0]["target"] == "tg-en"
    assert posted[0]["article_url"] == world.site_url + article.path
    assert isinstance(posted[0]["delivery_id"], int)
    (failed_poll,) = [r for r in lines if r["level"] == "error" and r.get("source") == "ru"]
    assert "HTTP 500" in failed_poll["message"]
    (scrubbed,) = [r for r in lines if r["message"] == "extra fields are scrubbed too"]
    assert scrubbed["detail"] == "token [REDACTED]"
    assert TOKEN not in out.getvalue()


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_formatters_scrub_exception_text(fmt: str) -> None:
    from bot.logs import TextFormatter
    from bot.secrets import Secret

    secret = Secret("formatter-SECRET-0042", "test")
    try:
        raise RuntimeError(f"call failed with {secret.get()}")
    except RuntimeError:
        exc_info = sys.exc_info()
    args = (secret.get(),)
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "boom %s", args, exc_info)
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    line = formatter.format(record)
    assert "RuntimeError" in line and "[REDACTED]" in line
    assert secret.get() not in line


async def test_metrics_ask_for_the_bearer_token_when_one_is_configured(world: World) -> None:
    from tests.test_end_to_end import PUSH_TOKEN

    http = {"port": 0, "push_token": {"env": "PUSH_TOKEN"}, "metrics_token": {"env": "PUSH_TOKEN"}}
    async with daemon(world, http=http) as service:
        assert service.web_server is not None
        url = f"{service.web_server.url}/metrics"
        async with httpx.AsyncClient() as client:
            anonymous = await client.get(url)
            wrong = await client.get(url, headers={"Authorization": "Bearer nope"})
            right = await client.get(url, headers={"Authorization": f"Bearer {PUSH_TOKEN}"})
            health = await client.get(f"{service.web_server.url}/health/live")
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert right.status_code == 200 and "newsbot_up" in right.text
    assert PUSH_TOKEN not in anonymous.text + wrong.text
    assert health.status_code == 200  # health stays open for the orchestrator's probes
