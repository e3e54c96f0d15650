"""Prometheus metrics for one Service.

Counters and the latency histogram count what this process did since it started. The outbox,
target and source gauges are read from the database at scrape time, so every replica sharing
one database reports the same, true figures. Each Service has its own registry: several
Services in one process (tests, the demo) never clash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from bot.store.types import DeliveryStatus

if TYPE_CHECKING:
    from bot.store import Store

log = logging.getLogger("newsbot.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST

# From a push that posts within a second to a post held back a day by timing rules.
LATENCY_BUCKETS = (
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600,
    12 * 3600, 24 * 3600,
)  # fmt: skip

# Outbox statuses always reported (0 when empty), so a rate or an alert has a series.
STATUSES = tuple(DeliveryStatus)

# Sources a push may name are not all configured; beyond this many, label them "other" so a
# stray client cannot blow up the number of series.
MAX_SOURCE_LABELS = 200

DB_TIMEOUT = 5.0  # seconds a scrape waits for the database before reporting newsbot_up 0


class Metrics:
    """The metrics of one Service. Without a store it only counts (no database gauges)."""

    def __init__(
        self, store: Store | None = None, targets: Iterable[str] = (), sources: Iterable[str] = ()
    ) -> None:
        self.store = store
        self.targets = list(targets)
        #: Label values come only from configured names (a pushed URL no source covers is
        #: "push"; anything else "other"): outside input never grows /metrics.
        self.known_sources = frozenset(sources) | {"push"} if sources else frozenset()
        self.registry = CollectorRegistry()
        self.articles_seen = Counter(
            "newsbot_articles_seen",
            "Feed entries and pushed URLs looked at, by what they turned out to be "
            "(new, known, updated, alias, recorded, retracted, failed)",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "newsbot_deliveries",
            "Outcomes of delivery attempts (sent, failed, uncertain, retry, paused, skipped)",
            ["target", "status"],
            registry=self.registry,
        )
        self.retries = Counter(
            "newsbot_delivery_retries",
            "Deliveries put back for another attempt (temporary failure or rate limit)",
            ["target"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "newsbot_publication_to_post_seconds",
            "Seconds from the article's publication time to the platform confirming the post",
            ["target"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._sources: set[str] = set()
        self._snapshot: dict[str, dict[Any, Any]] | None = None
        self._snapshot_at = 0.0
        self.registry.register(_DatabaseCollector(self))

    # Counting (one call at each place something happens) -------------------------------

    def article_seen(self, source: str, outcome: str) -> None:
        if self.known_sources and source not in self.known_sources:
            source = "other"
        if source not in self._sources:
            if len(self._sources) >= MAX_SOURCE_LABELS:
                source = "other"
            else:
                self._sources.add(source)
        self.articles_seen.labels(source, outcome).inc()

    def delivery(self, target: str, status: str) -> None:
        self.deliveries.labels(target, status).inc()

    def retry(self, target: str) -> None:
        self.deliveries.labels(target, "retry").inc()
        self.retries.labels(target).inc()

    def posted(self, target: str, published_at: float, now: float | None = None) -> None:
        """A post confirmed by its platform; `published_at` is the delivery's sort key."""
        self.deliveries.labels(target, "sent").inc()
        delay = (time.time() if now is None else now) - published_at
        self.latency.labels(target).observe(max(0.0, delay))  # a clock ahead of ours: 0

    # Scraping ----------------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Read the database-derived gauges. Returns whether the database answered."""
        if self.store is None:
            return True
        now = time.time()
        try:
            async with asyncio.timeout(DB_TIMEOUT):
                self._snapshot = await self.store.monitoring_snapshot(now)
            self._snapshot_at = now
            return True
        except Exception as exc:  # the endpoint still answers, with newsbot_up 0
            log.warning("metrics: database not readable: %s", type(exc).__name__)
            self._snapshot = None
            return False

    async def scrape(self) -> bytes:
        """The Prometheus text exposition, database gauges freshly read."""
        await self.refresh()
        return generate_latest(self.registry)

    def database_metrics(self) -> Iterator[Metric]:
        if self.store is None:
            return
        snap = self._snapshot
        up = GaugeMetricFamily(
            "newsbot_up", "1 when the state database answered this scrape, else 0"
        )
        up.add_metric([], 0 if snap is None else 1)
        yield up
        if snap is None:
            return
        deliveries: dict[tuple[str, str], int] = snap["deliveries"]
        due: dict[str, tuple[int, float]] = snap["due"]
        paused: dict[str, bool] = snap["paused"]
        targets = sorted(set(self.targets) | {t for t, _ in deliveries} | set(paused))

        outbox = GaugeMetricFamily(
            "newsbot_outbox_deliveries",
            "Deliveries in the outbox by target and status (from the database)",
            labels=["target", "status"],
        )
        depth = GaugeMetricFamily(
            "newsbot_queue_depth",
            "Deliveries not yet settled: pending (due or backing off) plus sending",
            labels=["target"],
        )
        due_now = GaugeMetricFamily(
            "newsbot_queue_due", "Pending deliveries whose time has come", labels=["target"]
        )
        oldest = GaugeMetricFamily(
            "newsbot_queue_oldest_due_seconds",
            "How long the longest-waiting due delivery has been due (0 when none)",
            labels=["target"],
        )
        paused_gauge = GaugeMetricFamily(
            "newsbot_target_paused",
            "1 when the target is paused (credentials rejected, or an editor paused it)",
            labels=["target"],
        )
        for target in targets:
            statuses = sorted(set(STATUSES) | {s for t, s in deliveries if t == target})
            for status in statuses:
                outbox.add_metric([target, status], deliveries.get((target, status), 0))
            depth.add_metric(
                [target],
                deliveries.get((target, "pending"), 0) + deliveries.get((target, "sending"), 0),
            )
            count, earliest = due.get(target, (0, self._snapshot_at))
            due_now.add_metric([target], count)
            oldest.add_metric([target], max(0.0, self._snapshot_at - earliest) if count else 0)
            paused_gauge.add_metric([target], 1 if paused.get(target) else 0)
        yield from (outbox, depth, due_now, oldest, paused_gauge)

        failures = GaugeMetricFamily(
            "newsbot_source_failures",
            "Consecutive failed polls of the source (0 after a good poll)",
            labels=["source"],
        )
        polled = GaugeMetricFamily(
            "newsbot_source_last_poll_timestamp_seconds",
            "UNIX time of the source's last poll",
            labels=["source"],
        )
        for source, (count, last) in sorted(snap["sources"].items()):
            if self.known_sources and source not in self.known_sources:
                continue  # a source removed from the configuration
            failures.add_metric([source], count)
            if last is not None:
                polled.add_metric([source], last)
        yield from (failures, polled)


class _DatabaseCollector:
    """Yields the gauges read by the last `Metrics.refresh()` (the scrape reads first)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self.metrics.database_metrics()
