"""State database: articles, their identity keys, the outbox of deliveries, per-source and
per-target state, on SQLite by default or PostgreSQL (plain SQL on the drivers' own APIs:
bot/store/aio.py).

One `Store` facade over per-area mixins sharing one engine (StoreBase):

- types.py: DeliveryStatus, the transition table, Delivery/NewDelivery/... (pure)
- url.py: database URLs
- aio.py: connections, worker threads, transactions, the driver errors mapped
- schema.py: the tables
- sources.py: per-source polling state
- articles.py: articles and their identity keys
- outbox.py: deliveries and the named moves between statuses
- events.py: events, paused targets, previews shown
- locks.py: leadership and per-target turns between replicas
- monitoring.py: read-only figures
"""

from __future__ import annotations

from bot.store.articles import ArticlesMixin
from bot.store.events import PREVIEWED, EventsMixin
from bot.store.locks import LocksMixin
from bot.store.monitoring import MonitoringMixin
from bot.store.outbox import OutboxMixin, abandoned_report
from bot.store.sources import SourcesMixin
from bot.store.types import (
    TRANSITIONS,
    Claim,
    Delivery,
    DeliveryStatus,
    IllegalTransition,
    Move,
    NewDelivery,
    SourceState,
    StoredArticle,
    allowed_next,
)

__all__ = [
    "PREVIEWED",
    "TRANSITIONS",
    "Claim",
    "Delivery",
    "DeliveryStatus",
    "IllegalTransition",
    "Move",
    "NewDelivery",
    "SourceState",
    "Store",
    "StoredArticle",
    "abandoned_report",
    "allowed_next",
]


class Store(SourcesMixin, ArticlesMixin, OutboxMixin, EventsMixin, LocksMixin, MonitoringMixin):
    """All reads and writes of the state database. One instance per process."""

    async def close(self) -> None:
        await self._drop_leader_conn()
        await self.engine.dispose()
