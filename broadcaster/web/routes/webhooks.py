"""Twilio webhooks: status callbacks and inbound messages, each checked for its signature.

Twilio signs every webhook with ``X-Twilio-Signature`` over the full URL it called and the
form fields. The URL it called is ``RISKCAST_PUBLIC_URL`` + the path and query, which is
what we validate against (a proxy in front changes the host we see, not what was signed).
A bad or missing signature gets 403 and writes nothing. Fields Twilio adds later are
signed like any other and otherwise ignored.

The same two URLs serve SMS and WhatsApp: a WhatsApp callback differs only in its
``whatsapp:+...`` addresses, and a status callback is matched by the delivery id in its
URL (or the message SID), never by address.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from broadcaster.campaigns import fallback
from broadcaster.deliveries import service as deliveries
from broadcaster.inbound import service as inbound
from broadcaster.runtime import Runtime
from broadcaster.web.common import MAX_ID
from broadcaster.web.deps import db_session, get_rt

log = logging.getLogger(__name__)
# Twilio's webhook forms are a few hundred bytes (a 1,600-character body percent-encoded
# is under 15 KB): a larger body is refused unread, or cut off at this limit, before any
# signature is computed.
MAX_FORM_BYTES = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"
router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"], max_body_size=MAX_FORM_BYTES)

INBOUND_PATH = "/webhooks/twilio/inbound"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
SIGNATURE_HEADER = "X-Twilio-Signature"
# Present when a Twilio Webhook Rule signs with a SharedKey instead of the Auth Token.
SHARED_KEY_HEADER = "X-Twilio-Webhooks-Signature-Settings"


def twiml(reply: str | None) -> str:
    """A TwiML answer: one ``<Message>`` with ``reply``, or an empty ``<Response>``."""
    if not reply:
        return EMPTY_TWIML
    response = MessagingResponse()
    response.message(reply)
    return str(response)


async def signed_form(request: Request, rt: Annotated[Runtime, Depends(get_rt)]) -> dict[str, str]:
    """The webhook's form fields, once its signature is checked; 403 otherwise."""
    return await verified_form(request, rt)


async def verified_form(request: Request, rt: Runtime) -> dict[str, str]:
    """:func:`signed_form` as a plain coroutine, for routes that take no dependencies.

    What can be refused without the body is refused first; the body, bounded by the
    router's ``max_body_size``, is then parsed once, and that form is what is checked."""
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if request.headers.get(SHARED_KEY_HEADER):
        # Signed with a SharedKey secret riskcast does not hold: it cannot be checked.
        log.warning(
            "rejected a webhook on %s signed with a Twilio SharedKey; riskcast checks the "
            "Auth Token signature only: remove the Webhook Rule that matches this URL",
            request.url.path,
        )
        raise HTTPException(status_code=403, detail="invalid Twilio signature")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not signature or content_type != FORM_TYPE:
        # Twilio signs url-encoded forms; JSON or an uploaded file is no Twilio webhook.
        log.warning(
            "rejected a webhook on %s: no signature, or not a url-encoded form", request.url.path
        )
        raise HTTPException(status_code=403, detail="invalid Twilio signature")
    form = await request.form()
    url = rt.settings.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    # The form itself (a multi-dict) is what is validated, so a repeated field counts whole.
    if not RequestValidator(rt.settings.auth_token).validate(url, form, signature):
        log.warning("rejected a webhook with a bad or missing signature on %s", request.url.path)
        raise HTTPException(status_code=403, detail="invalid Twilio signature")
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _int_field(text: str | None) -> int | None:
    """A non-negative integer the database can hold (ids and error codes are 32-bit), or
    None: a value out of range names no delivery and no error we know."""
    if not text or not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if value <= MAX_ID else None


@router.post("/status", status_code=204, response_class=Response)
async def status(request: Request) -> Response:
    """A delivery's status from the provider. Two arrive per message (sent, delivered), so
    this route is the busiest there is: it takes no dependencies and makes one hop to a
    worker thread, for one short transaction."""
    rt = get_rt(request)
    form = await verified_form(request, rt)
    delivery_id = _int_field(request.query_params.get("d"))
    await run_in_threadpool(
        record_status,
        rt,
        delivery_id=delivery_id,
        sid=form.get("MessageSid") or form.get("SmsSid"),
        status=form.get("MessageStatus") or form.get("SmsStatus") or "",
        error_code=_int_field(form.get("ErrorCode")),
    )
    return Response(status_code=204)


def record_status(
    rt: Runtime, *, delivery_id: int | None, sid: str | None, status: str, error_code: int | None
) -> None:
    """Apply one status callback in its own transaction (and fall back if it failed for
    good)."""
    with rt.session() as session:
        state = deliveries.apply_provider_status(
            session, delivery_id=delivery_id, sid=sid, status=status, error_code=error_code
        )
        fallback.after_provider_status(session, state, delivery_id=delivery_id, sid=sid)


@router.post("/inbound")
def receive(
    form: Annotated[dict[str, str], Depends(signed_form)],
    session: Annotated[Session, Depends(db_session, scope="function")],
    rt: Annotated[Runtime, Depends(get_rt)],
) -> Response:
    """A message someone sent us: a keyword acted on and answered, anything else kept."""
    sid = form.get("MessageSid") or form.get("SmsSid") or form.get("SmsMessageSid")
    if not sid:
        raise HTTPException(status_code=400, detail="MessageSid is missing")
    result = inbound.receive(
        session,
        sid=sid,
        from_=form.get("From", ""),
        to=form.get("To", ""),
        body=form.get("Body", ""),
        region=rt.settings.default_region,
        hotline=rt.settings.hotline,
        hotlines=rt.settings.hotlines,
        opt_out_type=form.get("OptOutType"),
    )
    return Response(content=twiml(result.reply), media_type="application/xml")
