"""The delivery state machine, enforced in one place.

Every change of a delivery's state goes through :func:`move`: one conditional UPDATE whose
WHERE clause admits only the states that :data:`TRANSITIONS` allows to reach the target.
Two workers racing for the same delivery therefore cannot both win, and a late callback
cannot move a delivery backwards. The diagram is in :mod:`broadcaster.deliveries.models`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    CursorResult,
    Table,
    Update,
    bindparam,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from broadcaster.contacts.models import Contact
from broadcaster.db import utcnow
from broadcaster.deliveries.models import RANK, TRANSITIONS, Delivery, DeliveryState
from broadcaster.orm import UTCDateTime, table_of

# Twilio's message statuses -> ours. Anything the provider holds counts as sent.
PROVIDER_STATUS: dict[str, DeliveryState] = {
    "accepted": DeliveryState.SENT,
    "scheduled": DeliveryState.SENT,
    "queued": DeliveryState.SENT,
    "sending": DeliveryState.SENT,
    "sent": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.DELIVERED,
    "partially_delivered": DeliveryState.DELIVERED,
    "undelivered": DeliveryState.UNDELIVERED,
    "failed": DeliveryState.FAILED,
    "canceled": DeliveryState.FAILED,
}

DELIVERY: Table = table_of(Delivery)

TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets) | {
    DeliveryState.FAILED
}


def sources_of(target: DeliveryState) -> frozenset[str]:
    """The states from which ``target`` may be reached."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def now_param() -> BindParameter[datetime]:
    """The ``:now`` parameter of a prebuilt move (its ``updated_at`` and any time it sets)."""
    return bindparam("now", type_=UTCDateTime())


def move_statement(
    where: ColumnElement[bool],
    to: DeliveryState,
    *,
    only_from: Iterable[str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> Update:
    """The conditional UPDATE behind :func:`move`, for a caller that builds it once (with
    bound parameters, ``updated_at`` among them) and runs it many times."""
    allowed = sources_of(to)
    if only_from is not None:
        allowed = allowed & frozenset(only_from)
    if not allowed:
        raise ValueError(f"no state may move to {to}")
    fields: dict[str, Any] = {"state": to.value, **(values or {})}
    # On the table, not the mapped class: the same SQL without the ORM's bulk-update pass.
    return (
        update(DELIVERY)
        .where(where, DELIVERY.c.state.in_(sorted(allowed)))
        .values(**fields)
        # A session holding Delivery objects is never synchronised: every caller reads
        # the rows it needs afterwards, and evaluating the WHERE against the identity map
        # (the ORM's default) costs more than the UPDATE itself.
        .execution_options(synchronize_session=False)
    )


def move(
    session: Session | Connection,
    where: ColumnElement[bool],
    to: DeliveryState,
    *,
    only_from: Iterable[str] | None = None,
    values: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> int:
    """Move every delivery matching ``where`` to ``to``; return how many moved.

    ``only_from`` narrows the allowed source states further (never widens them).
    """
    fields = {"updated_at": utcnow(), **(values or {})}
    stmt = move_statement(where, to, only_from=only_from, values=fields)
    return run_move(session, stmt, params)


def run_move(
    session: Session | Connection, stmt: Update, params: Mapping[str, Any] | None = None
) -> int:
    """Run an UPDATE from :func:`move_statement`; how many deliveries moved."""
    result: CursorResult[Any] = session.execute(stmt, params)  # type: ignore[assignment]
    return result.rowcount


def apply_provider_status(
    session: Session,
    *,
    delivery_id: int | None,
    sid: str | None,
    status: str,
    error_code: int | None = None,
) -> DeliveryState | None:
    """Record a status callback: forward only, idempotent, matched by id or provider SID.

    Returns the delivery's state afterwards, or None when no delivery matches. A final
    status (the usual case) is one UPDATE; "sent", and a report that moves nothing, are
    read first.
    """
    # A status word we do not know, with a SID, still says the provider has the message.
    target = PROVIDER_STATUS.get(status.lower(), DeliveryState.SENT if sid else None)
    if delivery_id is None and not sid:
        return None
    by_id = delivery_id is not None
    match: ColumnElement[bool] = (
        Delivery.id == delivery_id if by_id else Delivery.provider_sid == sid
    )
    key = delivery_id if by_id else sid

    def advance(to: DeliveryState) -> bool:
        stmt = _status_statement(to, by_id, bool(sid), error_code is not None)
        params = {"key": key, "sid": sid, "now": utcnow(), "error_code": error_code}
        return bool(run_move(session, stmt, params))

    # "sent" mostly finds the worker's own record of the send there already: read first.
    if target is not None and target is not DeliveryState.SENT and advance(target):
        return target
    row = session.execute(select(Delivery.state, Delivery.provider_sid).where(match)).first()
    if row is None:
        return None
    current = DeliveryState(row.state)
    if target is DeliveryState.SENT and RANK[current] < RANK[target] and advance(target):
        return target
    if sid and not row.provider_sid:
        session.execute(
            update(DELIVERY)
            .where(match)
            .values(provider_sid=sid)
            .execution_options(synchronize_session=False)
        )
    return current


@functools.cache
def _status_statement(target: DeliveryState, by_id: bool, has_sid: bool, has_error: bool) -> Update:
    """The UPDATE a status report runs, built once per shape: it moves the delivery only
    forward (to a higher :data:`RANK`), along :data:`TRANSITIONS`."""
    now = now_param()
    key = Delivery.id if by_id else Delivery.provider_sid
    values: dict[str, Any] = {"updated_at": now, "sent_at": func.coalesce(Delivery.sent_at, now)}
    if has_sid:
        values["provider_sid"] = func.coalesce(Delivery.provider_sid, bindparam("sid"))
    if target is not DeliveryState.SENT:
        values["finished_at"] = now
    if has_error:
        values["error_code"] = bindparam("error_code")
    lower = [s for s in sources_of(target) if RANK[s] < RANK[target]]
    return move_statement(key == bindparam("key"), target, only_from=lower, values=values)


def has_fallback() -> ColumnElement[bool]:
    """True for deliveries that an SMS fallback replaced (see :mod:`broadcaster.campaigns.fallback`)."""
    fallback = aliased(Delivery)
    return exists().where(fallback.fallback_of == Delivery.id)


def counts_by_state(session: Session, campaign_id: int) -> dict[str, int]:
    """Deliveries of a campaign per state; every state is present, zero or not."""
    counts = {state.value: 0 for state in DeliveryState}
    rows = session.execute(
        select(Delivery.state, func.count())
        .where(Delivery.campaign_id == campaign_id)
        .group_by(Delivery.state)
    )
    for state, n in rows:
        counts[state] = n
    return counts


def counts_for(session: Session, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Deliveries by state for several campaigns in one query."""
    result: dict[int, dict[str, int]] = {
        cid: {s.value: 0 for s in DeliveryState} for cid in campaign_ids
    }
    if not campaign_ids:
        return result
    rows = session.execute(
        select(Delivery.campaign_id, Delivery.state, func.count())
        .where(Delivery.campaign_id.in_(campaign_ids))
        .group_by(Delivery.campaign_id, Delivery.state)
    )
    for cid, state, n in rows:
        result[cid][state] = n
    return result


def progress(counts: dict[str, int]) -> dict[str, Any]:
    """Done, total and percent of a campaign's deliveries (done = no longer pending,
    queued or sending)."""
    total = sum(counts.values())
    waiting = sum(counts.get(s, 0) for s in ("pending", "queued", "sending"))
    done = total - waiting
    return {"done": done, "total": total, "percent": round(100 * done / total) if total else 0}


def listing(
    session: Session, campaign_id: int, *, state: str | None, after: int, limit: int
) -> list[tuple[Delivery, str | None]]:
    """A campaign's deliveries with each contact's number, by id after ``after`` (keyset
    pages), optionally in one state."""
    stmt = (
        select(Delivery, Contact.phone)
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(Delivery.campaign_id == campaign_id, Delivery.id > after)
        .order_by(Delivery.id)
        .limit(limit)
    )
    if state is not None:
        stmt = stmt.where(Delivery.state == state)
    return [(d, phone) for d, phone in session.execute(stmt).all()]
