"""RISKCAST_SIMULATOR_URL: on the simulator, every process of a fleet (docker compose's
workers and scheduler) sends to one `riskcast simulator` server, so what one worker sent is
there when another process asks the provider about it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from providers_testkit import LAO_MOBILE

from broadcaster.config import SIMULATOR_ACCOUNT_SID, SIMULATOR_AUTH_TOKEN, load_settings
from workers.context import make_provider
from workers.providers.base import OutboundMessage, ProviderError
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.server import SimulatorServer


@pytest.fixture
def shared() -> Iterator[tuple[SimulatorCore, SimulatorServer]]:
    # The built-in credentials: compose sets no TWILIO_* on the simulator.
    core = SimulatorCore(SIMULATOR_ACCOUNT_SID, SIMULATOR_AUTH_TOKEN, deliver_callbacks=False)
    with SimulatorServer(core) as server:
        yield core, server
    core.stop(drain=False)


def test_processes_on_the_simulator_url_share_one_simulator(
    shared: tuple[SimulatorCore, SimulatorServer],
) -> None:
    core, server = shared
    settings = load_settings(database_url="sqlite://", simulator_url=server.url)
    assert settings.provider == "simulator"
    worker, scheduler = make_provider(settings), make_provider(settings)

    sent = worker.send(OutboundMessage(delivery_id=1, to=LAO_MOBILE, body="wash hands"))

    assert core.accepted_count == 1
    assert scheduler.fetch(sent.sid).status in {"queued", "sent"}


def test_without_it_each_process_has_a_simulator_of_its_own() -> None:
    """What the shared server is for: two in-process simulators do not see each other."""
    settings = load_settings(database_url="sqlite://")
    worker, scheduler = make_provider(settings), make_provider(settings)

    sent = worker.send(OutboundMessage(delivery_id=1, to=LAO_MOBILE, body="wash hands"))

    with pytest.raises(ProviderError):
        scheduler.fetch(sent.sid)
