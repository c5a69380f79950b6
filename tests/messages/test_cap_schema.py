"""CAP alerts judged by the OASIS CAP 1.2 schema: published national alerts (tests/data/cap/
real, sources in its README) are read, CAP 1.1 ones upgraded, and the schema's findings
come back named by the element's path."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from importlib.resources import files
from pathlib import Path

import pytest

from messages.cap import (
    CAP11_NS,
    CAP_NS,
    CapError,
    ValuePair,
    parse_alert,
    to_template,
    to_xml,
)

REAL = Path(__file__).resolve().parents[1] / "data" / "cap" / "real"
OASIS_SHA256 = "b7798ef25868b068c97b268bda02d067c7d4ba9373adc5638bf37105804ee723"
FROST = "T_WOCN11_C_CWHX_202210101814_1032737847.cap"  # ECCC, en + fr, an empty <value/>
AIR = "T_WOCN20_C_CWVR_202210101743_2051382770.cap"  # ECCC, two <info>s per language
NWS_11 = "nws-5c2cf27b1f56885d61654dc47fa411d5.xml"  # NWS, CAP 1.1
LOCAL_EMERGENCY = "ipaws-5e7e0fc5023f1930efcf3deb.xml"  # IPAWS, a polygon and a resource
CANCEL = "ipaws-5e6dd9de023f1930ef6548d9.xml"  # IPAWS, a Cancel without <info>
TSUNAMI = "google-PAAQ-4-mg5a94.xml"  # WCATWC, an Update with three references


def real(name: str) -> bytes:
    return (REAL / name).read_bytes()


def error(data: bytes) -> str:
    with pytest.raises(CapError) as caught:
        parse_alert(data)
    return str(caught.value)


def test_the_shipped_schema_is_the_oasis_file() -> None:
    shipped = files("messages.cap").joinpath("schemas", "CAP-v1.2.xsd").read_bytes()
    assert hashlib.sha256(shipped).hexdigest() == OASIS_SHA256
    assert b"<!-- Copyright OASIS Open 2010 All Rights Reserved -->" in shipped


@pytest.mark.parametrize("name", sorted(p.name for p in REAL.iterdir()))
def test_every_published_alert_is_read_and_written_back_the_same(name: str) -> None:
    alert = parse_alert(real(name))
    assert parse_alert(to_xml(alert)) == alert
    if alert.infos:
        spec, _ = to_template(alert)
        assert spec.variants


def test_an_empty_parameter_value_is_a_value() -> None:
    """ECCC's frost advisory: schema-valid, with <value/>, once refused as "must not be
    empty"."""
    alert = parse_alert(real(FROST))
    assert alert.identifier == "urn:oid:2.49.0.1.124.1032737847.2022"
    assert alert.msg_type == "Update"
    assert len(alert.references) == 13
    assert [i.language for i in alert.infos] == ["en-CA", "fr-CA"]
    for info in alert.infos:
        assert ValuePair("layer:EC-MSC-SMC:1.1:Newly_Active_Areas", "") in info.parameters
        assert info.instruction is None  # <instruction/>
    assert alert.infos[0].areas[0].desc == "Kings County"
    assert b"<value />" in to_xml(alert)  # written back: the element, with no text
    spec, _ = to_template(alert)
    assert sorted(spec.variants) == ["en", "fr"]
    assert spec.variants["en"].startswith("frost advisory in effect\nFrost may damage")


def test_a_second_info_in_a_language_is_reported() -> None:
    alert = parse_alert(real(AIR))
    assert [i.language for i in alert.infos] == ["en-CA", "fr-CA", "en-CA", "fr-CA"]
    _, warnings = to_template(alert)
    assert any(w.startswith("alert/info[3]/language: a second <info> in 'en'") for w in warnings)


def test_a_cap_1_1_alert_is_read_as_1_2() -> None:
    """The NWS served CAP 1.1 with empty parameter values and an empty polygon."""
    alert = parse_alert(real(NWS_11))
    assert alert.sender == "w-nws.webmaster@noaa.gov"
    assert alert.sent == datetime(2021, 12, 27, 10, 8, tzinfo=timezone(timedelta(hours=-6)))
    (info,) = alert.infos
    assert (info.event, info.urgency, info.severity) == ("Blizzard Warning", "Expected", "Severe")
    assert info.urgent
    assert ValuePair("WMOHEADER", "") in info.parameters
    assert ValuePair("VTEC", "/O.CON.KDLH.BZ.W.0002.000000T0000Z-211228T0000Z/") in info.parameters
    (area,) = info.areas
    assert area.polygons == ()  # <polygon></polygon>: no shape
    assert ValuePair("UGC", "MNZ020") in area.geocodes
    written = to_xml(alert)
    assert f'xmlns="{CAP_NS}"'.encode() in written
    assert CAP11_NS.encode() not in written


def test_the_upgrade_mends_what_cap_1_1_allowed() -> None:
    """Z and fractions of a second in date-times, and a resource without a media type,
    were CAP 1.1; CAP 1.2's schema refuses them."""
    document = f"""<alert xmlns="{CAP11_NS}">
        <identifier>X-1</identifier><sender>s@example.org</sender>
        <sent>2031-01-01T00:00:00.250Z</sent><status>Actual</status>
        <msgType>Update</msgType><scope>Public</scope>
        <references>s@example.org,X-0,2030-12-31T23:00:00Z</references>
        <info><category>Met</category><event>Flood</event>
        <urgency>Expected</urgency><severity>Severe</severity><certainty>Likely</certainty>
        <expires>2031-01-02T00:00:00-05:00</expires>
        <resource><resourceDesc>map</resourceDesc><uri>http://example.org/m</uri></resource>
        <area><areaDesc>Bokeo</areaDesc></area></info>
    </alert>""".encode()
    alert = parse_alert(document)
    assert alert.sent == datetime(2031, 1, 1, tzinfo=UTC)
    assert alert.references[0].sent == datetime(2030, 12, 31, 23, tzinfo=UTC)
    assert alert.infos[0].expires == datetime(2031, 1, 2, tzinfo=timezone(timedelta(hours=-5)))


def test_what_the_upgrade_cannot_mend_is_named() -> None:
    naive = real(NWS_11).replace(b"<sent>2021-12-27T10:08:00-06:00", b"<sent>2021-12-27T10:08:00")
    assert error(naive).startswith("alert/sent: '2021-12-27T10:08:00' is not a CAP date-time")
    no_event = real(NWS_11).replace(b"<event>Blizzard Warning</event>", b"")
    assert error(no_event) == "alert/info[1]/event: required element is missing"


def test_schema_findings_on_published_alerts_name_the_element() -> None:
    soon = real(FROST).replace(b"<urgency>Future</urgency>", b"<urgency>Soon</urgency>")
    message = error(soon)
    assert message.startswith("2 problems in the CAP alert:")
    for n in (1, 2):
        assert (
            f"alert/info[{n}]/urgency: 'Soon' is not one of "
            "Immediate, Expected, Future, Past, Unknown"
        ) in message

    no_desc = real(FROST).replace(b"<areaDesc>Annapolis County</areaDesc>", b"")
    assert error(no_desc) == "alert/info[1]/area[2]/areaDesc: required element is missing"

    no_type = real(LOCAL_EMERGENCY).replace(b"<mimeType>image/jpeg</mimeType>", b"")
    assert error(no_type) == "alert/info[1]/resource[1]/mimeType: required element is missing"

    altitude = real(NWS_11).replace(
        b"</geocode>\n        </area>", b"</geocode><altitude>high</altitude></area>"
    )
    assert error(altitude) == "alert/info[1]/area[1]/altitude: 'high' is not a valid xs:decimal"

    response = real(FROST).replace(
        b"<responseType>Monitor</responseType>", b"<responseType>Run</responseType>", 1
    )
    assert error(response).startswith("alert/info[1]/responseType[1]: 'Run' is not one of Shelter,")

    late = (
        real(TSUNAMI)
        .replace(b"<incidents>mg5a94</incidents>", b"")
        .replace(b"</info>", b"</info><incidents>mg5a94</incidents>")
    )
    assert error(late) == "alert/incidents: must come before <info> (CAP 1.2 element order)"


def test_published_updates_and_cancels_keep_their_references() -> None:
    cancel = parse_alert(real(CANCEL))
    assert (cancel.msg_type, cancel.infos) == ("Cancel", ())
    (reference,) = cancel.references
    assert reference.identifier == "AS-NV-e18921c7-1b35-4a81-9705-42d25c265ddd"
    tsunami = parse_alert(real(TSUNAMI))
    assert [r.identifier for r in tsunami.references] == [
        "PAAQ-1-mg5a94",
        "PAAQ-2-mg5a94",
        "PAAQ-3-mg5a94",
    ]
    assert tsunami.infos[0].areas[0].circles == ("55.3,-134.9 0.0",)
    emergency = parse_alert(real(LOCAL_EMERGENCY))
    assert emergency.urgent
    assert len(emergency.infos[0].areas[0].polygons) == 1


def test_other_namespaces_are_set_aside() -> None:
    """A signature riskcast does not verify (ECCC's has an Id the XML-signature schema
    refuses), a publisher's extension, xml:lang and a schema location it never loads."""
    extended = real(NWS_11).replace(
        b"<headline>",
        b'<x:colour xmlns:x="urn:example:extension">red</x:colour><headline>',
    )
    assert parse_alert(extended).infos[0].headline is not None
    located = real(NWS_11).replace(
        b"<alert xmlns = 'urn:oasis:names:tc:emergency:cap:1.1'>",
        b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.1' "
        b"xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' "
        b"xsi:schemaLocation='urn:oasis:names:tc:emergency:cap:1.1 http://invalid.example/cap.xsd'>",
    )
    assert parse_alert(located).identifier.startswith("NOAA-NWS-ALERTS-MN")
    lang = real(NWS_11).replace(b"<info>", b'<info xml:lang="es-US">')
    assert parse_alert(lang).infos[0].language == "es-US"
    unqualified = real(NWS_11).replace(b"<headline>", b'<colour xmlns="">red</colour><headline>')
    assert error(unqualified).startswith(
        "alert/info[1]/colour: not in the CAP 1.2 namespace (urn:oasis:names:tc:emergency:cap:1.2)"
    )


def test_importing_messages_does_not_load_the_schema_library() -> None:
    """xmlschema takes about half a second to import and build: a command that reads no
    alert must not pay for it."""
    code = "import sys, messages, messages.cap; print('xmlschema' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
