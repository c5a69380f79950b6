"""The OASIS CAP 1.2 schema (``schemas/CAP-v1.2.xsd``, shipped as is) and its verdict on
an alert, as :class:`CapError` s that name the element the way a person reads the
document: ``alert/info[2]/urgency``, with ``[n]`` on the elements that may repeat.

``xmlschema`` does the validating; this module only words its findings. What may
repeat, which elements hold date-times and the order of each element's children all
come from the schema, not from lists kept here.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Final

import xmlschema
from xmlschema.validators import (
    XsdAtomic,
    XsdComplexType,
    XsdElement,
    XsdEnumerationFacets,
    XsdGroup,
    XsdType,
)

from messages.cap.model import CAP_NS, DATETIME_REASON, CapError, local

SCHEMA_FILE: Final = "CAP-v1.2.xsd"


@dataclass(frozen=True)
class _Shape:
    """What the schema says about CAP's elements, by local name (CAP reuses no name
    with two meanings)."""

    repeatable: frozenset[str]
    datetimes: frozenset[str]
    children: dict[str, tuple[str, ...]]  # complex element -> its children, in order
    types: dict[str, XsdType]


@cache
def schema() -> xmlschema.XMLSchema:
    """The CAP 1.2 schema, built once from the shipped file; it may load nothing else."""
    text = files("messages.cap").joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8")
    return xmlschema.XMLSchema(text, allow="none")


def _children(element: XsdElement) -> list[XsdElement]:
    """The elements ``element`` may contain, in order (not the XML-signature wildcard)."""
    xsd_type = element.type
    if isinstance(xsd_type, XsdComplexType) and isinstance(xsd_type.content, XsdGroup):
        return [c for c in xsd_type.content.iter_elements() if isinstance(c, XsdElement)]
    return []


def _declarations(element: XsdElement) -> Iterator[XsdElement]:
    yield element
    for child in _children(element):
        yield from _declarations(child)


def _is_datetime(xsd_type: XsdType) -> bool:
    return isinstance(xsd_type, XsdAtomic) and xsd_type.primitive_type.local_name == "dateTime"


@cache
def shape() -> _Shape:
    declarations = list(_declarations(schema().elements["alert"]))
    return _Shape(
        repeatable=frozenset(d.local_name for d in declarations if d.max_occurs != 1),
        datetimes=frozenset(d.local_name for d in declarations if _is_datetime(d.type)),
        children={
            d.local_name: tuple(c.local_name for c in _children(d))
            for d in declarations
            if _children(d)
        },
        types={d.local_name: d.type for d in declarations},
    )


class Paths:
    """Paths like ``alert/info[2]/area[1]/polygon[3]`` for the elements of one tree."""

    def __init__(self, root: ET.Element) -> None:
        self._parents = {child: parent for parent in root.iter() for child in parent}
        self._repeatable = shape().repeatable

    def step(self, element: ET.Element, parent: ET.Element | None) -> str:
        name = local(element.tag)[1]
        if parent is None or name not in self._repeatable:
            return name
        same = [e for e in parent if e.tag == element.tag]
        return f"{name}[{same.index(element) + 1}]"

    def __call__(self, element: ET.Element) -> str:
        steps: list[str] = []
        current: ET.Element | None = element
        while current is not None:
            parent = self._parents.get(current)
            steps.append(self.step(current, parent))
            current = parent
        return "/".join(reversed(steps))


def _misplaced(
    parent: ET.Element, index: int, expected: list[str], path: str, paths: Paths
) -> CapError:
    """Words a known CAP element the schema did not expect at ``parent[index]``: repeated,
    out of order, or standing where a required element should be."""
    child = parent[index]
    name = local(child.tag)[1]
    known = shape().children.get(local(parent.tag)[1], ())
    present = [local(c.tag)[1] for c in parent]
    before, later = present[:index], present[index + 1 :]
    if name in before and name not in shape().repeatable:
        return CapError(f"<{name}> may appear only once", path=f"{path}/{name}")
    missing_later = [e for e in expected if e in later]
    if missing_later:
        return CapError(
            f"must come before <{name}> (CAP 1.2 element order)", path=f"{path}/{missing_later[0]}"
        )
    passed = [n for n in before if n in known and known.index(n) > known.index(name)]
    if passed:
        last = max(passed, key=known.index)
        return CapError(f"must come before <{last}> (CAP 1.2 element order)", path=paths(child))
    reason = "required element is missing"
    return CapError(reason, path=f"{path}/{expected[0]}" if expected else paths(child))


def _content_problem(
    error: xmlschema.XMLSchemaChildrenValidationError, parent: ET.Element, paths: Paths
) -> CapError:
    """Words a children error: a required element missing, one the schema does not know
    there, or a known one out of place."""
    path = paths(parent)
    expected = [e.local_name for e in error.expected or () if isinstance(e, XsdElement)]
    child = error.invalid_child
    if child is None:
        return CapError("required element is missing", path=f"{path}/{expected[0]}")
    namespace, name = local(child.tag)
    known = shape().children.get(local(parent.tag)[1], ())
    if namespace != CAP_NS:
        return CapError(f"not in the CAP 1.2 namespace ({CAP_NS})", path=f"{path}/{name}")
    if name not in known:
        allowed = ", ".join(known)
        return CapError(f"not a CAP 1.2 element here (allowed: {allowed})", path=f"{path}/{name}")
    return _misplaced(parent, error.index, expected, path, paths)


def _value_problem(element: ET.Element, value: str, validator: object, path: str) -> CapError:
    """Words a text its simple type refused."""
    name = local(element.tag)[1]
    if name in shape().datetimes:
        return CapError(f"{value!r} {DATETIME_REASON}", path=path)
    if isinstance(validator, XsdEnumerationFacets):
        allowed = ", ".join(str(v) for v in validator.enumeration)
        return CapError(f"{value!r} is not one of {allowed}", path=path)
    xsd_type = shape().types[name]
    named = xsd_type if xsd_type.local_name else xsd_type.base_type
    what = f"xs:{named.local_name}" if named is not None else "of its schema type"
    return CapError(f"{value!r} is not a valid {what}", path=path)


def _problem(error: xmlschema.XMLSchemaValidationError, paths: Paths) -> CapError:
    element = error.elem
    reason = error.reason or "not valid against the CAP 1.2 schema"
    if element is None:
        return CapError(reason)
    if isinstance(error, xmlschema.XMLSchemaChildrenValidationError):
        return _content_problem(error, element, paths)
    if isinstance(error.obj, str) and local(element.tag)[1] in shape().types:
        return _value_problem(element, error.obj, error.validator, paths(element))
    return CapError(reason, path=paths(element))


def _unique(problems: Iterable[CapError]) -> list[CapError]:
    """One problem per element: a refused date-time fails its pattern and its type."""
    seen: dict[str, CapError] = {}
    for problem in problems:
        seen.setdefault(str(problem.path), problem)
    return list(seen.values())


def problems(root: ET.Element) -> list[CapError]:
    """What the CAP 1.2 schema finds wrong with ``root``, each problem named by path."""
    paths = Paths(root)
    found = schema().iter_errors(root, use_location_hints=False)
    return _unique(_problem(error, paths) for error in found)
