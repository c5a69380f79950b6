"""RISKCAST_ERROR_CODES_FILE: a worker's provider is made with the operator's codes merged in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.config import load_settings
from workers.context import make_provider
from workers.providers import errors
from workers.providers.base import ErrorKind
from workers.providers.simulator.core import SimulatorCore


@pytest.fixture(autouse=True)
def _builtin_table() -> Iterator[None]:
    errors.reset_rules()
    yield
    errors.reset_rules()


@pytest.fixture
def core() -> Iterator[SimulatorCore]:
    sim = SimulatorCore("AC" + "5" * 32, "token", deliver_callbacks=False)
    yield sim
    sim.stop(drain=False)


def test_the_file_named_in_the_environment_is_merged_when_the_provider_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, core: SimulatorCore
) -> None:
    path = tmp_path / "codes.yaml"
    path.write_text(
        '30410: {kind: retryable, explanation: "Carrier timeout"}\n21211: {kind: configuration}\n'
    )
    monkeypatch.setenv("RISKCAST_ERROR_CODES_FILE", str(path))
    settings = load_settings(database_url="sqlite://")
    assert settings.error_codes_file == str(path)
    assert errors.classify(30410, 400) is ErrorKind.PERMANENT  # not known yet
    make_provider(settings, core)
    assert errors.classify(30410, 400) is ErrorKind.RETRYABLE
    assert errors.explain(30410) == "Carrier timeout"
    assert errors.classify(21211, 400) is ErrorKind.CONFIGURATION  # overridden
    assert errors.classify(20003, 401) is ErrorKind.CONFIGURATION  # built-ins kept


def test_without_the_setting_the_builtin_table_stands(core: SimulatorCore) -> None:
    make_provider(load_settings(database_url="sqlite://"), core)
    assert dict(errors.rules()) == dict(errors.BUILTIN_RULES)


def test_a_bad_file_stops_the_provider_being_made(tmp_path: Path, core: SimulatorCore) -> None:
    path = tmp_path / "codes.json"
    path.write_text('{"30410": {"kind": "sometimes"}}')
    settings = load_settings(database_url="sqlite://", error_codes_file=str(path))
    with pytest.raises(errors.ErrorCodesFileError, match="code 30410: kind 'sometimes'"):
        make_provider(settings, core)


def test_the_hotline_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(database_url="sqlite://").hotline == "1166"
    monkeypatch.setenv("RISKCAST_HOTLINE", "1323")
    assert load_settings(database_url="sqlite://").hotline == "1323"
