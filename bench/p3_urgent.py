"""P3, urgent latency: launch to first provider request of 20 urgent alerts while the bulk
campaign sends."""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from bench.config import TARGETS
from bench.environment import BenchEnv
from bench.processes import wait_until


def measure_urgent(
    env: BenchEnv, alert_campaigns: list[tuple[int, list[str]]], bulk_id: int, gap: float
) -> dict[str, Any]:
    """Launch the urgent alerts ``gap`` seconds apart while the bulk campaign sends; the
    latency of each is from its launch commit to its first request at the provider.

    Each latency is split into stages from the database's own timestamps: launch to the
    scheduler's claim (``launched_at``), claim to its deliveries written (fan-out), and
    written to the first provider request (send queue wait + send)."""
    env.core.watch = {p for _, phones in alert_campaigns for p in phones}
    env.core.first_seen = {}
    bulk_before = env.core.accepted_count
    # (campaign, phones, launch on the monotonic clock, launch on the wall clock)
    launched: list[tuple[int, list[str], float, float]] = []
    for campaign_id, phones in alert_campaigns:
        at = env.launch(campaign_id)
        launched.append((campaign_id, phones, at, time.time() - (time.monotonic() - at)))
        time.sleep(gap)

    def all_seen() -> bool:
        return all(any(p in env.core.first_seen for p in phones) for _, phones, _, _ in launched)

    wait_until(all_seen, 120, "every urgent alert to reach the provider")
    stages: dict[str, list[float]] = {"claim": [], "fanout": [], "send": []}
    latencies = []
    for campaign_id, phones, at, wall in launched:
        first = min(env.core.first_seen[p] for p in phones if p in env.core.first_seen)
        latencies.append(first - at)
        with env.pg() as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM c.launched_at),"
                " extract(epoch FROM min(d.created_at))"
                " FROM campaign c JOIN delivery d ON d.campaign_id = c.id"
                " WHERE c.id = %s GROUP BY c.launched_at",
                (campaign_id,),
            ).fetchone()
        if row is not None and row[0] is not None:
            claimed, written = float(row[0]), float(row[1])
            stages["claim"].append(claimed - wall)
            stages["fanout"].append(written - claimed)
            stages["send"].append((first - at) - (written - wall))
    latencies.sort()
    bulk_left = env.count(bulk_id, ("queued", "sending"))
    p95 = percentile(latencies, 95)
    return {
        "alerts": len(latencies),
        "p50_s": round(percentile(latencies, 50), 3),
        "p95_s": round(p95, 3),
        "max_s": round(latencies[-1], 3),
        "latencies_s": [round(x, 3) for x in latencies],
        "stages_mean_s": {
            k: round(statistics.fmean(v), 3) if v else None for k, v in stages.items()
        },
        "stages_max_s": {k: round(max(v), 3) if v else None for k, v in stages.items()},
        "bulk_sent_meanwhile": env.core.accepted_count - bulk_before,
        "bulk_still_queued_after": bulk_left,
        "ratio": round(p95 / TARGETS["urgent_p95_s"], 3),
        "ratio_of": "p95 / 2 s target (no in-run reference)",
        "target": "p95 <= 2 s",
        "meets_target": p95 <= TARGETS["urgent_p95_s"],
    }


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(values)))
    return values[rank - 1]
