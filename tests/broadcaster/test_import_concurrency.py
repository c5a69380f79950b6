"""A large contact import never stops the rest of riskcast from writing (issue 16, item 8).

On SQLite every transaction takes the write lock when it begins, so an import that held a
transaction while it read its file blocked every other writer for the whole file: campaign
creation and status callbacks failed after the busy timeout, the scheduler logged "database
is locked". Here an import runs in one thread (as the API runs it, in a request whose
session has already read the caller's token) while another thread, on its own connections,
creates and launches campaigns, runs the scheduler's claim, records status callbacks and
writes audit rows, each as its own transaction, timed. The figures are printed (run with
``-s`` to see them); the assertions are loose on purpose.

The import's result is the same as it always was, and the same on PostgreSQL; the audit
row of an import says how far it got, also when its process is killed, and running the file
again finishes the job.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.audit.service import Actor
from broadcaster.campaigns import actions, scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.contacts.importer import DONE, FAILED, RUNNING, ImportSummary, import_contacts
from broadcaster.db import make_session_factory, session_scope, utcnow
from broadcaster.deliveries import service as deliveries
from broadcaster.models import (
    AuditEvent,
    Community,
    Contact,
    ContactImport,
    Delivery,
    Membership,
)
from broadcaster.runtime import get_runtime
from tests import factories
from tests.broadcaster.clitools import audit_events, cli_on_sqlite, ok
from tests.services import migrated_database

ROOT = Path(__file__).resolve().parents[2]
HEADER = "phone,name,language,communities,country,consent_source,consent_at\n"
OFFICIAL = Actor(user_id=None, name="olivia", role="official", source="127.0.0.1")
MAX_WRITE_SECONDS = 5.0  # the busy timeout is 30 s; a write waits for one chunk at most

# What each line of the "mostly rejected" file is, by i % 20: one good row in twenty.
_REJECTED_KINDS = (
    ["good"] + ["language"] * 6 + ["phone"] * 4 + ["communities"] * 4 + ["consent_at"] * 5
)


@dataclass
class ImportFile:
    name: str
    data: bytes
    good: int
    errors: list[tuple[int, str]]  # (line, column) of every rejected row, in order


def rejected_file(rows: int) -> ImportFile:
    """Nineteen rows in twenty rejected (unknown language, bad number, unknown community,
    bad date), the twentieth good."""
    out = io.StringIO()
    out.write(HEADER)
    errors = []
    good = 0
    for i in range(rows):
        kind = _REJECTED_KINDS[i % 20]
        phone = f"020 59{i // 10000 % 100:02d} {i % 10000:04d}"
        fields = [phone, f"Person {i}", "lo", "village", "", "", "2024-03-01"]
        if kind == "good":
            good += 1
        elif kind == "language":
            fields[2] = "xx"
        elif kind == "phone":
            fields[0] = f"12{i}"
        elif kind == "communities":
            fields[3] = "village;atlantis"
        else:
            fields[6] = "31/02/2024"
        if kind != "good":
            errors.append((i + 2, kind))
        out.write(",".join(fields) + "\n")
    return ImportFile("mostly rejected", out.getvalue().encode(), good, errors)


def good_file(rows: int) -> ImportFile:
    """Every row good: Lao numbers typed locally, Thai ones in international form."""
    out = io.StringIO()
    out.write(HEADER)
    for i in range(rows):
        if i % 2:
            phone, lang = f"020 58{i // 10000 % 100:02d} {i % 10000:04d}", "lo"
        else:
            phone, lang = f"+66 82 {i:07d}", "th"
        out.write(f"{phone},Person {i},{lang},village;district,,district office,2024-03-01\n")
    return ImportFile("good", out.getvalue().encode(), rows, [])


@dataclass
class Writes:
    """Latencies of the other writers' transactions, by kind, and what failed."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def timed(
        self, kind: str, factory: sessionmaker[Session], fn: Callable[[Session], Any]
    ) -> None:
        started = time.perf_counter()
        try:
            with session_scope(factory) as session:
                fn(session)
        except Exception as exc:
            self.failures.append(f"{kind}: {type(exc).__name__}: {str(exc)[:80]}")
        self.seconds.setdefault(kind, []).append(time.perf_counter() - started)

    def max(self) -> float:
        return max(s for values in self.seconds.values() for s in values)

    def report(self) -> str:
        return "; ".join(
            f"{kind} n={len(v)} p50={statistics.median(v) * 1000:.0f}ms max={max(v) * 1000:.0f}ms"
            for kind, v in self.seconds.items()
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A fresh migrated database (a real SQLite file, or a PostgreSQL database)."""
    with migrated_database(request.param, str(tmp_path)) as (url, engine):
        with session_scope(make_session_factory(engine)) as session:
            factories.community(session, "village")
            factories.community(session, "district")
        yield url, engine


def _audience(factory: sessionmaker[Session], people: int) -> tuple[str, list[int]]:
    """A template, and a campaign to ``people`` contacts fanned out: (template, deliveries)."""
    with session_scope(factory) as session:
        key = factories.template(session)
        for n in range(people):
            factories.contact(session, factories.lao_number(n), community_slugs=("village",))
        campaign = factories.campaign(session, ["village"], key=key)
        campaigns.schedule(session, campaign.id, approval_threshold=10**6)
    with session_scope(factory) as session:
        factories.fanned_out(session, campaign.id)
    with session_scope(factory) as session:
        ids = list(session.scalars(select(Delivery.id).order_by(Delivery.id)))
    return key, ids


def _import(
    factory: sessionmaker[Session], file: ImportFile, **kwargs: Any
) -> tuple[ImportSummary, str, float]:
    """Import ``file`` as the API does, in a request's session that has read the caller's
    token first: (summary, errors.csv, seconds)."""
    errors_out = io.StringIO()
    started = time.perf_counter()
    with session_scope(factory) as session:
        session.execute(text("SELECT 1"))  # the request's own reads come first
        summary = import_contacts(
            session,
            io.BytesIO(file.data),
            region="LA",
            errors_out=errors_out,
            actor=OFFICIAL,
            file_name=f"{file.name}.csv",
            **kwargs,
        )
    return summary, errors_out.getvalue(), time.perf_counter() - started


def _check_result(summary: ImportSummary, errors_csv: str, file: ImportFile) -> None:
    """What the import has always answered for this file."""
    assert summary.imported == file.good
    assert summary.rejected == len(file.errors)
    assert summary.updated == summary.merged_duplicates == summary.unchanged_opted_out == 0
    rows = list(csv.DictReader(io.StringIO(errors_csv)))
    assert [(int(r["line"]), r["column"]) for r in rows] == file.errors
    reasons = {r["column"]: r["reason"] for r in rows}
    if file.errors:
        assert reasons["language"] == "unknown language 'xx'"
        assert reasons["communities"] == "unknown community 'atlantis'"
        assert reasons["consent_at"].startswith("bad date '31/02/2024'")


def test_campaigns_callbacks_and_the_scheduler_keep_writing_during_a_large_import(
    database: tuple[str, Engine],
) -> None:
    _url, engine = database
    kind = engine.dialect.name
    factory = make_session_factory(engine)
    key, delivery_ids = _audience(factory, 300)
    files = [rejected_file(40_000), good_file(20_000)]
    for file in files:
        outcome: dict[str, Any] = {}

        def run(file: ImportFile = file, outcome: dict[str, Any] = outcome) -> None:
            try:
                outcome["result"] = _import(factory, file)
            except BaseException as exc:  # reported by the main thread
                outcome["error"] = exc

        importer = threading.Thread(target=run, name="import")
        writes = Writes()
        importer.start()
        i = 0
        while importer.is_alive():
            writes.timed(
                "campaign created and launched", factory, lambda s, i=i: _launch(s, key, i)
            )
            writes.timed("scheduler claim", factory, lambda s: scheduling.claim_due(s, utcnow()))
            delivery = delivery_ids[i % len(delivery_ids)]
            writes.timed(
                "status callback",
                factory,
                lambda s, d=delivery: deliveries.apply_provider_status(
                    s, delivery_id=d, sid=f"SM{d:032d}", status="delivered"
                ),
            )
            writes.timed("audit row", factory, lambda s, i=i: OFFICIAL.record(s, "probe", "n", i))
            i += 1
            time.sleep(0.02)
        importer.join()
        if "error" in outcome:
            raise outcome["error"]
        summary, errors_csv, seconds = outcome["result"]
        print(
            f"\n{kind}: import of {file.name} file, {len(file.data) / 1e6:.1f} MB, "
            f"{summary.rows:,} rows in {seconds:.1f} s ({summary.rows / seconds:,.0f} rows/s); "
            f"other writes during it: {writes.report()}"
        )
        assert writes.failures == []
        if file.errors:
            # waiting for the file, a writer would get one turn, after the import
            assert all(len(v) >= 3 for v in writes.seconds.values()), writes.report()
        assert writes.max() < MAX_WRITE_SECONDS, writes.report()
        _check_result(summary, errors_csv, file)
        with session_scope(factory) as session:
            row = session.scalars(select(ContactImport).order_by(ContactImport.id.desc())).first()
            assert row is not None and row.actor == "olivia"
            assert status(row)["state"] == DONE
            assert status(row)["imported"] == file.good
            assert status(row)["rejected"] == len(file.errors)
            assert status(row)["through_line"] == summary.rows + 1
    with session_scope(factory) as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 300 + sum(
            f.good for f in files
        )


def _launch(session: Session, key: str, i: int) -> None:
    campaign = actions.create(
        session, OFFICIAL, name=f"alert {i}", template_key=key, community_slugs=["village"]
    )
    campaigns.schedule(session, campaign.id, approval_threshold=10**6)


# -- the same result on both databases ---------------------------------------------------------
def _contents(engine: Engine) -> list[tuple[Any, ...]]:
    with session_scope(make_session_factory(engine)) as session:
        return sorted(
            session.execute(
                select(
                    Contact.phone,
                    Contact.name,
                    Contact.language,
                    Contact.country,
                    Contact.channel,
                    Contact.status,
                    Contact.consent_source,
                    Community.slug,
                )
                .join(Membership, Membership.contact_id == Contact.id)
                .join(Community, Community.id == Membership.community_id)
            ).all()
        )


def test_the_same_files_give_the_same_result_on_sqlite_and_postgresql(tmp_path: Path) -> None:
    files = [rejected_file(6_000), good_file(3_000)]
    results = {}
    for kind in ("sqlite", "postgresql"):
        with migrated_database(kind, str(tmp_path)) as (_url, engine):
            factory = make_session_factory(engine)
            with session_scope(factory) as session:
                factories.community(session, "village")
                factories.community(session, "district")
            answers = []
            for file in files:
                summary, errors_csv, _ = _import(factory, file, chunk_size=1000)
                _check_result(summary, errors_csv, file)
                answers.append((summary, errors_csv))
            # the same file again: every good row updated, nothing added
            again, errors_again, _ = _import(factory, files[0], chunk_size=1000)
            assert (again.imported, again.updated) == (0, files[0].good)
            assert errors_again == answers[0][1]
            results[kind] = (answers, _contents(engine))
    assert results["sqlite"] == results["postgresql"]
    assert len(results["sqlite"][1]) == files[0].good + 2 * files[1].good


# -- a crash in the middle ----------------------------------------------------------------------
CHILD = """
import sys
from broadcaster.audit.service import Actor
from broadcaster.contacts.importer import import_contacts
from broadcaster.db import make_engine, make_session_factory, session_scope

url, path = sys.argv[1:3]
actor = Actor(user_id=None, name="cli:test", role="admin", source="cli")
factory = make_session_factory(make_engine(url))
with session_scope(factory) as session, open(path, "rb") as stream:
    import_contacts(session, stream, region="LA", chunk_size=500, actor=actor, file_name="big.csv")
"""


def status(row: ContactImport) -> dict[str, object]:
    """What the import's status row says: state, counts, the last line settled, error."""
    return {
        "state": row.state,
        **row.counts,
        "through_line": row.through_line,
        **({"error": row.error} if row.error else {}),
    }


def _import_row(factory: sessionmaker[Session]) -> ContactImport | None:
    with session_scope(factory) as session:
        return session.scalars(select(ContactImport).order_by(ContactImport.id.desc())).first()


def test_an_import_killed_midway_says_how_far_it_got_and_running_it_again_finishes(
    database: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = database
    factory = make_session_factory(engine)
    file = good_file(30_000)
    path = tmp_path / "big.csv"
    path.write_bytes(file.data)
    stderr = tmp_path / "child.err"
    with stderr.open("wb") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(path)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=err,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                row = _import_row(factory)
                if row is not None and row.through_line > 2000:
                    break
                assert child.poll() is None, stderr.read_text()
                time.sleep(0.01)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, stderr.read_text()
    row = _import_row(factory)
    assert row is not None and row.actor == "cli:test" and row.file_name == "big.csv"
    with session_scope(factory) as session:
        stored = session.scalar(select(func.count()).select_from(Contact)) or 0
    # the row matches what was committed: whole chunks, the last one it names
    assert status(row)["state"] == RUNNING
    assert 0 < stored < file.good
    assert status(row)["imported"] == stored == status(row)["rows"]
    assert status(row)["through_line"] == stored + 1
    # running the file again adds the rest and changes nothing that was there
    summary, _, _ = _import(factory, file)
    assert (summary.imported, summary.updated, summary.rejected) == (file.good - stored, stored, 0)
    assert _import_row(factory).state == DONE  # type: ignore[union-attr]
    with session_scope(factory) as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == file.good
        assert session.scalar(select(func.count()).select_from(Membership)) == 2 * file.good


def test_an_import_stopped_by_an_error_is_marked_failed_at_its_last_commit(
    session: Session,
) -> None:
    factories.community(session, "village")
    lines = [HEADER.encode()] + [
        f"020 5{i:03d} 7777,,,village,,,\n".encode() if i % 2 else b"12,,,,,,\n" for i in range(10)
    ]

    def failing() -> Iterator[bytes]:
        yield from lines[:9]
        raise OSError("disk went away")

    class Stream(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            return b""

        def __iter__(self) -> Iterator[bytes]:
            return failing()

    with pytest.raises(OSError, match="disk went away"):
        import_contacts(
            session, Stream(), region="LA", chunk_size=3, actor=OFFICIAL, file_name="f.csv"
        )
    row = session.scalars(select(ContactImport)).one()
    # two chunks of three rows were committed (lines 2-7); the third never was
    assert status(row) == {
        "state": FAILED,
        "error": "OSError: disk went away",
        "imported": 3,
        "updated": 0,
        "rejected": 3,
        "merged_duplicates": 0,
        "unchanged_opted_out": 0,
        "blank_lines": 0,
        "rows": 6,
        "through_line": 7,
    }
    assert session.scalar(select(func.count()).select_from(Contact)) == 3
    (failed,) = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "contact.import.failed")
    ).all()
    assert failed.detail == {"error": "OSError: disk went away", "through_line": 7}


def test_a_sqlite_file_uses_wal_and_waits_for_the_write_lock(tmp_path: Path) -> None:
    with migrated_database("sqlite", str(tmp_path)) as (_url, engine), engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 5000


def test_the_command_line_import_is_audited_with_its_state_and_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = rejected_file(100)
    path = tmp_path / "people.csv"
    path.write_bytes(file.data)
    with cli_on_sqlite(tmp_path, monkeypatch) as run:
        with get_runtime().session() as session:
            factories.community(session, "village")
        output = ok(run("contacts", "import", str(path))).output
        assert f"imported {file.good}, updated 0, rejected {len(file.errors)}" in output
        report = list(csv.DictReader(io.StringIO((tmp_path / "people.csv.errors.csv").read_text())))
        assert [(int(r["line"]), r["column"]) for r in report] == file.errors
        [started] = audit_events("contact.import")
        [event] = audit_events("contact.import.done")
        with get_runtime().session() as session:
            row = session.scalars(select(ContactImport)).one()
            session.expunge(row)
    assert started.detail["file"] == "people.csv" and event.source == "cli"
    assert (row.state, row.through_line) == (DONE, 101)
    assert (event.detail["imported"], event.detail["rejected"]) == (file.good, len(file.errors))
