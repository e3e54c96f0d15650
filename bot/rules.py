"""Routing rules: which articles go to which targets, with what urgency and approval. Pure.

Rules are checked in order. A matching rule adds its targets (or, with `action: skip`,
removes the article from them); `stop: true` makes the first match final. Without rules,
each target's own `sources` / `languages` filters decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.config_types import parse_duration
from bot.models import Article
from bot.routing import targets_for
from bot.targets import TargetSettings


def _fold(values: Sequence[str]) -> list[str]:
    return [v.casefold().strip() for v in values if v.strip()]


class Match(BaseModel):
    """Conditions of a rule; every one given must hold (lists: any of their values)."""

    model_config = ConfigDict(extra="forbid")

    sources: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    authors: list[str] = Field(default_factory=list)
    #: Words or phrases looked for in the headline and lead (case-insensitive).
    keywords: list[str] = Field(default_factory=list)
    exclude_keywords: list[str] = Field(default_factory=list)
    exclude_categories: list[str] = Field(default_factory=list)
    exclude_tags: list[str] = Field(default_factory=list)

    def matches(self, article: Article) -> bool:
        text = f"{article.title}\n{article.lead}".casefold()
        categories = set(_fold(article.categories))
        tags = set(_fold(article.tags))
        language = (article.language or "").split("-")[0].casefold()
        checks = [
            not self.sources or article.source in self.sources,
            not self.languages or language in {x.split("-")[0] for x in _fold(self.languages)},
            not self.categories or bool(categories & set(_fold(self.categories))),
            not self.tags or bool(tags & set(_fold(self.tags))),
            not self.authors or (article.author or "").casefold() in _fold(self.authors),
            not self.keywords or any(k in text for k in _fold(self.keywords)),
            not any(k in text for k in _fold(self.exclude_keywords)),
            not categories & set(_fold(self.exclude_categories)),
            not tags & set(_fold(self.exclude_tags)),
        ]
        return all(checks)


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    match: Match = Match()
    targets: list[str] = Field(default_factory=list)
    action: Literal["post", "skip"] = "post"
    #: Breaking news skips publication delays and quiet hours, and jumps the queue.
    breaking: bool = False
    #: Send a preview to the editors' chat instead of posting.
    approval: bool = False
    stop: bool = False
    #: With approval: what happens to a preview nobody answers within `approval_timeout`.
    approval_timeout: float = 3600.0
    approval_default: Literal["post", "skip"] = "skip"
    #: When the article is taken down after posting: delete the posts, or flag them.
    on_takedown: Literal["delete", "flag"] | None = None

    _timeout = field_validator("approval_timeout", mode="before")(parse_duration)


@dataclass(frozen=True)
class Route:
    target: str
    rule: str | None
    breaking: bool = False
    approval: bool = False


def route(
    article: Article, rules: Sequence[Rule], targets: Sequence[TargetSettings]
) -> list[Route]:
    """The targets this article goes to, each with the rule that sent it there."""
    enabled = {t.name for t in targets if t.enabled}
    if not rules:
        return [Route(t.name, None) for t in targets_for(article, targets)]
    chosen: dict[str, Route] = {}
    skipped: set[str] = set()
    for rule in rules:
        if not rule.match.matches(article):
            continue
        names = rule.targets or sorted(enabled)
        if rule.action == "skip":
            skipped.update(names)
        else:
            for name in names:
                if name in enabled and name not in skipped and name not in chosen:
                    chosen[name] = Route(name, rule.name, rule.breaking, rule.approval)
        if rule.stop:
            break
    return [r for name, r in chosen.items() if name not in skipped]
