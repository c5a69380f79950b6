"""The simulator core: callbacks, accounting, faults, and its admin HTTP routes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from providers_testkit import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    LAO_MOBILE,
    SERVICE_SID,
    wait_until_serving,
)
from twilio.request_validator import RequestValidator

import messages
import workers
from workers.providers.base import OutboundMessage, ProviderError
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.provider import SimulatorProvider
from workers.providers.simulator.server import SimulatorServer
from workers.providers.twilio import TwilioProvider

AUTH = (ACCOUNT_SID, AUTH_TOKEN)
THAI_MOBILE = "+66812345678"


def form(**fields: str) -> dict[str, str]:
    return {"To": LAO_MOBILE, "From": FROM_NUMBER, "Body": "hello", **fields}


def assert_signed(receiver, received) -> None:
    validator = RequestValidator(AUTH_TOKEN)
    url = receiver.url + received.path
    assert validator.validate(url, received.form, received.headers["X-Twilio-Signature"])


def test_signed_callbacks_sent_then_delivered(
    sim: SimulatorCore, sim_server: SimulatorServer, receiver
) -> None:
    gateway = TwilioProvider(
        ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, base_url=sim_server.url
    )
    callback = receiver.url + "/webhooks/twilio/status?delivery=7"
    sid = gateway.send(OutboundMessage(7, LAO_MOBILE, "hello", status_callback=callback)).sid
    got = receiver.wait_for(2)
    assert [r.form["MessageStatus"] for r in got] == ["sent", "delivered"]
    for received in got:
        assert received.path == "/webhooks/twilio/status?delivery=7"
        assert_signed(receiver, received)
        assert received.form["MessageSid"] == received.form["SmsSid"] == sid
        assert received.form["AccountSid"] == ACCOUNT_SID
        assert received.form["To"] == LAO_MOBILE
        assert received.form["From"] == FROM_NUMBER
        assert received.form["ApiVersion"] == "2010-04-01"
        assert "ErrorCode" not in received.form
    assert sim.wait_for_callbacks(5)
    assert sim.callbacks_delivered == 2
    assert sim.message(sid)["status"] == "delivered"  # type: ignore[index]
    gateway.close()


def test_tampered_callback_fails_validation(sim: SimulatorCore, receiver) -> None:
    sim.create_message(ACCOUNT_SID, AUTH, form(StatusCallback=receiver.url + "/s"))
    received = receiver.wait_for(1)[0]
    validator = RequestValidator(AUTH_TOKEN)
    tampered = dict(received.form, MessageStatus="failed")
    assert not validator.validate(
        receiver.url + "/s", tampered, received.headers["X-Twilio-Signature"]
    )
    assert sim.wait_for_callbacks(5)


@pytest.mark.parametrize(
    ("final", "code", "statuses"),
    [("undelivered", 30003, ["sent", "undelivered"]), ("failed", 30007, ["failed"])],
)
def test_outcomes_per_number(
    sim: SimulatorCore, receiver, final: str, code: int, statuses: list[str]
) -> None:
    sim.set_outcome(THAI_MOBILE, final, code)
    status, payload = sim.create_message(
        ACCOUNT_SID, AUTH, form(To=THAI_MOBILE, StatusCallback=receiver.url + "/s")
    )
    assert status == 201
    got = receiver.wait_for(len(statuses))
    assert [r.form["MessageStatus"] for r in got] == statuses
    assert got[-1].form["ErrorCode"] == str(code)
    assert sim.wait_for_callbacks(5)
    stored = sim.message(payload["sid"])
    assert stored is not None
    assert (stored["status"], stored["error_code"]) == (final, code)


def test_callbacks_through_a_messaging_service_name_the_sender(
    sim: SimulatorCore, receiver
) -> None:
    sim.create_message(
        ACCOUNT_SID,
        AUTH,
        {
            "To": LAO_MOBILE,
            "MessagingServiceSid": SERVICE_SID,
            "Body": "hi",
            "StatusCallback": receiver.url,
        },
    )
    got = receiver.wait_for(2)
    assert all(r.form["MessagingServiceSid"] == SERVICE_SID for r in got)
    assert all(r.form["From"] for r in got)


def test_callbacks_retry_a_restarting_receiver(sim: SimulatorCore, receiver) -> None:
    receiver.answers = [503, 502]
    sim.create_message(ACCOUNT_SID, AUTH, form(StatusCallback=receiver.url + "/s"))
    got = receiver.wait_for(2)
    assert [r.form["MessageStatus"] for r in got] == ["sent", "delivered"]
    assert sim.wait_for_callbacks(5)
    assert (sim.callbacks_delivered, sim.callbacks_failed) == (2, 0)


def test_unreachable_receiver_gives_up_without_killing_threads(
    sim: SimulatorCore, receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("workers.providers.simulator.callbacks.CALLBACK_RETRY_DELAYS", (0.01, 0.01))
    sim.create_message(ACCOUNT_SID, AUTH, form(StatusCallback="http://127.0.0.1:9/s"))
    assert sim.wait_for_callbacks(10)
    assert sim.callbacks_failed == 2  # "sent" given up, then "delivered" given up
    # The threads still work.
    sim.create_message(ACCOUNT_SID, AUTH, form(StatusCallback=receiver.url + "/s"))
    assert len(receiver.wait_for(2)) == 2


def test_refused_callback_is_counted_not_retried(sim: SimulatorCore, receiver) -> None:
    receiver.answers = [403]
    sim.create_message(ACCOUNT_SID, AUTH, form(StatusCallback=receiver.url + "/s"))
    got = receiver.wait_for(1)
    assert [r.form["MessageStatus"] for r in got] == ["delivered"]
    assert sim.wait_for_callbacks(5)
    assert sim.callbacks_refused == 1


def test_callbacks_off(sim: SimulatorCore, receiver) -> None:
    sim.configure(deliver_callbacks=False)
    sim.create_message(ACCOUNT_SID, AUTH, form(StatusCallback=receiver.url + "/s"))
    assert sim.wait_for_callbacks(5)
    assert receiver.wait_for(1, timeout=0.3) == []


def test_send_callback_injects_duplicates_and_out_of_order(sim: SimulatorCore, receiver) -> None:
    sim.configure(deliver_callbacks=False)
    _, payload = sim.create_message(ACCOUNT_SID, AUTH, form(StatusCallback=receiver.url + "/s"))
    sid = payload["sid"]
    assert sim.send_callback(sid, "delivered") == 200
    assert sim.send_callback(sid, "sent") == 200
    assert sim.send_callback(sid, "undelivered", 30005) == 200
    got = receiver.wait_for(3)
    assert [r.form["MessageStatus"] for r in got] == ["delivered", "sent", "undelivered"]
    assert got[2].form["ErrorCode"] == "30005"
    for received in got:
        assert_signed(receiver, received)
    with pytest.raises(KeyError):
        sim.send_callback("SMnope", "sent")


def test_inject_inbound_is_signed(sim: SimulatorCore, receiver) -> None:
    receiver.reply_body = "<Response/>"
    status, answer = sim.inject_inbound(
        receiver.url + "/webhooks/twilio/inbound", THAI_MOBILE, FROM_NUMBER, "STOP"
    )
    assert (status, answer) == (200, "<Response/>")
    received = receiver.wait_for(1)[0]
    assert_signed(receiver, received)
    assert received.form["Body"] == "STOP"
    assert received.form["From"] == THAI_MOBILE
    assert received.form["To"] == FROM_NUMBER
    assert received.form["NumMedia"] == "0"
    assert received.form["AccountSid"] == ACCOUNT_SID


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"To": ""}, 21604),
        ({"Body": ""}, 21602),
        ({"From": ""}, 21603),
        ({"Body": "x" * 1601}, 21617),
        ({"To": "whatsapp:" + LAO_MOBILE}, 21910),
    ],
)
def test_request_validation(sim: SimulatorCore, fields: dict[str, str], code: int) -> None:
    status, payload = sim.create_message(ACCOUNT_SID, AUTH, form(**fields))
    assert (status, payload["code"], payload["status"]) == (400, code, 400)
    assert payload["more_info"].endswith(str(code))
    assert sim.rejected == {400: 1}


def test_auth_and_account_checks(sim: SimulatorCore) -> None:
    assert sim.create_message(ACCOUNT_SID, None, form())[0] == 401
    assert sim.create_message(ACCOUNT_SID, (ACCOUNT_SID, "wrong"), form())[1]["code"] == 20003
    status, payload = sim.create_message("AC" + "9" * 32, AUTH, form())
    assert (status, payload["code"]) == (404, 20404)
    assert sim.requests_count == 3
    assert sim.accepted_count == 0


def test_seeded_fault_injection_is_reproducible() -> None:
    def run() -> list[int]:
        core = SimulatorCore(ACCOUNT_SID, AUTH_TOKEN, error_rates={429: 0.3, 500: 0.1}, seed=42)
        statuses = [core.create_message(ACCOUNT_SID, AUTH, form())[0] for _ in range(400)]
        assert core.rejected == {s: statuses.count(s) for s in (429, 500)}
        assert core.accepted_count == statuses.count(201)
        core.stop()
        return statuses

    first = run()
    assert first == run()
    assert 80 < first.count(429) < 160
    assert 20 < first.count(500) < 65


@pytest.mark.parametrize(
    "bad",
    [
        {"error_rates": {200: 0.5}},
        {"error_rates": {429: 1.5}},
        {"error_rates": {429: 0.6, 500: 0.6}},
        {"latency": -1},
    ],
)
def test_configure_rejects_nonsense(sim: SimulatorCore, bad: dict) -> None:
    with pytest.raises(ValueError):
        sim.configure(**bad)


def test_concurrent_sends_count_exactly_once_per_recipient(sim: SimulatorCore) -> None:
    gateway = SimulatorProvider(
        sim, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=FROM_NUMBER
    )
    numbers = [f"+8562055{i:06d}" for i in range(400)]

    def worker(chunk: list[str]) -> None:
        for number in chunk:
            gateway.send(OutboundMessage(0, number, "hello"))

    threads = [threading.Thread(target=worker, args=(numbers[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sim.accepted_by_to() == dict.fromkeys(numbers, 1)
    assert sim.accepted_count == sim.requests_count == 400
    assert len({m["sid"] for m in sim.messages}) == 400


def test_reset_forgets_everything_and_drops_pending_callbacks(sim: SimulatorCore, receiver) -> None:
    sim.configure(callback_delay=0.5)
    sim.force_error(THAI_MOBILE, 429, 20429)
    sim.create_message(ACCOUNT_SID, AUTH, form(StatusCallback=receiver.url + "/s"))
    sim.reset()
    assert sim.wait_for_callbacks(5)
    assert receiver.wait_for(1, timeout=0.7) == []
    assert (sim.requests_count, sim.accepted_count, sim.messages, sim.rejected) == (0, 0, [], {})
    assert sim.config()["callback_delay"] == 0.5  # configuration survives a plain reset
    sim.reset(config=True)
    assert sim.config()["callback_delay"] == 0.02


def test_latency_applies_in_process(sim: SimulatorCore) -> None:

    sim.configure(latency=0.05)
    started = time.monotonic()
    sim.create_message(ACCOUNT_SID, AUTH, form())
    assert time.monotonic() - started >= 0.05


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("[" * 80, 1),  # extension characters count twice
        ("[" * 81, 2),
        ("ສ" * 70, 1),  # Lao: UCS-2
        ("ສ" * 71, 2),
        ("ສ" * 134, 2),
        ("ສ" * 135, 3),
        ("😀" * 35, 1),  # two UTF-16 units each
        ("😀" * 36, 2),
        # ກີ່ would cross unit 67 and moves whole to part two: 201 units, 4 parts.
        ("ສ" * 66 + "ກີ່" + "ສ" * 132, 4),
    ],
)
def test_num_segments_as_twilio_counts(sim: SimulatorCore, body: str, segments: int) -> None:
    status, payload = sim.create_message(ACCOUNT_SID, AUTH, form(Body=body))
    assert status == 201
    assert payload["num_segments"] == str(segments)
    assert payload["num_segments"] == str(messages.segments(body).parts)


# --- the HTTP admin routes --------------------------------------------------------------


def test_admin_routes(sim: SimulatorCore, sim_server: SimulatorServer, receiver) -> None:
    base = sim_server.url
    with requests.Session() as http:
        assert http.get(f"{base}/healthz").json() == {"status": "ok"}
        config = http.post(
            f"{base}/_sim/config", json={"error_rates": {"429": 1.0}, "callback_delay": 0.01}
        ).json()
        assert config["error_rates"] == {"429": 1.0}
        assert http.post(f"{base}/_sim/config", json={"latency": -1}).status_code == 400
        gateway = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, base_url=base)
        with pytest.raises(ProviderError, match="code 20429"):
            gateway.send(OutboundMessage(1, LAO_MOBILE, "hi"))
        http.post(f"{base}/_sim/config", json={"error_rates": {}})

        assert http.post(
            f"{base}/_sim/outcome",
            json={"to": THAI_MOBILE, "status": "failed", "error_code": 30006},
        ).ok
        assert (
            http.post(
                f"{base}/_sim/outcome", json={"to": THAI_MOBILE, "status": "lost"}
            ).status_code
            == 400
        )
        assert http.post(
            f"{base}/_sim/force_error",
            json={"to": LAO_MOBILE, "http_status": 400, "code": 21612, "times": 1},
        ).ok
        with pytest.raises(ProviderError, match="cannot route"):
            gateway.send(OutboundMessage(1, LAO_MOBILE, "hi"))
        sid = gateway.send(
            OutboundMessage(1, LAO_MOBILE, "hi", status_callback=receiver.url + "/s")
        ).sid
        gateway.send(OutboundMessage(2, THAI_MOBILE, "hi", status_callback=receiver.url + "/s"))

        stats = http.get(f"{base}/_sim/stats").json()
        assert stats["requests"] == 4
        assert stats["accepted"] == 2
        assert stats["rejected"] == {"429": 1, "400": 1}
        assert stats["accepted_by_to"] == {LAO_MOBILE: 1, THAI_MOBILE: 1}

        assert sim.wait_for_callbacks(5)
        statuses = sorted((r.form["To"], r.form["MessageStatus"]) for r in receiver.wait_for(3))
        assert statuses == [
            (THAI_MOBILE, "failed"),
            (LAO_MOBILE, "delivered"),
            (LAO_MOBILE, "sent"),
        ]

        answer = http.post(f"{base}/_sim/callback", json={"sid": sid, "status": "sent"}).json()
        assert answer == {"receiver_status": 200}
        assert receiver.wait_for(4)[-1].form["MessageStatus"] == "sent"
        assert (
            http.post(f"{base}/_sim/callback", json={"sid": "SMnope", "status": "sent"}).status_code
            == 404
        )

        inbound = http.post(
            f"{base}/_sim/inbound",
            json={
                "webhook_url": receiver.url + "/in",
                "from": THAI_MOBILE,
                "to": FROM_NUMBER,
                "body": "HELP",
            },
        ).json()
        assert inbound["receiver_status"] == 200
        assert receiver.wait_for(5)[-1].form["Body"] == "HELP"

        after = http.post(f"{base}/_sim/reset", json={"config": True}).json()
        assert (after["requests"], after["accepted"], after["accepted_by_to"]) == (0, 0, {})
        gateway.close()


def test_get_message_route_requires_auth(sim: SimulatorCore, sim_server: SimulatorServer) -> None:
    _, payload = sim.create_message(ACCOUNT_SID, AUTH, form())
    url = f"{sim_server.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{payload['sid']}.json"
    assert requests.get(url, timeout=5).status_code == 401
    found = requests.get(url, auth=AUTH, timeout=5)
    assert found.status_code == 200
    assert found.json()["sid"] == payload["sid"]
    missing = requests.get(url.replace(payload["sid"], "SM" + "0" * 32), auth=AUTH, timeout=5)
    assert (missing.status_code, missing.json()["code"]) == (404, 20404)


def test_server_on_its_own_core_starts_and_stops() -> None:
    core = SimulatorCore(ACCOUNT_SID, AUTH_TOKEN)
    with SimulatorServer(core) as server:
        assert server.port > 0
        assert requests.get(f"{server.url}/healthz", timeout=5).ok
        port = server.port
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    core.stop()


def test_run_simulator_serves_the_sdk_in_the_foreground() -> None:
    """``riskcast simulator`` runs this; its keep-alive answers must not stall (Nagle)."""

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = (
        "from workers.providers.simulator.core import SimulatorCore\n"
        "from workers.providers.simulator.server import run_simulator\n"
        f"run_simulator('127.0.0.1', {port}, SimulatorCore({ACCOUNT_SID!r}, {AUTH_TOKEN!r}))\n"
    )
    root = str(Path(workers.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=root)
    process = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, process)
        gateway = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, base_url=url)
        started = time.monotonic()
        for index in range(50):
            gateway.send(OutboundMessage(index, f"+8562055{index:06d}", "hello"))
        assert time.monotonic() - started < 1.5  # a 40 ms stall per request would take 2 s
        stats = requests.get(f"{url}/_sim/stats", timeout=5).json()
        assert stats["accepted"] == 50
        gateway.close()
    finally:
        process.terminate()
        process.wait(10)
