"""What a provider error means for a delivery: retry, fail now, or stop the campaign.

One table, :data:`BUILTIN_RULES`, holds every decision. It is keyed by number: Twilio
error codes have five digits and HTTP statuses three, so they share one key space
without colliding. A Twilio code decides when the table knows it; otherwise the HTTP
status does; otherwise unknown 4xx is permanent and unknown 5xx retryable.

The same codes come back in status callbacks (``ErrorCode`` on an undelivered or failed
message: the 30xxx and 63xxx ranges), so the dashboard uses :func:`explain` for both.

Operators can add or override codes with a JSON or YAML file
(``{"30410": {"kind": "retryable", "explanation": "..."}}``) passed to
:func:`load_extra_codes`; the caller reads the path from ``RISKCAST_ERROR_CODES_FILE``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workers.providers.base import ErrorKind, ProviderError

OPTED_OUT_CODE = 21610

_R = ErrorKind.RETRYABLE
_P = ErrorKind.PERMANENT
_C = ErrorKind.CONFIGURATION


@dataclass(frozen=True, slots=True)
class ErrorRule:
    kind: ErrorKind
    explanation: str


def _rules(*rows: tuple[int, ErrorKind, str]) -> dict[int, ErrorRule]:
    return {key: ErrorRule(kind, text) for key, kind, text in rows}


BUILTIN_RULES: Mapping[int, ErrorRule] = _rules(
    # --- HTTP statuses, used when the body carries no code the table knows ---
    (400, _P, "The provider rejected the request for this recipient"),
    (401, _C, "The provider rejected our credentials"),
    (403, _C, "The provider refused the request for this account"),
    (404, _C, "Account or resource not found: check the account SID and the base URL"),
    (408, _R, "The provider timed out reading the request"),
    (429, _R, "Too many requests: the provider asked us to slow down"),
    (500, _R, "The provider had an internal error"),
    (502, _R, "Bad gateway between us and the provider"),
    (503, _R, "The provider is temporarily unavailable"),
    (504, _R, "Gateway timeout between us and the provider"),
    # --- Twilio REST API errors (answered at once) ---
    (20003, _C, "Authentication failed: wrong account SID or auth token"),
    (20404, _C, "Resource not found: wrong account SID or messaging service"),
    (20429, _R, "Too many concurrent requests to Twilio"),
    (20500, _R, "Twilio internal error"),
    (20503, _R, "Twilio service temporarily unavailable"),
    (21211, _P, "Invalid 'To' phone number"),
    (21212, _C, "Invalid 'From' number or sender ID"),
    (21408, _P, "Sending to this country or region is not enabled on the account"),
    (21602, _C, "Message body is required"),
    (21603, _C, "A 'From' number or messaging service is required"),
    (21604, _P, "A 'To' phone number is required"),
    (21606, _C, "The 'From' number cannot send messages to this destination"),
    (21608, _C, "Trial account: the 'To' number is not verified"),
    (21610, _P, "The recipient replied STOP: unsubscribed from this sender"),
    (21612, _P, "Twilio cannot route a message from this sender to this number"),
    (21614, _P, "The 'To' number is not a mobile number"),
    (21617, _C, "Message body exceeds the 1,600 character limit"),
    (21659, _C, "The 'From' number is not a Twilio number of this account"),
    (21660, _C, "The 'From' number belongs to another account"),
    (21703, _C, "The messaging service has no sender able to send this message"),
    (21704, _C, "The messaging service has no phone numbers"),
    (21910, _C, "'From' and 'To' are on different channels (SMS vs WhatsApp)"),
    # --- delivery errors (in status callbacks, sometimes answered at once) ---
    (30001, _R, "Queue overflow: Twilio held the message too long at the sender's rate"),
    (30002, _C, "The Twilio account is suspended"),
    (30003, _R, "Unreachable handset: switched off or out of coverage"),
    (30004, _P, "Message blocked by the recipient or the carrier"),
    (30005, _P, "Unknown destination handset: the number is not in service"),
    (30006, _P, "Landline or unreachable carrier"),
    (30007, _P, "Filtered by the carrier as spam or a content violation"),
    (30008, _R, "Unknown delivery error from the carrier"),
    (30009, _R, "A segment of the message was lost"),
    (30010, _C, "Message price exceeds the configured maximum price"),
    # --- WhatsApp and channel errors ---
    (63003, _P, "The channel could not find this recipient (no WhatsApp account?)"),
    (63016, _P, "Outside WhatsApp's 24-hour window: an approved template is required"),
    (63017, _R, "Account rate limit exceeded (about 2,000 messages per second in all)"),
    (63018, _R, "Rate limit exceeded for this WhatsApp sender"),
    (63024, _P, "Invalid WhatsApp recipient"),
    (63038, _R, "The account exceeded its daily message limit"),
)

NETWORK_EXPLANATION = "No answer from the provider (timeout or connection error)"
UNKNOWN_EXPLANATION = "Unknown provider error"

_lock = threading.Lock()
_rules_in_force: dict[int, ErrorRule] = dict(BUILTIN_RULES)


def rules() -> Mapping[int, ErrorRule]:
    """The table in force: built-in rules with any operator overrides merged over them."""
    return _rules_in_force


def classify(code: int | None, http_status: int | None) -> ErrorKind:
    """The kind of a failure given the provider's error code and HTTP status.

    Neither known means the request got no answer (timeout, refused connection):
    retryable.
    """
    table = _rules_in_force
    if code is not None and code in table:
        return table[code].kind
    if http_status is not None:
        if http_status in table:
            return table[http_status].kind
        if http_status >= 500:
            return ErrorKind.RETRYABLE
        if http_status >= 400:
            return ErrorKind.PERMANENT
    if code is None and http_status is None:
        return ErrorKind.RETRYABLE
    # A code the table does not know, with no status to go by: failing one delivery
    # is safer than retrying forever or stopping a whole campaign.
    return ErrorKind.PERMANENT


def explain(code: int | None) -> str:
    """A short sentence for the operator's dashboard. Never contains a phone number."""
    if code is None:
        return NETWORK_EXPLANATION
    rule = _rules_in_force.get(code)
    return rule.explanation if rule else f"{UNKNOWN_EXPLANATION} {code}"


def describe(code: int | None, http_status: int | None) -> str:
    """``explain`` for whichever of code and status the table knows, with both numbers."""
    table = _rules_in_force
    if code is not None and code in table:
        text = table[code].explanation
    elif http_status is not None and http_status in table:
        text = table[http_status].explanation
    elif code is None and http_status is None:
        text = NETWORK_EXPLANATION
    else:
        text = UNKNOWN_EXPLANATION
    parts = []
    if code is not None and code != http_status:
        parts.append(f"code {code}")
    if http_status is not None:
        parts.append(f"HTTP {http_status}")
    return f"{text} ({', '.join(parts)})" if parts else text


class ErrorCodesFileError(ValueError):
    """The operator's error-codes file is unreadable or malformed; names the entry."""


def parse_extra_codes(data: Any, *, source: str = "error codes") -> dict[int, ErrorRule]:
    """Validate ``{code: {kind:, explanation:}}`` into rules, naming any bad entry."""
    if not isinstance(data, Mapping):
        raise ErrorCodesFileError(f"{source}: expected a mapping of code to rule")
    parsed: dict[int, ErrorRule] = {}
    for raw_code, entry in data.items():
        try:
            code = int(raw_code)
        except (TypeError, ValueError):
            raise ErrorCodesFileError(f"{source}: {raw_code!r} is not a numeric code") from None
        if not isinstance(entry, Mapping):
            raise ErrorCodesFileError(f"{source}: code {code}: expected kind and explanation")
        try:
            kind = ErrorKind(str(entry.get("kind", "")).strip().lower())
        except ValueError:
            choices = ", ".join(k.value for k in ErrorKind)
            raise ErrorCodesFileError(
                f"{source}: code {code}: kind {entry.get('kind')!r} is not one of {choices}"
            ) from None
        explanation = entry.get("explanation")
        if explanation is None and code in BUILTIN_RULES:
            explanation = BUILTIN_RULES[code].explanation
        if not isinstance(explanation, str) or not explanation.strip():
            raise ErrorCodesFileError(f"{source}: code {code}: explanation is required")
        parsed[code] = ErrorRule(kind, explanation.strip())
    return parsed


def load_extra_codes(path: str | Path) -> dict[int, ErrorRule]:
    """Merge an operator's JSON or YAML file over the built-in table; returns what it added.

    Loading again replaces the previous file's rules (built-ins are never lost).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ErrorCodesFileError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        # YAML is a superset of JSON, so any name but *.json is read as YAML.
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ErrorCodesFileError(f"{path}: not valid JSON or YAML: {exc}") from exc
    extra = parse_extra_codes(data or {}, source=str(path))
    _install({**BUILTIN_RULES, **extra})
    return extra


def reset_rules() -> None:
    """Back to the built-in table (tests, or an operator removing the file)."""
    _install(dict(BUILTIN_RULES))


def _install(table: dict[int, ErrorRule]) -> None:
    global _rules_in_force  # noqa: PLW0603 -- swapped whole so readers never see a half-merged table
    with _lock:
        _rules_in_force = table


def error_from_response(code: int | None, http_status: int | None) -> ProviderError:
    """The :class:`ProviderError` for a refused request, built only from numbers.

    Twilio's own message is never copied: it often quotes the recipient's number.
    The SDK fills ``code`` with the HTTP status when the body carries no code (a proxy's
    HTML error page, say); that is not a Twilio code, so it is dropped here.
    """
    if code is not None and code == http_status:
        code = None
    return ProviderError(
        describe(code, http_status),
        kind=classify(code, http_status),
        code=code,
        http_status=http_status,
    )
