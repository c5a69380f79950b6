"""The delivery state machine, enforced in one place.

Every change of a delivery's state goes through :func:`move`: one conditional UPDATE whose
WHERE clause admits only the states that :data:`TRANSITIONS` allows to reach the target.
Two workers racing for the same delivery therefore cannot both win, and a late callback
cannot move a delivery backwards. The diagram is in :mod:`broadcaster.models.delivery`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from broadcaster.db import utcnow
from broadcaster.models.delivery import RANK, TRANSITIONS, Delivery, DeliveryState

# Twilio's message statuses -> ours. Anything the provider holds counts as sent.
PROVIDER_STATUS: dict[str, DeliveryState] = {
    "accepted": DeliveryState.SENT,
    "scheduled": DeliveryState.SENT,
    "queued": DeliveryState.SENT,
    "sending": DeliveryState.SENT,
    "sent": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.DELIVERED,
    "undelivered": DeliveryState.UNDELIVERED,
    "failed": DeliveryState.FAILED,
    "canceled": DeliveryState.FAILED,
}

TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets) | {
    DeliveryState.FAILED
}


def sources_of(target: DeliveryState) -> frozenset[str]:
    """The states from which ``target`` may be reached."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def move(
    session: Session,
    where: ColumnElement[bool],
    to: DeliveryState,
    *,
    only_from: Iterable[str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> int:
    """Move every delivery matching ``where`` to ``to``; return how many moved.

    ``only_from`` narrows the allowed source states further (never widens them).
    """
    allowed = sources_of(to)
    if only_from is not None:
        allowed = allowed & frozenset(only_from)
    if not allowed:
        raise ValueError(f"no state may move to {to}")
    fields: dict[str, Any] = {"state": to.value, "updated_at": utcnow(), **(values or {})}
    stmt = (
        update(Delivery)
        .where(where, Delivery.state.in_(sorted(allowed)))
        .values(**fields)
        .execution_options(synchronize_session=False)
    )
    result: CursorResult[Any] = session.execute(stmt)  # type: ignore[assignment]
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

    Returns the delivery's state afterwards, or None when no delivery matches.
    """
    target = PROVIDER_STATUS.get(status.lower())
    if delivery_id is not None:
        match: ColumnElement[bool] = Delivery.id == delivery_id
    elif sid:
        match = Delivery.provider_sid == sid
    else:
        return None
    row = session.execute(select(Delivery.state, Delivery.provider_sid).where(match)).first()
    if row is None:
        return None
    current, known_sid = DeliveryState(row.state), row.provider_sid
    values: dict[str, Any] = {}
    if sid and not known_sid:
        values["provider_sid"] = sid
    if target is not None and RANK[target] > RANK[current]:
        now = utcnow()
        values["sent_at"] = func.coalesce(Delivery.sent_at, now)
        if target is not DeliveryState.SENT:
            values["finished_at"] = now
        if error_code is not None:
            values["error_code"] = error_code
        if move(session, match, target, values=values):
            return target
    elif values:
        session.execute(
            update(Delivery)
            .where(match)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    return current


def has_fallback() -> ColumnElement[bool]:
    """True for deliveries that an SMS fallback replaced (see :mod:`broadcaster.fallback`)."""
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
