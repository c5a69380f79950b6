"""Rendering message bodies: Jinja2 in a sandbox, restricted to what an SMS needs.

Bodies are written by officials and rendered for every recipient, so a body may only
print variables, use a few string filters, test, branch, and loop over a variable.
Everything that could reach Python objects or burn CPU and memory (attribute access
to private names, calls, imports, arithmetic, nested loops) is refused when the body
is validated, and again, for defence in depth, when it is first compiled for
rendering. SMS is plain text: no autoescaping.
"""

from __future__ import annotations

import difflib
import functools
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_RENDERED: Final = 2000
"""Longest rendered text, in characters; Twilio itself refuses bodies over 1600."""

ALLOWED_FILTERS: Final = frozenset(
    {
        "capitalize",
        "count",
        "d",
        "default",
        "first",
        "last",
        "length",
        "lower",
        "string",
        "title",
        "trim",
        "truncate",
        "upper",
    }
)

_FORBIDDEN_TAGS: Final[dict[type[nodes.Node], str]] = {
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Include: "{% include %}",
    nodes.Extends: "{% extends %}",
    nodes.Macro: "{% macro %}",
    nodes.CallBlock: "{% call %}",
    nodes.AssignBlock: "{% set %}...{% endset %}",
}

_ARITHMETIC: Final = (
    nodes.Add,
    nodes.Sub,
    nodes.Mul,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Mod,
    nodes.Pow,
    nodes.Neg,
    nodes.Pos,
)


def _printable(value: object) -> object:
    """What ``{{ }}`` prints: a value, never the address of a method or function (an
    undefined variable is left for Jinja to report)."""
    if callable(value) and not isinstance(value, jinja2.Undefined):
        raise TemplateError(
            "a method is printed instead of its result: use a filter, "
            "e.g. {{ name | upper }}, not {{ name.upper }}"
        )
    return value


_env: Final = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    finalize=_printable,
    autoescape=False,
    trim_blocks=True,
    cache_size=0,  # compiled templates are cached by _compile below
)
# No globals (range, lipsum, cycler, ...) and only the allowed filters: what the
# validator lets through is all the environment offers.
_env.globals.clear()
_env.filters = {name: f for name, f in _env.filters.items() if name in ALLOWED_FILTERS}


class TemplateError(ValueError):
    """A template that cannot be used, with where and why.

    ``str()`` reads ``variant 'lo', line 2: unknown variable 'hotlin'`` or, once a
    template file is being parsed,
    ``covid-handwashing.yaml: variants.lo: line 1: unknown variable 'x'``.
    ``errors`` holds the individual errors when several files failed at once.
    """

    def __init__(
        self,
        reason: str,
        *,
        language: str | None = None,
        line: int | None = None,
        origin: str | None = None,
        field: str | None = None,
        errors: Iterable[TemplateError] = (),
    ) -> None:
        self.reason = reason
        self.language = language
        self.line = line
        self.origin = origin
        self.field = field
        self.errors: tuple[TemplateError, ...] = tuple(errors)
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [p for p in (self.origin, self.field) if p]
        where = []
        if self.field is None and self.language is not None:
            where.append(f"variant {self.language!r}")
        if self.line is not None:
            where.append(f"line {self.line}")
        if where:
            parts.append(", ".join(where))
        parts.append(self.reason)
        return ": ".join(parts)

    def __str__(self) -> str:
        return self._message()

    def located(
        self, *, origin: str | None = None, field: str | None = None, language: str | None = None
    ) -> TemplateError:
        """A copy of this error that also names the file, the field and the language."""
        return TemplateError(
            self.reason,
            language=language if language is not None else self.language,
            line=self.line,
            origin=origin if origin is not None else self.origin,
            field=field if field is not None else self.field,
            errors=self.errors,
        )


def _subscript(node: nodes.Getitem) -> Iterator[str]:
    arg = node.arg
    if isinstance(arg, nodes.Const):
        if isinstance(arg.value, str) and arg.value.startswith("_"):
            yield f"access to {arg.value!r} is not allowed"
    elif not isinstance(arg, nodes.Slice):
        yield "only constant subscripts are allowed ({{ x[0] }})"


def _filter(name: str) -> Iterator[str]:
    if name not in ALLOWED_FILTERS:
        yield f"filter {name!r} is not allowed (allowed: {', '.join(sorted(ALLOWED_FILTERS))})"


def _loop(node: nodes.For, in_loop: bool) -> Iterator[str]:
    if not isinstance(node.iter, nodes.Name):
        yield "a loop may only go over a variable ({% for x in items %})"
    if in_loop:
        yield "loops inside loops are not allowed"
    if node.recursive:
        yield "recursive loops are not allowed"


def _simple(expr: nodes.Node | None) -> bool:
    """A value that is no longer than what it reads: a constant, a variable, a
    subscript or filter of one, or a choice between such values."""
    if expr is None or isinstance(expr, nodes.Name | nodes.Const):
        return True
    if isinstance(expr, nodes.Getitem):
        return _simple(expr.node)
    if isinstance(expr, nodes.Filter):
        return _simple(expr.node) and all(_simple(arg) for arg in expr.args)
    if isinstance(expr, nodes.CondExpr):
        return _simple(expr.expr1) and _simple(expr.expr2)
    return False


def _binding(node: nodes.Assign | nodes.With) -> Iterator[str]:
    # Bindings built from bindings could double a text on every line
    # ({% set b = a ~ a %}{% set c = b ~ b %}...) without ever printing it.
    values = [node.node] if isinstance(node, nodes.Assign) else node.values
    if not all(_simple(value) for value in values):
        yield "{% set %} and {% with %} may only hold a variable, a constant or a filtered variable"


def _problems(node: nodes.Node, in_loop: bool) -> Iterator[str]:
    """Why ``node`` itself (not its children) may not appear in a message body."""
    for tag_type, tag in _FORBIDDEN_TAGS.items():
        if isinstance(node, tag_type):
            yield f"{tag} is not allowed in a message"
    if isinstance(node, nodes.Call):
        yield "calls are not allowed in a message (use a filter: {{ x|upper }})"
    elif isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        yield f"access to {node.attr!r} is not allowed"
    elif isinstance(node, nodes.Getitem):
        yield from _subscript(node)
    elif isinstance(node, nodes.Filter):
        yield from _filter(node.name)
    elif isinstance(node, nodes.FilterBlock):
        yield from _filter(node.filter.name)
    elif isinstance(node, _ARITHMETIC):
        yield "arithmetic is not allowed in a message"
    elif isinstance(node, nodes.For):
        yield from _loop(node, in_loop)
    elif isinstance(node, nodes.Assign | nodes.With):
        yield from _binding(node)


def _walk(node: nodes.Node, in_loop: bool = False) -> Iterator[tuple[int, str]]:
    """(line, reason) for every construct in ``node``'s tree a message body may not use."""
    for reason in _problems(node, in_loop):
        yield node.lineno, reason
    child_in_loop = in_loop or isinstance(node, nodes.For)
    for child in node.iter_child_nodes():
        yield from _walk(child, child_in_loop)


def _parse(body: str, language: str | None) -> nodes.Template:
    if not body.strip():
        raise TemplateError("empty body", language=language)
    try:
        ast = _env.parse(body)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            exc.message or "syntax error", language=language, line=exc.lineno
        ) from None
    problems = sorted(_walk(ast), key=lambda problem: problem[0])  # outermost first per line
    if problems:
        line, reason = problems[0]
        raise TemplateError(reason, language=language, line=line)
    return ast


def _first_use(ast: nodes.Template, name: str) -> int | None:
    lines = [n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"]
    return min(lines, default=None)


def validate_body(body: str, allowed: set[str], *, language: str | None = None) -> None:
    """Raise TemplateError if ``body`` is empty, malformed, unsafe or uses a variable
    outside ``allowed``."""
    ast = _parse(body, language)
    unknown = meta.find_undeclared_variables(ast) - allowed
    if unknown:
        located = sorted((_first_use(ast, name) or 0, name) for name in unknown)
        line, name = located[0]
        reason = f"unknown variable {name!r}"
        close = difflib.get_close_matches(name, sorted(allowed), n=1)
        if close:
            reason += f" (did you mean {close[0]!r}?)"
        raise TemplateError(reason, language=language, line=line or None)


@functools.lru_cache(maxsize=1024)
def variables_used(body: str) -> frozenset[str]:
    """The variables ``body`` reads (loop variables and ``{% set %}`` names excluded)."""
    return frozenset(meta.find_undeclared_variables(_parse(body, None)))


@functools.lru_cache(maxsize=1024)
def _compile(body: str) -> jinja2.Template:
    _parse(body, None)
    try:
        return _env.from_string(body)
    except jinja2.TemplateError as exc:  # pragma: no cover - _parse has seen the syntax
        raise TemplateError(exc.message or "cannot compile") from None


@functools.lru_cache(maxsize=1024)
def _plain(body: str) -> tuple[tuple[bool, str], ...] | None:
    """``body`` as (is a variable, text or name) pieces when it only prints text and plain
    variables (``Hello {{ name }}``), the common case; None when it does anything else."""
    pieces: list[tuple[bool, str]] = []
    for node in _parse(body, None).body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                pieces.append((False, child.data))
            elif isinstance(child, nodes.Name) and child.ctx == "load":
                pieces.append((True, child.name))
            else:
                return None
    return tuple(pieces)


def _join_plain(
    pieces: tuple[tuple[bool, str], ...], variables: Mapping[str, object]
) -> str | None:
    """What Jinja prints for plain ``pieces`` when every variable is a string; None when
    one is missing or of another type (Jinja then renders it, or says why it cannot)."""
    chunks = []
    for is_variable, piece in pieces:
        if is_variable:
            value = variables.get(piece)
            if type(value) is not str:
                return None
            chunks.append(value)
        else:
            chunks.append(piece)
    text = "".join(chunks)
    if len(text) > MAX_RENDERED:
        raise TemplateError(f"rendered text too long (over {MAX_RENDERED} characters)")
    return text


def render(body: str, variables: Mapping[str, object]) -> str:
    """Render ``body`` with ``variables``: stripped, NFC-normalized, never empty.

    NFC matters for cost: Vietnamese typed with combining accents takes up to three
    UTF-16 units per letter where the composed form takes one.
    """
    pieces = _plain(body)
    joined = None if pieces is None else _join_plain(pieces, variables)
    if joined is None:
        joined = _generate(body, variables)
    text = unicodedata.normalize("NFC", joined).strip()
    if not text:
        raise TemplateError("empty after rendering")
    return text


def _generate(body: str, variables: Mapping[str, object]) -> str:
    """``body`` rendered by Jinja, as printed."""
    template = _compile(body)
    chunks: list[str] = []
    size = 0
    try:
        for chunk in template.generate(dict(variables)):
            size += len(chunk)
            if size > MAX_RENDERED:
                raise TemplateError(f"rendered text too long (over {MAX_RENDERED} characters)")
            chunks.append(chunk)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"undefined variable: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(exc.message or type(exc).__name__) from None
    except (TypeError, AttributeError, ArithmeticError, LookupError) as exc:
        raise TemplateError(f"cannot render: {exc}") from None
    return "".join(chunks)
