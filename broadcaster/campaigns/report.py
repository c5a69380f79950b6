"""A campaign's report: what became of its messages, counted by area, language, country and
channel, as JSON, CSV, XLSX and a chart.

Each delivery counts once, under one **outcome** (:data:`OUTCOMES`): ``delivered``;
``sent`` (the provider has it, no report from the carrier yet); ``pending`` (not handed to
the provider yet: pending, queued or sending); ``failed``; ``undelivered``; ``opted_out``
(skipped because the person had opted out); ``skipped`` (skipped for another reason:
invalid number, cancelled, too late, duplicate). A WhatsApp delivery that an SMS fallback
replaced is left out, so every person counts once with the outcome of their last message;
``fell_back`` says how many such replacements there were.

The counting is SQL: one grouped query per dimension (``GROUP BY`` the dimension, the state
and the reason), whatever the number of deliveries; Python only adds up those groups.

**Areas.** A delivery counts under its contact's community, chosen among the contact's
memberships *now* in the campaign's audience (its communities, with those below them when
the audience includes sub-communities): the **deepest** of them, and of equally deep ones
the lowest id. A contact in a village and its district counts in the village; a contact in
two villages, in the older village. Each area's counts include every area under it
(province -> district -> village), so an area's row is the sum of its own members' and its
sub-areas'. A delivery whose contact was erased or is no longer in any of the audience's
communities counts under :data:`NO_AREA`.

**Language** is the language of the message sent (the variant the contact received, which
may be a fallback from their own); **country** the contact's (``contact.country``);
**channel** the delivery's (SMS or WhatsApp).
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import Session

from broadcaster import spreadsheet
from broadcaster.communities import service as communities
from broadcaster.db import utcnow
from broadcaster.deliveries import service as deliveries
from broadcaster.deliveries.models import DeliveryState, SkipReason
from broadcaster.models import Campaign, CampaignMessage, Community, Contact, Delivery, Membership
from messages import LANGUAGES

# Outcome -> what it means, in the order tables and charts show them.
OUTCOMES: Final[dict[str, str]] = {
    "delivered": "delivered to the phone",
    "sent": "sent, no report from the carrier yet",
    "pending": "not sent yet (waiting, queued or being sent)",
    "failed": "failed (refused by the provider, or every retry failed)",
    "undelivered": "undelivered (the carrier could not deliver it)",
    "opted_out": "skipped: the person had opted out",
    "skipped": "skipped for another reason (invalid number, cancelled, too late)",
}
NO_AREA: Final = "(no community)"
NO_AREA_NAME: Final = "no longer in the audience's communities, or erased"
UNKNOWN: Final = "unknown"
AREA_RULE: Final = (
    "each delivery counts under its contact's deepest community in the audience (the "
    "lowest id of equally deep ones); an area's counts include every area under it"
)

_UNFINISHED = frozenset(
    {DeliveryState.PENDING.value, DeliveryState.QUEUED.value, DeliveryState.SENDING.value}
)


def outcome(state: str, reason: str | None) -> str:
    """The outcome a delivery in ``state`` (skipped or failed for ``reason``) counts under."""
    if state in _UNFINISHED:
        return "pending"
    if state == DeliveryState.SKIPPED:
        return "opted_out" if reason == SkipReason.OPTED_OUT else "skipped"
    return state


def empty_counts() -> dict[str, int]:
    return {**dict.fromkeys(OUTCOMES, 0), "total": 0}


def _add(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] += n
    counts["total"] += n


@dataclass(frozen=True)
class Row:
    """One line of a breakdown: ``key`` (a community slug, language code, country code or
    channel), its ``name`` to show, and its counts per outcome plus ``total``. Areas also
    have ``kind`` and ``depth`` (0 for the top of the audience's tree)."""

    key: str
    name: str
    counts: dict[str, int]
    kind: str = ""
    depth: int = 0

    def share(self, key: str) -> float:
        """The share of this row's deliveries with outcome ``key``, 0..1."""
        total = self.counts["total"]
        return self.counts[key] / total if total else 0.0


@dataclass(frozen=True)
class Report:
    campaign_id: int
    name: str
    state: str
    generated_at: datetime
    total: dict[str, int]
    fell_back: int  # WhatsApp deliveries replaced by an SMS (left out of the counts)
    by_area: list[Row]
    by_language: list[Row]
    by_country: list[Row]
    by_channel: list[Row]
    outcomes: dict[str, str] = field(default_factory=lambda: dict(OUTCOMES))
    area_rule: str = AREA_RULE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def breakdowns(self) -> dict[str, list[Row]]:
        return {
            "area": self.by_area,
            "language": self.by_language,
            "country": self.by_country,
            "channel": self.by_channel,
        }


# -- the queries ------------------------------------------------------------------------


def _counted(campaign_id: int) -> ColumnElement[bool]:
    """The deliveries a report counts: the campaign's, less those a fallback replaced."""
    return and_(Delivery.campaign_id == campaign_id, ~deliveries.has_fallback())


def _grouped(session: Session, stmt: Select[Any], key: Any) -> dict[Any, dict[str, int]]:
    """``stmt`` (from deliveries) grouped by ``key``, state and reason: key -> counts."""
    rows = session.execute(
        stmt.add_columns(Delivery.state, Delivery.reason, func.count()).group_by(
            key, Delivery.state, Delivery.reason
        )
    )
    out: dict[Any, dict[str, int]] = defaultdict(empty_counts)
    for value, state, reason, n in rows:
        _add(out[value], outcome(state, reason), n)
    return out


def _rows(grouped: dict[Any, dict[str, int]], names: dict[str, str] | None = None) -> list[Row]:
    """Rows, the largest first (then by key); a missing key is :data:`UNKNOWN`."""
    rows = [
        Row(key=k or UNKNOWN, name=(names or {}).get(k or "", k or UNKNOWN), counts=c)
        for k, c in grouped.items()
    ]
    return sorted(rows, key=lambda r: (-r.counts["total"], r.key))


def by_language(session: Session, campaign_id: int) -> list[Row]:
    stmt = (
        select(CampaignMessage.language)
        .select_from(Delivery)
        .join(CampaignMessage, CampaignMessage.id == Delivery.message_id)
        .where(_counted(campaign_id))
    )
    return _rows(_grouped(session, stmt, CampaignMessage.language), dict(LANGUAGES))


def by_country(session: Session, campaign_id: int) -> list[Row]:
    stmt = (
        select(Contact.country)
        .select_from(Delivery)
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(_counted(campaign_id))
    )
    return _rows(_grouped(session, stmt, Contact.country))


def by_channel(session: Session, campaign_id: int) -> list[Row]:
    stmt = select(Delivery.channel).where(_counted(campaign_id))
    return _rows(_grouped(session, stmt, Delivery.channel))


def _depth() -> ColumnElement[int]:
    """How many levels deep a community is: the slashes in its path (``/1/4/9/``)."""
    return func.length(Community.path) - func.length(func.replace(Community.path, "/", ""))


def by_area(session: Session, campaign: Campaign) -> list[Row]:
    """The audience's community tree, depth first (siblings by name), each area with the
    deliveries of its members and its sub-areas' (:data:`AREA_RULE`); only areas with
    deliveries are listed, then :data:`NO_AREA` when some have no community."""
    audience = campaign.audience
    audience_ids = communities.expand_ids(
        session, audience.get("communities", []), descendants=audience.get("descendants", True)
    )
    ranked = (
        select(
            Membership.contact_id,
            Membership.community_id,
            func.row_number()
            .over(
                partition_by=Membership.contact_id,
                order_by=(_depth().desc(), Membership.community_id),
            )
            .label("place"),
        )
        .join(Community, Community.id == Membership.community_id)
        .where(
            Membership.community_id.in_(audience_ids),
            Membership.contact_id.in_(
                select(Delivery.contact_id).where(Delivery.campaign_id == campaign.id)
            ),
        )
        .subquery()
    )
    stmt = (
        select(ranked.c.community_id)
        .select_from(Delivery)
        .outerjoin(ranked, and_(ranked.c.contact_id == Delivery.contact_id, ranked.c.place == 1))
        .where(_counted(campaign.id))
    )
    counted: dict[int | None, dict[str, int]] = _grouped(session, stmt, ranked.c.community_id)
    return _area_tree(session, counted, set(audience_ids))


def _area_tree(
    session: Session, counted: dict[int | None, dict[str, int]], audience: set[int]
) -> list[Row]:
    """Roll ``counted`` (community id -> counts, None for no community) up the community
    paths within ``audience`` and lay it out as a tree."""
    leaves = {cid: c for cid, c in counted.items() if cid is not None}
    found = select(Community.id, Community.path).where(Community.id.in_(list(leaves)))
    paths: dict[int, str] = dict(session.execute(found).all())
    rolled: dict[int, dict[str, int]] = defaultdict(empty_counts)
    for cid, counts in leaves.items():
        for part in paths.get(cid, f"/{cid}/").strip("/").split("/"):
            ancestor = int(part)
            if ancestor in audience or ancestor == cid:
                for key, n in counts.items():
                    rolled[ancestor][key] += n
    shown = {
        c.id: c for c in session.scalars(select(Community).where(Community.id.in_(list(rolled))))
    }
    children: dict[int | None, list[Community]] = defaultdict(list)
    for c in shown.values():
        children[c.parent_id if c.parent_id in shown else None].append(c)
    rows: list[Row] = []

    def walk(parent: int | None, depth: int) -> None:
        for c in sorted(children[parent], key=lambda c: (c.name.casefold(), c.id)):
            rows.append(Row(key=c.slug, name=c.name, counts=rolled[c.id], kind=c.kind, depth=depth))
            walk(c.id, depth + 1)

    walk(None, 0)
    if None in counted:
        rows.append(Row(key=NO_AREA, name=NO_AREA_NAME, counts=counted[None]))
    return rows


def fell_back(session: Session, campaign_id: int) -> int:
    stmt = select(func.count()).where(
        Delivery.campaign_id == campaign_id, deliveries.has_fallback()
    )
    return session.scalar(stmt) or 0


def campaign_report(session: Session, campaign: Campaign) -> Report:
    """``campaign``'s report; the caller has checked that they may see it."""
    channels = by_channel(session, campaign.id)
    total = empty_counts()
    for row in channels:
        for key, n in row.counts.items():
            total[key] += n
    return Report(
        campaign_id=campaign.id,
        name=campaign.name,
        state=campaign.state,
        generated_at=utcnow(),
        total=total,
        fell_back=fell_back(session, campaign.id),
        by_area=by_area(session, campaign),
        by_language=by_language(session, campaign.id),
        by_country=by_country(session, campaign.id),
        by_channel=channels,
    )


# -- files ------------------------------------------------------------------------------

HEADER: Final = ("breakdown", "key", "name", "level", *OUTCOMES, "total")


def table(report: Report) -> list[list[object]]:
    """The report as one table (header first): the total, then each breakdown's rows;
    areas have their level (0 at the top of the audience) and are indented by it."""
    out: list[list[object]] = [list(HEADER)]
    total = Row(key="all", name=report.name, counts=report.total)
    for breakdown, rows in [("total", [total]), *report.breakdowns().items()]:
        for row in rows:
            out.append(
                [
                    breakdown,
                    row.key,
                    row.name,
                    row.depth if breakdown == "area" else "",
                    *(row.counts[k] for k in OUTCOMES),
                    row.counts["total"],
                ]
            )
    return out


def to_csv(report: Report) -> str:
    out = io.StringIO()
    spreadsheet.writer(out).writerows(table(report))
    return out.getvalue()


def to_xlsx(report: Report) -> bytes:
    """One sheet per breakdown (and a summary), every text cell stored as text."""
    header = ["key", "name", *OUTCOMES, "total"]

    def sheet(rows: Iterable[Row], *, level: bool = False) -> list[list[object]]:
        first: list[object] = ["level"] if level else []
        lines: list[list[object]] = [first + header]
        for r in rows:
            values = [r.key, ("  " * r.depth) + r.name, *(r.counts[k] for k in OUTCOMES)]
            depth: list[object] = [r.depth] if level else []
            lines.append([*depth, *values, r.counts["total"]])
        return lines

    summary: list[list[object]] = [
        ["campaign", report.campaign_id],
        ["name", report.name],
        ["state", report.state],
        ["generated (UTC)", report.generated_at.strftime("%Y-%m-%d %H:%M:%S")],
        ["WhatsApp replaced by SMS (not counted)", report.fell_back],
        ["areas", report.area_rule],
        [],
        ["outcome", "count", "meaning"],
        *([k, report.total[k], meaning] for k, meaning in OUTCOMES.items()),
        ["total", report.total["total"], ""],
    ]
    return spreadsheet.xlsx(
        {
            "Summary": summary,
            "Areas": sheet(report.by_area, level=True),
            "Languages": sheet(report.by_language),
            "Countries": sheet(report.by_country),
            "Channels": sheet(report.by_channel),
        }
    )


# -- the chart ---------------------------------------------------------------------------

# The outcomes a chart stacks, left to right.
CHART_OUTCOMES: Final = tuple(OUTCOMES)


@dataclass(frozen=True)
class Segment:
    outcome: str
    x: float
    width: float
    count: int
    label: str


@dataclass(frozen=True)
class ChartRow:
    name: str
    y: float
    total: int
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class LegendItem:
    outcome: str
    x: float
    y: float


@dataclass(frozen=True)
class StackedChart:
    """Horizontal bars, one per row, each split by outcome in proportion to the row's
    deliveries (100% wide), in the SVG user units of ``width`` x ``height``."""

    title: str
    summary: str
    width: int
    height: int
    label_width: float
    plot_left: float
    plot_right: float
    bar_height: float
    rows: tuple[ChartRow, ...]
    legend: tuple[LegendItem, ...]
    left_out: int  # rows not drawn (beyond ``limit``)


def _percent(n: int, total: int) -> str:
    return f"{round(100 * n / total)}%" if total else "0%"


def chart_summary(rows: Sequence[Row]) -> str:
    if not rows:
        return "Nothing to show: the campaign has no deliveries yet"
    parts = []
    for r in rows:
        total = r.counts["total"]
        failed = r.counts["failed"] + r.counts["undelivered"]
        parts.append(
            f"{r.name}: {_percent(r.counts['delivered'], total)} delivered, "
            f"{_percent(failed, total)} failed or undelivered, of {total}"
        )
    return "; ".join(parts)


def chart(rows: Sequence[Row], *, title: str, width: int = 640, limit: int = 20) -> StackedChart:
    """Lay out up to ``limit`` of ``rows`` as 100%-stacked horizontal bars, a legend below."""
    drawn = list(rows[:limit])
    label_width, total_width, bar_height, gap, top = 150.0, 56.0, 18.0, 6.0, 6.0
    plot_left, plot_right = label_width, width - total_width
    span = plot_right - plot_left
    out: list[ChartRow] = []
    for i, r in enumerate(drawn):
        total = r.counts["total"]
        x = plot_left
        segments = []
        for key in CHART_OUTCOMES:
            n = r.counts[key]
            if not n:
                continue
            w = span * n / total
            segments.append(
                Segment(
                    outcome=key,
                    x=round(x, 2),
                    width=round(w, 2),
                    count=n,
                    label=f"{r.name}: {key.replace('_', ' ')} {n} of {total} ({_percent(n, total)})",
                )
            )
            x += w
        out.append(
            ChartRow(
                name=("  " * r.depth) + r.name,
                y=round(top + i * (bar_height + gap), 2),
                total=total,
                segments=tuple(segments),
            )
        )
    legend_top = top + len(drawn) * (bar_height + gap) + 8
    per_line = 4
    legend = tuple(
        LegendItem(
            outcome=key,
            x=round(plot_left + (i % per_line) * (span / per_line), 2),
            y=round(legend_top + (i // per_line) * 16, 2),
        )
        for i, key in enumerate(CHART_OUTCOMES)
    )
    height = int(legend_top + ((len(CHART_OUTCOMES) + per_line - 1) // per_line) * 16 + 4)
    return StackedChart(
        title=title,
        summary=chart_summary(drawn),
        width=width,
        height=height,
        label_width=label_width,
        plot_left=plot_left,
        plot_right=plot_right,
        bar_height=bar_height,
        rows=tuple(out),
        legend=legend,
        left_out=max(0, len(rows) - len(drawn)),
    )
