"""Rules without a restart: the configuration file stays the single source of truth. The
running process reloads it when it changes (its size, time and hash are watched), on SIGHUP
and after a desk edit, and applies it only when it passes every check-config check;
otherwise the running configuration stays and the editors are told exactly what is wrong."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.config import Config, ConfigError, load

log = logging.getLogger("newsbot.reload")

#: Sections the running process cannot take without a restart (it keeps the old values).
NEEDS_RESTART = ("database", "http", "desk", "fetch", "dispatch", "logging", "reload")


@dataclass(frozen=True)
class Fingerprint:
    """What the watcher compares between looks: a change of any means "read it again"."""

    mtime_ns: int
    size: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> Fingerprint | None:
        try:
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None
        return cls(stat.st_mtime_ns, stat.st_size, digest)


@dataclass
class ReloadResult:
    """One reload: applied or refused, why, and what changed."""

    why: str  # "file changed", "SIGHUP", "desk editor web:alice"
    at: float
    applied: bool
    problems: list[str] = field(default_factory=list)  # each with its location
    changes: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.applied:
            lines = [f"configuration NOT reloaded ({self.why}); the running one stays:"]
            return "\n".join(lines + [f"  - {p}" for p in self.problems])
        what = "; ".join(self.changes) or "nothing changed"
        text = f"configuration reloaded ({self.why}): {what}"
        if self.needs_restart:
            text += "; needs a restart to take effect: " + ", ".join(self.needs_restart)
        return text


def restart_only_changes(running: Config, new: Config) -> list[str]:
    """The sections that differ but cannot change at run time. Pure."""
    changed = [
        name for name in NEEDS_RESTART if getattr(running.file, name) != getattr(new.file, name)
    ]
    old_editors = dict(running.file.editors or {})
    new_editors = dict(new.file.editors or {})
    old_editors.pop("allowed_user_ids", None)
    new_editors.pop("allowed_user_ids", None)
    if old_editors != new_editors:
        changed.append("editors (other than allowed_user_ids)")
    return changed


def applicable(running: Config, new: Config) -> Config:
    """`new` with what cannot change at run time kept from `running`: what the process
    actually runs after the reload. Pure."""
    keep = {name: getattr(running.file, name) for name in NEEDS_RESTART}
    editors = running.file.editors
    if editors is not None and new.file.editors is not None:
        editors = {**editors, "allowed_user_ids": new.file.editors.get("allowed_user_ids", [])}
    keep["editors"] = editors
    editor_settings = running.editors
    if editor_settings is not None and new.editors is not None:
        editor_settings = editor_settings.model_copy(
            update={"allowed_user_ids": getattr(new.editors, "allowed_user_ids", [])}
        )
    return replace(
        new,
        file=new.file.model_copy(update=keep),
        push_token=running.push_token,
        metrics_token=running.metrics_token,
        desk_secret=running.desk_secret,
        editors=editor_settings,
        editor_secrets=running.editor_secrets,
    )


class Reloader:
    """Watches one config file and applies it to the running service through `apply`
    (which returns the list of changes it made)."""

    def __init__(
        self,
        path: str | Path,
        running: Callable[[], Config],
        apply: Callable[[Config], Awaitable[list[str]]],
        tell: Callable[[ReloadResult], Awaitable[None]],
        environ: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.running = running
        self.apply = apply
        self.tell = tell
        self.environ = environ
        self.seen = Fingerprint.of(self.path)
        self.last: ReloadResult | None = None
        #: The refusal still in force (the file on disk is not what runs), for the desk.
        self.refused: ReloadResult | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> ReloadResult | None:
        """One look at the file: reload when it changed since the last look."""
        now = await asyncio.to_thread(Fingerprint.of, self.path)
        if now is None or now == self.seen:
            return None
        return await self.reload("file changed")

    async def reload(self, why: str) -> ReloadResult:
        """Read, validate (every check-config check, secrets resolved) and apply the file."""
        async with self._lock:
            self.seen = await asyncio.to_thread(Fingerprint.of, self.path)
            try:
                # Template rendering and secret files: off the event loop.
                new = await asyncio.to_thread(load, self.path, self.environ)
            except ConfigError as exc:
                result = ReloadResult(why, time.time(), False, [str(p) for p in exc.problems])
                self.refused = result
            else:
                running = self.running()
                restart = restart_only_changes(running, new)
                try:
                    changes = await self.apply(applicable(running, new))
                except Exception as exc:  # a half-applied swap must still be told
                    log.exception("applying the reloaded configuration failed")
                    result = ReloadResult(why, time.time(), False, [f"could not apply: {exc}"])
                    self.refused = result
                else:
                    result = ReloadResult(why, time.time(), True, [], changes, restart)
                    self.refused = None
            self.last = result
        (log.info if result.applied else log.error)("%s", result.summary())
        await self.tell(result)
        return result

    def status(self) -> dict[str, Any]:
        """What the desk shows: the refusal in force, and the last reload."""
        return {"refused": self.refused, "last": self.last, "path": str(self.path)}
