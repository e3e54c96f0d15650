"""The YAML configuration: load, validate every part, and report all mistakes at once."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapters import adapter_class, available_platforms
from adapters.base import Outlet, TargetSettings
from bot.attribution import AttributionMissing, check_attribution
from bot.config_types import parse_duration
from bot.models import Article
from bot.rules import Rule
from bot.secrets import Secret, SecretRef
from bot.templates import TemplateProblem
from bot.webdesk.settings import DeskConfig
from consoles import console_class


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    type: Literal["feed", "sitemap"] = "feed"
    url: str
    interval: float = Field(default=60.0, description="seconds between polls")
    language: str | None = None
    enabled: bool = True
    #: Hosts (exact, or `*.suffix`) whose private or loopback addresses this source's
    #: article and image links may reach (SSRF guard; a public source may not otherwise).
    allow_hosts: list[str] = Field(default_factory=list)

    _interval = field_validator("interval", mode="before")(parse_duration)

    @field_validator("allow_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
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


@dataclass(frozen=True)
class Problem:
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


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


def _location(prefix: str, loc: tuple[Any, ...]) -> str:
    text = prefix
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _pydantic_problems(error: ValidationError, prefix: str = "") -> list[Problem]:
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling against config/newsbot.example.yaml)"
        elif item["type"] == "missing":
            message = "required field is missing"
        problems.append(Problem(_location(prefix, item["loc"]), message))
    return problems


def _validate_target(
    index: int, raw: dict[str, Any]
) -> tuple[TargetSettings | None, list[Problem]]:
    where = f"targets[{index}]"
    platform = raw.get("platform")
    if not isinstance(platform, str):
        return None, [
            Problem(
                f"{where}.platform",
                f"required; one of: {', '.join(available_platforms())}",
            )
        ]
    try:
        settings_model = adapter_class(platform).Settings
    except ValueError as exc:
        return None, [Problem(f"{where}.platform", str(exc))]
    try:
        return settings_model.model_validate(raw), []
    except ValidationError as exc:
        return None, _pydantic_problems(exc, where)


def validate(
    data: Any,
    origin: str = "config",
    environ: dict[str, str] | None = None,
    resolve_secrets: bool = True,
) -> Config:
    """Validate parsed YAML. Raises ConfigError listing every problem found."""
    if not isinstance(data, dict):
        raise ConfigError([Problem("", "the file must be a YAML mapping")], origin)
    problems: list[Problem] = []
    try:
        file = ConfigFile.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc))
        file = None
    raw_targets = data.get("targets") if isinstance(data.get("targets"), list) else []
    targets: list[TargetSettings] = []
    for index, raw in enumerate(raw_targets):
        if not isinstance(raw, dict):
            problems.append(Problem(f"targets[{index}]", "must be a mapping"))
            continue
        settings, found = _validate_target(index, raw)
        problems.extend(found)
        if settings is not None:
            targets.append(settings)
        elif resolve_secrets:
            problems.extend(_unresolvable_secrets(index, raw, environ))
    problems.extend(_cross_checks(data, targets))
    outlet = file.outlet if file is not None else Outlet()
    problems.extend(_check_templates(data, targets, outlet))
    secrets: dict[str, dict[str, Secret]] = {}
    tokens: dict[str, Secret] = {}
    if resolve_secrets:
        for index, target in enumerate(targets):
            secrets[target.name] = {}
            for field, ref in target.secret_fields().items():
                try:
                    secrets[target.name][field] = ref.resolve(environ)
                except LookupError as exc:
                    problems.append(Problem(f"targets[{index}].{field}", str(exc)))
        for name in ("push_token", "metrics_token"):
            ref = getattr(file.http, name) if file is not None else None
            if ref is None:
                continue
            try:
                tokens[name] = ref.resolve(environ)
            except LookupError as exc:
                problems.append(Problem(f"http.{name}", str(exc)))
        if file is not None and file.desk.enabled:
            try:
                ref = file.desk.secret_key
                tokens["desk"] = ref.resolve(environ) if ref else _no_desk_key()
                if len(tokens["desk"].get()) < 32:
                    problems.append(Problem("desk.secret_key", "use at least 32 characters"))
            except LookupError as exc:
                problems.append(Problem("desk.secret_key", str(exc)))
    editors, editor_secrets = _validate_editors(
        data.get("editors"), problems, environ, resolve_secrets
    )
    if problems or file is None:
        raise ConfigError(problems, origin)
    return Config(
        file=file,
        targets=targets,
        secrets=secrets,
        push_token=tokens.get("push_token"),
        metrics_token=tokens.get("metrics_token"),
        editors=editors,
        editor_secrets=editor_secrets,
        desk_secret=tokens.get("desk"),
    )


def _no_desk_key() -> Secret:
    raise LookupError("required when desk.enabled: {env: NAME} or {file: /path}")


def _validate_editors(
    raw: Any, problems: list[Problem], environ: dict[str, str] | None, resolve: bool
) -> tuple[Any, dict[str, Secret]]:
    if not isinstance(raw, dict):
        return None, {}
    try:
        settings_model = console_class(str(raw.get("platform", "telegram"))).Settings
        settings = settings_model.model_validate(raw)
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            problems.extend(_pydantic_problems(exc, "editors"))
        else:
            problems.append(Problem("editors.platform", str(exc)))
        return None, {}
    secrets: dict[str, Secret] = {}
    if resolve:
        for name in type(settings).model_fields:
            ref = getattr(settings, name)
            if isinstance(ref, SecretRef):
                try:
                    secrets[name] = ref.resolve(environ)
                except LookupError as exc:
                    problems.append(Problem(f"editors.{name}", str(exc)))
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
    data: dict[str, Any], targets: list[TargetSettings], outlet: Outlet
) -> list[Problem]:
    """Render each custom template once: one that drops the article link is refused now,
    not when the first post would leave."""
    problems = []
    raw_targets = data.get("targets") or []
    indexes = {raw.get("name"): i for i, raw in enumerate(raw_targets) if isinstance(raw, dict)}
    for target in targets:
        if not target.template:
            continue
        where = f"targets[{indexes.get(target.name, '?')}].template"
        adapter = adapter_class(target.platform)(target, {}, outlet)
        for sample in (SAMPLE_ARTICLE, replace(SAMPLE_ARTICLE, image_url=None)):
            try:
                check_attribution(adapter.render(sample), adapter.hyperlinks)
            except TemplateProblem as exc:
                problems.append(Problem(where, str(exc)))
                break
            except AttributionMissing:
                how = "{{ link() }}" if adapter.hyperlinks else "{{ url }}"
                problems.append(Problem(where, f"the post must carry the article link: add {how}"))
                break
    return problems


def _unresolvable_secrets(
    index: int, raw: dict[str, Any], environ: dict[str, str] | None
) -> list[Problem]:
    """Secret references of a target that failed validation: still report missing ones."""
    problems = []
    for name, value in raw.items():
        if isinstance(value, dict) and value and set(value) <= {"env", "file"}:
            try:
                SecretRef.model_validate(value).resolve(environ)
            except (LookupError, ValidationError) as exc:
                problems.append(Problem(f"targets[{index}].{name}", str(exc)))
    return problems


def _cross_checks(data: dict[str, Any], targets: list[TargetSettings]) -> list[Problem]:
    problems: list[Problem] = []
    source_names: list[str] = [
        s.get("name") for s in data.get("sources") or [] if isinstance(s, dict)
    ]
    for name in {n for n in source_names if source_names.count(n) > 1}:
        problems.append(Problem("sources", f"source name {name!r} is used more than once"))
    target_names = [t.name for t in targets]
    for name in {n for n in target_names if target_names.count(n) > 1}:
        problems.append(Problem("targets", f"target name {name!r} is used more than once"))
    for index, target in enumerate(targets):
        for source in target.sources or []:
            if source not in source_names:
                problems.append(
                    Problem(
                        f"targets[{index}].sources",
                        f"no source named {source!r}; sources are: "
                        + ", ".join(map(str, source_names)),
                    )
                )
    for index, rule in enumerate(data.get("rules") or []):
        if not isinstance(rule, dict):
            continue
        for name in rule.get("targets") or []:
            if name not in target_names:
                problems.append(
                    Problem(
                        f"rules[{index}].targets",
                        f"no target named {name!r}; targets are: " + ", ".join(target_names),
                    )
                )
    timezone = data.get("timezone", "UTC")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(str(timezone))
    except Exception:
        problems.append(Problem("timezone", f"unknown time zone {timezone!r} (e.g. Asia/Baku)"))
    return problems


def load(
    path: str | Path, environ: dict[str, str] | None = None, resolve_secrets: bool = True
) -> Config:
    """Read and validate a YAML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem("", f"cannot read {path}: {exc.strerror}")], str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(where, f"invalid YAML: {problem}")], str(path)) from None
    if isinstance(data, dict):
        env = os.environ if environ is None else environ
        # The container sets the database location; the YAML stays the same everywhere.
        if env.get("NEWSBOT_DATABASE"):
            data["database"] = env["NEWSBOT_DATABASE"]
    return validate(data, str(path), environ, resolve_secrets)
