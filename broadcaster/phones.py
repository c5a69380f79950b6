"""Phone numbers: normalise to E.164, tell the country, and mask them for display and logs.

Phone numbers here belong to vulnerable people, so nothing in this module ever puts a full
number into an error message: :class:`PhoneError` names the reason only, and the maskers
show at most the country code, the first group and the last two digits.

Pure: only the standard library and ``phonenumbers``.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberType, ValidationResult
from phonenumbers.phonemetadata import PhoneMetadata

__all__ = [
    "PHONE_PATTERN",
    "PhoneError",
    "country_of",
    "mask_phone",
    "mask_phones_in_text",
    "mask_raw",
    "normalize_phone",
]

BULLET = "\u2022"

# E.164 allows at most 15 digits; an international prefix typed in front ("00", "001")
# adds up to three more.
_MAX_TYPED_DIGITS = 18

# Exit (international) prefixes typed in front of a country code. "00" is the ITU prefix
# used in Lao PDR, Thailand and most of the world; 001, 007, 008 and 009 are Thai carrier
# prefixes. phonenumbers, with region TH, reads "00856..." as "008" + "56..." (Chile), so
# every reading is tried and the first one that is a valid number wins.
_THAI_EXIT_PREFIXES = ("001", "007", "008", "009")

_REGION_NAMES = {
    "LA": "Laos",
    "TH": "Thailand",
    "KH": "Cambodia",
    "MM": "Myanmar",
    "VN": "Vietnam",
    "CN": "China",
    "MY": "Malaysia",
}

_SMS_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})

_TYPE_NAMES = {
    PhoneNumberType.TOLL_FREE: "toll-free",
    PhoneNumberType.PREMIUM_RATE: "premium-rate",
    PhoneNumberType.SHARED_COST: "shared-cost",
    PhoneNumberType.VOIP: "VoIP",
    PhoneNumberType.PERSONAL_NUMBER: "personal (forwarding)",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "company (UAN)",
    PhoneNumberType.VOICEMAIL: "voicemail",
}

_PREFIXES = ("whatsapp:", "tel:")

_E164 = re.compile(r"\+[1-9]\d{6,14}")


class PhoneError(ValueError):
    """A phone number that cannot be used. The message gives the reason, never the number."""


def _region_label(region: str) -> str:
    if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:  # "001": +800, +882...
        return "an international (non-geographic) service"
    name = _REGION_NAMES.get(region)
    return f"{name} ({region})" if name else region


def _clean(raw: str) -> tuple[bool, str]:
    """Return (had_plus, ASCII digits) of a typed number, or raise PhoneError with the reason."""
    text = unicodedata.normalize("NFKC", raw)
    # invisible format marks (bidi marks, zero-width spaces) pasted from chat apps
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf").strip()
    lowered = text.casefold()
    for prefix in _PREFIXES:
        if lowered.startswith(prefix):
            text = text[len(prefix) :].strip()
            break
    if not text:
        raise PhoneError("phone number is empty")
    had_plus = text.startswith("+")
    if had_plus:
        text = text[1:]
    digits: list[str] = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Nd":
            digits.append(str(unicodedata.decimal(ch)))
        elif ch.isspace() or ch in ".()/" or category == "Pd":
            continue  # separators and dashes of any kind
        elif category.startswith("L"):
            raise PhoneError("phone number contains letters")
        elif ch == "+":
            raise PhoneError("'+' may only start a phone number")
        else:
            raise PhoneError("phone number contains characters that are not digits")
    if not digits:
        raise PhoneError("phone number has no digits")
    if len(digits) > _MAX_TYPED_DIGITS:
        raise PhoneError("phone number is too long")
    return had_plus, "".join(digits)


_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "phone number is too short",
    NumberParseException.TOO_SHORT_NSN: "phone number is too short",
    NumberParseException.TOO_LONG: "phone number is too long",
}

_POSSIBLE_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.TOO_SHORT: "phone number is too short",
    ValidationResult.TOO_LONG: "phone number is too long",
}


def _parse(text: str, region: str | None) -> PhoneNumber:
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and not text.startswith("+"):
            raise PhoneError(
                f"no country code, and the default region {region!r} is unknown"
            ) from None
        raise PhoneError(_PARSE_REASONS.get(exc.error_type, "not a phone number")) from None


def _check_valid(number: PhoneNumber, region: str) -> None:
    """Raise PhoneError with the most precise reason if ``number`` is not a valid number."""
    if phonenumbers.is_valid_number(number):
        return
    number_region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    where = _region_label(number_region if number_region != "ZZ" else region)
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason in _POSSIBLE_REASONS:
        message = _POSSIBLE_REASONS[reason]
        if reason != ValidationResult.INVALID_COUNTRY_CODE:
            message += f" for {where}"
        raise PhoneError(message)
    raise PhoneError(f"not a valid number for {where}")


def _candidates(had_plus: bool, digits: str, region: str) -> list[tuple[str, str | None]]:
    """Readings of a typed number, most likely first, as (text, region) pairs to parse."""
    if had_plus:
        return [("+" + digits, None)]
    if not digits.startswith("00"):
        return [(digits, region)]
    readings: list[tuple[str, str | None]] = [("+" + digits[2:], None), (digits, region)]
    readings += [("+" + digits[3:], None) for p in _THAI_EXIT_PREFIXES if digits.startswith(p)]
    return readings


def _is_sms_capable(number: PhoneNumber) -> bool:
    return phonenumbers.number_type(number) in _SMS_TYPES


def normalize_phone(raw: str, region: str = "LA", *, require_mobile: bool = True) -> str:
    """Return ``raw`` as an E.164 string (``+8562055551234``), or raise :class:`PhoneError`.

    ``region`` (ISO 3166 code) is used for numbers typed without a country code: with
    ``LA``, ``020 5555 1234`` and ``2055551234`` are Lao mobiles; with ``TH``,
    ``081-234-5678`` is a Thai mobile. A ``whatsapp:`` (or ``tel:``) prefix, spaces,
    dashes, dots, parentheses, full-width and Lao/Thai digits are accepted. A number
    typed with an exit prefix (``00856 ...``, ``001 66 ...``) keeps its country code in
    either region. With ``require_mobile``, fixed lines and service numbers (toll-free,
    premium-rate...) are rejected: SMS cannot reach them. ``FIXED_LINE_OR_MOBILE`` numbers
    (where the numbering plan cannot tell) are accepted.
    """
    region = region.upper()
    had_plus, digits = _clean(raw)
    errors: list[PhoneError] = []
    valid: list[PhoneNumber] = []
    for text, text_region in _candidates(had_plus, digits, region):
        try:
            number = _parse(text, text_region)
            _check_valid(number, region)
        except PhoneError as exc:
            errors.append(exc)
            continue
        valid.append(number)
    if not valid:
        raise errors[0]  # the reason for the most likely reading
    chosen = next((n for n in valid if _is_sms_capable(n)), valid[0])
    if require_mobile and not _is_sms_capable(chosen):
        kind = phonenumbers.number_type(chosen)
        if kind == PhoneNumberType.FIXED_LINE:
            raise PhoneError("landline, SMS cannot reach it")
        name = _TYPE_NAMES.get(kind, "an unknown kind of")
        raise PhoneError(f"{name} number, not a mobile: SMS cannot reach it")
    e164 = phonenumbers.format_number(chosen, phonenumbers.PhoneNumberFormat.E164)
    if not _E164.fullmatch(e164):  # a few national plans allow more digits than E.164 does
        raise PhoneError("phone number is too long to send to internationally")
    return e164


def _parse_e164(e164: str) -> PhoneNumber:
    text = e164.strip()
    if not text.startswith("+"):
        raise PhoneError("not an international number (it must start with '+')")
    return _parse(text, None)


def country_of(e164: str) -> str:
    """ISO 3166 region code of an E.164 number ("LA", "TH"); PhoneError if it is not valid."""
    number = _parse_e164(e164)
    region = phonenumbers.region_code_for_number(number)
    if region is None or region == "ZZ" or not phonenumbers.is_valid_number(number):
        raise PhoneError("not a valid number, so its country is unknown")
    return region


def mask_raw(text: str) -> str:
    """Mask unparsed input: every digit but the last two becomes a bullet; the rest stays."""
    positions = [i for i, ch in enumerate(text) if ch.isdecimal()]
    hidden = set(positions[:-2])
    return "".join(BULLET if i in hidden else ch for i, ch in enumerate(text))


def _masked_tail(nsn: str) -> str:
    return f"{BULLET * 3} {BULLET * 2}{nsn[-2:]}"


def mask_phone(e164: str) -> str:
    """Mask a number for display: ``+8562055551234`` -> ``+856 20 ••• ••34``.

    Shows the country code, the first group of the international format and the last two
    digits, nothing else (not even the length). Falls back to ``+856 ••• ••34`` when the
    first group would reveal too much, and to :func:`mask_raw` for anything that is not an
    international number. A ``whatsapp:`` prefix is kept. Never raises.
    """
    prefix = ""
    text = e164.strip()
    if text.casefold().startswith("whatsapp:"):
        prefix, text = text[: len("whatsapp:")], text[len("whatsapp:") :].strip()
    try:
        number = _parse_e164(text)
    except PhoneError:
        return prefix + mask_raw(text)
    nsn = phonenumbers.national_significant_number(number)
    cc = f"+{number.country_code}"
    if len(nsn) < 3:
        return prefix + mask_raw(text)
    if phonenumbers.is_valid_number(number):
        formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        first = re.match(r"\d+", formatted.removeprefix(cc).lstrip())
        if first is not None:
            group = first.group()
            if len(group) <= 4 and nsn.startswith(group) and len(nsn) - len(group) - 2 >= 3:
                return f"{prefix}{cc} {group} {_masked_tail(nsn)}"
    return f"{prefix}{cc} {_masked_tail(nsn)}"


# Phone-number-like substrings of free text (log lines, error messages):
#  1. "+" then 7 or more digits (the shortest valid international numbers have 7), with
#     short separators (space, dash, dot, parentheses) between them, with an optional
#     "whatsapp:" in front;
#  2. a number typed locally or with an exit prefix: "0" then 8 or more digits, with the
#     same separators ("020 5555 1234", "081-234-5678", "00856 20 5555 1234");
#  3. a bare run of 9 or more digits.
# Forms 2 and 3 must not touch a word, a decimal point or a dash in front (UUID parts,
# fractions), nor run into a letter, a colon (times) or a decimal part behind. "1166",
# "campaign 12", "2026-11-28", "10:12:33" and "200,000" never match.
_SEP = r"[ \-.()\u00a0]{0,2}"
PHONE_PATTERN = re.compile(
    rf"""
    (?P<intl>(?:whatsapp:[ ]?)?\+\d(?:{_SEP}\d){{6,}})
    | (?<![\w.\-+])
      (?:
          (?P<local>0(?:{_SEP}\d){{8,}})
        | (?P<bare>\d{{9,}})
      )
      (?![\w:]|[.,]\d)
    """,
    re.VERBOSE | re.IGNORECASE,
)

_SEPARATORS = " -.()\u00a0"
_SPLIT = re.compile(r"(?<=\d)(?=[ \-.()\u00a0]{1,2}\d)")
_MIN_DIGITS = 7


def _is_international(text: str) -> bool:
    try:
        had_plus, digits = _clean(text)
        return had_plus and phonenumbers.is_valid_number(_parse("+" + digits, None))
    except PhoneError:
        return False


def _is_local(text: str) -> bool:
    for region in ("LA", "TH"):
        try:
            normalize_phone(text, region, require_mobile=False)
        except PhoneError:
            continue
        return True
    return False


def _mask_number(chunk: str) -> str | None:
    """The mask of ``chunk`` (leading separators kept) if it is one valid number, else None."""
    core = chunk.lstrip(_SEPARATORS)
    lead = chunk[: len(chunk) - len(core)]
    if core[:1] in {"+", "w", "W"}:
        return lead + mask_phone(core) if _is_international(core) else None
    return lead + mask_raw(core) if _is_local(core) else None


def _count_digits(text: str) -> int:
    return sum(ch.isdecimal() for ch in text)


def _mask_grouped(match_text: str) -> str:
    """Mask a grouped match ("+856 20 5555 1234 2 times" matches up to the "2").

    From the start, the longest run of groups that is one valid number is masked, again and
    again; what follows the last number stays if it is too short to be one (a count), and
    is masked raw otherwise. If the match does not start with a valid number, all of it is
    masked raw: a mistyped number is still personal data.
    """
    parts = _SPLIT.split(match_text)
    out: list[str] = []
    i = 0
    while i < len(parts):
        ends: list[int] = []
        digits = 0
        for j in range(i, len(parts)):
            digits += _count_digits(parts[j])
            if digits > _MAX_TYPED_DIGITS:
                break
            if digits >= _MIN_DIGITS:
                ends.append(j + 1)
        found: tuple[str, int] | None = None
        for j in reversed(ends):
            masked = _mask_number("".join(parts[i:j]))
            if masked is not None:
                found = (masked, j)
                break
        if found is None:
            break
        out.append(found[0])
        i = found[1]
    rest = "".join(parts[i:])
    if not out:
        return mask_raw(match_text)
    return "".join(out) + (mask_raw(rest) if _count_digits(rest) >= _MIN_DIGITS else rest)


def _mask_match(match: re.Match[str]) -> str:
    if match.lastgroup == "bare":
        return mask_raw(match.group())
    return _mask_grouped(match.group())


def mask_phones_in_text(text: str) -> str:
    """Replace every phone-number-like part of ``text`` with its mask (see PHONE_PATTERN).

    International numbers become ``+856 20 ••• ••34``; local and bare digit runs keep only
    their last two digits (``••• •••• ••34``), also when typed digit by digit. Text with a
    percent-encoded number (a URL) is decoded first. Masking masked text changes nothing.
    """
    if "%" in text:
        # A number in a URL is percent-encoded (``q=%2B8562055551234``): read it decoded.
        decoded = unquote(text)
        if decoded != text and PHONE_PATTERN.search(decoded):
            text = decoded
    return PHONE_PATTERN.sub(_mask_match, text)


# -- the fast path, for imports --------------------------------------------------------------
# normalize_phone handles every way a number can be typed; at ~25 µs a row it would cap an
# import near 20,000 rows/s on its own. Most rows are plain ASCII digits, in E.164 or in the
# national format of a country with a simple numbering plan (LA, TH, KH, VN, MM...): for
# those the answer is found with one metadata lookup. Anything else (exit prefixes, shared
# country codes, leading zeros, letters...) returns None and goes the slow, complete way.
# tests/broadcaster/test_importer.py checks that both ways agree.
_FAST_CHARS = re.compile(r"\+?[0-9][0-9 ()./-]*")
_FAST_SEPARATORS = str.maketrans("", "", " ()./-")


def _simple_plans() -> dict[int, str]:
    """Country code -> region for the codes of one region whose national prefix is a plain
    "0" (no carrier codes, no transform) and whose exit prefix starts with "00"."""
    plans: dict[int, str] = {}
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        if len(regions) != 1 or regions[0] == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
            continue
        meta = PhoneMetadata.metadata_for_region(regions[0])
        if (
            meta is not None
            and meta.national_prefix_for_parsing == "0"
            and meta.national_prefix_transform_rule is None
            and (meta.international_prefix or "").startswith("00")
        ):
            plans[code] = regions[0]
    return plans


_PLANS = _simple_plans()
_PLAN_OF_REGION = {region: code for code, region in _PLANS.items()}


def _fast_e164(raw: str, region: str) -> tuple[str, str] | None:
    """(E.164, country) of an SMS-capable number typed plainly, or None to go the slow way."""
    text = raw.strip()
    if not _FAST_CHARS.fullmatch(text):
        return None
    digits = text.translate(_FAST_SEPARATORS)
    if digits.startswith("+"):
        digits = digits[1:]
        for size in (1, 2, 3):
            code = int(digits[:size])
            if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                break
        else:
            return None
        nsn = digits[size:]
        country = _PLANS.get(code)
    else:
        code = _PLAN_OF_REGION.get(region, 0)
        country = region if code else None
        if digits.startswith("00") or digits.startswith(str(code)):
            return None  # an exit prefix, or a country code typed without "+"
        nsn = digits[1:] if digits.startswith("0") else digits
    if country is None or not nsn or nsn[0] == "0" or not 7 <= len(nsn) + len(str(code)) <= 15:
        return None
    number = phonenumbers.PhoneNumber(country_code=code, national_number=int(nsn))
    if phonenumbers.number_type(number) not in _SMS_TYPES:
        return None
    return f"+{code}{nsn}", country


def _country_of(e164: str) -> str | None:
    """The number's region: from the country code when only one region has it (fast)."""
    for digits in (1, 2, 3):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(e164[1 : 1 + digits]))
        if regions:
            if len(regions) == 1 and regions[0] != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
                return regions[0]
            break
    try:
        return country_of(e164)
    except PhoneError:
        return None


def normalize_with_country(raw: str, region: str) -> tuple[str, str | None]:
    """(E.164, country) of an SMS-capable number, as :func:`normalize_phone` finds it, by the
    fast path when the number is typed plainly; PhoneError with the reason otherwise."""
    fast = _fast_e164(raw, region)
    if fast is not None:
        return fast
    e164 = normalize_phone(raw, region)
    return e164, _country_of(e164)
