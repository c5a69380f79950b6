"""The simulator is no kinder than Twilio: no callback for the initial status, ``sent`` only
when its queue releases the message, the message stored before the answer leaves, and the
read API (list with Twilio's filters and paging, fetch) with faults of its own. Spoken to by
the real twilio SDK over HTTP, and in-process where the gateway allows."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from providers_testkit import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    LAO_MOBILE,
    SERVICE_SID,
    ProviderFactory,
    wait_until_serving,
)
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from workers.providers.base import OutboundMessage, ProviderError
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.server import SimulatorServer
from workers.providers.twilio import BaseUrlHttpClient, TwilioProvider

OTHER = "+66812345678"


def sdk(server: SimulatorServer, token: str = AUTH_TOKEN) -> Client:
    return Client(ACCOUNT_SID, token, http_client=BaseUrlHttpClient(server.url))


def gateway(server: SimulatorServer, **kwargs: object) -> TwilioProvider:
    return TwilioProvider(
        ACCOUNT_SID,
        AUTH_TOKEN,
        from_number=kwargs.pop("from_number", FROM_NUMBER),  # type: ignore[arg-type]
        base_url=server.url,
        **kwargs,  # type: ignore[arg-type]
    )


def test_no_callback_for_the_initial_status_and_sent_only_when_the_queue_releases_it(
    sim: SimulatorCore, sim_server: SimulatorServer, receiver
) -> None:
    sim.configure(queue_delay=0.8, callback_delay=0.05)
    provider = gateway(sim_server)
    started = time.monotonic()
    sid = provider.send(
        OutboundMessage(1, LAO_MOBILE, "hello", status_callback=receiver.url + "/s?d=1")
    ).sid
    assert provider.fetch(sid).status == "queued"
    assert receiver.wait_for(1, timeout=0.5) == []  # nothing for "queued"
    got = receiver.wait_for(2, timeout=5)
    assert [r.form["MessageStatus"] for r in got] == ["sent", "delivered"]
    assert time.monotonic() - started >= 0.8
    assert provider.fetch(sid).status == "delivered"
    provider.close()


def test_a_message_without_callback_moves_on_its_own_clock(
    sim: SimulatorCore, sim_server: SimulatorServer
) -> None:
    sim.configure(queue_delay=0.4, callback_delay=0.2)
    provider = gateway(sim_server)
    sid = provider.send(OutboundMessage(1, LAO_MOBILE, "hello")).sid
    seen = [provider.fetch(sid).status]
    time.sleep(0.45)
    seen.append(provider.fetch(sid).status)
    time.sleep(0.25)
    seen.append(provider.fetch(sid).status)
    assert seen == ["queued", "sent", "delivered"]
    provider.close()


def test_the_message_is_stored_before_the_answer_leaves(
    sim: SimulatorCore, sim_server: SimulatorServer
) -> None:
    sim.configure(answer_delay=0.6, queue_delay=60)
    provider = gateway(sim_server)
    answers: list[float] = []
    started = time.monotonic()
    sender = threading.Thread(
        target=lambda: (
            provider.send(OutboundMessage(1, LAO_MOBILE, "hello")),
            answers.append(time.monotonic() - started),
        )
    )
    sender.start()
    time.sleep(0.3)
    listed = sdk(sim_server).messages.list(to=LAO_MOBILE)
    assert not answers  # the sender is still waiting for its answer...
    assert [m.status for m in listed] == ["queued"]  # ...and Twilio already has it
    sender.join(5)
    assert answers and answers[0] >= 0.6
    provider.close()


def test_a_send_whose_answer_never_comes_is_ambiguous(
    sim: SimulatorCore, sim_server: SimulatorServer
) -> None:
    sim.configure(answer_delay=1.5)
    provider = gateway(sim_server, timeout=0.4)
    with pytest.raises(ProviderError) as info:
        provider.send(OutboundMessage(1, LAO_MOBILE, "hello"))
    assert info.value.ambiguous and info.value.retryable
    assert sim.accepted_by_to() == {LAO_MOBILE: 1}  # it was accepted all the same
    assert LAO_MOBILE not in str(info.value)
    provider.close()


def test_list_filters_order_and_paging_through_the_sdk(
    sim: SimulatorCore, sim_server: SimulatorServer
) -> None:
    sim.configure(queue_delay=0.0, callback_delay=0.0)
    client = sdk(sim_server)
    for n in range(7):
        client.messages.create(to=LAO_MOBILE, from_=FROM_NUMBER, body=f"to A {n}")
        time.sleep(0.002)
    client.messages.create(to=LAO_MOBILE, messaging_service_sid=SERVICE_SID, body="via service")
    client.messages.create(to=OTHER, from_=FROM_NUMBER, body="to B")
    before = sim.stats()["reads"]
    everything_to_a = client.messages.list(to=LAO_MOBILE, page_size=3)
    assert sim.stats()["reads"] - before == 3  # three pages through next_page_uri
    assert [m.body for m in everything_to_a] == ["via service"] + [
        f"to A {n}" for n in reversed(range(7))
    ]  # most recent first
    assert [m.body for m in client.messages.list(to=OTHER)] == ["to B"]
    from_number = client.messages.list(to=LAO_MOBILE, from_=FROM_NUMBER)
    # the service's message counts once sent: the service picked that same number for it
    assert len(from_number) == 8 and {m.from_ for m in from_number} == {FROM_NUMBER}
    page = client.messages.page(to=LAO_MOBILE, page_size=5)
    assert "PageToken=" in (page.next_page_url or "")
    assert len(list(page)) == 5 and len(list(page.next_page() or [])) == 3
    now = datetime.now(UTC)
    assert len(client.messages.list(to=LAO_MOBILE, date_sent_after=now - timedelta(minutes=1))) == 8
    assert client.messages.list(to=LAO_MOBILE, date_sent_before=now - timedelta(hours=1)) == []
    assert len(client.messages.list(date_sent=now)) == 9


def test_date_sent_filters_never_match_a_message_still_in_the_queue(
    sim: SimulatorCore, sim_server: SimulatorServer
) -> None:
    sim.configure(queue_delay=600)
    client = sdk(sim_server)
    client.messages.create(to=LAO_MOBILE, from_=FROM_NUMBER, body="queued for long")
    since = datetime.now(UTC) - timedelta(hours=1)
    assert client.messages.list(to=LAO_MOBILE, date_sent_after=since) == []
    (listed,) = client.messages.list(to=LAO_MOBILE)
    assert (listed.status, listed.date_sent) == ("queued", None)


def test_fetch_and_list_answer_401_404_and_injected_faults_like_twilio(
    sim: SimulatorCore, sim_server: SimulatorServer
) -> None:
    client = sdk(sim_server)
    sid = client.messages.create(to=LAO_MOBILE, from_=FROM_NUMBER, body="x").sid
    with pytest.raises(TwilioRestException) as unknown:
        client.messages("SM" + "0" * 32).fetch()
    assert (unknown.value.status, unknown.value.code) == (404, 20404)
    with pytest.raises(TwilioRestException) as wrong:
        sdk(sim_server, token="wrong").messages(sid).fetch()
    assert (wrong.value.status, wrong.value.code) == (401, 20003)
    with pytest.raises(TwilioException):
        sdk(sim_server, token="wrong").messages.list(to=LAO_MOBILE)
    sim.configure(read_error_rates={429: 1.0})
    with pytest.raises(TwilioRestException) as limited:
        client.messages(sid).fetch()
    assert (limited.value.status, limited.value.code) == (429, 20429)
    with pytest.raises(TwilioException):
        client.messages.list(to=LAO_MOBILE)
    # sends are not affected by read faults
    client.messages.create(to=LAO_MOBILE, from_=FROM_NUMBER, body="y")
    assert sim.stats()["reads_refused"] == {"401": 2, "429": 2}


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500), (503, 20503)])
def test_messages_to_raises_the_read_fault_as_a_provider_error(
    sim: SimulatorCore, make_provider: ProviderFactory, status: int, code: int
) -> None:
    provider = make_provider()
    provider.send(OutboundMessage(1, LAO_MOBILE, "hello"))
    sim.configure(read_error_rates={status: 1.0})
    with pytest.raises(ProviderError) as info:
        provider.messages_to(LAO_MOBILE, datetime.now(UTC) - timedelta(minutes=1))
    assert info.value.retryable and (info.value.http_status, info.value.code) == (status, code)


def test_messages_to_finds_only_this_senders_messages_in_the_window(
    sim: SimulatorCore, make_provider: ProviderFactory
) -> None:
    sim.configure(queue_delay=600)
    by_number = make_provider()
    by_service = make_provider(from_number=None, messaging_service_sid=SERVICE_SID)
    since = datetime.now(UTC) - timedelta(seconds=5)
    by_number.send(OutboundMessage(1, LAO_MOBILE, "from the number"))
    by_service.send(OutboundMessage(2, LAO_MOBILE, "from the service"))
    by_number.send(OutboundMessage(3, "whatsapp:" + LAO_MOBILE, "on WhatsApp"))
    by_number.send(OutboundMessage(4, OTHER, "someone else"))
    paced: list[int] = []
    found = by_number.messages_to(LAO_MOBILE, since, pace=lambda: paced.append(1))
    assert [(m.body, m.status) for m in found.messages] == [("from the number", "queued")]
    assert found.complete and found.requests == len(paced) == 1
    assert [m.body for m in by_service.messages_to(LAO_MOBILE, since).messages] == [
        "from the service"
    ]
    whatsapp = by_number.messages_to("whatsapp:" + LAO_MOBILE, since)
    assert [m.body for m in whatsapp.messages] == ["on WhatsApp"]
    later = by_number.messages_to(LAO_MOBILE, datetime.now(UTC) + timedelta(seconds=2))
    assert later.messages == () and later.complete


def test_messages_to_reads_a_long_list_to_its_end_and_proves_nothing_from_it(
    sim: SimulatorCore, make_provider: ProviderFactory
) -> None:
    sim.configure(queue_delay=600)
    provider = make_provider()
    since = datetime.now(UTC) - timedelta(minutes=1)
    for n in range(1001):  # one more than a page of Twilio's largest size
        provider.send(OutboundMessage(n, LAO_MOBILE, f"n{n}"))
    reads = sim.stats()["reads"]
    found = provider.messages_to(LAO_MOBILE, since)
    assert found.requests == 2 and sim.stats()["reads"] - reads == 2
    assert len(found.messages) == 1001 and not found.complete


def test_the_list_is_ordered_by_date_sent_with_queued_messages_last(
    sim: SimulatorCore, sim_server: SimulatorServer
) -> None:
    client = sdk(sim_server)
    sim.configure(queue_delay=600)
    client.messages.create(to=LAO_MOBILE, from_=FROM_NUMBER, body="queued, newest")
    sim.configure(queue_delay=0.0, callback_delay=600)
    client.messages.create(to=LAO_MOBILE, from_=FROM_NUMBER, body="sent later")
    listed = [m.body for m in client.messages.list(to=LAO_MOBILE)]
    assert listed == ["sent later", "queued, newest"]


def test_riskcast_simulator_takes_its_timing_from_flags_and_the_environment() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(
        os.environ,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        RISKCAST_SIMULATOR_ANSWER_DELAY="0.3",
        RISKCAST_LOG_LEVEL="WARNING",
    )
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "workers.cli", "simulator", "--port", str(port)),
            *("--queue-delay", "45", "--read-rate-500", "0.25"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process)
        config = requests.get(f"{url}/_sim/stats", timeout=5).json()["config"]
        assert (config["queue_delay"], config["answer_delay"]) == (45.0, 0.3)
        assert config["read_error_rates"] == {"500": 0.25}
        provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, base_url=url)
        started = time.monotonic()
        sid = provider.send(OutboundMessage(1, LAO_MOBILE, "hello")).sid
        assert time.monotonic() - started >= 0.3
        requests.post(f"{url}/_sim/config", json={"read_error_rates": {}}, timeout=5)
        assert provider.fetch(sid).status == "queued"  # Twilio's queue holds it for 45 s
        provider.close()
    finally:
        process.terminate()
        process.wait(10)
