"""Wires the parts into one asyncio process: a poll schedule (bot/schedule.py) drives the polls,
APScheduler the dispatcher and the periodic checks, the bot's HTTP endpoint takes CMS pushes,
SIGTERM/SIGINT stop it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from adapters import adapter_class
from bot.circuit import Circuit
from bot.config import Config, SourceConfig
from bot.desk import Desk, Reply
from bot.dispatcher import Dispatcher, DispatchReport
from bot.fetch import make_client
from bot.followups import FollowUps
from bot.logs import escape_log
from bot.metrics import Metrics
from bot.pipeline import Pipeline, PollReport
from bot.reload import Reloader, ReloadResult
from bot.schedule import PollSchedule
from bot.secrets import redact
from bot.store import DeliveryStatus, IllegalTransition, Store
from consoles import console_class
from consoles.base import Console

if TYPE_CHECKING:
    from adapters import Adapter  # the registry's name for adapters.base.Adapter
    from bot.httpserver import LoopbackServer
    from bot.targets import ImageFetcher

# What /retry takes back (a skipped post comes back only through /post URL).
RETRYABLE = (DeliveryStatus.FAILED, DeliveryStatus.UNCERTAIN)

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
        self,
        config: Config,
        claimer: str | None = None,
        dispatch_on_new: bool = True,
        config_path: str | Path | None = None,
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
            tz=config.timezone,
            measure={name: a.measure for name, a in self.adapters.items()},
        )
        self.console: Console | None = None
        if config.editors is not None:
            console = console_class(config.editors.platform)
            self.console = console(config.editors, config.editor_secrets, self.desk)
            self.alert_hooks.append(self._alert_console)
        self.scheduler: AsyncIOScheduler | None = None
        self.polls: PollSchedule | None = None
        self._polling: asyncio.Task[None] | None = None
        self.is_leader = False
        self._console_stop: asyncio.Event | None = None
        self.web_server: LoopbackServer | None = None
        # New deliveries are dispatched at once; `run --once` turns this off and dispatches
        # after polling, and a caller may hold new posts in the outbox (tests, previews).
        self._auto_dispatch = dispatch_on_new
        self._background: set[asyncio.Task[object]] = set()
        # Rules without a restart: the file is watched, re-read on SIGHUP and desk edits.
        self.reloader: Reloader | None = None
        if config_path is not None:
            self.reloader = Reloader(
                config_path, lambda: self.config, self.apply_config, self._tell_reload
            )
        self._desk_parts: Any = None

    async def alert(self, target: str, message: str) -> None:
        """Tell the editors (every registered hook: the editors' chat, ...)."""
        for hook in list(self.alert_hooks):
            await hook(target, message)

    async def _alert_console(self, target: str, message: str) -> None:
        if self.console is not None:
            await self.console.alert(f"{target}: {message}")

    async def start(self) -> None:
        await self.store.init()
        await self._warm_up_adapters()

    async def _warm_up_adapters(self) -> None:
        """Each enabled adapter loads what its renders need (e.g. Mastodon's instance
        limits) before the first article is planned; one slow platform stalls nothing."""

        async def warm_up(adapter: Adapter) -> None:
            try:
                await asyncio.wait_for(adapter.warm_up(), adapter.settings.timeout)
            except Exception as exc:
                log.warning(
                    "target %s: not warmed up (%s); the platform's defaults until it answers",
                    adapter.name,
                    redact(str(exc) or type(exc).__name__),
                )

        await asyncio.gather(*(warm_up(a) for a in self.adapters.values() if a.settings.enabled))

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        for adapter in self.adapters.values():
            with contextlib.suppress(Exception):
                await adapter.aclose()
        await self.client.aclose()
        await self.store.close()

    # Rules without a restart ----------------------------------------------------------

    async def apply_config(self, new: Config) -> list[str]:
        """Swap in a validated configuration (restart-only sections already kept from the
        running one, see bot.reload.applicable). Queued deliveries keep their rendered posts;
        changed targets get new adapters and the old ones are closed once idle."""
        old = self.config
        changes: list[str] = []
        old_targets = {t.name: t for t in old.targets}
        new_targets = {t.name: t for t in new.targets}
        stale: list[tuple[str, Adapter]] = []
        for name, target in new_targets.items():
            same = (
                old_targets.get(name) == target
                and old.secrets.get(name) == new.secrets.get(name)
                and old.outlet == new.outlet
            )
            if same and name in self.adapters:
                continue
            cls = adapter_class(target.platform)
            adapter = cls(
                target, new.secrets.get(name, {}), new.outlet, fetch_image=self.download_image
            )
            if target.enabled:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(adapter.warm_up(), target.timeout)
            if name in self.adapters:
                stale.append((name, self.adapters[name]))
                changes.append(f"target {name} changed")
            else:
                changes.append(f"target {name} added")
            # Shared by reference with the pipeline, dispatcher and follow-ups.
            self.adapters[name] = adapter
            self.dispatcher._draining.setdefault(name, asyncio.Lock())
            self.dispatcher.circuits.setdefault(
                name,
                Circuit(
                    self.config.file.dispatch.circuit_threshold,
                    self.config.file.dispatch.backoff_base,
                    self.config.file.dispatch.circuit_cooldown_max,
                ),
            )
        for name in list(self.adapters):
            if name not in new_targets:
                stale.append((name, self.adapters.pop(name)))
                changes.append(f"target {name} removed (its queued posts wait in the outbox)")
        if old.rules != new.rules:
            changes.append("rules changed")
        if old.file.timezone != new.file.timezone:
            changes.append(f"timezone {new.file.timezone}")
        for key in ("first_run", "followups"):
            if getattr(old.file, key) != getattr(new.file, key):
                changes.append(f"{key} changed")
        self.config = new
        self.pipeline.config = new
        self.followups.config = new
        self.followups.rules = {rule.name: rule for rule in new.rules}
        self.dispatcher.rules = {rule.name: rule for rule in new.rules}
        self.dispatcher.tz = new.timezone
        self.desk.targets = list(self.adapters)
        self.desk.hyperlinks = {n: a.hyperlinks for n, a in self.adapters.items()}
        self.desk.measure = {n: a.measure for n, a in self.adapters.items()}
        self.desk.tz = new.timezone
        allowed = set(getattr(new.editors, "allowed_user_ids", []) or [])
        if allowed != self.desk.allowed_users:
            changes.append("editors' allowed users changed")
            self.desk.allowed_users.clear()
            self.desk.allowed_users.update(allowed)
        if self._desk_parts is not None:
            self._desk_parts.tz = new.timezone
        changes.extend(self._reschedule_sources(old, new))
        for name, adapter in stale:
            self._spawn(self._close_when_idle(name, adapter))
        return changes

    async def _close_when_idle(self, name: str, adapter: Adapter) -> None:
        """Close a replaced adapter after the send it may be in has finished."""
        lock = self.dispatcher._draining.get(name)
        if lock is not None:
            async with lock:
                pass
        with contextlib.suppress(Exception):
            await adapter.aclose()

    def _reschedule_sources(self, old: Config, new: Config) -> list[str]:
        before = {s.name: s for s in old.sources}
        after = {s.name: s for s in new.sources}
        changes = []
        for name in before.keys() - after.keys():
            changes.append(f"source {name} removed")
        for name, source in after.items():
            if name not in before:
                changes.append(f"source {name} added")
            elif before[name] != source:
                changes.append(f"source {name} changed")
        if self.polls is None:
            return changes
        for name, source in before.items():
            if after.get(name) != source:
                self.polls.remove(name)
        for name, source in after.items():
            if before.get(name) != source and source.enabled:
                self.polls.set(source)
        return changes

    async def _tell_reload(self, result: ReloadResult) -> None:
        """Record every reload; a refused one also goes to the editors' chat."""
        level = "info" if result.applied else "error"
        with contextlib.suppress(Exception):
            await self.store.record_event(level, "config-reload", result.summary()[:4000])
        if not result.applied:
            await self.alert("config", result.summary())

    async def reload_config(self, why: str) -> ReloadResult | None:
        """Reload the file now (SIGHUP, the desk); None when the service has no file."""
        if self.reloader is None:
            return None
        return await self.reloader.reload(why)

    async def _watch_config(self) -> None:
        if self.reloader is not None:
            await self.reloader.check()

    # One-shot work ---------------------------------------------------------------------

    async def poll_all(self) -> list[PollReport]:
        """Poll every enabled source once; the reports in the order of the sources. A fixed
        set of workers takes the sources in turn: 30,000 sources are not 30,000 tasks."""
        sources = [s for s in self.config.sources if s.enabled]
        reports: list[PollReport | None] = [None] * len(sources)
        turns = iter(enumerate(sources))  # shared: each worker takes the next source

        async def worker() -> None:
            for index, source in turns:
                reports[index] = await self.pipeline.poll(source)

        workers = min(self.config.file.fetch.concurrency, len(sources))
        await asyncio.gather(*(worker() for _ in range(workers)))
        return [report for report in reports if report is not None]

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

    async def post_url_now(self, url: str) -> Reply:
        """An editor's /post URL: ingest now, breaking the usual delays. A known article's
        skipped or first-run (backlog) posts come back, through approval where the rule asks
        for it; a target it never had a row for gets one."""
        result = await self.pipeline.ingest_url(url)
        if result.kind == "new":
            return Reply(f"Queued for {len(result.deliveries)} target(s).")
        if result.kind == "failed" or result.article_id is None:
            return Reply(f"Could not post: {result.error}", ok=False)
        return await self._bring_back(result.article_id)

    async def _bring_back(self, article_id: int) -> Reply:
        stored = await self.store.article_by_id(article_id)
        if stored is None:
            return Reply(f"Could not post: article {article_id} is gone.", ok=False)
        existing = {d.target: d for d in await self.store.deliveries_for_article(article_id)}
        lines, queued = [], False
        for planned in self.pipeline.plan_deliveries(stored.article):
            target = planned.post.target
            awaiting = planned.status == DeliveryStatus.AWAITING
            row = existing.get(target)
            if planned.status == DeliveryStatus.FAILED:
                lines.append(f"{target}: cannot be posted: {planned.error}")
            elif row is None:
                (delivery_id,) = await self.store.add_deliveries(
                    article_id, [replace(planned, priority=1)]
                )
                lines.append(f"#{delivery_id} {target}: " + self._back_state(awaiting))
                queued = True
            elif row.status in (DeliveryStatus.SKIPPED, DeliveryStatus.BACKLOG):
                try:
                    await self.store.revive(row.id, "posted by an editor", awaiting=awaiting)
                except IllegalTransition as exc:
                    lines.append(f"#{row.id} {target}: {exc.current}, not changed")
                    continue
                lines.append(f"#{row.id} {target}: " + self._back_state(awaiting))
                queued = True
            else:
                hint = " (/retry it)" if row.status in RETRYABLE else ""
                lines.append(f"#{row.id} {target}: already {row.status}{hint}")
        if queued:
            self.wake()
        if not lines:
            return Reply("No target takes this article (no rule routes it).", ok=False)
        return Reply("\n".join(lines), ok=queued)

    @staticmethod
    def _back_state(awaiting: bool) -> str:
        return "waits for approval" if awaiting else "queued to post now"

    async def preview_url(self, url: str) -> Reply:
        """Each target's post as its platform would show it: Telegram's HTML as formatting,
        plain-text platforms as plain text, with the platform's own length count."""
        try:
            article, _ = await self.pipeline.load_article(url)
        except Exception as exc:
            return Reply(html.escape(f"Could not load {url}: {exc}"), ok=False, html=True)
        blocks = [f"<b>{html.escape(article.title)}</b>\n{html.escape(article.url)}"]
        for name, post, problem in self.pipeline.render_all(article):
            head = f"— <b>{html.escape(name)}</b>"
            if post is not None:
                adapter = self.adapters[name]
                head += f" ({html.escape(str(adapter.measure(post)))})"
                body = post.text if post.markup == "html" else html.escape(post.text)
            else:
                body = ""
            note = f"\n<i>({html.escape(problem)})</i>" if problem else ""
            blocks.append(f"{head}:\n{body}{note}")
        return Reply("\n\n".join(blocks), html=True)

    async def readiness(self) -> dict[str, bool]:
        return {
            "database": await self.store.ping(),
            "scheduler": bool(
                self.scheduler
                and self.scheduler.running
                and self._polling is not None
                and not self._polling.done()
            ),
        }

    # The daemon ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until `stop` is set or SIGTERM/SIGINT arrives."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if self.reloader is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
                loop.add_signal_handler(
                    signal.SIGHUP, lambda: self._spawn(self.reload_config("SIGHUP"))
                )
        await self.start()
        await self._start_web()
        await self._check_leadership()
        self._spawn(self._report_setup())
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        now = datetime.now(UTC)
        self.polls = PollSchedule(self._poll_as_leader, self.config.file.fetch.concurrency)
        for source in self.config.sources:
            if source.enabled:
                self.polls.set(source)
        self._polling = loop.create_task(self.polls.run())
        watch = self.config.file.reload.watch_interval
        if self.reloader is not None and watch > 0:
            self.scheduler.add_job(
                self._watch_config,
                "interval",
                seconds=watch,
                id="config-watch",
                max_instances=1,
                coalesce=True,
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
            self._polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._polling
            if self._console_stop is not None:
                self._console_stop.set()
            # Let the sends in flight finish so no delivery is left mid-send.
            await self.dispatcher.stop(timeout=10)
            await self._stop_web()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
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
        # Only a service with its HTTP endpoint loads the web stack (uvicorn, starlette).
        from bot.httpserver import LoopbackServer
        from bot.web import create_app

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
            desk_app=self._desk_app(),
        )
        self.web_server = LoopbackServer(app, port=http.port, host=http.host)
        await self.web_server.start()
        log.info("HTTP endpoint on %s (POST /push, /health/ready, /metrics)", self.web_server.url)

    def _desk_app(self) -> Any:
        """The web desk at /desk, when configured (bot/webdesk)."""
        desk = self.config.file.desk
        if not desk.enabled or self.config.desk_secret is None:
            return None
        from bot.webdesk.app import DeskParts, create_desk_app

        async def try_url(url: str) -> Any:
            article, _ = await self.pipeline.load_article(url)
            return article, self.pipeline.render_all(article)

        parts = DeskParts(
            self.store,
            self.desk,
            self.config.timezone,
            try_url,
            lambda: {n: c.state(time.time()) for n, c in self.dispatcher.circuits.items()},
            self.adapters,
            config_editor=self._config_editor(),
        )
        self._desk_parts = parts
        return create_desk_app(parts, desk, self.config.desk_secret)

    def _config_editor(self) -> Any:
        """The desk's rule editor, when the service runs from a file (bot/config_edit)."""
        if self.reloader is None:
            return None
        from bot.config_edit import ConfigEditor

        return ConfigEditor(self.reloader, lambda: self.config, self.store)

    async def _stop_web(self) -> None:
        if self.web_server is not None:
            await self.web_server.stop()
            self.web_server: LoopbackServer | None = None

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
