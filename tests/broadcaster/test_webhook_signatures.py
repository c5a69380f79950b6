"""Every webhook is checked against X-Twilio-Signature (the SDK's RequestValidator, over
RISKCAST_PUBLIC_URL + path + query): a valid one passes; a tampered body, another URL, a
missing or foreign signature each get 403 and nothing is written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from broadcaster.models import AuditEvent, Contact, Delivery, InboundMessage
from tests import factories
from tests.broadcaster.twilio_kit import (
    ACCOUNT,
    INBOUND,
    OUR_NUMBER,
    STATUS,
    Kit,
    kit_on,
    new_sid,
    sign,
)

PHONE = factories.lao_number(301)


@pytest.fixture(params=["sqlite", "postgresql"])
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kit]:
    with kit_on(request.param, str(tmp_path)) as k:
        with k.runtime.session() as s:
            factories.community(s, "village")
            factories.contact(s, PHONE, community_slugs=("village",), language="lo")
        yield k


def inbound_params(body: str = "STOP") -> dict[str, str]:
    sid = new_sid()
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": ACCOUNT,
        "From": PHONE,
        "To": OUR_NUMBER,
        "Body": body,
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }


def sent_delivery(kit: Kit) -> tuple[int, str]:
    """A delivery the provider has accepted: (id, SID)."""
    campaign_id, tokens = kit.launch("village")
    assert kit.send(campaign_id, tokens) == {"sent": 1}
    with kit.runtime.session() as s:
        delivery_id, sid = s.execute(select(Delivery.id, Delivery.provider_sid)).one()
    return delivery_id, sid


def status_params(sid: str, status: str = "delivered") -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": ACCOUNT,
        "From": OUR_NUMBER,
        "To": PHONE,
        "MessageStatus": status,
        "SmsStatus": status,
        "ApiVersion": "2010-04-01",
    }


def nothing_written(kit: Kit) -> None:
    with kit.runtime.session() as s:
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 0
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 0
        assert s.scalar(select(Contact.status).where(Contact.phone == PHONE)) == "active"


# -- inbound -------------------------------------------------------------------------------


def test_a_validly_signed_inbound_webhook_is_acted_on(kit: Kit) -> None:
    response = kit.post(INBOUND, inbound_params())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert response.text.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Message>')
    with kit.runtime.session() as s:
        assert s.scalar(select(Contact.status).where(Contact.phone == PHONE)) == "opted_out"


def test_fields_twilio_adds_later_are_accepted(kit: Kit) -> None:
    params = {
        **inbound_params("hello"),
        "FromCountry": "LA",
        "ProfileName": "Noy",
        "SomethingTwilioAddsIn2030": "x",
    }
    assert kit.post(INBOUND, params).status_code == 200
    with kit.runtime.session() as s:
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"Body": "START"},  # the body, changed after signing
        {"From": factories.lao_number(302)},  # another sender
        {"Injected": "1"},  # a field added after signing
    ],
)
def test_a_tampered_inbound_body_is_refused(kit: Kit, change: dict[str, str]) -> None:
    params = inbound_params()
    signature = sign(kit.public_url + INBOUND, params)
    response = kit.post(INBOUND, {**params, **change}, signature=signature)
    assert response.status_code == 403
    nothing_written(kit)


@pytest.mark.parametrize(
    "signed_url",
    [
        "https://riskcast.example.org/webhooks/twilio/inbound",  # another host
        "http://testserver/webhooks/twilio/status",  # another path
        "http://testserver/webhooks/twilio/inbound?x=1",  # another query
    ],
)
def test_a_signature_for_another_url_is_refused(kit: Kit, signed_url: str) -> None:
    response = kit.post(INBOUND, inbound_params(), signed_url=signed_url)
    assert response.status_code == 403
    nothing_written(kit)


def test_a_missing_signature_is_refused(kit: Kit) -> None:
    response = kit.post(INBOUND, inbound_params(), signature="")
    assert response.status_code == 403
    nothing_written(kit)


def test_a_signature_with_another_auth_token_is_refused(kit: Kit) -> None:
    params = inbound_params()
    signature = sign(kit.public_url + INBOUND, params, token="someone-elses-token")
    assert kit.post(INBOUND, params, signature=signature).status_code == 403
    nothing_written(kit)


def test_a_shared_key_signature_is_refused(kit: Kit) -> None:
    # A Twilio Webhook Rule signing with a SharedKey: riskcast holds only the Auth Token.
    params = inbound_params()
    headers = {
        "X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    }
    assert kit.post(INBOUND, params, headers=headers).status_code == 403
    nothing_written(kit)


def test_a_json_body_is_refused(kit: Kit) -> None:
    params = inbound_params()
    signature = sign(kit.public_url + INBOUND, params)
    response = kit.client.post(INBOUND, json=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403
    nothing_written(kit)


# -- status callbacks ----------------------------------------------------------------------


def test_a_validly_signed_status_callback_moves_the_delivery(kit: Kit) -> None:
    delivery_id, sid = sent_delivery(kit)
    path = f"{STATUS}?d={delivery_id}"
    response = kit.post(path, status_params(sid))
    assert response.status_code == 204
    with kit.runtime.session() as s:
        assert s.scalar(select(Delivery.state)) == "delivered"


@pytest.mark.parametrize("d", ["99999999999999999999", "2147483648", "-1", "1e3"])
def test_a_signed_callback_naming_no_possible_delivery_is_matched_by_sid(kit: Kit, d: str) -> None:
    _, sid = sent_delivery(kit)
    response = kit.post(f"{STATUS}?d={d}", {**status_params(sid), "ErrorCode": "9" * 30})
    assert response.status_code == 204
    with kit.runtime.session() as s:
        assert s.execute(select(Delivery.state, Delivery.error_code)).one() == ("delivered", None)


@pytest.mark.parametrize("attack", ["body", "url", "query", "missing"])
def test_a_bad_status_callback_signature_changes_nothing(kit: Kit, attack: str) -> None:
    delivery_id, sid = sent_delivery(kit)
    path = f"{STATUS}?d={delivery_id}"
    params = status_params(sid, "undelivered")
    real_url = kit.public_url + path
    if attack == "body":
        response = kit.post(
            path, {**params, "ErrorCode": "30003"}, signature=sign(real_url, params)
        )
    elif attack == "url":
        response = kit.post(path, params, signed_url="http://127.0.0.1:8000" + path)
    elif attack == "query":
        # signed for another delivery: the id in the URL is covered by the signature
        response = kit.post(
            path, params, signed_url=f"{kit.public_url}{STATUS}?d={delivery_id + 1}"
        )
    else:
        response = kit.post(path, params, signature="")
    assert response.status_code == 403
    with kit.runtime.session() as s:
        assert s.execute(select(Delivery.state, Delivery.error_code)).one() == ("sent", None)
