"""The dispatcher: claims due deliveries from the outbox, sends them through their adapter and
records what happened. Targets are drained concurrently; within a target, in order.

Exactly-once rests on one rule: a delivery is marked `sending` (committed) immediately before
the one request that publishes, and anything short of a clear answer from it leaves the delivery
`uncertain`, never blindly resent. Steps that publish nothing run first, while the delivery is
`preparing` (adapter.prepare); a failure or a crash there is a plain retry. Where the platform
honours an idempotency key the dispatcher resends with the same key instead of flagging; where
it can read back its posts (adapter.find_published) an uncertain delivery is checked at once
and only what cannot be decided goes to the editors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from adapters.base import Adapter as BaseAdapter
from adapters.base import SendContext
from bot.circuit import Circuit, jittered
from bot.config import DispatchConfig
from bot.logs import delivery_fields
from bot.metrics import Metrics
from bot.outcomes import (
    AuthFailure,
    CannotTell,
    DeliveryError,
    PermanentFailure,
    RetryLater,
    TemporaryFailure,
)
from bot.render import RenderProblem, guard
from bot.rules import Rule
from bot.secrets import redact
from bot.store import Delivery, DeliveryStatus, IllegalTransition, Store, abandoned_report
from bot.store.events import APPROVAL_TIMEOUT
from bot.timing import SEND, Decision, Timing, decide, local_midnight

if TYPE_CHECKING:
    from adapters import Adapter  # the registry's name for adapters.base.Adapter

log = logging.getLogger("newsbot.dispatch")

Alert = Callable[[str, str], Awaitable[None]]  # (target, message)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped."""
    return jittered(base, cap, attempt - 1, rng)


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
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.adapters = adapters
        self.config = config
        self.claimer = claimer or default_claimer()
        self.alert = alert
        self.tz = tz or ZoneInfo("UTC")
        self.rules = {rule.name: rule for rule in rules or []}
        self.metrics = metrics or Metrics()
        c = config
        self.circuits = {
            name: Circuit(c.circuit_threshold, c.backoff_base, c.circuit_cooldown_max)
            for name in adapters
        }
        self._housekeeping = asyncio.Lock()
        self._draining = {name: asyncio.Lock() for name in adapters}
        self._look_again: set[str] = set()
        self._stopping = False

    async def stop(self, timeout: float) -> None:
        """Claim nothing more; wait (up to `timeout`) for the pass and the sends in flight to
        finish, so none is cut off when the process exits (a pass cancelled at exit left a
        traceback in the log: a false alarm)."""
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.busy():
                    await asyncio.sleep(0.01)

    def busy(self) -> bool:
        """Whether a pass or a target's drain is in progress."""
        return self._housekeeping.locked() or any(x.locked() for x in self._draining.values())

    async def run_once(self, *, wait: bool = True) -> DispatchReport:
        """Deliver everything due now, then return. Safe to call concurrently.

        Each target drains on its own, so a slow platform holds up no other. A target still
        being drained by an earlier call is waited for (`wait`), or else asked to look again
        when it finishes (the daemon's ticks and wake-ups: they never queue up behind it).
        """
        report = DispatchReport()
        if self._stopping:
            return report
        async with self._housekeeping:
            await self._flag_abandoned(report)
            await self._expire_approvals()
            paused = await self.store.paused_targets()
        names = [name for name in self.adapters if name not in paused]
        await asyncio.gather(*(self._drain_target(name, report, wait) for name in names))
        return report

    async def _drain_target(self, target: str, report: DispatchReport, wait: bool) -> None:
        lock = self._draining[target]
        if lock.locked() and not wait:
            self._look_again.add(target)
            return
        async with lock:
            while True:
                self._look_again.discard(target)
                # With replicas, one drains a target at a time (the others skip it).
                async with self.store.target_turn(target) as mine:
                    if mine and await self._admitted(target):
                        await self._drain(target, report)
                if target not in self._look_again:
                    return

    async def _admitted(self, target: str) -> bool:
        """Whether the target's circuit lets posts through now (half-open: a health check)."""
        circuit = self.circuits[target]
        now = time.time()
        state = circuit.state(now)
        if state != "half-open":
            return state == "closed"
        try:
            checked = await self.adapters[target].check()
        except DeliveryError as exc:
            self._still_down(target, exc.message)
            return False
        except Exception as exc:  # a broken check must not stop the target for good
            self._still_down(target, f"{type(exc).__name__}: {exc}")
            return False
        if checked:
            await self._recovered(target)
        # Without a health check the next post is the probe: its outcome decides.
        return True

    def _still_down(self, target: str, error: str) -> None:
        circuit = self.circuits[target]
        circuit.failure(time.time(), error)
        log.info(
            "target %s: still failing (%s); next check in %.0fs",
            target,
            error,
            circuit.open_until - time.time(),
        )

    async def _tripped(
        self, target: str, error: str, *, at_least: float = 0.0, trip: bool = False
    ) -> bool:
        """Count a failure against the target. True while its circuit is open."""
        circuit = self.circuits[target]
        if circuit.failure(time.time(), error, at_least=at_least, trip=trip):
            message = (
                f"target failing ({error}); its posts are held and will go out in order once "
                f"it answers again (next check in {circuit.open_until - time.time():.0f}s). "
                "Other targets are not affected."
            )
            log.error("target %s: %s", target, message)
            await self.store.record_event("error", "circuit-open", message, target)
            await self._alert(target, message)
        return circuit.trips > 0

    async def _recovered(self, target: str) -> None:
        outage = self.circuits[target].success(time.time())
        if outage is None:
            return
        message = f"target answers again after {outage:.0f}s; sending its held posts in order"
        log.warning("target %s: %s", target, message)
        await self.store.record_event("info", "circuit-closed", message, target)
        await self._alert(target, message)

    async def _flag_abandoned(self, report: DispatchReport) -> None:
        resend_safe = [name for name, adapter in self.adapters.items() if adapter.idempotent]
        for delivery in await self.store.expire_leases(time.time(), resend_safe):
            message = abandoned_report(delivery)  # its event was recorded with the flag
            log.warning("target %s: %s", delivery.target, message, extra=delivery_fields(delivery))
        await self._reconcile_all(report)

    async def _reconcile_all(self, report: DispatchReport) -> None:
        """Read back every uncertain delivery not yet checked (after a restart, too)."""
        for delivery in await self.store.unchecked_uncertain():
            if delivery.target in self.adapters:
                await self._reconcile(self.adapters[delivery.target], delivery, report)

    async def _reconcile(
        self, adapter: Adapter, delivery: Delivery, report: DispatchReport
    ) -> None:
        """Settle an uncertain delivery by reading the platform back: found -> sent, certainly
        absent -> pending (sent again), else the editors are told which check was tried."""
        ctx = self._context(delivery)
        check = adapter.read_back or "no read-back"
        try:
            async with asyncio.timeout(self.config.lease * 0.8):
                found = await adapter.find_published(delivery.post, ctx)
        except CannotTell as exc:
            verdict = f"read-back undecided ({exc}); an editor must check"
            found = None
        except Exception as exc:  # a broken read-back: reported to editors below
            detail = exc.message if isinstance(exc, DeliveryError) else type(exc).__name__
            verdict = f"read-back failed ({check}: {redact(str(detail))}); an editor must check"
            found = None
        else:
            verdict = ""
        progress = {**ctx.progress, "read_back": verdict or check}
        await self.store.save_progress(delivery.id, progress)
        try:
            if verdict:
                pass
            elif found is not None:
                how = f"confirmed by read-back ({check}): posted as {found.remote_id}"
                await self.store.confirm_sent(delivery.id, found.remote_id, found.remote_url, how)
                await self._recovered(delivery.target)
                self.metrics.posted(delivery.target, delivery.sort_key)
                report.sent += 1
                log.info("target %s: %s", delivery.target, how, extra=delivery_fields(delivery))
                return
            else:
                how = f"certainly not posted (read-back: {check}); sending it again"
                await self.store.confirm_absent(delivery.id, how)
                # Due again: a drain of this target in progress takes it before it stops.
                self._look_again.add(delivery.target)
                await self._recovered(delivery.target)
                log.info("target %s: %s", delivery.target, how, extra=delivery_fields(delivery))
                return
        except IllegalTransition:  # an editor settled it meanwhile
            return
        message = (
            f"delivery {delivery.id} of {delivery.post.article_url} may or may not have been "
            f"posted; {verdict}. Not resent: check and decide."
        )
        report.uncertain += 1
        self.metrics.delivery(delivery.target, "uncertain")
        log.warning("target %s: %s", delivery.target, message, extra=delivery_fields(delivery))
        await self.store.record_event(
            "warning", "unresolved", message, delivery.target, delivery.id
        )
        await self._alert(delivery.target, message)

    def _context(self, delivery: Delivery) -> SendContext:
        async def store_progress(progress: dict[str, object]) -> None:
            await self.store.save_progress(delivery.id, progress)

        return SendContext(
            delivery_id=delivery.id,
            idempotency_key=delivery.idempotency_key,
            progress=dict(delivery.progress),
            since=delivery.created_at,
            _store=store_progress,
        )

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
            try:  # recorded with the move: a late button press is told who decided
                if default == "post":
                    await self.store.approve(
                        delivery.id, note, decision=note, kind=APPROVAL_TIMEOUT
                    )
                else:
                    await self.store.decline(delivery.id, note, note, APPROVAL_TIMEOUT)
            except IllegalTransition:  # an editor answered meanwhile
                continue
            if default != "post":
                self.metrics.delivery(delivery.target, "skipped")

    async def _drain(self, target: str, report: DispatchReport) -> None:
        adapter = self.adapters[target]
        for _ in range(self.config.batch):
            if self._stopping:
                return
            claim = await self.store.claim_due(target, time.time(), self.config.lease, self.claimer)
            delivery = claim.delivery
            if delivery is None:
                return
            decision = await self._timing(adapter, delivery)
            if decision.action == "wait" and decision.at is not None:
                await self.store.retry_later(
                    delivery.id,
                    decision.at.timestamp(),
                    f"waiting: {decision.reason}",
                    count_attempt=False,
                )
                return
            if decision.action == "drop":
                await self.store.drop(delivery.id, f"dropped: {decision.reason}")
                self.metrics.delivery(delivery.target, "skipped")
                await self.store.record_event(
                    "info", "dropped", decision.reason, delivery.target, delivery.id
                )
                continue
            try:
                keep_going = await self._deliver(adapter, delivery, report)
            except IllegalTransition as exc:
                # Its lease ran out mid-send and it was flagged uncertain: that flag stands.
                log.warning("target %s: outcome not recorded: %s", target, exc)
                return
            if not keep_going or not self.circuits[target].allows(time.time()):
                return
            if not claim.more_due:
                # Nothing else was due at the claim; what became due since asked this drain
                # to look again (a new article's wake-up, an editor's retry, a read-back
                # that found the post absent).
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
            if type(adapter).read_cost is not BaseAdapter.read_cost:  # billed read-backs (X)
                progress = await self.store.progress_sent_since(
                    delivery.target, midnight.timestamp()
                )
                spent_today += sum(adapter.read_cost(p) for p in progress)
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
        # The last look before it leaves (an edited text passed the desk's guard; this is the
        # same guard, in case anything else touched the stored post).
        checked = guard(delivery.post, adapter.hyperlinks)
        if isinstance(checked, RenderProblem):
            await self._fail(delivery, checked.message, report)
            return True
        ctx = self._context(delivery)
        publishing = False
        try:
            # The adapter has its own HTTP timeouts; this bound only catches a stuck adapter.
            async with asyncio.timeout(self.config.lease * 0.8):
                await adapter.prepare(delivery.post, ctx)
            await self.store.begin_publish(delivery.id, time.time() + self.config.lease)
            publishing = True
            async with asyncio.timeout(self.config.lease * 0.8):
                sent = await adapter.publish(delivery.post, ctx)
        except RetryLater as exc:
            await self._tripped(delivery.target, exc.message, at_least=exc.retry_after)
            at = max(time.time() + exc.retry_after, self.circuits[delivery.target].open_until)
            await self.store.retry_later(delivery.id, at, exc.message, count_attempt=False)
            log.info(
                "target %s: %s; waiting %.0fs",
                delivery.target,
                exc.message,
                exc.retry_after,
                extra=delivery_fields(delivery),
            )
            self.metrics.retry(delivery.target)
            report.retried += 1
            return False
        except TemporaryFailure as exc:
            # Attempts count while the target looked healthy; not while it is known down.
            counted = self.circuits[delivery.target].trips == 0
            held = await self._tripped(delivery.target, exc.message)
            await self._temporary(delivery, exc.message, report, held=held, counted=counted)
            return False
        except PermanentFailure as exc:
            await self._recovered(delivery.target)  # a clear refusal: the platform is up
            await self._fail(delivery, exc.message, report)
            return True
        except AuthFailure as exc:
            await self._pause(delivery, exc.message, report)
            return False
        except IllegalTransition:
            raise
        except DeliveryError as exc:  # UncertainDelivery or an unknown kind
            return await self._unsure(adapter, delivery, exc.message, report, publishing)
        except TimeoutError:
            error = "the adapter did not finish in time"
            return await self._unsure(adapter, delivery, error, report, publishing)
        except Exception as exc:  # an adapter bug: we cannot know whether it posted
            log.exception(
                "target %s: adapter raised", delivery.target, extra=delivery_fields(delivery)
            )
            # Its text may quote a request URL or header: no secret goes into the database.
            error = f"{type(exc).__name__}: {redact(str(exc))}"
            return await self._unsure(adapter, delivery, error, report, publishing)
        if sent.confirmed:  # an earlier attempt's post, confirmed (X's duplicate refusal)
            await self.store.confirm_sent(
                delivery.id, sent.remote_id or None, sent.remote_url, sent.confirmed
            )
        else:
            await self.store.mark_sent(delivery.id, sent.remote_id, sent.remote_url)
        await self._recovered(delivery.target)
        self.metrics.posted(delivery.target, delivery.sort_key)
        report.sent += 1
        log.info(
            "target %s: posted %s as %s",
            delivery.target,
            delivery.post.article_url,
            sent.remote_id,
            extra=delivery_fields(delivery),
        )
        return True

    async def _temporary(
        self,
        delivery: Delivery,
        error: str,
        report: DispatchReport,
        *,
        held: bool = False,
        counted: bool = True,
    ) -> None:
        if held:
            # The target is down, not this post: it waits for the target, never given up.
            at = self.circuits[delivery.target].open_until
            await self.store.retry_later(delivery.id, at, error, count_attempt=counted)
            self.metrics.retry(delivery.target)
            report.retried += 1
            return
        if delivery.attempts >= self.config.max_attempts:
            error = f"gave up after {delivery.attempts} attempts: {error}"
            await self._fail(delivery, error, report)
            return
        delay = backoff_delay(delivery.attempts, self.config.backoff_base, self.config.backoff_max)
        await self.store.retry_later(delivery.id, time.time() + delay, error)
        log.warning(
            "target %s: attempt %d failed (%s); retrying in %.0fs",
            delivery.target,
            delivery.attempts,
            error,
            delay,
            extra=delivery_fields(delivery),
        )
        self.metrics.retry(delivery.target)
        report.retried += 1

    async def _fail(self, delivery: Delivery, error: str, report: DispatchReport) -> None:
        await self.store.fail(delivery.id, error)
        self.metrics.delivery(delivery.target, "failed")
        log.error(
            "target %s: delivery %d failed: %s",
            delivery.target,
            delivery.id,
            error,
            extra=delivery_fields(delivery),
        )
        await self.store.record_event("error", "failed", error, delivery.target, delivery.id)
        report.failed += 1

    async def _unsure(
        self,
        adapter: Adapter,
        delivery: Delivery,
        error: str,
        report: DispatchReport,
        publishing: bool,
    ) -> bool:
        """No clear answer. Before the publishing request nothing was published: retry. During
        it: resend with the same key where the platform honours one, else flag and read back."""
        if not publishing:
            await self._temporary(delivery, f"while preparing: {error}", report, held=False)
            return False
        if adapter.idempotent and delivery.attempts < self.config.max_attempts:
            note = f"{error}; resending with the same idempotency key"
            await self._temporary(delivery, note, report, held=False)
            return False
        await self._uncertain(delivery, error, report, tell=not adapter.read_back)
        if adapter.read_back:
            fresh = await self.store.delivery(delivery.id)
            if fresh is not None and fresh.status == DeliveryStatus.UNCERTAIN:
                await self._reconcile(adapter, fresh, report)
        return True

    async def _uncertain(
        self, delivery: Delivery, error: str, report: DispatchReport, *, tell: bool = True
    ) -> None:
        """Flag (with its event, in one commit). `tell=False`: a read-back follows at once and
        the editors hear only if it cannot decide."""
        message = (
            f"delivery {delivery.id} of {delivery.post.article_url} may or may not have been "
            f"posted ({error}); not resent"
        )
        await self.store.flag_uncertain(delivery.id, error, message)
        log.warning("target %s: %s", delivery.target, message, extra=delivery_fields(delivery))
        if tell:
            self.metrics.delivery(delivery.target, "uncertain")
            await self._alert(delivery.target, message)
            report.uncertain += 1
        # No clear answer: hold the target's other posts until a health check says it is back.
        await self._tripped(delivery.target, error, trip=True)

    async def _pause(self, delivery: Delivery, error: str, report: DispatchReport) -> None:
        # The post goes back to the queue untouched: it is sent once the target is resumed.
        await self.store.retry_later(delivery.id, time.time(), error, count_attempt=False)
        await self.store.set_paused(delivery.target, True, error)
        # The platform's error often ends with its own full stop.
        reason = error.rstrip(". ")
        message = f"target paused: {reason}. Fix the credentials, then resume the target."
        self.metrics.delivery(delivery.target, "paused")
        log.error("target %s: %s", delivery.target, message, extra=delivery_fields(delivery))
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
