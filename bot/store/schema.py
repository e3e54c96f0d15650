"""The state database's tables, as SQL for SQLite and PostgreSQL. Times are stored as UNIX
seconds (float) so comparisons behave the same on every backend.

The tables, columns, types and constraint names are the ones SQLAlchemy's `create_all` made
before issue 18, so a database made by an older version is used as it is."""

from __future__ import annotations

from bot.store.aio import Connection

# {id} is the auto-numbered primary key: SQLite's rowid alias, PostgreSQL's SERIAL.
_TABLES = (
    """CREATE TABLE IF NOT EXISTS source_state (
        name VARCHAR(200) NOT NULL,
        etag TEXT,
        last_modified TEXT,
        initialized BOOLEAN NOT NULL,
        last_polled_at FLOAT,
        last_status INTEGER,
        last_error TEXT,
        failures INTEGER NOT NULL,
        PRIMARY KEY (name)
    )""",
    """CREATE TABLE IF NOT EXISTS articles (
        id {id} NOT NULL,
        url TEXT NOT NULL,
        source VARCHAR(200) NOT NULL,
        title TEXT NOT NULL,
        data TEXT NOT NULL,
        published_at FLOAT,
        first_seen_at FLOAT NOT NULL,
        updated_at FLOAT,
        retracted BOOLEAN NOT NULL,
        PRIMARY KEY (id),
        UNIQUE (url)
    )""",
    # Every identity an article was reached under: "url:<normalized>", "guid:<source>:<guid>".
    """CREATE TABLE IF NOT EXISTS article_keys (
        key TEXT NOT NULL,
        article_id INTEGER NOT NULL,
        PRIMARY KEY (key),
        FOREIGN KEY(article_id) REFERENCES articles (id)
    )""",
    """CREATE TABLE IF NOT EXISTS deliveries (
        id {id} NOT NULL,
        article_id INTEGER NOT NULL,
        target VARCHAR(200) NOT NULL,
        status VARCHAR(20) NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at FLOAT NOT NULL,
        sort_key FLOAT NOT NULL,
        priority INTEGER NOT NULL,
        rule VARCHAR(200),
        lease_until FLOAT,
        claimed_by VARCHAR(200),
        payload TEXT NOT NULL,
        remote_id TEXT,
        remote_url TEXT,
        last_error TEXT,
        created_at FLOAT NOT NULL,
        sent_at FLOAT,
        updated_at FLOAT NOT NULL,
        progress TEXT,
        idempotency_key VARCHAR(64),
        PRIMARY KEY (id),
        CONSTRAINT uq_delivery_article_target UNIQUE (article_id, target),
        FOREIGN KEY(article_id) REFERENCES articles (id)
    )""",
    "CREATE INDEX IF NOT EXISTS ix_deliveries_due ON deliveries (status, target, next_attempt_at)",
    """CREATE TABLE IF NOT EXISTS target_state (
        name VARCHAR(200) NOT NULL,
        paused BOOLEAN NOT NULL,
        reason TEXT,
        changed_at FLOAT,
        PRIMARY KEY (name)
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        id {id} NOT NULL,
        at FLOAT NOT NULL,
        level VARCHAR(10) NOT NULL,
        kind VARCHAR(40) NOT NULL,
        target VARCHAR(200),
        delivery_id INTEGER,
        message TEXT NOT NULL,
        PRIMARY KEY (id)
    )""",
)

#: Columns added after a table's first release: (table, column, SQL type). `create_schema`
#: adds them to a database made by an older version (CREATE ... IF NOT EXISTS leaves
#: existing tables alone).
ADDED_COLUMNS = (
    ("deliveries", "progress", "TEXT"),
    ("deliveries", "idempotency_key", "VARCHAR(64)"),
)

#: Every column of `deliveries`, in table order (SELECTs name them: a row's shape never
#: depends on how an older database ordered its added columns).
DELIVERY_COLUMNS = (
    "id, article_id, target, status, attempts, next_attempt_at, sort_key, priority, rule, "
    "lease_until, claimed_by, payload, remote_id, remote_url, last_error, created_at, "
    "sent_at, updated_at, progress, idempotency_key"
)
ARTICLE_COLUMNS = "id, url, source, title, data, published_at, first_seen_at, updated_at, retracted"


def create_tables(conn: Connection, tables: tuple[str, ...]) -> None:
    """Create `tables` (SQL with {id} for the auto-numbered key) where missing."""
    serial = "SERIAL" if conn.dialect_name == "postgresql" else "INTEGER"
    for statement in tables:
        conn.execute(statement.replace("{id}", serial))


def column_names(conn: Connection, table: str) -> set[str]:
    if conn.dialect_name == "sqlite":
        return {row.name for row in conn.execute(f"PRAGMA table_info({table})")}
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = :table AND table_schema = current_schema()",
        {"table": table},
    )
    return {row.column_name for row in rows}


def create_schema(conn: Connection) -> None:
    """Every table, index and added column, where missing."""
    create_tables(conn, _TABLES)
    present: dict[str, set[str]] = {}
    for table, column, sql_type in ADDED_COLUMNS:
        if table not in present:
            present[table] = column_names(conn, table)
        if column not in present[table]:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
