"""The state database's tables. Times are stored as UNIX seconds (float) so comparisons
behave the same on every backend."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

source_state = Table(
    "source_state",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("initialized", Boolean, nullable=False, default=False),
    Column("last_polled_at", Float),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("failures", Integer, nullable=False, default=0),
)

articles = Table(
    "articles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False, unique=True),
    Column("source", String(200), nullable=False),
    Column("title", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("published_at", Float),
    Column("first_seen_at", Float, nullable=False),
    Column("updated_at", Float),
    Column("retracted", Boolean, nullable=False, default=False),
)

# Every identity an article was reached under: "url:<normalized>" and "guid:<source>:<guid>".
article_keys = Table(
    "article_keys",
    metadata,
    Column("key", Text, primary_key=True),
    Column("article_id", Integer, ForeignKey("articles.id"), nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("article_id", Integer, ForeignKey("articles.id"), nullable=False),
    Column("target", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("sort_key", Float, nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("rule", String(200)),
    Column("lease_until", Float),
    Column("claimed_by", String(200)),
    Column("payload", Text, nullable=False),
    Column("remote_id", Text),
    Column("remote_url", Text),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float),
    Column("updated_at", Float, nullable=False),
    # JSON: what prepare() saved (container id, media id); see bot.dispatcher.
    Column("progress", Text),
    # Random at insert, so a key never repeats across databases or a reset id sequence.
    Column("idempotency_key", String(64)),
    UniqueConstraint("article_id", "target", name="uq_delivery_article_target"),
    Index("ix_deliveries_due", "status", "target", "next_attempt_at"),
)

target_state = Table(
    "target_state",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("paused", Boolean, nullable=False, default=False),
    Column("reason", Text),
    Column("changed_at", Float),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("level", String(10), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("target", String(200)),
    Column("delivery_id", Integer),
    Column("message", Text, nullable=False),
)


#: Columns added after a table's first release: (table, column, SQL type). Store.init adds
#: them to a database made by an older version (create_all leaves existing tables alone).
ADDED_COLUMNS = (
    ("deliveries", "progress", "TEXT"),
    ("deliveries", "idempotency_key", "VARCHAR(64)"),
)
