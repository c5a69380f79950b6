"""Pure message logic: templates, languages, rendering, SMS encoding, the catalog.

Imports neither ``broadcaster`` nor ``workers``, touches no database or network.
"""

from messages import cap as cap  # CAP 1.2 alerts: parse_alert, to_template, to_xml
from messages.encoding import GSM_LOOKALIKES, Segments, gsm_lookalike, part_sizes, segments
from messages.keywords import (
    KEYWORDS,
    REPLIES,
    Keyword,
    Reply,
    guess_language,
    reply_language,
    reply_text,
)
from messages.keywords import parse as parse_keyword
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
    "KEYWORDS",
    "LANGUAGES",
    "REPLIES",
    "Keyword",
    "LanguageError",
    "Reply",
    "Segments",
    "TemplateError",
    "TemplateSpec",
    "WordingWarning",
    "catalog_dir",
    "check_wording",
    "choose_language",
    "gsm_lookalike",
    "guess_language",
    "load_dir",
    "load_template_file",
    "normalize_language",
    "parse_keyword",
    "parse_template",
    "part_sizes",
    "render",
    "reply_language",
    "reply_text",
    "segments",
    "validate_body",
    "variables_used",
]
