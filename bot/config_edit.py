"""The desk's rule editor: one YAML fragment at a time (a rule, a target's template, timing
or hashtags, the outlet's hashtags), validated with the edit applied exactly as check-config
validates the whole file, previewed against the latest articles, then written back with the
file's comments and layout kept (ruamel.yaml round-trip). Earlier versions are kept next to
the file (newsbot.yaml.1 is the newest) for undo; every save goes through the reloader."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from adapters import adapter_class
from bot.config import Config, ConfigError, load_text
from bot.models import Article, RenderedPost
from bot.render import RenderProblem, render_for
from bot.rules import route

if TYPE_CHECKING:
    from bot.reload import Reloader, ReloadResult
    from bot.store import Store

#: Earlier versions kept next to the file: newsbot.yaml.1 (newest) .. newsbot.yaml.5.
KEEP_VERSIONS = 5
#: What a target page edits (each a text area).
TARGET_KEYS = ("template", "timing", "hashtags")


class EditRefused(Exception):
    """An edit that cannot be applied; `problems` name their locations."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Item:
    """One editable fragment: its path in the YAML ("rules.1", "targets.0.template") and
    a label by name ("rules[breaking]", "targets[x-main].template")."""

    path: str
    label: str
    fragment: str


@dataclass(frozen=True)
class RoutedPreview:
    """How one of the latest articles would go out under a candidate configuration."""

    article: Article
    #: (target, post or None, problem or None) for every target a rule routes it to.
    posts: list[tuple[str, RenderedPost | None, str | None]]


def _yaml() -> YAML:
    y = YAML()  # round-trip: comments, key order and quoting survive
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _dump(node: Any) -> str:
    out = io.StringIO()
    _yaml().dump(node, out)
    return out.getvalue()


def _steps(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in path.split(".") if p]


def _parent(doc: Any, steps: list[str | int]) -> Any:
    node = doc
    for step in steps[:-1]:
        node = node[step]
    return node


def items(text: str) -> list[Item]:
    """The editable fragments of a config file's text, in the file's order."""
    doc = _yaml().load(text)
    found: list[Item] = []
    outlet = doc.get("outlet") or {}
    found.append(_item(doc, "outlet.hashtags", "outlet.hashtags", "hashtags" in outlet))
    for index, rule in enumerate(doc.get("rules") or []):
        name = rule.get("name", index) if hasattr(rule, "get") else index
        found.append(Item(f"rules.{index}", f"rules[{name}]", _dump(rule)))
    for index, target in enumerate(doc.get("targets") or []):
        name = target.get("name", index) if hasattr(target, "get") else index
        for key in TARGET_KEYS:
            found.append(
                _item(doc, f"targets.{index}.{key}", f"targets[{name}].{key}", key in target)
            )
    return found


def _item(doc: Any, path: str, label: str, present: bool) -> Item:
    steps = _steps(path)
    key = steps[-1]
    if not present:
        return Item(path, label, f"# {key}: not set (the default); write it here\n")
    return Item(path, label, _dump({key: _parent(doc, steps)[key]}))


def apply_fragment(text: str, path: str, fragment: str) -> str:
    """The whole file's text with the fragment at `path` replaced (an empty fragment removes
    it; `rules.N` one past the last rule adds a rule). Raises EditRefused."""
    y = _yaml()
    doc = y.load(text)
    steps = _steps(path)
    try:
        value = y.load(fragment)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise EditRefused([f"{path}: invalid YAML{at}: {getattr(exc, 'problem', exc)}"]) from None
    try:
        parent = _parent(doc, steps)
    except (KeyError, IndexError, TypeError):
        raise EditRefused([f"{path}: no such place in the file"]) from None
    key = steps[-1]
    if isinstance(key, int):  # a rule: the fragment is the rule itself
        if value is None:
            if key < len(parent):
                del parent[key]
        elif key < len(parent):
            parent[key] = value
        elif key == len(parent):
            parent.append(value)
        else:
            raise EditRefused([f"{path}: no such rule"])
    else:  # one key of a mapping: the fragment is `key: value`
        if value is None:
            parent.pop(key, None)
        elif not hasattr(value, "keys") or list(value.keys()) != [key]:
            raise EditRefused([f"{path}: write it as `{key}: ...` (one key)"])
        else:
            parent[key] = value[key]
    return _dump(doc)


class ConfigEditor:
    """The desk's side of the file: read items, check and preview a candidate, save, undo."""

    def __init__(
        self, reloader: Reloader, running: Callable[[], Config], store: Store | None = None
    ) -> None:
        self.reloader = reloader
        self.running = running
        self.store = store
        self._lock = asyncio.Lock()

    @property
    def path(self) -> Path:
        return self.reloader.path

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def items(self) -> list[Item]:
        return items(self.text())

    def check(self, text: str) -> Config:
        """Every check-config check on the candidate text; EditRefused names each problem's
        place (file:line in the candidate)."""
        try:
            return load_text(text, str(self.path), self.reloader.environ)
        except ConfigError as exc:
            raise EditRefused([str(p) for p in exc.problems]) from None

    def candidate(self, path: str, fragment: str) -> tuple[str, Config]:
        text = apply_fragment(self.text(), path, fragment.replace("\r\n", "\n"))
        return text, self.check(text)

    def versions(self) -> list[Path]:
        """The kept earlier versions that exist, newest first."""
        kept = (self.path.with_name(f"{self.path.name}.{n}") for n in range(1, KEEP_VERSIONS + 1))
        return [p for p in kept if p.exists()]

    async def save(self, text: str, who: str, what: str) -> ReloadResult:
        """Write the checked text (the current file becomes .1), record who, reload."""
        async with self._lock:
            self.check(text)  # the same checks again: the file may have changed meanwhile
            await asyncio.to_thread(self._write_keeping_previous, text)
            await self._record(f"{who} edited {what}")
            return await self.reloader.reload(f"desk editor {who}")

    async def undo(self, who: str) -> ReloadResult:
        """Put back the newest kept version, through the same checks and reload."""
        async with self._lock:
            kept = self.versions()
            if not kept:
                raise EditRefused(["no earlier version is kept"])
            text = kept[0].read_text(encoding="utf-8")
            self.check(text)
            await asyncio.to_thread(self._restore_newest, text)
            await self._record(f"{who} undid the last edit")
            return await self.reloader.reload(f"desk editor {who} (undo)")

    def _write_keeping_previous(self, text: str) -> None:
        for n in range(KEEP_VERSIONS - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        shutil.copy2(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._write(text)

    def _restore_newest(self, text: str) -> None:
        self._write(text)
        for n in range(1, KEEP_VERSIONS):
            newer = self.path.with_name(f"{self.path.name}.{n + 1}")
            here = self.path.with_name(f"{self.path.name}.{n}")
            if newer.exists():
                os.replace(newer, here)
            else:
                with contextlib.suppress(FileNotFoundError):
                    here.unlink()
                break

    def _write(self, text: str) -> None:
        """Atomically: a reader (the watcher, a restart) never sees half a file."""
        temporary = self.path.with_name(f".{self.path.name}.editing")
        temporary.write_text(text, encoding="utf-8")
        with contextlib.suppress(OSError):
            shutil.copymode(self.path, temporary)
        os.replace(temporary, self.path)

    async def _record(self, message: str) -> None:
        if self.store is not None:
            await self.store.record_event("info", "config-edit", message)


async def preview_routing(config: Config, articles: list[Article]) -> list[RoutedPreview]:
    """Which targets each article would go to under `config`, and each post as rendered
    (the pipeline's routing and bot.render.render_for); sends nothing, asks no platform."""
    adapters = {
        t.name: adapter_class(t.platform)(t, config.secrets.get(t.name, {}), config.outlet)
        for t in config.targets
    }
    try:
        previews = []
        for article in articles:
            posts: list[tuple[str, RenderedPost | None, str | None]] = []
            for routed in route(article, config.rules, config.targets):
                adapter = adapters.get(routed.target)
                if adapter is None or any(name == routed.target for name, _, _ in posts):
                    continue
                rendered = render_for(adapter, article)
                if isinstance(rendered, RenderProblem):
                    posts.append((routed.target, None, rendered.message))
                else:
                    note = "waits for approval" if routed.approval else None
                    posts.append((routed.target, rendered, note))
            previews.append(RoutedPreview(article, posts))
        return previews
    finally:
        for adapter in adapters.values():
            with contextlib.suppress(Exception):
                await adapter.aclose()
