# ruff: noqa: F811 - pytest fixtures imported by name
"""What operators watch besides the queues: the send-rate chart (a pure layout of per-minute
counts, and the grouped query behind it on both backends), the worker heartbeat stores, and
both on the operator page, ``GET /api/v1/workers``, ``/metrics`` and ``riskcast queue``."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import redis
from rich.console import Console
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from broadcaster.campaigns import scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.fanout import fanout_page
from broadcaster.cli import queue as queue_cli
from broadcaster.db import utcnow
from broadcaster.deliveries import in_doubt
from broadcaster.models import Delivery
from broadcaster.monitoring import service as monitoring
from broadcaster.monitoring.service import (
    MemoryHeartbeats,
    RedisHeartbeats,
    WorkerBeat,
    nice_ceiling,
    rate_chart,
    sent_per_minute,
)
from tests import factories
from tests.broadcaster.apiclient import (  # noqa: F401 - fixtures
    PASSWORD,
    Person,
    TestClient,
    app,
    client,
    people,
    person,
)
from tests.broadcaster.test_dashboard import login
from tests.services import REDIS_URL, unavailable
from workers.heartbeat import Heartbeat

NOW = datetime(2024, 5, 1, 12, 30, 42, tzinfo=UTC)


def beat(hostname: str = "celery@box", pid: int = 101, **kwargs: object) -> WorkerBeat:
    fields: dict[str, object] = {
        "hostname": hostname,
        "pid": pid,
        "queues": ("bulk", "control", "urgent"),
        "concurrency": 4,
        "started_at": NOW - timedelta(minutes=5),
        "seen_at": NOW,
        "tasks": 7,
        **kwargs,
    }
    return WorkerBeat(**fields)  # type: ignore[arg-type]


# -- the chart, from counts alone -------------------------------------------------------


def test_the_summary_says_how_many_and_the_peak() -> None:
    counts = [0] * 60
    counts[10], counts[40], counts[59] = 31, 12, 1
    chart = rate_chart(counts)
    assert (chart.total, chart.peak) == (44, 31)
    assert chart.summary == "44 sent in the last hour, peak 31/min"
    assert rate_chart([0] * 60).summary == "Nothing sent in the last hour"
    assert rate_chart([2] * 15).summary == "30 sent in the last 15 minutes, peak 2/min"


def test_bars_share_one_round_scale_and_fit_the_plot() -> None:
    counts = [i % 7 for i in range(60)]
    chart = rate_chart(counts, width=360, height=140)
    assert len(chart.bars) == 60
    assert chart.scale_max == 10  # peak 6, rounded up to 1, 2, 5, 10...
    plot = chart.plot_bottom - chart.plot_top
    for bar, n in zip(chart.bars, counts, strict=True):
        assert bar.count == n
        assert bar.height == pytest.approx(plot * n / 10, abs=0.01)
        assert bar.y + bar.height == pytest.approx(chart.plot_bottom, abs=0.01)
        assert chart.plot_left <= bar.x and bar.x + bar.width <= chart.plot_right + 0.01
    xs = [b.x for b in chart.bars]
    assert xs == sorted(xs)  # oldest on the left
    assert bar.width > 0


def test_a_full_minute_reaches_the_top_and_labels_name_the_minute() -> None:
    counts = [0] * 58 + [20, 3]
    chart = rate_chart(counts, current_minute=datetime(2024, 5, 1, 12, 30, tzinfo=UTC))
    assert chart.scale_max == 20
    assert chart.bars[58].y == pytest.approx(chart.plot_top)
    assert chart.bars[58].label == "12:29 UTC: 20 sent"
    assert chart.bars[59].label == "12:30 UTC: 3 sent"
    assert chart.bars[0].label == "11:31 UTC: 0 sent"
    assert [t.text for t in chart.ticks] == ["-60 min", "-45 min", "-30 min", "-15 min", "now"]
    assert rate_chart([1, 2]).bars[0].label == "1 min ago: 1 sent"


def test_nothing_sent_draws_no_bar_height_and_bad_counts_are_refused() -> None:
    chart = rate_chart([0] * 60)
    assert chart.scale_max == 1 and all(b.height == 0 for b in chart.bars)
    assert rate_chart([]).bars == ()
    with pytest.raises(ValueError, match="negative"):
        rate_chart([1, -1])


@pytest.mark.parametrize(
    ("peak", "ceiling"),
    [(0, 1), (1, 1), (2, 2), (3, 5), (5, 5), (6, 10), (11, 20), (31, 50), (412, 500), (1000, 1000)],
)
def test_nice_ceiling(peak: int, ceiling: int) -> None:
    assert nice_ceiling(peak) == ceiling


# -- the rate query, on SQLite and PostgreSQL -------------------------------------------


def _deliveries(session: Session, n: int) -> list[int]:
    factories.community(session, "rate")
    for i in range(n):
        factories.contact(session, factories.lao_number(500 + i), community_slugs=("rate",))
    camp = factories.campaign(session, ["rate"])
    campaigns.schedule(session, camp.id)
    scheduling.claim_due(session, utcnow())
    fanout_page(session, camp.id, page_size=100, batch_size=100)
    return list(session.scalars(select(Delivery.id).where(Delivery.campaign_id == camp.id)))


def test_sent_per_minute_counts_by_minute_of_sent_at(session: Session) -> None:
    ids = _deliveries(session, 9)
    minute = NOW.replace(second=0)
    sent_at = [
        NOW,  # the current minute, so far
        minute + timedelta(seconds=1),
        minute - timedelta(microseconds=1),  # the minute before, at its very end
        minute - timedelta(minutes=1),  # the start of the minute before
        minute - timedelta(minutes=59),  # the oldest minute shown
        minute - timedelta(minutes=59, microseconds=1),  # one hour ago: not shown
        minute + timedelta(minutes=1),  # in the future (clocks differ): not shown
        None,  # never sent
        minute - timedelta(minutes=30, seconds=-59),
    ]
    for delivery_id, at in zip(ids, sent_at, strict=True):
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(sent_at=at))
    session.flush()

    counts = sent_per_minute(session, now=NOW)
    assert len(counts) == 60 and sum(counts) == 6
    assert counts[59] == 2 and counts[58] == 2 and counts[0] == 1 and counts[29] == 1
    assert sent_per_minute(session, now=NOW, minutes=2) == [2, 2]
    # another zone for "now" is the same instant
    vientiane = NOW.astimezone(timezone(timedelta(hours=7)))
    assert sent_per_minute(session, now=vientiane) == counts
    assert sum(sent_per_minute(session, now=NOW + timedelta(hours=2))) == 0


# -- heartbeat stores ----------------------------------------------------------------------


def test_a_beat_round_trips_through_json() -> None:
    b = beat()
    assert WorkerBeat.from_json(b.to_json()) == b
    assert b.key == "riskcast:worker:celery@box:101"
    assert b.as_dict()["queues"] == ["bulk", "control", "urgent"]


def test_memory_heartbeats_expire_and_are_removed() -> None:
    store = MemoryHeartbeats()
    store.put(beat(pid=1), ttl=0.2)
    store.put(beat(pid=2), ttl=30)
    assert [b.pid for b in store.alive()] == [1, 2]
    time.sleep(0.3)
    assert [b.pid for b in store.alive()] == [2]
    store.remove("celery@box", 2)
    assert store.alive() == []


@pytest.fixture
def redis_store() -> Iterator[RedisHeartbeats]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        unavailable("Redis", exc)
    store = RedisHeartbeats(REDIS_URL)
    try:
        yield store
    finally:
        store.close()


def test_redis_heartbeats_expire_and_are_removed(redis_store: RedisHeartbeats) -> None:
    host = f"celery@test-{uuid.uuid4().hex[:8]}"

    def mine() -> list[int]:
        return [b.pid for b in redis_store.alive() if b.hostname == host]

    redis_store.put(beat(host, pid=1), ttl=0.3)
    redis_store.put(beat(host, pid=2), ttl=30)
    assert mine() == [1, 2]
    assert [b for b in monitoring.workers_alive(REDIS_URL).workers if b.hostname == host][
        1
    ] == beat(host, pid=2)
    time.sleep(0.5)
    assert mine() == [2]
    redis_store.remove(host, 2)
    assert mine() == []


def test_unreachable_redis_means_unknown_not_zero() -> None:
    seen = monitoring.workers_alive("redis://127.0.0.1:1/0")
    assert seen.count is None and seen.workers == []
    assert seen.error and "Redis unavailable" in seen.error


def test_a_heartbeat_thread_beats_until_stopped() -> None:
    store = MemoryHeartbeats()
    tasks = iter(range(100))
    heartbeat = Heartbeat(
        store,
        hostname="celery@thread",
        queues=("urgent",),
        concurrency=2,
        interval=0.05,
        tasks=lambda: next(tasks),
    ).start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not [b for b in store.alive() if b.tasks >= 2]:
            time.sleep(0.02)
        (alive,) = store.alive()
        assert (alive.hostname, alive.queues, alive.concurrency) == (
            "celery@thread",
            ("urgent",),
            2,
        )
        assert alive.tasks >= 2 and alive.started_at <= alive.seen_at
    finally:
        heartbeat.stop()
    assert store.alive() == []


# -- the page, the API, /metrics and the CLI -------------------------------------------------


def test_operator_page_shows_workers_alive_and_the_send_rate_chart(
    app: object, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _deliveries(session, 3)
    now = utcnow()
    session.execute(update(Delivery).where(Delivery.id.in_(ids[:2])).values(sent_at=now))
    session.execute(
        update(Delivery).where(Delivery.id == ids[2]).values(sent_at=now - timedelta(minutes=10))
    )
    session.flush()
    person(session, "otto", "operator", password=PASSWORD)
    person(session, "olivia", "official", password=PASSWORD)
    store = MemoryHeartbeats()
    store.put(beat("celery@serve", pid=4242, seen_at=utcnow()), ttl=30)
    monkeypatch.setattr(monitoring, "LOCAL_HEARTBEATS", store)

    with TestClient(app) as otto:  # type: ignore[arg-type]
        login(otto, "otto")
        page = otto.get("/dashboard/operator").text
    assert re.search(r'id="workers-alive">1<', page), page
    assert "celery@serve" in page and "4242" in page and "bulk, control, urgent" in page
    assert "<svg" in page and 'role="img"' in page
    assert "3 sent in the last hour, peak 2/min" in page
    assert page.count('<rect class="bar"') == 2  # two minutes with sends
    with TestClient(app) as olivia:  # type: ignore[arg-type]
        login(olivia, "olivia")
        assert olivia.get("/dashboard/operator").status_code == 403

    store.remove("celery@serve", 4242)
    with TestClient(app) as otto:  # type: ignore[arg-type]
        login(otto, "otto")
        page = otto.get("/dashboard/operator").text
    assert re.search(r'id="workers-alive">–<', page)  # without Redis, unknown, not zero
    assert monitoring.NO_REDIS in page


def test_workers_api_metrics_and_stats(
    client: TestClient, people: dict[str, Person], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryHeartbeats()
    store.put(beat("celery@api", pid=77), ttl=30)
    monkeypatch.setattr(monitoring, "LOCAL_HEARTBEATS", store)
    operator = people["operator"].headers
    body = client.get("/api/v1/workers", headers=operator).json()
    assert body["alive"] == 1 and body["error"] is None
    (worker,) = body["workers"]
    assert worker["hostname"] == "celery@api" and worker["pid"] == 77
    assert worker["queues"] == ["bulk", "control", "urgent"] and worker["tasks"] == 7
    assert "riskcast_workers_alive 1.0" in client.get("/metrics", headers=operator).text
    stats = client.get("/api/v1/stats", headers=operator).json()
    assert stats["sent_per_minute"] == [0] * 60


def test_riskcast_queue_lists_workers_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryHeartbeats()
    store.put(beat("celery@cli", pid=55), ttl=30)
    monkeypatch.setattr(monitoring, "LOCAL_HEARTBEATS", store)
    data = {
        "queues": {"urgent": None},
        "error": None,
        "deliveries": {"sent": 1},
        "in_doubt": {"count": 0, "oldest_seconds": None, "last_note": None},
        "workers_alive": 1,
        "workers": [w.as_dict() for w in monitoring.workers_alive(None).workers],
        "workers_error": None,
    }
    console = Console(width=160, record=True)
    console.print(queue_cli.render(data))
    text = console.export_text()
    assert "workers alive: 1" in text and "celery@cli" in text and "55" in text


# -- deliveries in doubt -------------------------------------------------------------------


def _in_doubt(session: Session) -> list[int]:
    """Three deliveries in ``sending`` with no SID: two claimed 10 and 5 minutes ago (in
    doubt, one already asked about), one a second ago (a worker is on it: not in doubt)."""
    ids = _deliveries(session, 4)
    now = utcnow()
    for delivery_id, ago in zip(ids, (600, 300, 1), strict=False):
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(state="sending", sending_at=now - timedelta(seconds=ago))
        )
    session.execute(
        update(Delivery)
        .where(Delivery.id == ids[1])
        .values(
            lookups=2,
            looked_up_at=now - timedelta(seconds=20),
            lookup_note="the provider did not answer the lookup: HTTP 500",
        )
    )
    session.flush()
    return ids


def test_in_doubt_counted_with_the_oldest_age_and_the_last_lookup(session: Session) -> None:
    _in_doubt(session)
    doubt = in_doubt.summary(session, after=120)
    assert doubt.count == 2
    assert 595 <= (doubt.oldest_seconds or 0) <= 660
    assert doubt.last_note == "the provider did not answer the lookup: HTTP 500"
    assert [d.lookups for d in doubt.deliveries] == [0, 2]
    assert in_doubt.summary(session, after=3600).count == 0


def test_in_doubt_on_the_api_metrics_page_and_cli(
    app: object, client: TestClient, people: dict[str, Person], session: Session
) -> None:
    _in_doubt(session)
    operator, admin = people["operator"].headers, people["admin"].headers
    queue = client.get("/api/v1/queue", headers=operator).json()
    assert queue["in_doubt"]["count"] == 2
    assert queue["in_doubt"]["oldest_seconds"] >= 595
    assert "HTTP 500" in queue["in_doubt"]["last_note"]
    stats = client.get("/api/v1/stats", headers=operator).json()
    rows = stats["in_doubt_deliveries"]
    assert [r["lookups"] for r in rows] == [0, 2]
    assert all("•" in r["phone"] for r in rows)  # masked for operators
    assert rows[1]["note"].endswith("HTTP 500")
    assert all(
        "•" not in r["phone"]
        for r in client.get("/api/v1/stats", headers=admin).json()["in_doubt_deliveries"]
    )
    metrics = client.get("/metrics", headers=operator).text
    assert "riskcast_in_doubt 2.0" in metrics
    oldest = re.search(r"^riskcast_in_doubt_oldest_seconds (\S+)$", metrics, re.MULTILINE)
    assert oldest and float(oldest.group(1)) >= 595
    assert client.get("/api/v1/queue", headers=people["official"].headers).status_code == 403

    person(session, "oscar", "operator", password=PASSWORD)
    with TestClient(app) as otto:  # type: ignore[arg-type]
        login(otto, "oscar")
        page = otto.get("/dashboard/operator").text
    assert re.search(r'id="in-doubt-count">2<', page)
    assert "Last lookup: the provider did not answer the lookup: HTTP 500" in page
    table = page.split('id="in-doubt"')[1].split("</table>")[0]
    assert "not asked yet" in table and table.count("•••") == 2
    assert not re.search(r"\+856\d{6}", table)  # no whole number on the page

    data = {
        "queues": {"urgent": 0},
        "error": None,
        "deliveries": {"sending": 3},
        "in_doubt": {"count": 2, "oldest_seconds": 600.4, "last_note": "HTTP 500"},
        "workers_alive": None,
        "workers": [],
        "workers_error": None,
    }
    console = Console(width=200, record=True)
    console.print(queue_cli.render(data))
    text = console.export_text()
    assert (
        "in doubt (sent or not: asking the provider): 2, oldest 600 s; last lookup: HTTP 500"
        in text
    )
