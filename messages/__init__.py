"""Pure message logic: templates, languages, rendering, SMS encoding, the catalog.

Imports neither ``broadcaster`` nor ``workers``, touches no database or network.
"""

from messages.encoding import GSM_LOOKALIKES, Segments, gsm_lookalike, part_sizes, segments
from messages.languages import LANGUAGES, LanguageError, normalize_language
from messages.rendering import TemplateError, render, validate_body, variables_used
from messages.templates import (
    CONTACT_SAMPLES,
    CONTACT_VARIABLES,
    TemplateSpec,
    catalog_dir,
    choose_language,
    load_dir,
    load_template_file,
    parse_template,
)
from messages.wording import WordingWarning, check_wording

__all__ = [
    "CONTACT_SAMPLES",
    "CONTACT_VARIABLES",
    "GSM_LOOKALIKES",
    "LANGUAGES",
    "LanguageError",
    "Segments",
    "TemplateError",
    "TemplateSpec",
    "WordingWarning",
    "catalog_dir",
    "check_wording",
    "choose_language",
    "gsm_lookalike",
    "load_dir",
    "load_template_file",
    "normalize_language",
    "parse_template",
    "part_sizes",
    "render",
    "segments",
    "validate_body",
    "variables_used",
]
