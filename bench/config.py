"""The settings of one ``riskcast bench`` run: which figures, how big, and their targets."""

from __future__ import annotations

from dataclasses import dataclass

FIGURES = ("p1", "p2", "p3", "p4", "p5")
# The name each figure has in the report and in the JSON.
FIGURE_KEYS = {
    "p1": "p1_fanout",
    "p2": "p2_send",
    "p3": "p3_urgent",
    "p4": "p4_rate",
    "p5": "p5_import",
}

TARGETS = {
    "fanout_seconds": 10.0,
    "fanout_floor_ratio": 25.0,
    "worker_rss_mb": 250.0,
    "send_ratio": 0.6,
    "urgent_p95_s": 2.0,
    "rate_mean_tolerance": 0.05,
    "rate_window_max": 110,
    "import_rows_per_s": 20_000.0,
}


class BenchError(RuntimeError):
    """The benchmark cannot run (a service is missing or misconfigured) or a figure cannot be
    measured (a process died, a wait timed out); one line, no trace."""


def parse_only(value: str | None) -> frozenset[str]:
    """``"p1,p2"`` -> the figures to measure; None or empty means all of them."""
    if not value or not value.strip():
        return frozenset(FIGURES)
    chosen = {part.strip().lower() for part in value.split(",") if part.strip()}
    unknown = sorted(chosen - set(FIGURES))
    if unknown:
        raise BenchError(
            f"--only: unknown figure {', '.join(unknown)}; choose from {', '.join(FIGURES)}"
        )
    return frozenset(chosen)


@dataclass(frozen=True)
class BenchConfig:
    recipients: int = 200_000
    quick: bool = False
    scale: bool = False
    scale_recipients: int = 1_000_000
    send_workers: int = 2
    send_concurrency: int = 4
    raw_seconds: float = 15.0
    send_warmup: float = 3.0
    send_window: float = 30.0
    alerts: int = 20
    alert_size: int = 3
    alert_gap: float = 0.5
    rate: int = 100
    rate_workers: int = 3
    rate_concurrency: int = 4
    rate_warmup: float = 2.0
    rate_seconds: int = 60
    import_rows: int = 200_000
    only: frozenset[str] = frozenset(FIGURES)

    @classmethod
    def make(
        cls,
        *,
        recipients: int | None,
        quick: bool,
        scale: bool,
        only: frozenset[str] = frozenset(FIGURES),
        import_rows: int | None = None,
    ) -> BenchConfig:
        if import_rows is not None and import_rows < 1:
            raise BenchError(f"--import-rows: {import_rows}; give at least 1 row")
        if quick:
            return cls(
                recipients=recipients or 3000,
                quick=True,
                scale=scale,
                only=only,
                scale_recipients=20_000,
                send_concurrency=2,
                raw_seconds=2.0,
                send_warmup=1.0,
                send_window=2.0,
                alert_gap=0.1,
                rate_concurrency=1,
                rate_warmup=1.0,
                rate_seconds=10,
                import_rows=import_rows or 3000,
            )
        return cls(
            recipients=recipients or 200_000,
            scale=scale,
            only=only,
            import_rows=import_rows or 200_000,
        )

    def wants(self, figure: str) -> bool:
        return figure in self.only

    @property
    def rate_audience(self) -> int:
        # Enough to keep sending through warm-up, every window and a margin.
        return int(self.rate * (self.rate_warmup + self.rate_seconds + 5))
