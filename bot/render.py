"""Rendering and the attribution guard as one step: every place that turns an article into a
post (planning deliveries, preview, check-config, follow-up edits) calls `render_for`, and
the editors' desk checks an edited post with `guard`. No path renders without the guard."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from bot.attribution import AttributionMissing, check_attribution
from bot.models import Article, RenderedPost
from bot.templates import TemplateProblem

if TYPE_CHECKING:
    from adapters import Adapter

log = logging.getLogger("newsbot.render")


class ProblemKind(StrEnum):
    #: The post does not carry the article link the way the platform needs it.
    NO_LINK = "no-link"
    #: The target's template does not compile or cannot render.
    TEMPLATE = "template"
    #: The adapter failed to render (a bug or an article it cannot handle).
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RenderProblem:
    """Why there is no post: what kind of problem, and a one-line message naming it."""

    kind: ProblemKind
    message: str


def guard(post: RenderedPost, hyperlinks: bool) -> RenderedPost | RenderProblem:
    """`post` if it carries its article link (as a hyperlink where `hyperlinks`), else why not."""
    try:
        check_attribution(post, hyperlinks)
    except AttributionMissing as exc:
        return RenderProblem(ProblemKind.NO_LINK, str(exc))
    return post


def render_for(adapter: Adapter, article: Article) -> RenderedPost | RenderProblem:
    """The post `adapter` makes of `article`, checked by the attribution guard, or the problem."""
    try:
        post = adapter.render(article)
    except TemplateProblem as exc:
        return RenderProblem(ProblemKind.TEMPLATE, str(exc))
    except Exception as exc:
        log.exception("target %s: cannot render %s", adapter.name, article.url)
        return RenderProblem(ProblemKind.FAILED, f"render failed: {type(exc).__name__}: {exc}")
    return guard(post, adapter.hyperlinks)
