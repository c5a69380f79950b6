"""TwilioProvider (the real SDK over HTTP) and SimulatorProvider (in-process), scenario by
scenario against the same simulator: they must succeed and fail identically."""

from __future__ import annotations

import traceback

import pytest
from providers_testkit import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    LAO_MOBILE,
    SERVICE_SID,
    ProviderFactory,
)

from workers.providers.base import ErrorKind, OutboundMessage, ProviderError
from workers.providers.errors import BUILTIN_RULES
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.protocol import MAGIC_NUMBERS
from workers.providers.simulator.provider import SimulatorProvider
from workers.providers.simulator.server import SimulatorServer
from workers.providers.twilio import TwilioProvider


def msg(
    to: str = LAO_MOBILE, body: str = "ສະບາຍດີ: wash hands, hotline 1166", **kw
) -> OutboundMessage:
    return OutboundMessage(delivery_id=1, to=to, body=body, **kw)


def assert_no_number(err: ProviderError, to: str) -> None:
    digits = to.removeprefix("whatsapp:").lstrip("+")
    texts = [str(err), repr(err), "".join(traceback.format_exception(err))]
    for text in texts:
        assert digits not in text
        assert digits[-7:] not in text


def send_error(provider, message: OutboundMessage) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        provider.send(message)
    assert_no_number(info.value, message.to)
    return info.value


def test_send_from_number(make_provider: ProviderFactory, sim: SimulatorCore) -> None:
    result = make_provider().send(msg())
    assert result.sid.startswith("SM")
    assert len(result.sid) == 34
    assert result.status == "queued"
    assert sim.accepted_by_to() == {LAO_MOBILE: 1}
    assert sim.accepted_count == 1
    assert sim.requests_count == 1
    form = sim.request_form(result.sid)
    assert form is not None
    assert form["From"] == FROM_NUMBER
    assert "MessagingServiceSid" not in form
    assert "StatusCallback" not in form
    assert "ValidityPeriod" not in form
    stored = sim.messages[0]
    assert stored["sid"] == result.sid
    assert stored["body"] == "ສະບາຍດີ: wash hands, hotline 1166"
    assert stored["num_segments"] == "1"


def test_send_through_messaging_service(make_provider: ProviderFactory, sim: SimulatorCore) -> None:
    provider = make_provider(messaging_service_sid=SERVICE_SID, from_number=None)
    result = provider.send(msg())
    assert result.status == "accepted"
    form = sim.request_form(result.sid)
    assert form is not None
    assert form["MessagingServiceSid"] == SERVICE_SID
    assert "From" not in form


def test_service_wins_over_from_number(make_provider: ProviderFactory, sim: SimulatorCore) -> None:
    result = make_provider(messaging_service_sid=SERVICE_SID).send(msg())
    form = sim.request_form(result.sid)
    assert form is not None
    assert form["MessagingServiceSid"] == SERVICE_SID
    assert "From" not in form


def test_status_callback_and_validity_period_pass_through(
    make_provider: ProviderFactory, sim: SimulatorCore
) -> None:
    sim.configure(deliver_callbacks=False)
    callback = "http://127.0.0.1:9/webhooks/twilio/status?delivery=42"
    result = make_provider().send(msg(status_callback=callback, validity_period=3600))
    form = sim.request_form(result.sid)
    assert form is not None
    assert form["StatusCallback"] == callback
    assert form["ValidityPeriod"] == "3600"


def test_whatsapp_sender_gets_the_channel_prefix(
    make_provider: ProviderFactory, sim: SimulatorCore
) -> None:
    to = "whatsapp:" + LAO_MOBILE
    result = make_provider().send(msg(to=to))
    form = sim.request_form(result.sid)
    assert form is not None
    assert form["To"] == to
    assert form["From"] == "whatsapp:" + FROM_NUMBER
    assert sim.accepted_by_to() == {to: 1}
    # Already prefixed: not doubled.
    result = make_provider(from_number="whatsapp:" + FROM_NUMBER).send(msg(to=to))
    assert sim.request_form(result.sid)["From"] == "whatsapp:" + FROM_NUMBER  # type: ignore[index]


@pytest.mark.parametrize("magic", sorted(MAGIC_NUMBERS))
@pytest.mark.parametrize("prefix", ["", "whatsapp:"])
def test_twilio_magic_numbers_are_permanent(
    make_provider: ProviderFactory, sim: SimulatorCore, magic: str, prefix: str
) -> None:
    err = send_error(make_provider(), msg(to=prefix + magic))
    code = MAGIC_NUMBERS[magic][0]
    assert (err.kind, err.code, err.http_status) == (ErrorKind.PERMANENT, code, 400)
    assert str(err) == f"{BUILTIN_RULES[code].explanation} (code {code}, HTTP 400)"
    assert sim.accepted_count == 0
    assert sim.rejected == {400: 1}


@pytest.mark.parametrize(
    ("status", "code"), [(429, 20429), (500, 20500), (503, 20503), (502, None)]
)
def test_injected_faults_are_retryable(
    make_provider: ProviderFactory, sim: SimulatorCore, status: int, code: int | None
) -> None:
    sim.configure(error_rates={status: 1.0})
    err = send_error(make_provider(), msg())
    if code is None:  # an unlisted 5xx gets Twilio's generic internal-error code
        code = 20500
    assert (err.kind, err.code, err.http_status) == (ErrorKind.RETRYABLE, code, status)
    assert err.retryable
    assert sim.accepted_by_to() == {}
    assert sim.rejected == {status: 1}


def test_wrong_auth_token_is_configuration(
    make_provider: ProviderFactory, sim: SimulatorCore
) -> None:
    err = send_error(make_provider(auth_token="not-the-token"), msg())
    assert (err.kind, err.code, err.http_status) == (ErrorKind.CONFIGURATION, 20003, 401)
    assert sim.rejected == {401: 1}


def test_empty_body_is_configuration(make_provider: ProviderFactory, sim: SimulatorCore) -> None:
    err = send_error(make_provider(), msg(body=""))
    assert (err.kind, err.code) == (ErrorKind.CONFIGURATION, 21602)


def test_too_long_body_is_configuration(make_provider: ProviderFactory) -> None:
    err = send_error(make_provider(), msg(body="x" * 1601))
    assert (err.kind, err.code) == (ErrorKind.CONFIGURATION, 21617)


def _status_for(code: int) -> int:
    return {20003: 401, 20404: 404, 20429: 429, 20500: 500, 20503: 503}.get(code, 400)


TWILIO_CODES = sorted(code for code in BUILTIN_RULES if code >= 10000)
HTTP_ONLY = sorted(code for code in BUILTIN_RULES if code < 1000)


@pytest.mark.parametrize("code", TWILIO_CODES)
def test_every_code_in_the_table_end_to_end(
    make_provider: ProviderFactory, sim: SimulatorCore, code: int
) -> None:
    status = _status_for(code)
    sim.force_error(LAO_MOBILE, status, code)
    err = send_error(make_provider(), msg())
    assert (err.kind, err.code, err.http_status) == (BUILTIN_RULES[code].kind, code, status)
    assert str(err).startswith(BUILTIN_RULES[code].explanation)


@pytest.mark.parametrize("status", HTTP_ONLY)
def test_every_http_status_in_the_table_end_to_end(
    make_provider: ProviderFactory, sim: SimulatorCore, status: int
) -> None:
    # A body whose code is the HTTP status is what the SDK reports for a codeless error.
    sim.force_error(LAO_MOBILE, status, status)
    err = send_error(make_provider(), msg())
    assert (err.kind, err.code, err.http_status) == (BUILTIN_RULES[status].kind, None, status)


def test_unknown_codes_fall_back_on_the_status(
    make_provider: ProviderFactory, sim: SimulatorCore
) -> None:
    sim.force_error(LAO_MOBILE, 400, 12345)
    err = send_error(make_provider(), msg())
    assert (err.kind, err.code) == (ErrorKind.PERMANENT, 12345)
    sim.force_error(LAO_MOBILE, 502, 12345)
    err = send_error(make_provider(), msg())
    assert (err.kind, err.code) == (ErrorKind.RETRYABLE, 12345)


def test_forced_error_for_a_number_of_attempts_then_accepted(
    make_provider: ProviderFactory, sim: SimulatorCore
) -> None:
    provider = make_provider()
    sim.force_error(LAO_MOBILE, 429, 20429, times=2)
    for _ in range(2):
        assert send_error(provider, msg()).kind is ErrorKind.RETRYABLE
    provider.send(msg())
    assert sim.accepted_by_to() == {LAO_MOBILE: 1}
    assert sim.requests_count == 3
    assert sim.rejected == {429: 2}
    assert sim.rejected_codes == {20429: 2}


def test_both_gateways_raise_identical_errors(
    sim: SimulatorCore, sim_server: SimulatorServer
) -> None:
    twilio = TwilioProvider(
        ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, base_url=sim_server.url
    )
    simulated = SimulatorProvider(
        sim, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=FROM_NUMBER
    )
    scenarios = [msg(to=number) for number in MAGIC_NUMBERS] + [msg(body="")]
    for message in scenarios:
        with pytest.raises(ProviderError) as real:
            twilio.send(message)
        with pytest.raises(ProviderError) as fake:
            simulated.send(message)
        got = [
            (str(e.value), e.value.kind, e.value.code, e.value.http_status) for e in (real, fake)
        ]
        assert got[0] == got[1]
    twilio.close()
