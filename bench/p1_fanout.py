"""P1, fan-out: launch to every delivery queued, for a 3-language campaign with a
per-contact ``{{ name }}``; the peak RSS of the worker; and the floor, a server-side
``INSERT ... SELECT`` of as many delivery rows. ``--scale`` measures it again at 1,000,000."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select, text

from bench.config import TARGETS, BenchConfig
from bench.environment import BULK_BASE, LANGUAGES, TEMPLATE_KEY, BenchEnv
from bench.processes import tree_peak_rss, wait_until
from broadcaster.campaigns import service as campaigns
from broadcaster.communities import service as communities
from broadcaster.models import CampaignMessage


def measure_fanout(env: BenchEnv, slug: str, recipients: int) -> dict[str, Any]:
    """Launch to every delivery queued, with one worker on ``bulk`` (one pool process, so
    nothing sends while it fans out) and the scheduler ticking at its default interval."""
    campaign_id = env.campaign(slug, name=f"fan-out {recipients}")
    # One pool process on ``bulk`` fans out, so nothing sends until it is done (the
    # scheduler process claims the campaign and enqueues the fan-out there).
    worker = env.processes.start_workers(1, 1, queues="bulk")
    env.processes.wait_worker_ready(worker, 1)
    launched = env.launch(campaign_id)
    claimed: float | None = None

    def fanned_out() -> bool:
        nonlocal claimed
        env.processes.check_alive(worker)
        state, created = env.campaign_row(campaign_id)
        if claimed is None and state != "scheduled":
            claimed = time.monotonic()
        return state not in ("scheduled", "fanning_out") and created >= recipients

    wait_until(fanned_out, max(120, recipients / 500), f"the fan-out of {recipients:,}", 0.05)
    seconds = time.monotonic() - launched
    rss = tree_peak_rss(worker[0].popen.pid)
    batches = int(env.redis.llen("bulk"))
    env.processes.stop(worker)
    with env.runtime.session() as session:
        rendered = session.scalar(
            select(func.count())
            .select_from(CampaignMessage)
            .where(CampaignMessage.campaign_id == campaign_id)
        )
        parts = session.scalar(
            select(func.max(CampaignMessage.parts)).where(
                CampaignMessage.campaign_id == campaign_id
            )
        )
    return {
        "campaign_id": campaign_id,
        "recipients": recipients,
        "languages": len(LANGUAGES),
        "seconds": round(seconds, 3),
        "launch_to_claim_s": round((claimed or launched) - launched, 3),
        "deliveries_per_s": round(recipients / seconds, 1),
        "bodies_rendered": int(rendered or 0),
        "max_segments": int(parts or 0),
        "batches_queued": batches,
        "worker_peak_rss_mb": {"fan-out worker": rss},
        "max_worker_rss_mb": max(rss.values(), default=0.0),
    }


def measure_floor(env: BenchEnv, slug: str, rows: int) -> dict[str, Any]:
    """The floor: one server-side INSERT ... SELECT of ``rows`` delivery rows (same table,
    indexes and foreign keys as the fan-out writes), then rolled back."""
    with env.runtime.session() as session:
        camp = campaigns.create_campaign(
            session, name="floor", template_key=TEMPLATE_KEY, community_slugs=[slug]
        )
        message = CampaignMessage(
            campaign_id=camp.id,
            digest="floor",
            language="en",
            body="floor",
            encoding="GSM-7",
            parts=1,
        )
        session.add(message)
        session.flush()
        community_id = communities.get_by_slug(session, slug).id
        started = time.perf_counter()
        result = session.execute(
            text(
                "INSERT INTO delivery (campaign_id, contact_id, message_id, channel, state,"
                " batch, attempts, queued_at, created_at, updated_at)"
                " SELECT :campaign, c.id, :message, 'sms', 'queued',"
                " md5((c.id / 100)::text), 0, now(), now(), now()"
                " FROM contact c JOIN membership m ON m.contact_id = c.id"
                " WHERE m.community_id = :community AND c.status = 'active'"
                " ORDER BY c.id LIMIT :rows"
            ),
            {"campaign": camp.id, "message": message.id, "community": community_id, "rows": rows},
        )
        seconds = time.perf_counter() - started
        inserted = int(result.rowcount)  # type: ignore[attr-defined]
        session.rollback()
    return {"rows": inserted, "seconds": round(seconds, 3)}


def figure(fan: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """The fan-out against its floor and the targets."""
    ratio = fan["seconds"] / floor["seconds"] if floor["seconds"] else 0.0
    fan.update(
        {
            "floor_seconds": floor["seconds"],
            "floor_rows": floor["rows"],
            "ratio": round(ratio, 2),
            "ratio_of": "fan-out seconds / INSERT ... SELECT floor seconds",
            "target": "<= 10 s, <= 25 x floor, worker peak RSS <= 250 MB",
            "meets_target": fan["seconds"] <= TARGETS["fanout_seconds"]
            and ratio <= TARGETS["fanout_floor_ratio"]
            and fan["max_worker_rss_mb"] <= TARGETS["worker_rss_mb"],
        }
    )
    return fan


def measure_scale(env: BenchEnv, cfg: BenchConfig, say: Callable[[str], None]) -> dict[str, Any]:
    """P1 again at ``cfg.scale_recipients`` (the bulk audience grown to that size)."""
    say(f"P1 at scale: fan-out of {cfg.scale_recipients:,} recipients...")
    env.seed(
        "bench-everyone",
        BULK_BASE + cfg.recipients,
        cfg.scale_recipients - cfg.recipients,
        create=False,
    )
    big = measure_fanout(env, "bench-everyone", cfg.scale_recipients)
    big_floor = measure_floor(env, "bench-everyone", cfg.scale_recipients)
    env.cancel(int(big["campaign_id"]))
    env.reset_queues()
    say(f"   {big['seconds']:.2f}s (floor {big_floor['seconds']:.2f}s)")
    return figure(big, big_floor)
