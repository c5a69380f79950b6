"""What only the SDK-backed gateway does: base URL rewriting, pooling, network failures."""

from __future__ import annotations

import logging
import socket
import traceback

import pytest
from providers_testkit import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, LAO_MOBILE
from twilio.request_validator import RequestValidator
from urllib3.connection import HTTPConnection

from workers.providers.base import ErrorKind, OutboundMessage, ProviderError
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.server import SimulatorServer
from workers.providers.twilio import BaseUrlHttpClient, TwilioProvider


def provider(base_url: str, **kw: object) -> TwilioProvider:
    return TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, base_url=base_url, **kw)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_rewrite_keeps_path_query_and_prefix() -> None:
    client = BaseUrlHttpClient("http://127.0.0.1:8099/twilio/")
    assert (
        client.rewrite("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?x=1")
        == "http://127.0.0.1:8099/twilio/2010-04-01/Accounts/AC1/Messages.json?x=1"
    )
    plain = BaseUrlHttpClient()
    assert plain.rewrite("https://api.twilio.com/a") == "https://api.twilio.com/a"
    client.close()
    plain.close()


@pytest.mark.parametrize("bad", ["127.0.0.1:8000", "ftp://host", "http://"])
def test_bad_base_url_is_refused_at_construction(bad: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        provider(bad)


def test_a_sender_is_required() -> None:
    with pytest.raises(ValueError, match="messaging_service_sid or from_number"):
        TwilioProvider(ACCOUNT_SID, AUTH_TOKEN)


def test_one_client_one_session_reused(
    sim: SimulatorCore, sim_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connects = []
    original = HTTPConnection.connect

    def counting_connect(self: HTTPConnection) -> None:
        connects.append(self.port)
        original(self)

    monkeypatch.setattr(HTTPConnection, "connect", counting_connect)
    gateway = provider(sim_server.url)
    session = gateway.http_client.session
    for index in range(5):
        gateway.send(OutboundMessage(index, f"+85620555000{index}", "hello"))
    assert gateway.http_client.session is session
    assert sim.accepted_count == 5
    assert connects == [sim_server.port]  # five requests, one TCP connection
    gateway.close()


def test_fetch_through_the_sdk_sees_the_status_advance(
    sim: SimulatorCore, sim_server: SimulatorServer
) -> None:
    sim.configure(callback_delay=0.0, queue_delay=0.0)
    gateway = provider(sim_server.url)
    sid = gateway.send(OutboundMessage(1, LAO_MOBILE, "hello")).sid
    fetched = gateway.client.messages(sid).fetch()
    assert fetched.sid == sid
    assert fetched.to == LAO_MOBILE
    assert fetched.status == "delivered"  # no callback URL: settles on its own
    gateway.close()


def test_connection_refused_is_retryable() -> None:
    gateway = provider(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderError) as info:
        gateway.send(OutboundMessage(1, LAO_MOBILE, "hello"))
    err = info.value
    assert (err.kind, err.code, err.http_status) == (ErrorKind.RETRYABLE, None, None)
    assert "connection failed" in str(err)
    assert err.__suppress_context__
    assert LAO_MOBILE[1:] not in "".join(traceback.format_exception(err))


def test_read_timeout_is_retryable_and_says_it_may_have_been_sent(
    sim: SimulatorCore, sim_server: SimulatorServer
) -> None:
    sim.configure(latency=0.5)
    gateway = provider(sim_server.url, timeout=0.1)
    with pytest.raises(ProviderError) as info:
        gateway.send(OutboundMessage(1, LAO_MOBILE, "hello"))
    assert info.value.kind is ErrorKind.RETRYABLE
    assert "may have been accepted" in str(info.value)
    gateway.close()


def test_an_endpoint_that_is_not_twilio_is_configuration(receiver) -> None:
    receiver.reply_body = "<html>hello</html>"
    gateway = provider(receiver.url)
    with pytest.raises(ProviderError) as info:
        gateway.send(OutboundMessage(1, LAO_MOBILE, "hello"))
    assert info.value.kind is ErrorKind.CONFIGURATION
    gateway.close()


def test_sdk_request_logging_is_quiet() -> None:
    assert logging.getLogger("twilio.http_client").getEffectiveLevel() >= logging.WARNING


def test_validator_import_is_the_real_one() -> None:
    # Guard against the module name workers/providers/twilio.py shadowing the SDK.
    assert RequestValidator.__module__ == "twilio.request_validator"
