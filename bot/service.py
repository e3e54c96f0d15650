"""Wires the parts into one asyncio process: APScheduler drives the polls and the dispatcher,
the bot's HTTP endpoint takes CMS pushes, SIGTERM/SIGINT stop it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from adapters import adapter_class
from bot.config import Config, SourceConfig
from bot.desk import Desk
from bot.dispatcher import Dispatcher, DispatchReport
from bot.fetch import make_client
from bot.followups import FollowUps
from bot.httpserver import LoopbackServer
from bot.logs import escape_log
from bot.metrics import Metrics
from bot.pipeline import Pipeline, PollReport
from bot.store import Store
from bot.web import create_app
from consoles import console_class
from consoles.base import Console

if TYPE_CHECKING:
    from adapters import Adapter  # the registry's name for adapters.base.Adapter
    from bot.targets import ImageFetcher

log = logging.getLogger("newsbot")


def build_adapters(config: Config, fetch_image: ImageFetcher | None = None) -> dict[str, Adapter]:
    """One adapter per target; `fetch_image` is the core's guarded image download."""
    adapters: dict[str, Adapter] = {}
    for target in config.targets:
        cls = adapter_class(target.platform)
        secrets = config.secrets.get(target.name, {})
        adapters[target.name] = cls(target, secrets, config.outlet, fetch_image=fetch_image)
    return adapters


class Service:
    """One newsbot process."""

    async def download_image(self, image_url: str, article_url: str, max_bytes: int) -> bytes:
        """Adapters' image downloads: the pipeline's capped client and SSRF guard."""
        return await self.pipeline.download_image(image_url, article_url, max_bytes)

    def __init__(
        self, config: Config, claimer: str | None = None, dispatch_on_new: bool = True
    ) -> None:
        self.config = config
        self.store = Store(config.file.database)
        self.metrics = Metrics(
            self.store, [t.name for t in config.targets], [s.name for s in config.sources]
        )
        self.client = make_client(config.file.fetch)
        self.adapters = build_adapters(config, fetch_image=self.download_image)
        self.followups = FollowUps(config, self.store, self.client, self.adapters, self.alert)
        self.pipeline = Pipeline(
            config,
            self.store,
            self.client,
            self.adapters,
            self.wake,
            on_changed=self.followups.article_changed,
            on_retracted=self.followups.retract,
            metrics=self.metrics,
            alert=self.alert,
        )
        self.dispatcher = Dispatcher(
            self.store,
            self.adapters,
            config.file.dispatch,
            claimer,
            alert=self.alert,
            tz=config.timezone,
            rules=config.rules,
            metrics=self.metrics,
        )
        self.alert_hooks: list[Callable[[str, str], Awaitable[None]]] = []
        self.desk = Desk(
            self.store,
            list(self.adapters),
            {name: a.hyperlinks for name, a in self.adapters.items()},
            set(getattr(config.editors, "allowed_user_ids", []) or []),
            self.post_url_now,
            self.preview_url,
            self.wake,
        )
        self.console: Console | None = None
        if config.editors is not None:
            console = console_class(config.editors.platform)
            self.console = console(config.editors, config.editor_secrets, self.desk)
            self.alert_hooks.append(self._alert_console)
        self.scheduler: AsyncIOScheduler | None = None
        self.is_leader = False
        self._console_stop: asyncio.Event | None = None
        self.web_server = None
        # New deliveries are dispatched at once; `run --once` turns this off and dispatches
        # after polling, and a caller may hold new posts in the outbox (tests, previews).
        self._auto_dispatch = dispatch_on_new
        self._background: set[asyncio.Task[object]] = set()

    async def alert(self, target: str, message: str) -> None:
        """Tell the editors (every registered hook: the editors' chat, ...)."""
        for hook in list(self.alert_hooks):
            await hook(target, message)

    async def _alert_console(self, target: str, message: str) -> None:
        if self.console is not None:
            await self.console.alert(f"{target}: {message}")

    async def start(self) -> None:
        await self.store.init()

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        for adapter in self.adapters.values():
            with contextlib.suppress(Exception):
                await adapter.aclose()
        await self.client.aclose()
        await self.store.close()

    # One-shot work ---------------------------------------------------------------------

    async def poll_all(self) -> list[PollReport]:
        sources = [s for s in self.config.sources if s.enabled]
        return list(await asyncio.gather(*(self.pipeline.poll(s) for s in sources)))

    async def dispatch(self, wait: bool = True) -> DispatchReport:
        """Deliver what is due. `wait`: also wait for targets another pass is draining."""
        return await self.dispatcher.run_once(wait=wait)

    def busy(self) -> bool:
        """Whether pushed URLs or a dispatch are still being worked on."""
        return self.dispatcher.busy() or any(not t.done() for t in self._background)

    def wake(self) -> None:
        """New deliveries are waiting: dispatch now rather than at the next tick."""
        if self._auto_dispatch:
            self._spawn(self.dispatch(wait=False))

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def run_once(self) -> tuple[list[PollReport], DispatchReport]:
        """Poll every source once and deliver everything that is due."""
        await self.start()
        self._auto_dispatch = False
        polls = await self.poll_all()
        report = await self.dispatch()
        return polls, report

    async def on_push(self, url: str, source: str | None) -> None:
        log.info("push: %s", escape_log(url))
        self._spawn(self.pipeline.ingest_url(url, source))

    async def post_url_now(self, url: str) -> str:
        """An editor's /post URL: ingest now, breaking the usual delays."""
        result = await self.pipeline.ingest_url(url)
        if result.kind == "new":
            return f"Queued for {len(result.deliveries)} target(s)."
        if result.kind == "failed":
            return f"Could not post: {result.error}"
        return "Already known: it was posted (or recorded) before. Use /retry ID to resend."

    async def preview_url(self, url: str) -> str:
        try:
            article, _ = await self.pipeline.load_article(url)
        except Exception as exc:
            return f"Could not load {url}: {exc}"
        blocks = [f"{article.title}\n{article.url}"]
        for name, post, problem in self.pipeline.render_all(article):
            text = post.text if post is not None else ""
            blocks.append(f"— {name}:\n{text}" + (f"\n({problem})" if problem else ""))
        return "\n\n".join(blocks)

    async def readiness(self) -> dict[str, bool]:
        return {
            "database": await self.store.ping(),
            "scheduler": bool(self.scheduler and self.scheduler.running),
        }

    # The daemon ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until `stop` is set or SIGTERM/SIGINT arrives."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await self.start()
        await self._start_web()
        await self._check_leadership()
        self._spawn(self._report_setup())
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        now = datetime.now(UTC)
        for source in self.config.sources:
            if not source.enabled:
                continue
            self.scheduler.add_job(
                self._poll_as_leader,
                "interval",
                seconds=source.interval,
                args=[source],
                id=f"poll:{source.name}",
                next_run_time=now,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(source.interval)),
            )
        self.scheduler.add_job(
            self.dispatch,
            "interval",
            seconds=self.config.file.dispatch.interval,
            kwargs={"wait": False},
            id="dispatch",
            next_run_time=now,
            max_instances=2,
            coalesce=True,
        )
        self.scheduler.add_job(
            self._check_leadership,
            "interval",
            seconds=self.config.file.dispatch.leader_check,
            id="leadership",
            max_instances=1,
            coalesce=True,
        )
        recheck = self.config.file.followups.recheck_interval
        if recheck > 0:
            self.scheduler.add_job(
                self._recheck_as_leader,
                "interval",
                seconds=recheck,
                id="recheck",
                max_instances=1,
                coalesce=True,
            )
        self.scheduler.start()
        log.info(
            "newsbot running: %d source(s), %d target(s)",
            len(self.config.sources),
            len(self.adapters),
        )
        try:
            await stop.wait()
        finally:
            log.info("stopping: finishing the send in progress, then exiting")
            self.scheduler.shutdown(wait=False)
            if self._console_stop is not None:
                self._console_stop.set()
            # Let the sends in flight finish so no delivery is left mid-send.
            await self.dispatcher.stop(timeout=10)
            await self._stop_web()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            await self.close()

    # Replicas: one leader polls the feeds and listens to the editors' chat -----------

    async def _check_leadership(self) -> None:
        try:
            leader = await self.store.hold_leadership()
        except Exception as exc:  # database unreachable: stand by, try again next tick
            log.warning("leadership check failed: %s", exc)
            leader = False
        if leader == self.is_leader:
            return
        self.is_leader = leader
        if leader:
            log.info("this replica is now the leader: it polls the feeds and the editors' chat")
            if self.console is not None:
                self._console_stop = asyncio.Event()
                self._spawn(self.console.run(self._console_stop))
        else:
            log.warning("this replica is no longer the leader: standing by (still delivering)")
            if self._console_stop is not None:
                self._console_stop.set()

    async def _poll_as_leader(self, source: SourceConfig) -> PollReport | None:
        if not self.is_leader:
            return None
        return await self.pipeline.poll(source)

    async def _recheck_as_leader(self) -> None:
        if self.is_leader:
            await self.followups.recheck()

    async def _start_web(self) -> None:
        http = self.config.file.http
        if not http.enabled:
            return
        if http.push_token is None:
            log.warning("http.push_token is not set: anyone reaching the endpoint can push URLs")
        cards = Path(http.cards_dir) if http.cards_dir else None
        app = create_app(
            self.on_push,
            self.readiness,
            self.config.push_token,
            cards,
            metrics=self.metrics,
            metrics_token=self.config.metrics_token,
        )
        self.web_server = LoopbackServer(app, port=http.port, host=http.host)
        await self.web_server.start()
        log.info("HTTP endpoint on %s (POST /push, /health/ready, /metrics)", self.web_server.url)

    async def _stop_web(self) -> None:
        if self.web_server is not None:
            await self.web_server.stop()
            self.web_server = None

    async def _report_setup(self) -> None:
        """The start-up self-test: ask each platform whether its target works, log one line
        each, and tell the editors' chat in one message (from the leader only)."""
        from bot.selfcheck import check_setup, startup_message

        checks = await check_setup(self.config, self.adapters.values())
        for check in checks:
            (log.error if check.failed else log.info)("setup check: %s", check)
        if self.console is None or not self.is_leader:
            return
        if any(c.failed for c in checks if c.name == "editors' chat"):
            return  # the failure was logged above; the chat cannot be told
        try:
            await self.console.say(startup_message(checks))
        except Exception as exc:  # the editors' chat failing never stops the bot
            log.error("editors' chat: the start-up message was not sent: %s", exc)
