"""Phone numbers: normalisation to E.164, rejections with reasons, masking (real phonenumbers)."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from broadcaster.phones import (
    PHONE_PATTERN,
    PhoneError,
    country_of,
    mask_phone,
    mask_phones_in_text,
    mask_raw,
    normalize_phone,
)

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
LAO = "+8562055551234"
THAI = "+66812345678"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        # Lao mobiles
        ("+856 20 5555 1234", "LA", LAO),
        ("+8562055551234", "LA", LAO),
        ("+8562055551234", "TH", LAO),
        ("020 5555 1234", "LA", LAO),
        ("020-5555-1234", "LA", LAO),
        ("(020) 5555.1234", "LA", LAO),
        ("2055551234", "LA", LAO),  # Lao mobile typed without the trunk 0
        ("20 55 551 234", "la", LAO),  # region is case-insensitive
        ("+856 30 555 1234", "LA", "+856305551234"),  # Lao 030 mobile
        # a Lao number typed with an exit prefix: Lao, never Chile (+56)
        ("00856 20 5555 1234", "TH", LAO),
        ("00856 20 5555 1234", "LA", LAO),
        ("008562055551234", "TH", LAO),
        ("001 856 20 5555 1234", "TH", LAO),
        ("009 856 20 5555 1234", "TH", LAO),
        ("008 856 20 5555 1234", "TH", LAO),
        ("001 856 20 5555 1234", "LA", LAO),
        # Thai mobiles
        ("+66 81 234 5678", "LA", THAI),
        ("+66 81 234 5678", "TH", THAI),
        ("081-234-5678", "TH", THAI),
        ("081 234 5678", "TH", THAI),
        ("0066 81 234 5678", "LA", THAI),
        ("001 66 81 234 5678", "LA", THAI),
        ("+66 91 234 5678", "LA", "+66912345678"),
        ("+66 61 234 5678", "LA", "+66612345678"),
        # channel prefixes, typography, other digit scripts
        ("whatsapp:+8562055551234", "LA", LAO),
        ("WhatsApp: +856 20 5555 1234", "TH", LAO),
        ("tel:+66812345678", "LA", THAI),
        ("＋８５６ ２０ ５５５５ １２３４", "TH", LAO),  # full-width plus and digits
        ("０２０ ５５５５ １２３４", "LA", LAO),
        ("๐๘๑ ๒๓๔ ๕๖๗๘", "TH", THAI),  # Thai digits
        ("໐໒໐ ໕໕໕໕ ໑໒໓໔", "LA", LAO),  # Lao digits
        ("  +856\u00a020\u20135555\u20131234  ", "LA", LAO),  # nbsp, en dashes
        ("\u200e+856 20 5555 1234\u200f", "LA", LAO),  # bidi marks from a chat app
        ("+856 (20) 5555/1234", "LA", LAO),
    ],
)
def test_normalizes_lao_and_thai_formats(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


def test_00856_typed_in_thailand_is_lao_not_chile() -> None:
    # phonenumbers alone, with region TH, reads "008" as the exit prefix and "56" as Chile
    assert phonenumbers.parse("00856 20 5555 1234", "TH").country_code == 56
    e164 = normalize_phone("00856 20 5555 1234", "TH")
    assert e164 == LAO
    assert country_of(e164) == "LA"


def test_default_region_is_laos() -> None:
    assert normalize_phone("020 5555 1234") == LAO


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("", "LA", "empty"),
        ("   ", "LA", "empty"),
        ("whatsapp:", "LA", "empty"),
        ("call me", "LA", "letters"),
        ("020 5555 12a4", "LA", "letters"),
        ("+1 800 FLOWERS", "LA", "letters"),
        ("020 5555 1234 ext 5", "LA", "letters"),
        ("---", "LA", "no digits"),
        ("020#5555", "LA", "not digits"),
        ("+856 +20 5555 1234", "LA", "'+'"),
        ("123", "LA", "too short"),
        ("020 55", "LA", "too short"),
        ("+856 20 5555 1234 5678 9", "LA", "too long"),
        ("+856 20 5555 1234 9999 9999", "LA", "too long"),
        ("020 1555 1234", "LA", "not a valid number for Laos (LA)"),
        ("+66 12 345 678", "LA", "not a valid number for Thailand (TH)"),
        ("+999 1234 5678", "LA", "unknown country code"),
        # Vientiane and Bangkok fixed lines: SMS cannot reach them
        ("+856 21 212 345", "LA", "landline, SMS cannot reach it"),
        ("021 212 345", "LA", "landline, SMS cannot reach it"),
        ("02 123 4567", "TH", "landline, SMS cannot reach it"),
        ("1800 123 456", "TH", "toll-free"),
    ],
)
def test_rejects_with_reason_and_without_the_number(raw: str, region: str, reason: str) -> None:
    with pytest.raises(PhoneError) as caught:
        normalize_phone(raw, region)
    message = str(caught.value)
    assert reason in message
    # the message carries no digits at all, so no part of the number can leak
    assert not re.search(r"\d", message), message


def test_landline_accepted_when_mobile_not_required() -> None:
    assert normalize_phone("+856 21 212 345", require_mobile=False) == "+85621212345"
    assert normalize_phone("02 123 4567", "TH", require_mobile=False) == "+6621234567"


def test_phone_error_is_a_value_error() -> None:
    assert issubclass(PhoneError, ValueError)


@pytest.mark.parametrize(
    ("e164", "region"),
    [(LAO, "LA"), (THAI, "TH"), ("+85621212345", "LA"), ("+12015550123", "US")],
)
def test_country_of(e164: str, region: str) -> None:
    assert country_of(e164) == region


@pytest.mark.parametrize("bad", ["", "2055551234", "+999123456789", "+56 2055551234"])
def test_country_of_rejects_what_is_not_a_valid_e164_number(bad: str) -> None:
    with pytest.raises(PhoneError):
        country_of(bad)


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        (LAO, "+856 20 ••• ••34"),
        (THAI, "+66 81 ••• ••78"),
        ("+856305551234", "+856 30 ••• ••34"),
        ("+85621212345", "+856 21 ••• ••45"),
        ("+12015550123", "+1 201 ••• ••23"),
        ("+442079460958", "+44 20 ••• ••58"),
        ("+6834002", "+683 ••• ••02"),  # too short to show a first group
        ("whatsapp:+8562055551234", "whatsapp:+856 20 ••• ••34"),
        ("+562055551234", "+56 ••• ••34"),  # parses, but not valid: no first group
    ],
)
def test_mask_phone(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked


@pytest.mark.parametrize("text", ["", "not a number", "020 5555 1234", "+", "+0"])
def test_mask_phone_never_raises_and_falls_back_to_mask_raw(text: str) -> None:
    assert mask_phone(text) == mask_raw(text)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("020 5555 1234", "••• •••• ••34"),
        ("0205555１２３４", "•••••••••３４"),  # the digits it keeps stay as typed
        ("12", "12"),
        ("abc", "abc"),
        ("", ""),
    ],
)
def test_mask_raw(text: str, masked: str) -> None:
    assert mask_raw(text) == masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("sent to +8562055551234", "sent to +856 20 ••• ••34"),
        ("sent to +856 20 5555 1234 2 times", "sent to +856 20 ••• ••34 2 times"),
        ("to=whatsapp:+8562055551234.", "to=whatsapp:+856 20 ••• ••34."),
        ("from +66-81-234-5678, retry", "from +66 81 ••• ••78, retry"),
        ("bad number +85620555512349999", "bad number +•••••••••••••••99"),
        ("typed 020 5555 1234 in row 3", "typed ••• •••• ••34 in row 3"),
        ("Thai 081-234-5678", "Thai •••-•••-••78"),
        ("(020) 5555 1234", "(•••) •••• ••34"),
        ("exit 00856 20 5555 1234", "exit ••••• •• •••• ••34"),
        ("bare 8562055551234!", "bare •••••••••••34!"),
        ("a+8562055551234b", "a+856 20 ••• ••34b"),
        ("+856 20 5555 1234 020 5555 9999", "+856 20 ••• ••34 ••• •••• ••99"),
        ("+8562055551234-0205555999", "+856 20 ••• ••34-••••••••99"),
        ("+4312000 short Austrian", "+43 ••• ••00 short Austrian"),
    ],
)
def test_mask_phones_in_text(text: str, masked: str) -> None:
    assert mask_phones_in_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "campaign 12 launched",
        "call the hotline 1166",
        "due 2026-11-28 at 10:12:33.123",
        "sent 200,000 of 200,000 messages",
        "1,000,000 segments; 3.14159265358 ratio",
        "28/11/2026 06-12-2026 10:12",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "SID SM0123456789abcdef0123456789abcdef",
        "Twilio error 30008, HTTP 429, batch of 100",
        "version 10.0.19045.1234",
        "+856 20 ••• ••34",
    ],
)
def test_mask_phones_in_text_leaves_ordinary_numbers_alone(text: str) -> None:
    assert mask_phones_in_text(text) == text
    assert PHONE_PATTERN.search(text) is None


# --- properties ---------------------------------------------------------------------


def _national(e164: str) -> str:
    return str(phonenumbers.parse(e164).national_number)


phone_like_text = st.one_of(
    st.text(),
    st.text(alphabet="0123456789 +-().", max_size=25),
    st.text(alphabet="0123456789", min_size=8, max_size=14).map(lambda s: "+" + s),
    st.text(alphabet="0123456789", min_size=8, max_size=14).map(lambda s: "00" + s),
    st.text(alphabet="0123456789", min_size=8, max_size=11).map(lambda s: "0" + s),
)


@given(raw=phone_like_text, region=st.sampled_from(["LA", "TH", "KH", "MM", "US", "ZZ"]))
@example(raw="00856 20 5555 1234", region="TH")
@example(raw="whatsapp:+8562055551234", region="LA")
@example(raw="+", region="LA")
@example(raw="0", region="ZZ")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_normalize_returns_valid_e164_or_raises_phone_error(raw: str, region: str) -> None:
    for require_mobile in (True, False):
        try:
            e164 = normalize_phone(raw, region, require_mobile=require_mobile)
        except PhoneError as exc:
            assert str(exc)
            continue
        assert E164.match(e164), e164
        assert phonenumbers.is_valid_number(phonenumbers.parse(e164))
        again = normalize_phone(e164, region, require_mobile=require_mobile)
        assert again == e164
        assert normalize_phone(e164, "TH", require_mobile=require_mobile) == e164


lao_mobiles = st.builds(
    lambda third, rest: f"+85620{third}{rest}",
    st.sampled_from("2357"),
    st.text(alphabet="0123456789", min_size=7, max_size=7),
)
thai_mobiles = st.builds(
    lambda first, second, rest: f"+66{first}{second}{rest}",
    st.sampled_from("689"),
    st.sampled_from("0123456789"),
    st.text(alphabet="0123456789", min_size=7, max_size=7),
)


@given(e164=st.one_of(lao_mobiles, thai_mobiles))
@settings(max_examples=300, deadline=None)
def test_valid_mobiles_pass_unchanged_and_mask_hides_them(e164: str) -> None:
    number = phonenumbers.parse(e164)
    assume(phonenumbers.is_valid_number(number))
    assume(
        phonenumbers.number_type(number)
        in {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
    )
    assert normalize_phone(e164) == e164
    assert normalize_phone(e164, "TH") == e164
    assert country_of(e164) == ("LA" if e164.startswith("+856") else "TH")

    masked = mask_phone(e164)
    national = _national(e164)
    digits_shown = re.sub(r"\D", "", masked)
    cc = str(number.country_code)
    assert national not in digits_shown
    assert e164[1:] not in digits_shown
    # what is shown: the country code, a first group of at most 2 digits, the last 2 digits
    assert digits_shown.startswith(cc)
    first_group, tail = masked.split(" ")[1], masked.split(" ")[-1]
    assert national.startswith(first_group)
    assert len(first_group) <= 2
    assert tail == "••" + national[-2:]
    assert len(digits_shown) <= len(cc) + len(first_group) + 2

    # the same number inside free text is masked the same way
    assert mask_phones_in_text(f"sent to {e164} ok") == f"sent to {masked} ok"
    assert national not in mask_phones_in_text(f"sent to {e164} ok")


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_mask_functions_never_raise_and_are_idempotent(text: str) -> None:
    once = mask_phones_in_text(text)
    assert mask_phones_in_text(once) == once
    mask_phone(text)
    assert mask_raw(mask_raw(text)) == mask_raw(text)


@pytest.mark.parametrize(
    "text",
    [
        "call 0 2 0 5 5 5 5 1 2 3 4 now",
        'GET /api/v1/contacts?q=%2B8562055551234 HTTP/1.1" 200',
        "GET /api/v1/contacts?q=%2B856%2020%205555%201234",
        "q=020%205555%201234",
    ],
)
def test_numbers_typed_digit_by_digit_or_percent_encoded_are_masked(text: str) -> None:
    digits = re.sub(r"\D", "", mask_phones_in_text(text).replace("%20", " "))
    assert "5555" not in digits
    assert "34" in digits  # the last two digits stay, as in every mask


@pytest.mark.parametrize("text", ["50% off, 3 items", "version 0.12.3", "0 1 2 3", "100%"])
def test_text_without_a_number_is_left_as_it_is(text: str) -> None:
    assert mask_phones_in_text(text) == text
