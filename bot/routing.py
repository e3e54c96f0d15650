"""Which targets take an article. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from bot.models import Article
from bot.targets import TargetSettings


def _language_matches(article: Article, languages: Sequence[str]) -> bool:
    lang = (article.language or "").lower().split("-")[0]
    return lang in {code.lower().split("-")[0] for code in languages}


def targets_for(article: Article, targets: Sequence[TargetSettings]) -> list[TargetSettings]:
    """Enabled targets whose source and language filters admit the article."""
    chosen = []
    for target in targets:
        if not target.enabled:
            continue
        if target.sources is not None and article.source not in target.sources:
            continue
        if target.languages is not None and not _language_matches(article, target.languages):
            continue
        chosen.append(target)
    return chosen
