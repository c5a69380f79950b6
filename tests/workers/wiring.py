"""A worker's context as the tests wire it: the in-process simulator as provider, an
in-memory limiter and leases (or the leases a test passes), and every task it would
enqueue recorded. The ``make_worker`` fixture (tests/workers/conftest.py) makes these and stops
their simulators after the test; the harnesses that build one for themselves call
:func:`simulated_worker` directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from broadcaster.runtime import Runtime
from workers.context import Context
from workers.leases import Leases, MemoryLeases
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.provider import SimulatorProvider
from workers.ratelimit import MemoryRateLimiter

ACCOUNT, TOKEN = "AC" + "2" * 32, "token"
FROM_NUMBER = "+15005550006"

Enqueued = tuple[str, list[Any], str]  # task name, its arguments, the queue


@dataclass
class SimulatedWorker:
    core: SimulatorCore
    ctx: Context
    enqueued: list[Enqueued] = field(default_factory=list)


def simulated_worker(
    runtime: Runtime,
    *,
    leases: Leases | None = None,
    account_sid: str = ACCOUNT,
    auth_token: str = TOKEN,
    from_number: str = FROM_NUMBER,
    send_rate: float = 10_000,
    **core: Any,
) -> SimulatedWorker:
    """A worker context on ``runtime``; ``core`` configures the simulator (no status
    callbacks unless ``deliver_callbacks=True``). The caller stops ``core`` when done."""
    simulator = SimulatorCore(account_sid, auth_token, **{"deliver_callbacks": False, **core})
    enqueued: list[Enqueued] = []
    ctx = Context(
        runtime=runtime,
        provider=SimulatorProvider(
            simulator, account_sid=account_sid, auth_token=auth_token, from_number=from_number
        ),
        limiter=MemoryRateLimiter(send_rate),
        leases=leases if leases is not None else MemoryLeases(),
        enqueue=lambda name, args, queue: enqueued.append((name, list(args), queue)),
    )
    return SimulatedWorker(simulator, ctx, enqueued)


class MakeWorker(Protocol):
    """The ``make_worker`` fixture: :func:`simulated_worker` whose simulator is stopped
    after the test."""

    def __call__(self, runtime: Runtime, **options: Any) -> SimulatedWorker: ...
