"""The dispatcher: claims due deliveries from the outbox, sends them through their adapter and
records what happened. Targets are drained concurrently; within a target, in order.

Exactly-once rests on one rule: a delivery is marked `sending` (committed) before the adapter
is called, and anything short of a clear answer leaves it `uncertain`, never resent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from adapters.base import Adapter
from bot.attribution import AttributionMissing, check_attribution
from bot.config import DispatchConfig
from bot.outcomes import (
    AuthFailure,
    DeliveryError,
    PermanentFailure,
    RetryLater,
    TemporaryFailure,
    UncertainDelivery,
)
from bot.rules import Rule
from bot.store import AWAITING, PENDING, SKIPPED, Delivery, Store
from bot.timing import SEND, Decision, Timing, decide, local_midnight

log = logging.getLogger("newsbot.dispatch")

Alert = Callable[[str, str], Awaitable[None]]  # (target, message)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped."""
    exp = min(cap, base * (2 ** max(0, attempt - 1)))
    rand = (rng or random).random()
    return exp / 2 + rand * exp / 2


@dataclass
class DispatchReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0
    paused: list[str] = field(default_factory=list)


def default_claimer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Dispatcher:
    def __init__(
        self,
        store: Store,
        adapters: dict[str, Adapter],
        config: DispatchConfig,
        claimer: str | None = None,
        alert: Alert | None = None,
        tz: ZoneInfo | None = None,
        rules: list[Rule] | None = None,
    ) -> None:
        self.store = store
        self.adapters = adapters
        self.config = config
        self.claimer = claimer or default_claimer()
        self.alert = alert
        self.tz = tz or ZoneInfo("UTC")
        self.rules = {rule.name: rule for rule in rules or []}
        self._lock = asyncio.Lock()

    async def run_once(self) -> DispatchReport:
        """Deliver everything due now, then return. Safe to call concurrently (serialised)."""
        async with self._lock:
            report = DispatchReport()
            await self._flag_abandoned(report)
            await self._expire_approvals()
            paused = await self.store.paused_targets()
            names = [name for name in self.adapters if name not in paused]
            await asyncio.gather(*(self._drain(name, report) for name in names))
            return report

    async def _flag_abandoned(self, report: DispatchReport) -> None:
        for delivery in await self.store.expire_leases(time.time()):
            report.uncertain += 1
            message = (
                f"delivery {delivery.id} of {delivery.post.article_url} was being sent when its "
                "sender stopped; it may or may not be posted. Not resent: check and decide."
            )
            log.warning("target %s: %s", delivery.target, message)
            await self.store.record_event(
                "warning", "uncertain", message, delivery.target, delivery.id
            )
            await self._alert(delivery.target, message)

    async def _expire_approvals(self) -> None:
        """Previews nobody answered in time follow their rule's default."""
        now = time.time()
        for delivery in await self.store.awaiting():
            rule = self.rules.get(delivery.rule or "")
            timeout = rule.approval_timeout if rule else 3600.0
            if delivery.created_at + timeout > now:
                continue
            default = rule.approval_default if rule else "skip"
            note = f"no editor answered within {timeout:g}s: {default} by rule"
            status = PENDING if default == "post" else SKIPPED
            if await self.store.set_status(delivery.id, status, note, only_from=[AWAITING]):
                await self.store.record_event(
                    "info", "approval-timeout", note, delivery.target, delivery.id
                )

    async def _drain(self, target: str, report: DispatchReport) -> None:
        adapter = self.adapters[target]
        for _ in range(self.config.batch):
            delivery = await self.store.claim_next(
                target, time.time(), self.config.lease, self.claimer
            )
            if delivery is None:
                return
            decision = await self._timing(adapter, delivery)
            if decision.action == "wait" and decision.at is not None:
                await self.store.mark_retry(
                    delivery.id,
                    decision.at.timestamp(),
                    f"waiting: {decision.reason}",
                    count_attempt=False,
                )
                return
            if decision.action == "drop":
                await self.store.mark_skipped(delivery.id, f"dropped: {decision.reason}")
                await self.store.record_event(
                    "info", "dropped", decision.reason, delivery.target, delivery.id
                )
                continue
            keep_going = await self._deliver(adapter, delivery, report)
            if not keep_going:
                return

    async def _timing(self, adapter: Adapter, delivery: Delivery) -> Decision:
        timing = adapter.settings.timing
        if timing == Timing():
            return SEND
        now = datetime.now(UTC)
        last = await self.store.last_sent_at(delivery.target)
        midnight = local_midnight(now.astimezone(self.tz), self.tz)
        sent_today, spent_today = 0, 0.0
        if timing.daily_cap:
            sent_today = await self.store.sent_count_since(delivery.target, midnight.timestamp())
            sent_today -= 1  # the count includes this claimed (sending) delivery
        if timing.daily_budget:
            sent = await self.store.posts_sent_since(delivery.target, midnight.timestamp())
            spent_today = sum(adapter.cost(post) for post in sent)
        return decide(
            now,
            timing,
            self.tz,
            published=datetime.fromtimestamp(delivery.sort_key, UTC),
            breaking=delivery.priority > 0,
            last_sent=datetime.fromtimestamp(last, UTC) if last else None,
            sent_today=max(0, sent_today),
            spent_today=spent_today,
            cost=adapter.cost(delivery.post),
        )

    async def _deliver(self, adapter: Adapter, delivery: Delivery, report: DispatchReport) -> bool:
        """Send one claimed delivery and record the outcome. Returns False to stop the target."""
        try:
            check_attribution(delivery.post, adapter.hyperlinks)
        except AttributionMissing as exc:
            await self._fail(delivery, str(exc), report)
            return True
        try:
            # The adapter has its own HTTP timeouts; this bound only catches a stuck adapter.
            async with asyncio.timeout(self.config.lease * 0.8):
                sent = await adapter.send(delivery.post)
        except RetryLater as exc:
            at = time.time() + exc.retry_after
            await self.store.mark_retry(delivery.id, at, exc.message, count_attempt=False)
            log.info("target %s: %s; waiting %.0fs", delivery.target, exc.message, exc.retry_after)
            report.retried += 1
            return False
        except TemporaryFailure as exc:
            await self._temporary(delivery, exc.message, report)
            return False
        except PermanentFailure as exc:
            await self._fail(delivery, exc.message, report)
            return True
        except AuthFailure as exc:
            await self._pause(delivery, exc.message, report)
            return False
        except UncertainDelivery as exc:
            await self._uncertain(delivery, exc.message, report)
            return True
        except DeliveryError as exc:
            await self._uncertain(delivery, exc.message, report)
            return True
        except TimeoutError:
            await self._uncertain(delivery, "the adapter did not finish in time", report)
            return True
        except Exception as exc:  # an adapter bug: we cannot know whether it posted
            log.exception("target %s: adapter raised", delivery.target)
            await self._uncertain(delivery, f"{type(exc).__name__}: {exc}", report)
            return True
        await self.store.mark_sent(delivery.id, sent.remote_id, sent.remote_url)
        report.sent += 1
        log.info(
            "target %s: posted %s as %s", delivery.target, delivery.post.article_url, sent.remote_id
        )
        return True

    async def _temporary(self, delivery: Delivery, error: str, report: DispatchReport) -> None:
        if delivery.attempts >= self.config.max_attempts:
            error = f"gave up after {delivery.attempts} attempts: {error}"
            await self._fail(delivery, error, report)
            return
        delay = backoff_delay(delivery.attempts, self.config.backoff_base, self.config.backoff_max)
        await self.store.mark_retry(delivery.id, time.time() + delay, error)
        log.warning(
            "target %s: attempt %d failed (%s); retrying in %.0fs",
            delivery.target,
            delivery.attempts,
            error,
            delay,
        )
        report.retried += 1

    async def _fail(self, delivery: Delivery, error: str, report: DispatchReport) -> None:
        await self.store.mark_failed(delivery.id, error)
        log.error("target %s: delivery %d failed: %s", delivery.target, delivery.id, error)
        await self.store.record_event("error", "failed", error, delivery.target, delivery.id)
        report.failed += 1

    async def _uncertain(self, delivery: Delivery, error: str, report: DispatchReport) -> None:
        await self.store.mark_uncertain(delivery.id, error)
        message = (
            f"delivery {delivery.id} of {delivery.post.article_url} may or may not have been "
            f"posted ({error}); not resent"
        )
        log.warning("target %s: %s", delivery.target, message)
        await self.store.record_event("warning", "uncertain", message, delivery.target, delivery.id)
        await self._alert(delivery.target, message)
        report.uncertain += 1

    async def _pause(self, delivery: Delivery, error: str, report: DispatchReport) -> None:
        # The post goes back to the queue untouched: it is sent once the target is resumed.
        await self.store.mark_retry(delivery.id, time.time(), error, count_attempt=False)
        await self.store.set_paused(delivery.target, True, error)
        message = f"target paused: {error}. Fix the credentials, then resume the target."
        log.error("target %s: %s", delivery.target, message)
        await self.store.record_event("error", "paused", message, delivery.target, delivery.id)
        await self._alert(delivery.target, message)
        report.paused.append(delivery.target)

    async def _alert(self, target: str, message: str) -> None:
        if self.alert is None:
            return
        try:
            await self.alert(target, message)
        except Exception:
            log.exception("could not deliver an alert")
