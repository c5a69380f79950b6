"""Message templates: the YAML format, its validation, and picking a language.

One template per file::

    key: covid-handwashing
    name: Hand washing
    default_language: en
    source: Adapted from WHO advice for the public
    review: true            # some translations still await a native speaker
    budget: 3               # most SMS segments any variant may cost
    variables:
      hotline: "1166"       # name -> sample value (quote numbers)
    variants:
      en: Wash your hands often ... Call {{ hotline }}.
      lo: ລ້າງມື ... ໂທ {{ hotline }}

Bodies may also use the contact variables ``{{ name }}`` and ``{{ community }}``,
filled in per recipient at send time.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import yaml

from messages.encoding import segments
from messages.languages import LanguageError, normalize_language
from messages.rendering import TemplateError, render, validate_body

CONTACT_VARIABLES: Final = frozenset({"name", "community"})
"""Variables every body may use; they come from the contact at send time."""

CONTACT_SAMPLES: Final[Mapping[str, str]] = {
    "name": "Somchai Phommachanh",
    "community": "Savannakhet returnees",
}
"""Stand-ins for the contact variables in previews and budget checks."""

MAX_BUDGET: Final = 10
FIELDS: Final = (
    "key",
    "name",
    "default_language",
    "variables",
    "variants",
    "source",
    "review",
    "budget",
)
_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_VARIABLE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_YAML_SUFFIXES: Final = frozenset({".yaml", ".yml"})


@dataclass(frozen=True)
class TemplateSpec:
    """A validated template; variant keys are normalized language codes and bodies
    are NFC-normalized."""

    key: str
    name: str
    default_language: str
    variables: dict[str, str]
    variants: dict[str, str]
    source: str | None = None
    review: bool = False
    budget: int = 3

    def sample_variables(self) -> dict[str, str]:
        """The template's sample values, with stand-ins for the contact variables."""
        return {**CONTACT_SAMPLES, **self.variables}

    def preview(self, language: str) -> str:
        """The ``language`` variant rendered with the sample variables."""
        return render(self.variants[language], self.sample_variables())


def catalog_dir() -> Path:
    """The directory of templates shipped with riskcast."""
    return Path(__file__).resolve().parent / "catalog"


@dataclass
class _Problems:
    origin: str
    found: list[TemplateError] = field(default_factory=list)

    def add(self, reason: str, field_name: str | None = None) -> None:
        self.found.append(TemplateError(reason, origin=self.origin, field=field_name))

    def raise_if_any(self) -> None:
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            lines = "\n".join(f"  {e.located(origin='')}" for e in self.found)
            raise TemplateError(
                f"{len(self.found)} problems:\n{lines}", origin=self.origin, errors=self.found
            )


def _text(value: object, field_name: str, problems: _Problems, *, optional: bool = False) -> str:
    if value is None and optional:
        return ""
    if not isinstance(value, str) or not value.strip():
        problems.add(f"must be non-empty text, got {value!r}", field_name)
        return ""
    return value.strip()


def _variables(value: object, problems: _Problems) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.add("must be a mapping of name -> sample value", "variables")
        return {}
    result: dict[str, str] = {}
    for name, sample in value.items():
        where = f"variables.{name}"
        if not isinstance(name, str) or not _VARIABLE.fullmatch(name):
            problems.add("a variable name is letters, digits and _, starting with a letter", where)
        elif not isinstance(sample, str):
            problems.add(f"sample value must be text, got {sample!r} (quote it in YAML)", where)
        else:
            result[name] = sample
    return result


def _variants(value: object, problems: _Problems) -> dict[str, str]:
    if not isinstance(value, Mapping) or not value:
        problems.add("must be a non-empty mapping of language -> body", "variants")
        return {}
    result: dict[str, str] = {}
    for raw, body in value.items():
        where = f"variants.{raw}"
        if not isinstance(raw, str):
            problems.add(f"a language code must be text, got {raw!r} (quote it in YAML)", where)
            continue
        try:
            language = normalize_language(raw)
        except LanguageError as exc:
            problems.add(str(exc), where)
            continue
        if language in result:
            problems.add(f"a second variant for {language!r}", where)
        elif not isinstance(body, str):
            problems.add(f"body must be text, got {body!r}", where)
        else:
            # Composed (NFC) text costs fewer UTF-16 units than decomposed text.
            result[language] = unicodedata.normalize("NFC", body.strip())
    return result


def _default_language(value: object, variants: Mapping[str, str], problems: _Problems) -> str:
    if not isinstance(value, str):
        problems.add(f"must be a language code, got {value!r}", "default_language")
        return ""
    try:
        language = normalize_language(value)
    except LanguageError as exc:
        problems.add(str(exc), "default_language")
        return ""
    if variants and language not in variants:
        problems.add(
            f"{language!r} has no variant (variants: {', '.join(variants)})", "default_language"
        )
    return language


def _check_bodies(
    variants: Mapping[str, str], variables: Mapping[str, str], budget: int, problems: _Problems
) -> None:
    """Every body is valid, renders with the sample variables, and fits the budget."""
    allowed = set(variables) | CONTACT_VARIABLES
    samples = {**CONTACT_SAMPLES, **variables}
    for language, body in variants.items():
        where = f"variants.{language}"
        try:
            validate_body(body, allowed, language=language)
            cost = segments(render(body, samples))
        except TemplateError as exc:
            problems.found.append(exc.located(origin=problems.origin, field=where))
            continue
        try:
            # A contact may have no name on record: the body must still say something.
            render(body, {**samples, **dict.fromkeys(CONTACT_VARIABLES, "")})
        except TemplateError:
            problems.add(
                "renders empty for a contact with no name or community on record; "
                "give it some fixed text",
                where,
            )
        if cost.parts > budget:
            problems.add(
                f"{cost.parts} SMS segments with the sample variables ({cost.encoding}, "
                f"{cost.units} units); the budget is {budget}",
                where,
            )


def parse_template(data: Mapping[str, object], *, origin: str = "<template>") -> TemplateSpec:
    """Validate ``data`` (one template, as loaded from YAML) into a TemplateSpec.

    Raises TemplateError naming ``origin``, the field and the reason; every problem
    in the template is reported, not only the first.
    """
    problems = _Problems(origin)
    raw: object = data  # YAML may hand over anything
    if not isinstance(raw, Mapping):
        problems.add(f"a template is a mapping of {', '.join(FIELDS)}; got {type(raw).__name__}")
        problems.raise_if_any()
    for unknown in sorted(str(k) for k in data if k not in FIELDS):
        problems.add(f"unknown field (known: {', '.join(FIELDS)})", unknown)

    key = _text(data.get("key"), "key", problems)
    if key and not _KEY.fullmatch(key):
        problems.add(
            f"{key!r} is not a key: lower-case letters, digits, - and _ (at most 64)", "key"
        )
    name = _text(data.get("name"), "name", problems)
    source = _text(data.get("source"), "source", problems, optional=True) or None
    review = data.get("review", False)
    if not isinstance(review, bool):
        problems.add(f"must be true or false, got {review!r}", "review")
        review = False
    budget = data.get("budget", 3)
    if not isinstance(budget, int) or isinstance(budget, bool) or not 1 <= budget <= MAX_BUDGET:
        problems.add(f"must be a whole number of SMS segments from 1 to {MAX_BUDGET}", "budget")
        budget = MAX_BUDGET
    raw_variables = data.get("variables")
    variables = _variables(raw_variables, problems)
    variants = _variants(data.get("variants"), problems)
    default_language = _default_language(data.get("default_language"), variants, problems)
    if raw_variables is None or isinstance(raw_variables, Mapping):
        # Check bodies against every declared name, even one whose sample value was
        # refused above, so one mistake is not reported again in every variant.
        declared = {str(k): str(v) for k, v in (raw_variables or {}).items()}
        _check_bodies(variants, declared, budget, problems)

    problems.raise_if_any()
    return TemplateSpec(
        key=key,
        name=name,
        default_language=default_language,
        variables=variables,
        variants=variants,
        source=source,
        review=review,
        budget=budget,
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (two ``lo:`` variants would
    otherwise silently keep only the last)."""

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Hashable, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_template_file(path: Path) -> TemplateSpec:
    """Read and validate one YAML template file."""
    origin = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read: {exc}", origin=origin) from None
    loader = _UniqueKeyLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        raise TemplateError(f"invalid YAML: {problem}", origin=origin, line=line) from None
    finally:
        loader.dispose()
    if data is None:
        raise TemplateError("empty file", origin=origin)
    if not isinstance(data, Mapping):
        raise TemplateError(
            f"a template file holds one mapping, got {type(data).__name__}", origin=origin
        )
    return parse_template(data, origin=origin)


def load_dir(path: Path) -> list[TemplateSpec]:
    """Every ``*.yaml`` / ``*.yml`` template in ``path``, sorted by file name.

    Raises one TemplateError listing every bad file (and any key used twice).
    """
    if not path.is_dir():
        raise TemplateError("not a directory", origin=str(path))
    files = sorted(
        (p for p in path.iterdir() if p.suffix in _YAML_SUFFIXES and p.is_file()),
        key=lambda p: p.name,
    )
    specs: list[TemplateSpec] = []
    errors: list[TemplateError] = []
    owner: dict[str, str] = {}
    for file in files:
        try:
            spec = load_template_file(file)
        except TemplateError as exc:
            errors.append(exc)
            continue
        if spec.key in owner:
            errors.append(
                TemplateError(
                    f"key {spec.key!r} is already used by {owner[spec.key]}",
                    origin=file.name,
                    field="key",
                )
            )
            continue
        owner[spec.key] = file.name
        specs.append(spec)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        listing = "\n".join(f"  {e}" for e in errors)
        raise TemplateError(
            f"{len(errors)} template files have errors:\n{listing}",
            origin=str(path),
            errors=errors,
        )
    return specs


def _known(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_language(value)
    except LanguageError:
        return None


def choose_language(
    available: Iterable[str],
    contact_language: str | None,
    community_language: str | None,
    default_language: str,
) -> tuple[str, bool]:
    """The variant to send and whether it fell back from the contact's own language.

    Tries the contact's language, then the community's, the template's default,
    English, and finally the first available variant. The returned code is spelled
    as in ``available``. Raises LanguageError if nothing is available: a missing
    translation must never become an empty message.
    """
    by_code: dict[str, str] = {}
    first: str | None = None
    for code in available:
        first = code if first is None else first
        by_code.setdefault(_known(code) or code, code)
    if first is None:
        raise LanguageError("the template has no variants to choose from")
    contact = _known(contact_language)
    if contact is not None and contact in by_code:
        return by_code[contact], False
    for candidate in (_known(community_language), _known(default_language), "en"):
        if candidate is not None and candidate in by_code:
            return by_code[candidate], True
    return first, True
