"""Benchmark the contact import: write a CSV of N rows, import it into a fresh PostgreSQL
database, print rows/s (target: >= 20,000 rows/s for 200,000 rows).

    python scripts/bench_import.py                      # 200,000 rows, server 127.0.0.1
    python scripts/bench_import.py --rows 1000000       # also shows memory stays flat
    python scripts/bench_import.py --server postgresql://postgres@db:5432
    python scripts/bench_import.py --url postgresql://user@host/empty_db   # use this one

With ``--server`` a database ``riskcast_bench_import_<random>`` is created there and dropped
afterwards. The rows are a realistic mix: Lao numbers typed locally, Lao and Thai numbers in
E.164, Thai numbers typed locally with country TH, three languages, two communities each,
consent dates. Phone numbers are synthetic and never printed.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from broadcaster.communities import service as communities
from broadcaster.contacts.importer import import_contacts
from broadcaster.db import make_engine, make_session_factory
from broadcaster.schema import upgrade

HEADER = "phone,name,language,communities,country,consent_source,consent_at\n"


def write_csv(path: Path, rows: int) -> int:
    """A CSV of ``rows`` distinct, valid contacts; returns its size in bytes."""
    languages = ("lo", "th", "en")
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for i in range(rows):
            kind = i % 4
            if kind == 0:
                phone, country = f"020 5{i // 10000 % 1000:03d} {i % 10000:04d}", ""
            elif kind == 1:
                phone, country = f"+85620{7000_0000 + i % 10_000_000:08d}", ""
            elif kind == 2:
                phone, country = f"+6681{i % 10_000_000:07d}", ""
            else:
                phone, country = f"089-{i // 10000 % 1000:03d}-{i % 10000:04d}", "TH"
            out.write(
                f"{phone},Person {i},{languages[i % 3]},bokeo;worksite,{country},"
                f"district office,2024-0{1 + i % 9}-15\n"
            )
    return path.stat().st_size


def _admin(server: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(server.rstrip("/") + "/postgres", autocommit=True)


def run(url: str, rows: int, workdir: Path) -> dict[str, object]:
    engine = make_engine(url)
    try:
        upgrade(engine)
        sessions = make_session_factory(engine)
        with sessions() as session:
            communities.add_community(session, "bokeo", name="Bokeo", country="LA")
            communities.add_community(session, "worksite", name="Worksite", language="th")
            session.commit()
        path = workdir / "contacts.csv"
        size = write_csv(path, rows)
        started = time.perf_counter()
        with sessions() as session, path.open("rb") as stream:
            summary = import_contacts(session, stream, region="LA")
            session.commit()
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    return {
        "rows": rows,
        "bytes": size,
        "imported": summary.imported,
        "rejected": summary.rejected,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target_rows_per_s": 20_000,
        "meets_target": rows / seconds >= 20_000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="an existing (empty) database to import into")
    where.add_argument(
        "--server",
        default="postgresql://postgres@127.0.0.1:5432",
        help="a server to create (and drop) a scratch database on",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    name = None
    url = args.url
    if url is None:
        name = f"riskcast_bench_import_{uuid.uuid4().hex[:8]}"
        with _admin(args.server) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = args.server.rstrip("/") + "/" + name
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(url, args.rows, Path(tmp))
    finally:
        if name is not None:
            with _admin(args.server) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        sys.stdout.write(
            f"imported {result['imported']:,} of {result['rows']:,} rows "
            f"({result['bytes']:,} bytes) in {result['seconds']} s: "
            f"{result['rows_per_s']:,} rows/s (target >= 20,000); "
            f"peak RSS {result['max_rss_mb']} MB\n"
        )
    return 0 if result["meets_target"] and not result["rejected"] else 1


if __name__ == "__main__":
    sys.exit(main())
