"""Editors' templates in Jinja2's sandbox, with resource limits (for bot.templates).

Imported when the first template is compiled, so a daemon whose targets use the default
layouts never loads Jinja2.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from bot.templates import (
    MAX_OUTPUT_CHARS,
    MAX_RANGE,
    MAX_TEMPLATE_CHARS,
    MAX_VALUE_SIZE,
    REFUSED_FILTERS,
    Dialect,
    TemplateProblem,
)

__all__ = ["Markup", "compile_source", "render_bounded"]

#: str methods a template may not call: unbounded widths or formatting.
_REFUSED_METHODS = frozenset({"format", "format_map", "center", "ljust", "rjust", "zfill",
                              "expandtabs"})  # fmt: skip


def _finalize_for(dialect: Dialect) -> Callable[[object], str]:
    def finalize(value: object) -> str:
        if isinstance(value, Markup):
            return str(value)
        return dialect.escape("" if value is None else str(value))

    return finalize


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


def compile_source(source: str, dialect: Dialect) -> Template:
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


def render_bounded(template: Template, values: dict[str, Any]) -> str:
    """Render with an output limit: the generator stops as soon as the text is too long."""
    chunks, size = [], 0
    try:
        for chunk in template.generate(**values):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateProblem(f"template output is over {MAX_OUTPUT_CHARS} characters")
            chunks.append(chunk)
    except TemplateError as exc:
        raise TemplateProblem(f"template cannot render: {exc}") from None
    return "".join(chunks)
