"""Fixtures: one real HTTP simulator per session, reset around every test, and a tiny
webhook receiver. No mocks: the real twilio SDK talks HTTP to the simulator on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
from providers_testkit import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, ProviderFactory

from workers.providers import errors
from workers.providers.base import Provider
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.provider import SimulatorProvider
from workers.providers.simulator.server import SimulatorServer
from workers.providers.twilio import TwilioProvider


@pytest.fixture(scope="session")
def sim_core() -> Iterator[SimulatorCore]:
    core = SimulatorCore(ACCOUNT_SID, AUTH_TOKEN, callback_delay=0.02, seed=7)
    yield core
    core.stop(drain=False)


@pytest.fixture(scope="session")
def sim_server(sim_core: SimulatorCore) -> Iterator[SimulatorServer]:
    with SimulatorServer(sim_core) as server:
        yield server


@pytest.fixture
def sim(sim_core: SimulatorCore, sim_server: SimulatorServer) -> Iterator[SimulatorCore]:
    """The simulator core behind the running server, clean for this test."""
    sim_core.reset(config=True)
    sim_core.clear_forced()
    yield sim_core
    sim_core.reset(config=True)
    sim_core.clear_forced()
    errors.reset_rules()


@pytest.fixture(params=["twilio", "simulator"])
def make_provider(
    request: pytest.FixtureRequest, sim: SimulatorCore, sim_server: SimulatorServer
) -> Iterator[ProviderFactory]:
    """Builds a TwilioProvider (real SDK over HTTP) or a SimulatorProvider (in-process),
    both against the same simulator, so every scenario runs through each."""
    made: list[TwilioProvider] = []

    def factory(
        *,
        auth_token: str = AUTH_TOKEN,
        from_number: str | None = FROM_NUMBER,
        messaging_service_sid: str | None = None,
    ) -> Provider:
        if request.param == "twilio":
            provider = TwilioProvider(
                ACCOUNT_SID,
                auth_token,
                from_number=from_number,
                messaging_service_sid=messaging_service_sid,
                base_url=sim_server.url,
                timeout=5.0,
            )
            made.append(provider)
            return provider
        return SimulatorProvider(
            sim,
            account_sid=ACCOUNT_SID,
            auth_token=auth_token,
            from_number=from_number,
            messaging_service_sid=messaging_service_sid,
        )

    yield factory
    for provider in made:
        provider.close()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class Receiver:
    """A webhook endpoint on a free loopback port that records every POST."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    # Status codes to answer, in order, before falling back to 200.
    answers: list[int] = field(default_factory=list)
    reply_body: str = ""
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode("utf-8")
            with state.cond:
                status = state.answers.pop(0) if state.answers else 200
                if status < 400:
                    state.received.append(
                        Received(self.path, dict(self.headers), dict(parse_qsl(body)))
                    )
                    state.cond.notify_all()
            payload = state.reply_body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)
