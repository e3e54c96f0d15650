"""Editor accounts of the web desk: names, roles, argon2 password hashes, and the login
rate limit. The table is created here, not in the store's schema, so the outbox schema stays
the store's and a daemon without the desk never makes it."""

from __future__ import annotations

import asyncio
import getpass
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.store.aio import AsyncEngine, Connection
from bot.store.schema import create_tables

MIN_PASSWORD = 10
NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"

# The columns and types SQLAlchemy's create_all made before issue 18: an older desk_users
# table is used as it is.
DESK_TABLES = (
    """CREATE TABLE IF NOT EXISTS desk_users (
        name VARCHAR(64) NOT NULL,
        role VARCHAR(10) NOT NULL,
        password_hash TEXT NOT NULL,
        created_at FLOAT NOT NULL,
        updated_at FLOAT NOT NULL,
        PRIMARY KEY (name)
    )""",
)


class Role(StrEnum):
    EDITOR = "editor"
    ADMIN = "admin"


@dataclass(frozen=True)
class Account:
    name: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


_hasher = PasswordHasher()  # argon2id, the library's maintained defaults
# Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a real password, only equalises timing")


class Accounts:
    """Reads and writes desk_users on the store's engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._ready = False
        self._lock = asyncio.Lock()

    async def ensure_schema(self) -> None:
        async with self._lock:
            if not self._ready:
                await self.engine.transaction(create_tables, DESK_TABLES)
                self._ready = True

    async def get(self, name: str) -> Account | None:
        await self.ensure_schema()
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    "SELECT name, role FROM desk_users WHERE name = :name", {"name": name}
                )
            ).first()
        return Account(row.name, Role(row.role)) if row else None

    async def add(self, name: str, role: Role, password: str) -> bool:
        """Create the account or replace its role and password. True if it was new."""
        import re

        if not re.fullmatch(NAME_PATTERN, name):
            raise ValueError(f"account name {name!r}: use 1-64 letters, digits, '_', '.', '-'")
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"password: at least {MIN_PASSWORD} characters")
        digest = await asyncio.to_thread(_hasher.hash, password)
        await self.ensure_schema()
        now = time.time()
        return await self.engine.transaction(_upsert, name, role.value, digest, now)

    async def authenticate(self, name: str, password: str) -> Account | None:
        """The account if the password is right; hashing runs off the event loop."""
        await self.ensure_schema()
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    "SELECT name, role, password_hash FROM desk_users WHERE name = :name",
                    {"name": name},
                )
            ).first()
        digest = row.password_hash if row else _DUMMY_HASH
        try:
            await asyncio.to_thread(_hasher.verify, digest, password)
        except (VerificationError, InvalidHashError):
            return None
        return Account(row.name, Role(row.role)) if row else None


def _upsert(conn: Connection, name: str, role: str, digest: str, now: float) -> bool:
    """Replace the account's role and password, or create it; True if it was new. One
    transaction, so the update and the insert see the same table."""
    values = {"name": name, "role": role, "password_hash": digest, "now": now}
    updated = conn.execute(
        "UPDATE desk_users SET role = :role, password_hash = :password_hash, updated_at = :now "
        "WHERE name = :name",
        values,
    )
    if updated.rowcount == 1:
        return False
    conn.execute(
        "INSERT INTO desk_users (name, role, password_hash, created_at, updated_at) "
        "VALUES (:name, :role, :password_hash, :now, :now)",
        values,
    )
    return True


class LoginLimiter:
    """At most `attempts` failed logins per key (an account name, a client address) within
    `window` seconds; a blocked key is refused before any password is checked."""

    def __init__(
        self, attempts: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.attempts = attempts
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, keys: list[str]) -> float:
        """Seconds until every key may try again; 0 when none is blocked."""
        wait = 0.0
        for key in keys:
            times = self._recent(key)
            if len(times) >= self.attempts:
                wait = max(wait, times[0] + self.window - self.clock())
        return wait

    def failed(self, keys: list[str]) -> None:
        for key in keys:
            self._recent(key).append(self.clock())
        if len(self._failures) > 10_000:  # bound memory under a spray of names
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


def read_password(password_file: str | None) -> str:
    """The new password from a file (first line) or, interactively, typed twice."""
    if password_file:
        lines = Path(password_file).read_text(encoding="utf-8").splitlines()
        return lines[0] if lines else ""
    if not sys.stdin.isatty():
        raise ValueError("no terminal to ask for the password: use --password-file FILE")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ")
    return first


async def add_user(database_url: str, name: str, role: str, password: str) -> bool:
    from bot.store import Store

    store = Store(database_url)
    try:
        return await Accounts(store.engine).add(name, Role(role), password)
    finally:
        await store.close()
