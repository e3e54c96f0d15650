"""The YAML configuration: load, validate every part, and report all mistakes at once."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path as FilePath
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from adapters import adapter_class, available_platforms
from bot.config_types import parse_duration
from bot.models import Article
from bot.render import ProblemKind, RenderProblem, render_for
from bot.rules import Rule
from bot.secrets import Secret, SecretRef
from bot.store.url import DRIVERS, NOT_A_URL, DatabaseURL, InvalidDatabaseURL
from bot.targets import Outlet, TargetSettings
from bot.webdesk.settings import DeskConfig
from consoles import console_class


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


@pydantic_dataclass(config=ConfigDict(extra="forbid"), frozen=True, slots=True, kw_only=True)
class SourceConfig:
    """One source. A slotted dataclass, not a model: a pydantic model instance took about
    1 KB, a third of the daemon's memory at 30,000 sources (issue 18)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    type: Literal["feed", "sitemap"] = "feed"
    url: str
    interval: float = Field(default=60.0, description="seconds between polls")
    language: str | None = None
    enabled: bool = True
    #: Hosts (exact, or `*.suffix`) whose private or loopback addresses this source's
    #: article and image links may reach (SSRF guard; a public source may not otherwise).
    allow_hosts: tuple[str, ...] = ()  # a tuple: no empty list per source
    #: New articles taken from one poll; the rest are recorded without posting and the
    #: editors told (a source dumping 1,000 entries must not hold back the others).
    max_new_per_poll: int = Field(default=20, ge=1, le=10_000)
    #: When an article page cannot be read: "post" from the feed entry alone (marked as
    #: such), or "wait" for the page (the entry is tried again at the next poll).
    entry_only: Literal["post", "wait"] = "post"
    #: With entry_only: wait, how long an entry may wait for its page. After that it is not
    #: posted (an article whose page never came is not news an editor would publish blind):
    #: it is set aside and the editors are told, so they can /post it by hand.
    entry_only_max_wait: float = Field(default=6 * 3600.0, description="seconds")

    _interval = field_validator("interval", mode="before")(parse_duration)
    _max_wait = field_validator("entry_only_max_wait", mode="before")(parse_duration)

    @field_validator("entry_only_max_wait")
    @classmethod
    def _sane_max_wait(cls, value: float) -> float:
        if value < 60:
            raise ValueError("must be at least 60 seconds (e.g. 30m, 6h)")
        return value

    @field_validator("allow_hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            if not re.fullmatch(r"(\*\.)?[^*/:\s]+|\[[0-9A-Fa-f:.]+\]", host):
                raise ValueError(f"{host!r} is not a host (e.g. cdn.example.com, *.example.com)")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("interval")
    @classmethod
    def _sane_interval(cls, value: float) -> float:
        if value < 1:
            raise ValueError("must be at least 1 second")
        return value


class FirstRunConfig(_Strict):
    #: On a source's first poll the backlog is recorded, not posted, except the newest N.
    post_newest: int = Field(default=0, ge=0, le=100)


class DispatchConfig(_Strict):
    interval: float = 2.0
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_base: float = 10.0
    backoff_max: float = 3600.0
    lease: float = Field(default=120.0, description="seconds a claimed delivery stays leased")
    batch: int = Field(default=20, ge=1, le=1000)
    #: Failures in a row that open a target's circuit (its posts are then held, not retried).
    circuit_threshold: int = Field(default=3, ge=1, le=100)
    #: Longest wait between health checks of a target whose circuit is open.
    circuit_cooldown_max: float = 300.0
    #: Replicas on PostgreSQL: how often a standby tries for the leader lock (polling and
    #: the editors' chat run on the leader only; every replica delivers).
    leader_check: float = Field(default=5.0, gt=0)

    _durations = field_validator(
        "interval",
        "backoff_base",
        "backoff_max",
        "lease",
        "circuit_cooldown_max",
        "leader_check",
        mode="before",
    )(parse_duration)


class FetchConfig(_Strict):
    user_agent: str = "newsbot/0.1 (+https://github.com/newsbot)"
    timeout: float = 15.0
    max_bytes: int = Field(default=10_000_000, ge=10_000)
    max_redirects: int = Field(default=5, ge=0, le=20)
    #: Polls in flight at once: bounds sockets and database connections with many sources.
    concurrency: int = Field(default=50, ge=1, le=1000)
    #: Download each article image once before queueing; drop it if it is not an image.
    check_images: bool = True
    max_image_bytes: int = Field(default=8_000_000, ge=10_000)

    _timeout = field_validator("timeout", mode="before")(parse_duration)


class HttpConfig(_Strict):
    """The bot's own HTTP endpoint: CMS push trigger, health, generated image cards."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    push_token: SecretRef | None = None
    #: Bearer token GET /metrics asks for; unset: metrics are served to anyone reaching the port.
    metrics_token: SecretRef | None = None
    #: Where generated image cards are written and served from (at /cards/<file>).
    cards_dir: str | None = None


class FollowUpsConfig(_Strict):
    """What happens to posts after their article changes or disappears."""

    #: Edit sent posts (where the platform allows) when the headline or lead changes.
    edit_on_update: bool = True
    #: When a posted article is taken down (404/410, or a feed marks it retracted).
    on_takedown: Literal["delete", "flag"] = "flag"
    #: Posted articles are re-checked for takedowns for this long after posting ...
    recheck_window: float = 48 * 3600.0
    #: ... this often (0: never).
    recheck_interval: float = 600.0

    _durations = field_validator("recheck_window", "recheck_interval", mode="before")(
        parse_duration
    )


class ReloadConfig(_Strict):
    """Reloading the file while running (also on SIGHUP and after a desk edit)."""

    #: Seconds between looks at the file's size, time and hash; 0: only SIGHUP and the desk.
    watch_interval: float = Field(default=3.0, ge=0)

    _interval = field_validator("watch_interval", mode="before")(parse_duration)


class LoggingConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class ConfigFile(_Strict):
    """Everything but the targets, whose shape depends on their platform."""

    outlet: Outlet = Outlet()
    database: str = "sqlite:///newsbot.db"
    timezone: str = "UTC"
    sources: list[SourceConfig] = Field(min_length=1)
    targets: list[dict[str, Any]] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)
    #: The editors' chat for approvals, alerts and commands: {platform: telegram, ...}.
    editors: dict[str, Any] | None = None
    first_run: FirstRunConfig = FirstRunConfig()
    dispatch: DispatchConfig = DispatchConfig()
    fetch: FetchConfig = FetchConfig()
    http: HttpConfig = HttpConfig()
    followups: FollowUpsConfig = FollowUpsConfig()
    logging: LoggingConfig = LoggingConfig()
    desk: DeskConfig = DeskConfig()
    reload: ReloadConfig = ReloadConfig()


#: A place in the parsed YAML: keys and list indexes, e.g. ("targets", 2, "chat_id").
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    #: Where, by name: targets[telegram-en].chat_id (a list position only for unnamed items).
    location: str
    message: str
    #: file:line of that place in the YAML, when the config was read from a file.
    where: str = ""

    def __str__(self) -> str:
        place = f"{self.location} ({self.where})" if self.location and self.where else ""
        place = place or self.location or self.where
        return f"{place}: {self.message}" if place else self.message


class ConfigError(Exception):
    """Every problem found in a config, each naming where it is."""

    def __init__(self, problems: list[Problem], origin: str = "config") -> None:
        self.problems = problems
        self.origin = origin
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{origin}: {len(problems)} problem(s):\n{lines}")


@dataclass
class Config:
    """A validated configuration with secrets resolved."""

    file: ConfigFile
    targets: list[TargetSettings]
    secrets: dict[str, dict[str, Secret]]  # target name -> field -> secret
    push_token: Secret | None = None
    metrics_token: Secret | None = None
    editors: Any = None  # the console's validated Settings
    editor_secrets: dict[str, Secret] = field(default_factory=dict)
    desk_secret: Secret | None = None  # signs the web desk's session cookies

    @property
    def outlet(self) -> Outlet:
        return self.file.outlet

    @property
    def sources(self) -> list[SourceConfig]:
        return self.file.sources

    @property
    def rules(self) -> list[Rule]:
        return self.file.rules

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.file.timezone)

    def target(self, name: str) -> TargetSettings:
        for target in self.targets:
            if target.name == name:
                return target
        raise KeyError(name)


#: Top-level lists whose items have a `name`: a location names the item, not its position.
_NAMED_LISTS = ("sources", "targets", "rules")


def _display(path: Path, data: Any) -> str:
    """`targets[telegram-en].chat_id` for ("targets", 2, "chat_id")."""
    text = ""
    for depth, part in enumerate(path):
        if isinstance(part, int):
            label: str | int = part
            if depth == 1 and path[0] in _NAMED_LISTS:
                item = _item(data, path[0], part)
                name = item.get("name") if isinstance(item, dict) else None
                if isinstance(name, str) and name:
                    label = name
            text += f"[{label}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _item(data: Any, key: str | int, index: int) -> Any:
    items = data.get(key) if isinstance(data, dict) else None
    if isinstance(items, list) and 0 <= index < len(items):
        return items[index]
    return None


def _line_of(path: Path, lines: dict[Path, int]) -> int | None:
    """The YAML line of `path`, or of the closest enclosing node that has one."""
    for end in range(len(path), 0, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


def line_marks(text: str) -> dict[Path, int]:
    """Each key's and list item's line (1-based) in a YAML document, by its path."""
    lines: dict[Path, int] = {}
    root = yaml.compose(text, Loader=yaml.SafeLoader)

    def walk(node: yaml.Node, path: Path) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                lines.setdefault(child, key.start_mark.line + 1)
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, value in enumerate(node.value):
                child = (*path, index)
                lines.setdefault(child, value.start_mark.line + 1)
                walk(value, child)

    if root is not None:
        walk(root, ())
    return lines


def _pydantic_problems(error: ValidationError, prefix: Path = ()) -> list[tuple[Path, str]]:
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        # (A dataclass such as SourceConfig names an unknown field "unexpected_keyword_argument".)
        if item["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            message = "unknown field (check the spelling against config/newsbot.example.yaml)"
        elif item["type"] == "tuple_type":  # tuples hold the lists of a frozen source
            message = "should be a list"
        elif item["type"] == "missing":
            message = "required field is missing"
        # Union members and validators add their own names to a location; keep the data's.
        loc = tuple(p for p in item["loc"] if isinstance(p, int) or "[" not in str(p))
        problems.append(((*prefix, *loc), message))
    return problems


def _validate_target(
    index: int, raw: dict[str, Any]
) -> tuple[TargetSettings | None, list[tuple[Path, str]]]:
    where: Path = ("targets", index)
    platform = raw.get("platform")
    if not isinstance(platform, str):
        return None, [
            ((*where, "platform"), f"required; one of: {', '.join(available_platforms())}")
        ]
    try:
        settings_model = adapter_class(platform).Settings
    except ValueError as exc:
        return None, [((*where, "platform"), str(exc))]
    try:
        return settings_model.model_validate(raw), []
    except ValidationError as exc:
        return None, _pydantic_problems(exc, where)


def validate(
    data: Any,
    origin: str = "config",
    environ: dict[str, str] | None = None,
    resolve_secrets: bool = True,
    lines: dict[Path, int] | None = None,
) -> Config:
    """Validate parsed YAML. Raises ConfigError listing every problem found, each named by
    the item it is in and, given `lines` (see line_marks), its line in `origin`."""
    if not isinstance(data, dict):
        raise ConfigError([Problem("", "the file must be a YAML mapping")], origin)
    found: list[tuple[Path, str]] = []
    try:
        file = ConfigFile.model_validate(data)
    except ValidationError as exc:
        found.extend(_pydantic_problems(exc))
        file = None
    raw_targets = data.get("targets") if isinstance(data.get("targets"), list) else []
    #: Valid targets with their position in the YAML list (names may repeat).
    valid: list[tuple[int, TargetSettings]] = []
    for index, raw in enumerate(raw_targets):
        if not isinstance(raw, dict):
            found.append((("targets", index), "must be a mapping"))
            continue
        settings, target_problems = _validate_target(index, raw)
        found.extend(target_problems)
        if settings is not None:
            valid.append((index, settings))
        elif resolve_secrets:
            found.extend(_unresolvable_secrets(index, raw, environ))
    found.extend(_cross_checks(data, lines or {}, origin))
    found.extend(_check_database(data.get("database", "sqlite:///newsbot.db")))
    outlet = file.outlet if file is not None else Outlet()
    found.extend(_check_templates(raw_targets, valid, outlet))
    secrets: dict[str, dict[str, Secret]] = {}
    tokens: dict[str, Secret] = {}
    if resolve_secrets:
        for index, target in valid:
            secrets[target.name] = {}
            for name, ref in target.secret_fields().items():
                try:
                    secrets[target.name][name] = ref.resolve(environ)
                except LookupError as exc:
                    found.append((("targets", index, name), str(exc)))
        for name in ("push_token", "metrics_token"):
            ref = getattr(file.http, name) if file is not None else None
            if ref is None:
                continue
            try:
                tokens[name] = ref.resolve(environ)
            except LookupError as exc:
                found.append((("http", name), str(exc)))
        if file is not None and file.desk.enabled:
            try:
                ref = file.desk.secret_key
                tokens["desk"] = ref.resolve(environ) if ref else _no_desk_key()
                if len(tokens["desk"].get()) < 32:
                    found.append((("desk", "secret_key"), "use at least 32 characters"))
            except LookupError as exc:
                found.append((("desk", "secret_key"), str(exc)))
    editors, editor_secrets = _validate_editors(
        data.get("editors"), found, environ, resolve_secrets
    )
    if found or file is None:
        raise ConfigError(_problems(found, data, lines, origin), origin)
    return Config(
        file=file,
        targets=[target for _, target in valid],
        secrets=secrets,
        push_token=tokens.get("push_token"),
        metrics_token=tokens.get("metrics_token"),
        editors=editors,
        editor_secrets=editor_secrets,
        desk_secret=tokens.get("desk"),
    )


def _no_desk_key() -> Secret:
    raise LookupError("required when desk.enabled: {env: NAME} or {file: /path}")


def _problems(
    found: list[tuple[Path, str]], data: Any, lines: dict[Path, int] | None, origin: str
) -> list[Problem]:
    """Named, line-marked problems in the order of the file (one per place and message)."""
    problems: list[Problem] = []
    seen: set[tuple[Path, str]] = set()
    ordered = sorted(
        enumerate(found), key=lambda item: (_line_of(item[1][0], lines or {}) or 0, item[0])
    )
    for _, (path, message) in ordered:
        if (path, message) in seen:
            continue
        seen.add((path, message))
        line = _line_of(path, lines) if lines else None
        where = f"{origin}:{line}" if line else ""
        problems.append(Problem(_display(path, data), message, where))
    return problems


def _validate_editors(
    raw: Any, found: list[tuple[Path, str]], environ: dict[str, str] | None, resolve: bool
) -> tuple[Any, dict[str, Secret]]:
    if not isinstance(raw, dict):
        return None, {}
    try:
        settings_model = console_class(str(raw.get("platform", "telegram"))).Settings
        settings = settings_model.model_validate(raw)
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            found.extend(_pydantic_problems(exc, ("editors",)))
        else:
            found.append((("editors", "platform"), str(exc)))
        return None, {}
    secrets: dict[str, Secret] = {}
    if resolve:
        for name in type(settings).model_fields:
            ref = getattr(settings, name)
            if isinstance(ref, SecretRef):
                try:
                    secrets[name] = ref.resolve(environ)
                except LookupError as exc:
                    found.append((("editors", name), str(exc)))
    return settings, secrets


SAMPLE_ARTICLE = Article(
    url="https://newsroom.example/en/news/12345-sample-headline",
    title="Sample headline for checking templates",
    source="check",
    lead="A sample lead sentence. It has two sentences.",
    image_url="https://newsroom.example/images/sample.jpg",
    language="en",
    author="Sample Author",
    categories=("World",),
    tags=("sample",),
)


def _check_templates(
    raw_targets: list[Any], valid: list[tuple[int, TargetSettings]], outlet: Outlet
) -> list[tuple[Path, str]]:
    """Render each custom template once: one that drops the article link is refused now,
    not when the first post would leave. A target whose other fields are wrong still has its
    template's syntax checked, so that mistake shows in the same run."""
    found: list[tuple[Path, str]] = []
    checked = set()
    for index, target in valid:
        checked.add(index)
        if not target.template:
            continue
        where: Path = ("targets", index, "template")
        adapter = adapter_class(target.platform)(target, {}, outlet)
        for sample in (SAMPLE_ARTICLE, replace(SAMPLE_ARTICLE, image_url=None)):
            rendered = render_for(adapter, sample)
            if not isinstance(rendered, RenderProblem):
                continue
            if rendered.kind is ProblemKind.NO_LINK:
                how = "{{ link() }}" if adapter.hyperlinks else "{{ url }}"
                found.append((where, f"the post must carry the article link: add {how}"))
            else:
                found.append((where, rendered.message))
            break
    for index, raw in enumerate(raw_targets):
        if index in checked or not isinstance(raw, dict):
            continue
        template = raw.get("template")
        if isinstance(template, str):
            from jinja2 import TemplateSyntaxError  # here: only a config with templates needs it
            from jinja2.sandbox import SandboxedEnvironment

            try:
                SandboxedEnvironment().parse(template)
            except TemplateSyntaxError as exc:
                found.append(
                    (
                        ("targets", index, "template"),
                        f"template does not compile (line {exc.lineno}): {exc.message}",
                    )
                )
    return found


def _unresolvable_secrets(
    index: int, raw: dict[str, Any], environ: dict[str, str] | None
) -> list[tuple[Path, str]]:
    """Secret references of a target that failed validation: still report missing ones."""
    found: list[tuple[Path, str]] = []
    for name, value in raw.items():
        if isinstance(value, dict) and value and set(value) <= {"env", "file"}:
            try:
                SecretRef.model_validate(value).resolve(environ)
            except (LookupError, ValidationError) as exc:
                found.append((("targets", index, name), str(exc)))
    return found


def _names(data: dict[str, Any], key: str) -> list[tuple[int, str]]:
    """(position, name) of every item of a top-level list that has a string name, valid or
    not: a mistake elsewhere in an item must not make other parts report it as unknown."""
    items = data.get(key)
    if not isinstance(items, list):
        return []
    return [
        (index, item["name"])
        for index, item in enumerate(items)
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    ]


def _duplicates(
    data: dict[str, Any], key: str, lines: dict[Path, int], origin: str
) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    first: dict[str, int] = {}
    for index, name in _names(data, key):
        if name not in first:
            first[name] = index
            continue
        line = lines.get((key, first[name]))
        earlier = f"{origin}:{line}" if line else f"item {first[name] + 1} of {key}"
        found.append(
            (
                (key, index, "name"),
                f"{key[:-1]} name {name!r} is used more than once (first at {earlier})",
            )
        )
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _cross_checks(
    data: dict[str, Any], lines: dict[Path, int], origin: str
) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for key in _NAMED_LISTS:
        found.extend(_duplicates(data, key, lines, origin))
    source_names = [name for _, name in _names(data, "sources")]
    target_names = [name for _, name in _names(data, "targets")]
    for index, raw in enumerate(_as_list(data.get("targets"))):
        if not isinstance(raw, dict):
            continue
        for source in _as_list(raw.get("sources")):
            if source not in source_names:
                found.append(
                    (
                        ("targets", index, "sources"),
                        f"no source named {source!r}; sources are: " + ", ".join(source_names),
                    )
                )
    has_editors = isinstance(data.get("editors"), dict)
    for index, rule in enumerate(_as_list(data.get("rules"))):
        if not isinstance(rule, dict):
            continue
        for name in _as_list(rule.get("targets")):
            if name not in target_names:
                found.append(
                    (
                        ("rules", index, "targets"),
                        f"no target named {name!r}; targets are: " + ", ".join(target_names),
                    )
                )
        match = rule.get("match")
        for name in _as_list(match.get("sources") if isinstance(match, dict) else None):
            if name not in source_names:
                found.append(
                    (
                        ("rules", index, "match", "sources"),
                        f"no source named {name!r}; sources are: " + ", ".join(source_names),
                    )
                )
        if rule.get("approval") is True and not has_editors:
            found.append(
                (
                    ("rules", index, "approval"),
                    "approval needs an editors' chat to ask in: add an `editors:` section"
                    " (see config/newsbot.example.yaml) or remove `approval: true`",
                )
            )
    timezone = data.get("timezone", "UTC")
    try:
        ZoneInfo(str(timezone))
    except (ValueError, ZoneInfoNotFoundError):
        found.append((("timezone",), f"unknown time zone {timezone!r} (e.g. Asia/Baku)"))
    return found


def _check_database(url: Any) -> list[tuple[Path, str]]:
    """The database URL parses, names a supported database, and for SQLite the file's folder
    exists and is writable. Nothing is created."""
    where: Path = ("database",)
    hint = "write e.g. sqlite:///newsbot.db or postgresql://user@host/db"
    if not isinstance(url, str):
        return [(where, f"must be a database URL; {hint}")]
    try:
        parsed = DatabaseURL.parse(url)
    except InvalidDatabaseURL as error:
        shown = repr(url) if "@" not in url else "the URL"  # it may hold a password
        reason = "" if str(error) == NOT_A_URL else f" ({error})"
        return [(where, f"{shown} is not a database URL{reason}; {hint}")]
    backend, driver = parsed.backend, parsed.driver
    if backend not in DRIVERS:
        return [(where, f"unsupported database {backend!r}; {hint}")]
    if driver not in DRIVERS[backend]:
        return [(where, f"unsupported {backend} driver {driver!r}; {hint}")]
    if backend != "sqlite":
        return []
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return []
    file = FilePath(database)
    folder = file.parent
    if not folder.is_dir():
        return [(where, f"folder {str(folder)!r} does not exist: create it or fix the path")]
    if file.exists():
        if not os.access(file, os.R_OK | os.W_OK):
            return [(where, f"{database!r} exists but is not readable and writable")]
    elif not os.access(folder, os.W_OK | os.X_OK):
        return [(where, f"folder {str(folder)!r} is not writable: the database cannot be made")]
    return []


def load(
    path: str | FilePath, environ: dict[str, str] | None = None, resolve_secrets: bool = True
) -> Config:
    """Read and validate a YAML config file; problems name their line in it."""
    path = FilePath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem("", f"cannot read {path}: {exc.strerror}")], str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem("", f"{path} is not UTF-8 text")], str(path)) from None
    return load_text(text, str(path), environ, resolve_secrets)


def load_text(
    text: str, origin: str, environ: dict[str, str] | None = None, resolve_secrets: bool = True
) -> Config:
    """Validate the text of a config file (as `load` does; the desk's edits are checked this
    way before they are written); problems name their line in `origin`."""
    try:
        data = yaml.safe_load(text)
        lines = line_marks(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark else ""
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem("", f"invalid YAML{at}: {problem}", where)], origin) from None
    if isinstance(data, dict):
        env = os.environ if environ is None else environ
        # The container sets the database location; the YAML stays the same everywhere.
        if env.get("NEWSBOT_DATABASE"):
            data["database"] = env["NEWSBOT_DATABASE"]
            lines.pop(("database",), None)
    return validate(data, origin, environ, resolve_secrets, lines)
