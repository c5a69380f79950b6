"""docker-compose.yml as `docker compose up -d --build` reads it with no .env: every service
runs something that exists, with settings riskcast accepts, on the simulator; every service
that keeps running has a healthcheck that can fail; Flower asks for a login; and the README
tells the truth about it."""

from __future__ import annotations

import importlib
import logging
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices
from typer.testing import CliRunner

from broadcaster.config import (
    TWILIO_SWITCH,
    Settings,
    get_settings,
    load_settings,
    provider_notice,
)
from broadcaster.runtime import Runtime
from tests.services import migrated_database
from tests.stack import ApiServer
from workers.cli import app
from workers.context import make_provider
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.server import SimulatorServer
from workers.providers.twilio import TwilioProvider

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
README = ROOT / "README.md"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME, and $$.
_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` with compose's variable substitution applied, as `docker compose` does."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match["name"] or match["bare"]
        found = env.get(name)
        op = match["op"]
        if op is None:
            return found or ""
        missing = not found if op.startswith(":") else found is None
        if op.endswith("-"):
            return match["arg"] if missing else str(found)
        if missing:
            raise MissingVariable(f"{name}: {match['arg']}")
        return str(found)

    return _VARIABLE.sub(substitute, value)


def services(env: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    resolved: dict[str, dict[str, Any]] = interpolate(document["services"], env or {})
    return resolved


def riskcast_services(env: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in services(env).items()
        if service.get("command", [None])[0] == "riskcast"
    }


def one_shot(service: Mapping[str, Any]) -> bool:
    return service.get("restart") == "no"


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def cli(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def setting_variables() -> set[str]:
    """The environment variables riskcast's settings are read from."""
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        if isinstance(field.validation_alias, AliasChoices):
            names.update(str(choice) for choice in field.validation_alias.choices)
        else:
            names.add(f"RISKCAST_{field_name.upper()}")
    return names


def read_directly(name: str) -> bool:
    """Whether riskcast's code reads ``name`` from the environment itself."""
    sources = [*ROOT.glob("broadcaster/**/*.py"), *ROOT.glob("workers/**/*.py")]
    return any(
        "environ" in line and f'"{name}"' in line
        for path in sources
        for line in path.read_text(encoding="utf-8").splitlines()
    )


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name.startswith(("RISKCAST_", "TWILIO_")):
            monkeypatch.delenv(name)
    yield monkeypatch


def container_settings(monkeypatch: pytest.MonkeyPatch, service: Mapping[str, Any]) -> Settings:
    for name, value in service["environment"].items():
        monkeypatch.setenv(name, str(value))
    return load_settings()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once the socket closes


# -- the services -----------------------------------------------------------------------


def test_no_env_file_is_needed_and_the_scheduler_is_named_so() -> None:
    names = set(services({}))
    assert {"postgres", "redis", "migrate", "simulator", "api", "worker", "scheduler"} <= names
    assert "beat" not in names


@pytest.mark.parametrize("name", sorted(services()))
def test_every_service_has_an_image_or_a_build(name: str) -> None:
    service = services()[name]
    assert service.get("image") or service.get("build")


@pytest.mark.parametrize("name", sorted(riskcast_services()))
def test_every_riskcast_command_exists_with_its_options(name: str) -> None:
    command = riskcast_services()[name]["command"]
    code, output = cli([*command[1:], "--help"])
    assert code == 0, f"{name}: `{shlex.join(command)}`: {output}"


def test_every_variable_compose_sets_is_one_riskcast_reads() -> None:
    known = setting_variables()
    for name, service in services().items():
        for variable in service.get("environment", {}):
            if variable.startswith(("RISKCAST_", "TWILIO_")):
                assert variable in known or read_directly(variable), (
                    f"{name}: {variable} is neither a setting of broadcaster/config.py nor "
                    "read from the environment by riskcast"
                )


# -- the provider ---------------------------------------------------------------------------


def test_with_no_env_every_riskcast_process_runs_on_the_simulator_service(
    clean_environ: pytest.MonkeyPatch,
) -> None:
    every = services({})
    simulator_port = int(option(every["simulator"]["command"], "--port"))
    api_port = int(option(every["api"]["command"], "--port"))
    for name, service in riskcast_services({}).items():
        settings = container_settings(clean_environ, service)
        assert settings.provider == "simulator", name
        assert settings.simulator_url is not None
        where = urlsplit(settings.simulator_url)
        assert (where.hostname, where.port) == ("simulator", simulator_port), name
        # The simulator's callbacks reach the API by its name, and are signed for that URL.
        public = urlsplit(settings.public_url)
        assert (public.hostname, public.port) == ("api", api_port), name
        provider = make_provider(settings)
        assert isinstance(provider, TwilioProvider)
        assert provider.base_url == settings.simulator_url
        assert TWILIO_SWITCH in provider_notice(settings)


def test_the_variables_the_logs_name_switch_to_twilio(clean_environ: pytest.MonkeyPatch) -> None:
    named = set(re.findall(r"\b(?:RISKCAST|TWILIO)_[A-Z_]+", TWILIO_SWITCH))
    assert {"RISKCAST_PROVIDER", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"} <= named
    dot_env = {
        "RISKCAST_PROVIDER": "twilio",
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_AUTH_TOKEN": "an-auth-token",
        "TWILIO_MESSAGING_SERVICE_SID": "MG" + "2" * 32,
        "TWILIO_FROM_NUMBER": "+15005550006",
        "RISKCAST_PUBLIC_URL": "https://alerts.example.org",
    }
    assert named <= set(dot_env)
    for name, service in riskcast_services(dot_env).items():
        # Set in .env, each reaches every riskcast process.
        assert named <= set(service["environment"]), name
        settings = container_settings(clean_environ, service)
        assert settings.provider == "twilio"
        assert settings.public_url == "https://alerts.example.org"
        provider = make_provider(settings)
        assert isinstance(provider, TwilioProvider)
        assert provider.base_url is None  # Twilio itself, not the simulator


def test_the_api_says_at_start_how_to_switch_to_twilio(
    clean_environ: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """(Refused right after, here: two processes need RISKCAST_SECRET_KEY.)"""
    caplog.set_level(logging.INFO, logger="riskcast")
    get_settings.cache_clear()
    try:
        code, _output = cli(["api", "--workers", "2"])
    finally:
        get_settings.cache_clear()
    assert code != 0
    assert any(TWILIO_SWITCH in record.getMessage() for record in caplog.records)


# -- healthchecks and start order ---------------------------------------------------------

TRIVIAL = re.compile(r"^\s*(true|:|exit 0)\s*$|\|\|\s*(true|:|exit 0)\s*$|/proc/")


def healthcheck(service: Mapping[str, Any]) -> list[str]:
    test = service.get("healthcheck", {}).get("test")
    assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"}, test
    return [str(part) for part in test]


@pytest.mark.parametrize("name", sorted(n for n, s in services().items() if not one_shot(s)))
def test_every_service_that_keeps_running_has_a_healthcheck_that_can_fail(name: str) -> None:
    test = healthcheck(services()[name])
    command = " ".join(test[1:])
    assert not TRIVIAL.search(command), f"{name}: {command!r} cannot fail"


def test_the_scheduler_healthcheck_reads_the_heartbeat_its_command_writes(
    tmp_path: Path,
) -> None:
    scheduler = services()["scheduler"]
    beat = option(scheduler["command"], "--heartbeat-file")
    test = healthcheck(scheduler)
    assert test[:4] == ["CMD", "riskcast", "health", "scheduler"]
    assert beat in test[4:]
    local = [str(tmp_path / "alive") if part == beat else part for part in test[2:]]
    assert cli(local)[0] == 1  # no tick yet
    (tmp_path / "alive").touch()
    code, output = cli(local)
    assert code == 0, output


def run_healthcheck(test: list[str], port: int, new_port: int) -> int:
    command = [sys.executable if part == "python" else part for part in test[1:]]
    command = [part.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{new_port}/") for part in command]
    return subprocess.run(command, capture_output=True, timeout=60, check=False).returncode


@pytest.mark.parametrize("name", ["api", "simulator", "flower"])
def test_http_healthchecks_fail_when_nothing_answers(name: str) -> None:
    service = services()[name]
    test = healthcheck(service)
    listens = re.search(r"--port[= ](\d+)", " ".join(service["command"]))
    assert listens, service["command"]
    port = int(listens[1])
    assert any(f"127.0.0.1:{port}/" in part for part in test), "it asks another port"
    assert run_healthcheck(test, port, closed_port()) != 0


def test_the_simulator_healthcheck_passes_when_the_simulator_answers() -> None:
    service = services()["simulator"]
    port = int(option(service["command"], "--port"))
    core = SimulatorCore("AC" + "0" * 32, "t", deliver_callbacks=False)
    with SimulatorServer(core) as server:
        assert run_healthcheck(healthcheck(service), port, server.port) == 0
    core.stop(drain=False)


def test_the_api_healthcheck_passes_when_the_api_answers(tmp_path: Path) -> None:
    service = services()["api"]
    port = int(option(service["command"], "--port"))
    with migrated_database("sqlite", str(tmp_path)) as (url, _engine):
        runtime = Runtime(load_settings(database_url=url))
        server = ApiServer().start(runtime)
        try:
            assert run_healthcheck(healthcheck(service), port, server.port) == 0
        finally:
            server.stop()
            runtime.dispose()


def test_the_worker_healthcheck_pings_this_worker_of_riskcast_s_celery_app() -> None:
    command = " ".join(healthcheck(services()["worker"])[1:])
    target = re.search(r"-A\s+(\S+)", command)
    assert target, command
    module, _, attribute = target[1].partition(":")
    assert type(getattr(importlib.import_module(module), attribute)).__name__ == "Celery"
    assert "inspect ping -d celery@$HOSTNAME" in command


def test_every_dependency_is_a_service_that_is_ready_when_waited_for() -> None:
    every = services()
    for name, service in every.items():
        for target, wait in service.get("depends_on", {}).items():
            assert target in every, f"{name} waits for an unknown {target}"
            if wait["condition"] == "service_completed_successfully":
                assert one_shot(every[target]), f"{name} waits for {target} to exit"
            else:
                assert wait["condition"] == "service_healthy", (name, target)
                healthcheck(every[target])
    for name in riskcast_services():
        if not one_shot(every[name]) and name != "simulator":
            assert every[name]["depends_on"]["migrate"] == {
                "condition": "service_completed_successfully"
            }


# -- Flower ---------------------------------------------------------------------------------


def run_flower(tmp_path: Path, basic_auth: str | None) -> subprocess.CompletedProcess[str]:
    """Flower's command, with a `celery` on the PATH that only says how it was called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    celery = bin_dir / "celery"
    celery.write_text('#!/bin/sh\necho "celery $*"\n', encoding="utf-8")
    celery.chmod(0o755)
    flower = services({} if basic_auth is None else {"FLOWER_BASIC_AUTH": basic_auth})["flower"]
    env = {**flower["environment"], "PATH": f"{bin_dir}:/usr/bin:/bin"}
    return subprocess.run(
        flower["command"], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_flower_asks_for_a_login_with_no_password_in_the_file(tmp_path: Path) -> None:
    assert services({})["flower"]["environment"]["FLOWER_BASIC_AUTH"] == ""
    assert services({"FLOWER_BASIC_AUTH": "ops:pw"})["flower"]["environment"][
        "FLOWER_BASIC_AUTH"
    ] == ("ops:pw")
    started = run_flower(tmp_path, "ops:a-long-password")
    assert started.returncode == 0, started.stderr
    assert "flower" in started.stdout.split()


@pytest.mark.parametrize("basic_auth", [None, "", "ops", "ops:", ":pw", "ops:pw,"])
def test_flower_refuses_to_start_without_a_whole_login(tmp_path: Path, basic_auth: str) -> None:
    """An empty entry in Flower's list lets in a request whose credentials decode to ""."""
    refused = run_flower(tmp_path, basic_auth)
    assert refused.returncode != 0
    assert "FLOWER_BASIC_AUTH=user:password" in refused.stderr
    assert "celery" not in refused.stdout


# -- the README ---------------------------------------------------------------------------


def test_the_readme_compose_commands_exist() -> None:
    text = README.read_text(encoding="utf-8")
    commands = re.findall(r"docker compose exec (\S+) riskcast ([^\n#`]+)", text)
    said = {" ".join(args.split()[:2]) for _service, args in commands}
    assert {"users create", "templates load"} <= said, said
    every = services()
    for service, args in commands:
        assert service in riskcast_services(), f"{service} runs no riskcast command"
        assert not one_shot(every[service]), f"{service} is not running to exec into"
        code, output = cli([*shlex.split(args), "--help"])
        assert code == 0, f"riskcast {args}: {output}"
    # The catalog's path is relative to the image's working directory, where it is copied.
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^WORKDIR /app$", dockerfile, re.MULTILINE)
    for _service, args in commands:
        if args.startswith("templates load"):
            folder = Path(shlex.split(args)[2])
            assert (ROOT / folder).is_dir()
            assert re.search(rf"^COPY {folder.parts[0]} ", dockerfile, re.MULTILINE)


def test_the_readme_names_every_variable_compose_reads_from_env() -> None:
    text = README.read_text(encoding="utf-8")
    raw = COMPOSE.read_text(encoding="utf-8")
    from_env = {
        match["name"] or match["bare"]
        for match in _VARIABLE.finditer(raw)
        if match.group(0) != "$$"
    } - {None}
    assert {"RISKCAST_PROVIDER", "RISKCAST_SECRET_KEY", "FLOWER_BASIC_AUTH"} <= from_env
    for name in from_env:
        assert f"`{name}`" in text or f"{name}=" in text, f"the README does not name {name}"
    every_set = {v for s in services().values() for v in s.get("environment", {})}
    for name in every_set:
        if name.startswith("RISKCAST_"):
            assert f"`{name}`" in text, f"the README's settings table lacks {name}"


def test_nothing_calls_the_scheduler_celery_beat() -> None:
    for path in (README, COMPOSE):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"celery\s+beat", text, re.IGNORECASE):
            before = text[max(0, match.start() - 12) : match.start()]
            assert re.search(r"\bnot\s+(?:a\s+)?$", before), (
                f"{path.name}: {text[match.start() - 60 : match.end() + 20]!r}"
            )
