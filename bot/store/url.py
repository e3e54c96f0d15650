"""Database URLs: `sqlite:///path.db`, `sqlite://` (in memory), `postgresql://user:pw@host/db`.

The same URL forms SQLAlchemy accepted (the store ran on it until issue 18), parsed here so
that neither the config check nor the daemon imports a database toolkit to read one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote

#: Per database in a URL: the drivers newsbot accepts there (none named is ""). Each runs on
#: one driver: SQLite's standard `sqlite3`, PostgreSQL's psycopg 3 (see bot.store.aio).
DRIVERS: dict[str, tuple[str, ...]] = {
    "sqlite": ("", "pysqlite", "aiosqlite"),
    "postgresql": ("", "psycopg2", "psycopg", "psycopg_async"),
}
DRIVERS["postgres"] = DRIVERS["postgresql"]

_PATTERN = re.compile(
    r"""
    (?P<scheme>[\w+]+)://
    (?:(?P<username>[^:/@]*)(?::(?P<password>.*))?@)?
    (?:\[(?P<ipv6host>[^/?\]]+)\]|(?P<host>[^/:?]+))?
    (?::(?P<port>[^/?]*))?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.VERBOSE | re.DOTALL,
)


NOT_A_URL = "not a database URL"


class InvalidDatabaseURL(ValueError):
    """Not a database URL (the message says what is wrong, never the password)."""


@dataclass(frozen=True)
class DatabaseURL:
    backend: str  # "sqlite" or "postgresql" (a "postgres" scheme is read as "postgresql")
    driver: str  # as written after "+", "" when none
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, url: str) -> DatabaseURL:
        found = _PATTERN.fullmatch(url.strip()) if isinstance(url, str) else None
        if found is None:
            raise InvalidDatabaseURL(NOT_A_URL)
        backend, _, driver = found["scheme"].lower().partition("+")
        port: int | None = None
        if found["port"]:
            if not found["port"].isdigit():
                raise InvalidDatabaseURL(f"port {found['port']!r} is not a number")
            port = int(found["port"])
        username, password = found["username"], found["password"]
        return cls(
            backend="postgresql" if backend == "postgres" else backend,
            driver=driver,
            username=unquote(username) if username else None,
            password=unquote(password) if password is not None else None,
            host=found["ipv6host"] or found["host"] or None,
            port=port,
            database=unquote(found["database"]) if found["database"] else None,
            query=tuple(parse_qsl(found["query"] or "", keep_blank_values=True)),
        )

    @property
    def in_memory(self) -> bool:
        return self.backend == "sqlite" and self.database in (None, "", ":memory:")

    def libpq_parameters(self) -> dict[str, str | int]:
        """PostgreSQL's connection parameters (libpq's names), the URL's query included."""
        parameters: dict[str, str | int] = dict(self.query)
        for key, value in (
            ("host", self.host),
            ("port", self.port),
            ("dbname", self.database),
            ("user", self.username),
            ("password", self.password),
        ):
            if value is not None:
                parameters[key] = value
        return parameters

    def render(self, hide_password: bool = True) -> str:
        scheme = f"{self.backend}+{self.driver}" if self.driver else self.backend
        auth = ""
        if self.username is not None or self.password is not None:
            auth = quote(self.username or "", safe="")
            if self.password is not None:
                auth += ":***" if hide_password else f":{quote(self.password, safe='')}"
            auth += "@"
        host = f"[{self.host}]" if self.host and ":" in self.host else (self.host or "")
        port = f":{self.port}" if self.port is not None else ""
        database = f"/{self.database}" if self.database is not None else ""
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.query)
        return f"{scheme}://{auth}{host}{port}{database}" + (f"?{query}" if query else "")

    def __str__(self) -> str:
        return self.render()
