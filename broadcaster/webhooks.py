"""Twilio webhooks: status callbacks and inbound messages, each checked for its signature.

Twilio signs every webhook with ``X-Twilio-Signature`` over the full URL it called and the
form fields. The URL it called is ``RISKCAST_PUBLIC_URL`` + the path and query, which is
what we validate against (a proxy in front changes the host we see, not what was signed).
A bad or missing signature gets 403 and writes nothing.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from broadcaster import deliveries, inbound
from broadcaster.api.deps import db_session, get_rt
from broadcaster.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"])

STATUS_PATH = "/webhooks/twilio/status"
INBOUND_PATH = "/webhooks/twilio/inbound"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def status_callback_url(public_url: str, delivery_id: int) -> str:
    """The StatusCallback given to the provider: it carries the delivery id."""
    return f"{public_url}{STATUS_PATH}?d={delivery_id}"


async def signed_form(request: Request, rt: Annotated[Runtime, Depends(get_rt)]) -> dict[str, str]:
    form = await request.form()
    params = {k: str(v) for k, v in form.items()}
    signature = request.headers.get("X-Twilio-Signature", "")
    url = rt.settings.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not signature or not RequestValidator(rt.settings.auth_token).validate(
        url, params, signature
    ):
        log.warning("rejected a webhook with a bad or missing signature on %s", request.url.path)
        raise HTTPException(status_code=403, detail="invalid Twilio signature")
    return params


@router.post("/status")
def status(
    request: Request,
    form: Annotated[dict[str, str], Depends(signed_form)],
    session: Annotated[Session, Depends(db_session)],
) -> Response:
    raw_id = request.query_params.get("d")
    delivery_id = int(raw_id) if raw_id and raw_id.isdigit() else None
    code = form.get("ErrorCode")
    deliveries.apply_provider_status(
        session,
        delivery_id=delivery_id,
        sid=form.get("MessageSid") or form.get("SmsSid"),
        status=form.get("MessageStatus") or form.get("SmsStatus") or "",
        error_code=int(code) if code and code.isdigit() else None,
    )
    return Response(status_code=204)


@router.post("/inbound")
def receive(
    form: Annotated[dict[str, str], Depends(signed_form)],
    session: Annotated[Session, Depends(db_session)],
    rt: Annotated[Runtime, Depends(get_rt)],
) -> Response:
    inbound.receive(
        session,
        sid=form.get("MessageSid") or form.get("SmsSid") or "",
        from_=form.get("From", ""),
        to=form.get("To", ""),
        body=form.get("Body", ""),
        region=rt.settings.default_region,
    )
    return Response(content=EMPTY_TWIML, media_type="application/xml")
