# ruff: noqa: F811 - pytest fixtures imported by name
"""``POST /api/v1/contacts/import``: the same CSV as ``riskcast contacts import``, uploaded;
counts, every rejected row with its line, numbers masked, opted-out people left alone."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.contacts import service as contacts
from broadcaster.models import AuditEvent, Contact, ContactImport
from tests import factories
from tests.broadcaster.apiclient import Person, TestClient, app, client, people  # noqa: F401

URL = "/api/v1/contacts/import"
OPTED_OUT = "+8562055559001"

# BOM, semicolons, a quoted list of communities, one Latin-1 line, a duplicate number,
# a landline, an unknown language, an unknown community, a bad date, an opted-out person.
FILE = (
    "\ufeffphone;name;language;communities;country;consent_source;consent_at\n"
    '020 5555 1001;Noy;lo;"village;district";;;\n'  # 2: good
    "081-234-5001;Somchai;th;village;TH;;2026-11-01\n"  # 3: good, Thai
    "020 5555 1001;Noy K.;;;;;\n"  # 4: duplicate of line 2, merged
    "021 212 345;Office;lo;village;;;\n"  # 5: landline
    "020 5555 1002;Bee;xx;village;;;\n"  # 6: unknown language
    "020 5555 1003;Ket;lo;nowhere;;;\n"  # 7: unknown community
    "020 5555 1004;Dao;lo;village;;;yesterday\n"  # 8: bad date
    "020 5555 9001;Out;lo;village;;;\n"  # 9: opted out before: left alone
).encode() + "020 5555 1005;Jos\u00e9;lo;village;;;\n".encode("latin-1")  # 10: not UTF-8


def setup(session: Session) -> None:
    factories.community(session, "district")
    factories.community(session, "village")
    person, _ = contacts.add_contact(session, OPTED_OUT, region="LA")
    contacts.opt_out(session, person, source="keyword")
    session.commit()


def upload(client: TestClient, who: Person, data: bytes, **params: str):  # type: ignore[no-untyped-def]
    return client.post(
        URL,
        files={"file": ("people.csv", data, "text/csv")},
        params=params,
        headers=who.headers,
    )


def test_an_official_uploads_a_file_and_sees_what_was_rejected(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    setup(session)
    answer = upload(client, people["official"], FILE)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {k: body[k] for k in ("imported", "updated", "rejected", "merged_duplicates")} == {
        "imported": 2,
        "updated": 0,
        "rejected": 5,
        "merged_duplicates": 1,
    }
    assert body["unchanged_opted_out"] == 1 and body["rows"] == 9
    assert not body["errors_truncated"]
    by_line = {e["line"]: (e["column"], e["phone"]) for e in body["errors"]}
    assert set(by_line) == {5, 6, 7, 8, 10}
    assert by_line[6] == ("language", "+856 20 ••• ••02")
    assert by_line[7][0] == "communities" and by_line[8][0] == "consent_at"
    assert "55551002" not in answer.text and "5551002" not in answer.text
    noy = session.scalar(select(Contact).where(Contact.phone == "+8562055551001"))
    assert noy is not None and noy.name == "Noy K." and noy.language == "lo"
    assert session.scalar(select(Contact.status).where(Contact.phone == OPTED_OUT)) == "opted_out"
    started, ended = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action.in_(["contact.import", "contact.import.done"]))
        .order_by(AuditEvent.id)
    ).all()
    assert (started.action, started.actor) == ("contact.import", "olivia")
    assert ended.detail["imported"] == 2 and ended.detail["rejected"] == 5
    run = session.scalars(select(ContactImport)).one()
    assert (run.state, run.through_line, run.actor) == ("done", 10, "olivia")
    assert run.counts["imported"] == 2 and ended.object_id == str(run.id)


def test_every_rejected_row_as_csv_with_the_counts_in_headers(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    setup(session)
    answer = upload(client, people["official"], FILE, errors="csv", community="district")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["x-riskcast-imported"] == "2"
    assert answer.headers["x-riskcast-rejected"] == "5"
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [int(r["line"]) for r in rows] == [5, 6, 7, 8, 10]
    assert rows[-1]["reason"].startswith("not UTF-8")
    assert all("•" in r["phone"] or not r["phone"] for r in rows)


def test_a_file_that_cannot_be_imported_names_the_problem_and_writes_nothing(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    setup(session)
    official = people["official"]
    no_phone = upload(client, official, b"name,language\nNoy,lo\n")
    assert no_phone.status_code == 422 and no_phone.json()["field"] == "file"
    unknown = upload(client, official, FILE, community="atlantis")
    assert unknown.status_code == 422 and unknown.json()["field"] == "community"
    assert "atlantis" in unknown.json()["error"]
    nul = upload(client, official, b"phone,name\n020 5555 1001,No\x00y\n020 5555 1006,Dao\n")
    assert nul.status_code == 200 and nul.json()["imported"] == 1
    assert nul.json()["errors"][0]["column"] == "name"
    assert nul.json()["errors"][0]["reason"] == "contains a NUL character"
    missing = client.post(URL, headers=official.headers)
    assert missing.status_code == 422 and missing.json()["field"] == "file"
    bare_cr = upload(client, official, b"phone,na\rme\n020 5555 1007,Noy\n")  # once a 500
    assert bare_cr.status_code == 422 and "carriage return" in bare_cr.json()["error"]
    assert session.scalar(select(Contact).where(Contact.name.like("No%"))) is None
