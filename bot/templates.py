"""Editor-written post templates: Jinja2 in a sandbox, escaped and measured per platform.

Every `{{ value }}` is escaped for the platform (HTML for Telegram, nothing for plain-text
platforms) unless it is the output of a helper such as `link()`. The lead, then the headline,
are shortened until the rendered post fits the platform's limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bot.models import Article
from bot.text import hashtags as make_hashtags
from bot.text import squash_spaces, trim_text
from bot.urls import add_query_params


@dataclass(frozen=True)
class Dialect:
    """How one platform writes text: escaping, links, what a reader sees, and its limit."""

    name: str
    escape: Callable[[str], str]
    link: Callable[[str, str], str]
    visible: Callable[[str], str]
    measure: Callable[[str], int]
    limit: int
    #: What `measure` counts, for people reading a length ("312/280 weighted units").
    unit: str = "characters"


class TemplateProblem(ValueError):
    """A template that does not compile or cannot render; the message says where."""


#: Resource limits of an editor's template (a post is a few hundred characters): its
#: rendered output, any string or list it builds, any number it passes, and its loops.
MAX_OUTPUT_CHARS = 20_000
MAX_VALUE_SIZE = 10_000
MAX_RANGE = 1_000
MAX_TEMPLATE_CHARS = 20_000
#: Filters that would let a template put raw markup into a post (|safe, |urlize's links,
#: |xmlattr) or format with an unbounded width (|format, |center, |indent, |wordwrap).
REFUSED_FILTERS = ("safe", "urlize", "xmlattr", "format", "center", "indent", "wordwrap")


@lru_cache(maxsize=256)
def compile_template(source: str, dialect: Dialect) -> Any:
    """The compiled template (TemplateProblem if it does not compile or breaks a rule).
    Jinja2 is imported here, at the first template: a config without templates never
    loads it."""
    from bot.template_sandbox import compile_source

    return compile_source(source, dialect)


def article_url(article: Article, utm: dict[str, str]) -> str:
    return add_query_params(article.url, utm) if utm else article.url


def render_template(
    source: str,
    article: Article,
    dialect: Dialect,
    *,
    outlet: str,
    utm: dict[str, str] | None = None,
    max_hashtags: int = 3,
    tags: list[str] | None = None,
    category_emoji: dict[str, str] | None = None,
) -> str:
    """Render `source` for `article`, trimming lead then headline to fit `dialect.limit`.

    `tags`: the hashtags chosen for the target (Adapter.hashtags_for); else the first
    `max_hashtags` of the article's categories and tags.
    """
    from bot.template_sandbox import Markup, render_bounded

    template = compile_template(source, dialect)
    url = article_url(article, utm or {})
    if tags is None:
        tags = make_hashtags([*article.categories, *article.tags], max_hashtags)
    emoji_map = {k.casefold(): v for k, v in (category_emoji or {}).items()}
    emoji = next(
        (emoji_map[c.casefold()] for c in article.categories if c.casefold() in emoji_map), ""
    )

    def render(title: str, lead: str) -> str:
        def link(label: str | None = None) -> Markup:
            return Markup(dialect.link(url, label or outlet))

        text = render_bounded(
            template,
            dict(
                title=title,
                lead=lead,
                url=url,
                link=link,
                hashtags=" ".join(tags),
                hashtag_list=tags,
                emoji=emoji,
                outlet=outlet,
                author=article.author or "",
                category=article.categories[0] if article.categories else "",
                categories=list(article.categories),
                tags=list(article.tags),
                language=article.language or "",
                published=article.published.isoformat() if article.published else "",
            ),
        )
        return "\n".join(line.rstrip() for line in text.strip().splitlines())

    def size(text: str) -> int:
        return dialect.measure(dialect.visible(text))

    title, lead = squash_spaces(article.title), squash_spaces(article.lead)
    text = render(title, lead)
    if size(text) <= dialect.limit:
        return text
    fixed = size(render(title, ""))
    if fixed < dialect.limit:
        room = dialect.limit - fixed
        return render(title, _fit(lead, room, lambda s: size(render(title, s)) - fixed, dialect))
    room = dialect.limit - size(render("", ""))
    title = _fit(title, room, lambda s: size(render(s, "")) - size(render("", "")), dialect)
    return render(title, "")


def _fit(text: str, room: int, cost: Callable[[str], int], dialect: Dialect) -> str:
    """The longest trim of `text` whose rendered cost fits `room`."""
    budget = room
    for _ in range(8):  # escaping can make a trimmed text cost more than its own length
        candidate = trim_text(text, max(budget, 0), dialect.measure)
        if cost(candidate) <= room:
            return candidate
        budget -= max(1, cost(candidate) - room)
    return ""
