"""Fixtures for the worker tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from broadcaster.runtime import Runtime
from tests.workers.wiring import MakeWorker, SimulatedWorker, simulated_worker


@pytest.fixture
def make_worker() -> Iterator[MakeWorker]:
    """Makes a worker context on a runtime (options as :func:`simulated_worker`); every
    simulator made is stopped after the test."""
    made: list[SimulatedWorker] = []

    def make(runtime: Runtime, **options: Any) -> SimulatedWorker:
        made.append(simulated_worker(runtime, **options))
        return made[-1]

    yield make
    for each in made:
        each.core.stop(drain=False)
