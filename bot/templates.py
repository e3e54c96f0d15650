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

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

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


def _finalize_for(dialect: Dialect) -> Callable[[object], str]:
    def finalize(value: object) -> str:
        if isinstance(value, Markup):
            return str(value)
        return dialect.escape("" if value is None else str(value))

    return finalize


#: Resource limits of an editor's template (a post is a few hundred characters): its
#: rendered output, any string or list it builds, any number it passes, and its loops.
MAX_OUTPUT_CHARS = 20_000
MAX_VALUE_SIZE = 10_000
MAX_RANGE = 1_000
MAX_TEMPLATE_CHARS = 20_000
#: Filters that would let a template put raw markup into a post (|safe, |urlize's links,
#: |xmlattr) or format with an unbounded width (|format, |center, |indent, |wordwrap).
REFUSED_FILTERS = ("safe", "urlize", "xmlattr", "format", "center", "indent", "wordwrap")
_REFUSED_METHODS = frozenset({"format", "format_map", "center", "ljust", "rjust", "zfill",
                              "expandtabs"})  # fmt: skip


def _too_big(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return abs(value) > MAX_VALUE_SIZE
    if isinstance(value, str | list | tuple | bytes):
        return len(value) > MAX_VALUE_SIZE
    return False


class PostSandbox(SandboxedEnvironment):
    """Jinja2's sandbox with resource limits: no huge values ('x' * 300000000, 9 ** 99999,
    '%300000000s'), no unbounded ranges, no raw-markup filters."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed in a template")
        if operator in ("*", "**") and (_too_big(left) or _too_big(right)):
            raise SecurityError(f"a value in {operator} is over the template limit")
        if operator == "*":
            sized, count = (left, right) if isinstance(right, int) else (right, left)
            if (
                isinstance(sized, str | list | tuple)
                and isinstance(count, int)
                and len(sized) * count > MAX_VALUE_SIZE
            ):
                raise SecurityError("a repeated value is over the template limit")
        result = super().call_binop(context, operator, left, right)
        if _too_big(result) and not isinstance(result, str | list | tuple):
            raise SecurityError(f"the result of {operator} is over the template limit")
        return result

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(__obj, "__name__", "")
        # The sandbox hands out str.format as a wrapper without __self__: refused by name.
        owner = getattr(__obj, "__self__", None)
        if name in _REFUSED_METHODS and (isinstance(owner, str) or name.startswith("format")):
            raise SecurityError(f"str.{name} is not allowed in a template")
        if any(_too_big(a) for a in (*args, *kwargs.values()) if not isinstance(a, str)):
            raise SecurityError(f"an argument of {name or 'a call'} is over the template limit")
        return super().call(__context, __obj, *args, **kwargs)


def _limited_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range over {MAX_RANGE} items is not allowed in a template")
    return numbers


@lru_cache(maxsize=64)
def _environment(dialect: Dialect) -> SandboxedEnvironment:
    env = PostSandbox(
        autoescape=False,
        finalize=_finalize_for(dialect),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
    )
    for name in REFUSED_FILTERS:
        env.filters.pop(name, None)
    env.globals["range"] = _limited_range
    env.globals.pop("lipsum", None)
    return env


def _check_shape(tree: nodes.Template) -> None:
    """Loops one level deep at most, no recursion, no macros: with bounded values and
    ranges, a template's work is then bounded by its size."""
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            raise TemplateProblem("recursive loops are not allowed in a template")
        if any(True for _ in loop.find_all(nodes.For)):
            raise TemplateProblem("loops inside loops are not allowed in a template")
    for kind in (nodes.Macro, nodes.CallBlock):
        if any(True for _ in tree.find_all(kind)):
            raise TemplateProblem("macros are not allowed in a template")


@lru_cache(maxsize=256)
def compile_template(source: str, dialect: Dialect):
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateProblem(f"template is over {MAX_TEMPLATE_CHARS} characters")
    env = _environment(dialect)
    try:
        _check_shape(env.parse(source))
        return env.from_string(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        message = exc.message or str(exc)
        if "No filter named" in message and any(f"'{n}'" in message for n in REFUSED_FILTERS):
            message += " (raw markup and unbounded formatting are not allowed in a template)"
        raise TemplateProblem(f"template does not compile{where}: {message}") from None


def _render_bounded(template: Any, values: dict[str, Any]) -> str:
    """Render with an output limit: the generator stops as soon as the text is too long."""
    chunks, size = [], 0
    for chunk in template.generate(**values):
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise TemplateProblem(f"template output is over {MAX_OUTPUT_CHARS} characters")
        chunks.append(chunk)
    return "".join(chunks)


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

        try:
            text = _render_bounded(
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
        except TemplateError as exc:
            raise TemplateProblem(f"template cannot render: {exc}") from None
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
