"""CSV import of contacts: counts, every bad row reported, upserts, consent kept, streaming."""

from __future__ import annotations

import csv
import io
import logging
import random
import re
from collections.abc import Iterator

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcaster import phones
from broadcaster.campaigns import scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.fanout import fanout_page
from broadcaster.contacts import service as contacts
from broadcaster.contacts.importer import ImportFileError, ImportSummary, import_contacts
from broadcaster.db import utcnow
from broadcaster.errors import NotFound
from broadcaster.models import Community, Contact, ContactStatus, Membership
from broadcaster.phones import country_of, normalize_phone
from tests import factories

HEADER = "phone,name,language,communities,country,consent_source,consent_at\n"


def _import(
    session: Session, data: bytes | str, **kwargs: object
) -> tuple[ImportSummary, list[dict[str, str]]]:
    raw = data.encode() if isinstance(data, str) else data
    out = io.StringIO()
    summary = import_contacts(
        session,
        io.BytesIO(raw),
        region="LA",
        errors_out=out,
        **kwargs,  # type: ignore[arg-type]
    )
    return summary, list(csv.DictReader(io.StringIO(out.getvalue())))


def _contact(session: Session, e164: str) -> Contact:
    row = session.scalar(select(Contact).where(Contact.phone == e164))
    assert row is not None
    return row


def _slugs(session: Session, contact: Contact) -> set[str]:
    return set(
        session.scalars(
            select(Community.slug)
            .join(Membership, Membership.community_id == Community.id)
            .where(Membership.contact_id == contact.id)
        )
    )


@pytest.fixture
def places(session: Session) -> None:
    factories.community(session, "laos", kind="country", country="LA")
    factories.community(session, "bokeo", parent="laos", kind="province")
    factories.community(session, "worksite", language="th", country="TH")


# -- the 10,000-row file ------------------------------------------------------------------
BAD_KINDS = (
    "bad_number",
    "landline",
    "unknown_language",
    "unknown_community",
    "bad_date",
    "wrong_columns",
    "latin1",
    "empty_line",
)


def _landline(fields: list[str], i: int) -> list[str]:
    return [f"021 {212000 + i % 1000}", *fields[1:4], "", *fields[5:]]


_SPOIL = {
    "bad_number": lambda f, i: [f"12{i}", *f[1:]],
    "landline": _landline,
    "unknown_language": lambda f, i: [*f[:2], "xx", *f[3:]],
    "unknown_community": lambda f, i: [*f[:3], "bokeo;atlantis", *f[4:]],
    "bad_date": lambda f, i: [*f[:6], "31/02/2024"],
    "wrong_columns": lambda f, i: f[:3],
    "latin1": lambda f, i: [f[0], f"Jos\xe9 {i}", *f[2:]],
}


def _mixed_file(
    rows: int, bad_share: float, seed: int
) -> tuple[bytes, dict[int, str], int, set[str]]:
    """(file, line -> bad kind, good rows, every phone string written)."""
    rng = random.Random(seed)
    bad_total = int(rows * bad_share)
    kinds = [BAD_KINDS[i % len(BAD_KINDS)] for i in range(bad_total)] + [None] * (rows - bad_total)
    rng.shuffle(kinds)
    out = io.BytesIO()
    out.write(HEADER.encode())
    bad_lines: dict[int, str] = {}
    phones: set[str] = set()
    good = 0
    for i, kind in enumerate(kinds):
        line = i + 2
        n = 1_000_000 + i
        if i % 3 == 0:  # Lao, typed locally
            phone, country = f"020 5{n // 10000 % 1000:03d} {n % 10000:04d}", ""
        elif i % 3 == 1:  # Thai, international
            phone, country = f"+66 81 {n % 10_000_000:07d}", ""
        else:  # Thai, typed locally in Thailand
            phone, country = f"081{n % 10_000_000:07d}", "TH"
        phones.add(phone)
        fields = [phone, f"Person {i}", "lo", "bokeo;laos", country, "health office", "2024-05-01"]
        if kind in _SPOIL:
            fields = _SPOIL[kind](fields, i)
        if kind == "empty_line":
            out.write(b"\n")
        elif kind == "latin1":
            out.write((",".join(fields) + "\n").encode("latin-1"))
        else:
            out.write((",".join(fields) + "\n").encode())
        if kind is None:
            good += 1
        elif kind != "empty_line":
            bad_lines[line] = kind
    return out.getvalue(), bad_lines, good, phones


def test_ten_thousand_rows_thirty_percent_bad(session: Session, places: None) -> None:
    data, bad_lines, good, phones = _mixed_file(10_000, 0.3, seed=5)
    summary, errors = _import(session, data, chunk_size=1000)
    assert summary.imported == good == 7000
    assert summary.rejected == len(bad_lines) == 3000 - 375
    assert summary.blank_lines == 375
    assert summary.updated == 0 and summary.merged_duplicates == 0
    assert summary.rows == 10_000 - 375
    # every bad row reported, with its line and the right column, and nothing else
    reported: dict[int, set[str]] = {}
    for e in errors:
        reported.setdefault(int(e["line"]), set()).add(e["column"])
    assert set(reported) == set(bad_lines)
    expected_column = {
        "bad_number": "phone",
        "landline": "phone",
        "unknown_language": "language",
        "unknown_community": "communities",
        "bad_date": "consent_at",
        "wrong_columns": "",
        "latin1": "",
    }
    for line, kind in bad_lines.items():
        assert reported[line] == {expected_column[kind]}, (line, kind)
    reasons = {e["reason"] for e in errors}
    assert "not UTF-8 (save the file as CSV UTF-8)" in reasons
    assert "landline, SMS cannot reach it" in reasons
    assert "unknown community 'atlantis'" in reasons
    assert "unknown language 'xx'" in reasons
    assert "wrong column count: 3 fields, the header has 7" in reasons
    # the database holds exactly the good rows, with their communities
    assert session.scalar(select(func.count()).select_from(Contact)) == good
    assert session.scalar(select(func.count()).select_from(Membership)) == 2 * good
    countries = dict(
        session.execute(select(Contact.country, func.count()).group_by(Contact.country)).all()
    )
    assert set(countries) == {"LA", "TH"}
    # no whole number in the report: at most the last two digits of each
    text = "\n".join(",".join(e.values()) for e in errors)
    assert not re.search(r"\d{5,}", text.replace(",", " "))
    for phone in phones:
        assert phone not in text


def test_every_row_kept_apart_from_bad_neighbours_across_chunks(
    session: Session, places: None
) -> None:
    body = "".join(
        f"020 5{i:03d} 00{i % 100:02d},N{i},{'lo' if i % 2 else 'zz'},bokeo,,,\n" for i in range(40)
    )
    summary, errors = _import(session, HEADER + body, chunk_size=3)
    assert (summary.imported, summary.rejected) == (20, 20)
    assert [int(e["line"]) for e in errors] == [i + 2 for i in range(0, 40, 2)]


# -- consent --------------------------------------------------------------------------------
def test_import_never_resubscribes_an_opted_out_or_blocked_contact(
    session: Session, places: None
) -> None:
    out = factories.contact(session, "+8562055550001", community_slugs=("laos",), name="Out")
    contacts.opt_out(session, out, source="keyword")
    blocked = factories.contact(session, "+8562055550002", name="Blocked")
    blocked.status = ContactStatus.BLOCKED.value
    session.flush()
    data = (
        HEADER + "+8562055550001,New name,th,bokeo,,official,2024-01-01\n"
        "020 5555 0002,Other,en,bokeo,,,\n"
        "020 5555 0003,Fresh,lo,bokeo,,,\n"
    )
    summary, errors = _import(session, data, default_community="worksite")
    assert errors == []
    assert summary.unchanged_opted_out == 2
    assert (summary.imported, summary.updated) == (1, 0)
    session.expire_all()
    out = _contact(session, "+8562055550001")
    assert out.status == ContactStatus.OPTED_OUT
    assert out.name == "Out" and out.opted_out_source == "keyword"
    assert _slugs(session, out) == {"laos"}
    blocked = _contact(session, "+8562055550002")
    assert blocked.status == ContactStatus.BLOCKED and _slugs(session, blocked) == set()
    assert _slugs(session, _contact(session, "+8562055550003")) == {"bokeo", "worksite"}
    # importing the file again changes nothing for them either
    summary, _ = _import(session, data)
    assert summary.unchanged_opted_out == 2 and summary.updated == 1
    session.expire_all()
    assert _contact(session, "+8562055550001").status == ContactStatus.OPTED_OUT


# -- upserts and duplicates -------------------------------------------------------------------
def test_upsert_fills_fields_and_never_erases_them(session: Session, places: None) -> None:
    existing = factories.contact(session, "+8562055551000", name="Kham", language="lo")
    data = HEADER + "020 5555 1000,,th,worksite,,,\n020 5555 1001,Noy,,,,,\n"
    summary, _ = _import(session, data)
    assert (summary.imported, summary.updated, summary.rejected) == (1, 1, 0)
    session.expire_all()
    row = _contact(session, existing.phone)
    assert (row.name, row.language, row.status) == ("Kham", "th", "active")
    assert _slugs(session, row) == {"worksite"}
    new = _contact(session, "+8562055551001")
    assert (new.name, new.language, new.country, new.consent_source) == (
        "Noy",
        None,
        "LA",
        "import",
    )
    assert new.consent_at is not None


@pytest.mark.parametrize("chunk_size", [1, 100])
def test_channel_column_sets_the_preferred_channel_and_empty_keeps_it(
    session: Session, places: None, chunk_size: int
) -> None:
    kept = factories.contact(session, "+8562055553000")
    kept.channel = "whatsapp"
    session.flush()
    data = (
        "phone,channel\n"
        "020 5555 3000,\n"  # empty: stays whatsapp
        "020 5555 3001,WhatsApp\n"
        "020 5555 3002,\n"  # new, empty: sms
        "020 5555 3003,fax\n"
        "020 5555 3001,\n"  # a later empty field never erases
    )
    summary, errors = _import(session, data, chunk_size=chunk_size)
    assert [(e["line"], e["column"]) for e in errors] == [("5", "channel")]
    assert "unknown channel 'fax'" in errors[0]["reason"]
    assert (summary.imported, summary.updated, summary.rejected) == (2, 1, 1)
    session.expire_all()
    channels = {
        phone: _contact(session, phone).channel
        for phone in ("+8562055553000", "+8562055553001", "+8562055553002")
    }
    assert channels == {
        "+8562055553000": "whatsapp",
        "+8562055553001": "whatsapp",
        "+8562055553002": "sms",
    }


@pytest.mark.parametrize("chunk_size", [1, 100])
def test_timezone_column_sets_a_contacts_own_zone_and_empty_keeps_it(
    session: Session, places: None, chunk_size: int
) -> None:
    kept = factories.contact(session, "+8562055554000")
    kept.timezone = "Asia/Yangon"
    session.flush()
    data = (
        "phone,timezone\n"
        "020 5555 4000,\n"  # empty: stays Asia/Yangon
        "020 5555 4001,Asia/Bangkok\n"
        "020 5555 4002,\n"  # new, empty: none of its own
        "020 5555 4003,Asia/Lao\n"
        "020 5555 4004,../etc/passwd\n"
        "020 5555 4001,\n"  # a later empty field never erases
    )
    summary, errors = _import(session, data, chunk_size=chunk_size)
    assert [(e["line"], e["column"]) for e in errors] == [("5", "timezone"), ("6", "timezone")]
    assert "unknown time zone 'Asia/Lao'" in errors[0]["reason"]
    assert (summary.imported, summary.updated, summary.rejected) == (2, 1, 2)
    session.expire_all()
    zones = {
        phone: _contact(session, phone).timezone
        for phone in ("+8562055554000", "+8562055554001", "+8562055554002")
    }
    assert zones == {
        "+8562055554000": "Asia/Yangon",
        "+8562055554001": "Asia/Bangkok",
        "+8562055554002": None,
    }


@pytest.mark.parametrize("chunk_size", [1, 2, 100])
def test_duplicates_in_a_file_are_merged_later_fields_win(
    session: Session, places: None, chunk_size: int
) -> None:
    data = (
        HEADER + "020 5555 2000,First,lo,laos,,,\n"
        "020 5555 2001,Other,,,,,\n"
        "+8562055552000,,th,bokeo,,,\n"
        "00856 20 5555 2000,Last,,,,,2024-03-01\n"
    )
    summary, errors = _import(session, data, chunk_size=chunk_size)
    assert errors == []
    assert (summary.imported, summary.updated, summary.merged_duplicates) == (2, 0, 2)
    session.expire_all()
    row = _contact(session, "+8562055552000")
    assert (row.name, row.language) == ("Last", "th")
    assert row.consent_at is not None and row.consent_at.date().isoformat() == "2024-03-01"
    assert _slugs(session, row) == {"laos", "bokeo"}


# -- file format ---------------------------------------------------------------------------
def test_bom_semicolons_crlf_any_column_order_and_quoted_lists(
    session: Session, places: None
) -> None:
    data = (
        "\ufeffCommunities;Phone;Language\r\n"
        '"laos;bokeo";020 5555 3000;lo-LA\r\n'
        "\r\n"
        "worksite;081-234-5678;th\r\n"
    ).encode()
    summary, errors = _import(session, data)
    assert [e["line"] for e in errors] == ["4"]  # a Thai local number read as Lao
    assert errors[0]["column"] == "phone" and errors[0]["phone"].endswith("78")
    assert summary.imported == 1 and summary.blank_lines == 1
    row = _contact(session, "+8562055553000")
    assert row.language == "lo" and _slugs(session, row) == {"laos", "bokeo"}


def test_country_column_reads_local_numbers_but_the_number_decides(
    session: Session, places: None
) -> None:
    data = HEADER + "081-234-5678,,,,TH,,\n+8562055554000,,,,TH,,\n0812345679,,,,ZZ,,\n"
    summary, errors = _import(session, data)
    assert summary.imported == 2
    assert [(e["line"], e["column"]) for e in errors] == [("4", "country")]
    assert _contact(session, "+66812345678").country == "TH"
    assert _contact(session, "+8562055554000").country == "LA"


def test_dates(session: Session, places: None) -> None:
    data = (
        HEADER + "020 5555 5001,,,,,,2024-05-01T08:30:00+07:00\n"
        "020 5555 5002,,,,,,2024-05-01 08:30\n"
        "020 5555 5003,,,,,,2999-01-01\n"
        "020 5555 5004,,,,,,yesterday\n"
        f"020 5555 5005,,,,,{'x' * 33},\n"
    )
    summary, errors = _import(session, data)
    assert summary.imported == 2
    assert [(e["line"], e["column"]) for e in errors] == [
        ("4", "consent_at"),
        ("5", "consent_at"),
        ("6", "consent_source"),
    ]
    assert "in the future" in errors[0]["reason"]
    first = _contact(session, "+8562055555001").consent_at
    assert first is not None and first.isoformat() == "2024-05-01T01:30:00+00:00"


def test_a_row_with_several_problems_reports_each(session: Session, places: None) -> None:
    summary, errors = _import(session, HEADER + "12,,xx,nowhere,,,soon\n")
    assert summary.rejected == 1
    assert [e["column"] for e in errors] == ["phone", "language", "communities", "consent_at"]


def test_trailing_empty_fields_are_accepted(session: Session, places: None) -> None:
    summary, errors = _import(session, "phone,name\n020 5555 6000,A,,\n020 5555 6001,B,x\n")
    assert summary.imported == 1
    assert errors[0]["reason"] == "wrong column count: 3 fields, the header has 2"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\n020 5555 1234\n", "empty"),
        ("phone\n".encode("utf-16"), "UTF-16"),
        (b"name,language\nA,lo\n", "no 'phone' column"),
        (b"phone,langauge\n", "unknown column 'langauge'"),
        (b"phone,Phone\n", "appears twice"),
        (b"ph\xf6ne\n", "not UTF-8"),
        (b"phone,name\r020 5555 1234,Noy\r", "bare carriage return"),
        (b'phone,"na\rme"\n020 5555 1234,Noy\n', "bare carriage return"),
    ],
)
def test_a_file_that_cannot_be_read_writes_nothing(
    session: Session, data: bytes, message: str
) -> None:
    with pytest.raises(ImportFileError, match=message):
        _import(session, data)
    assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_unknown_default_community(session: Session) -> None:
    with pytest.raises(NotFound, match="nowhere"):
        _import(session, HEADER, default_community="nowhere")


def test_text_stream_and_singular_community_column(session: Session, places: None) -> None:
    stream = io.StringIO("phone,name,language,community\n020 5555 7000,A,lo,bokeo\n")
    summary = import_contacts(session, stream, region="LA")
    assert summary.imported == 1
    assert _slugs(session, _contact(session, "+8562055557000")) == {"bokeo"}


def test_progress_reports_bytes_and_earlier_chunks_survive_a_crash(
    session: Session, places: None
) -> None:
    lines = [HEADER.encode()] + [f"020 5{i:03d} 7777,,,,,,\n".encode() for i in range(10)]
    seen: list[int] = []

    def crashing() -> Iterator[bytes]:
        yield from lines[:8]
        raise OSError("disk went away")

    class Stream(io.RawIOBase):
        def __init__(self) -> None:
            self.it = crashing()

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            return b""

        def __iter__(self) -> Iterator[bytes]:
            return self.it

    with pytest.raises(OSError, match="disk went away"):
        import_contacts(session, Stream(), region="LA", chunk_size=3, progress=seen.append)
    # two chunks of three were committed before the stream failed
    assert session.scalar(select(func.count()).select_from(Contact)) == 6
    assert seen == [sum(map(len, lines[:4])), sum(map(len, lines[:7]))]
    summary, _ = _import(session, b"".join(lines), progress=seen.append)
    assert (summary.imported, summary.updated) == (4, 6)
    assert seen[-1] == len(b"".join(lines)) == summary.bytes_read


# -- no number in the logs ------------------------------------------------------------------
def test_no_full_number_in_logs_after_an_import_and_a_campaign(
    session: Session, places: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data = HEADER + "".join(f"020 5555 8{i:03d},P{i},lo,bokeo,,,\n" for i in range(30))
    data += "021 212 345,L,lo,bokeo,,,\n020 5555 8000,dup,xx,,,,\n"
    _import(session, data, chunk_size=7)
    camp = factories.campaign(session, ["laos"])
    campaigns.schedule(session, camp.id)
    scheduling.claim_due(session, utcnow())
    page = fanout_page(session, camp.id, page_size=100, batch_size=10)
    assert page.created == 30
    assert caplog.records, "the import logs its progress"
    text = caplog.text
    for i in range(30):
        assert f"20 5555 8{i:03d}" not in text
        assert f"+856205555{8000 + i}" not in text
    assert "212 345" not in text and "21212345" not in text


# -- the fast path for numbers agrees with normalize_phone -----------------------------------
_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=13)
_SEPS = st.sampled_from(["", " ", "-", ".", "(", ")", "/"])


@st.composite
def _typed_numbers(draw: st.DrawFn) -> str:
    head = draw(st.sampled_from(["", "+", "0", "+856", "+66", "0", "00", "+855 ", "+84", "+1"]))
    body = draw(st.sampled_from(["", "20", "30", "8", "9", "6", "21", "2", "1"]))
    groups = draw(st.lists(_DIGITS, min_size=1, max_size=4))
    text = head + body
    for group in groups:
        text += draw(_SEPS) + group
    return text


_REGIONS = ["LA", "TH", "KH", "VN", "MM", "MY", "US", "CN", "GB"]


@st.composite
def _near_mobiles(draw: st.DrawFn) -> tuple[str, str]:
    """(typed number, region): real numbers of a region with their last digits changed,
    sometimes a digit more or less, written in E.164 or nationally (with or without the
    0, with an exit prefix), with separators; read mostly in their own region."""
    region = draw(st.sampled_from(_REGIONS))
    kind = draw(st.sampled_from([PhoneNumberType.MOBILE] * 3 + [PhoneNumberType.FIXED_LINE]))
    example = phonenumbers.example_number_for_type(region, kind)
    assert example is not None
    nsn = phonenumbers.national_significant_number(example)
    changed = draw(st.integers(min_value=0, max_value=4))
    size = len(nsn) + draw(st.sampled_from([0, 0, 0, 0, 1, -1]))
    tail = draw(st.text(alphabet="0123456789", min_size=changed, max_size=changed))
    nsn = (nsn[: len(nsn) - changed] + tail)[:size].ljust(size, "5")
    cc = str(example.country_code)
    head = draw(st.sampled_from([f"+{cc}", f"+{cc} ", "0", "", f"00{cc}", cc]))
    cut = draw(st.integers(min_value=0, max_value=len(nsn)))
    raw = head + nsn[:cut] + draw(_SEPS) + nsn[cut:]
    read_in = draw(st.sampled_from([region, region, region, *_REGIONS]))
    return raw, read_in


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.tuples(_typed_numbers(), st.sampled_from(_REGIONS)) | _near_mobiles())
def test_fast_path_agrees_with_normalize_phone(case: tuple[str, str]) -> None:
    raw, region = case
    fast = phones._fast_e164(raw, region)
    if fast is None:
        return
    assert fast[0] == normalize_phone(raw, region)
    assert fast[1] == country_of(fast[0])


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("020 5555 1234", "LA", "+8562055551234"),
        ("2055551234", "LA", "+8562055551234"),
        ("+856 20 5555 1234", "TH", "+8562055551234"),
        ("081-234-5678", "TH", "+66812345678"),
        ("+66 (81) 234.5678", "LA", "+66812345678"),
    ],
)
def test_fast_path_takes_the_common_forms(raw: str, region: str, e164: str) -> None:
    assert phones._fast_e164(raw, region) == (e164, country_of(e164))


@pytest.mark.parametrize(
    "raw", ["00856 20 5555 1234", "856 20 5555 1234", "021 212 345", "+1 415 555 2671", "٠٢٠"]
)
def test_fast_path_leaves_the_hard_cases_to_normalize_phone(raw: str) -> None:
    assert phones._fast_e164(raw, "LA") is None


@pytest.mark.parametrize("region", sorted(phones._PLANS.values()))
def test_fast_path_agrees_for_every_simple_plan(region: str) -> None:
    """Every region the fast path takes: its example mobile, fixed line and neighbours,
    typed in E.164 and nationally, read at home and from Laos."""
    for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        cc = example.country_code
        nsn = phonenumbers.national_significant_number(example)
        for variant in {nsn, nsn[:-1] + "7", nsn + "1", nsn[:-1]}:
            for raw, read_in in [
                (f"+{cc} {variant}", "LA"),
                (f"0{variant}", region),
                (variant, region),
            ]:
                fast = phones._fast_e164(raw, read_in)
                if fast is not None:
                    assert fast == (normalize_phone(raw, read_in), region), raw
        if kind == PhoneNumberType.MOBILE and phonenumbers.number_type(example) in (
            PhoneNumberType.MOBILE,
            PhoneNumberType.FIXED_LINE_OR_MOBILE,
        ):
            assert phones._fast_e164(f"+{cc}{nsn}", "LA") is not None, region
