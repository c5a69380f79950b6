"""`riskcast serve` on embedded defaults, driven by the README's CLI tour, as a user would."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from messages import catalog_dir
from tests.stack import wait_for

pytestmark = pytest.mark.pipeline


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """The environment of a fresh machine: no riskcast or Twilio settings at all."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("RISKCAST_", "TWILIO_"))}


def riskcast(
    cwd: Path,
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``riskcast ARGS`` in ``cwd``, with its login file under ``cwd`` (not the tester's)."""
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        cwd=cwd,
        env={**clean_env(), "XDG_CONFIG_HOME": str(cwd / "config"), **(env or {})},
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and result.returncode:
        raise AssertionError(f"riskcast {' '.join(args)}: {result.stderr}")
    return result


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # The banner's last line says how to stop it: wait for the whole banner.
        wait_for(lambda: "stop with Ctrl-C" in log.read_text(), 30, "serve to start")
        yield tmp_path, log.read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_serve_then_the_cli_tour_delivers(served: tuple[Path, str]) -> None:
    cwd, banner = served
    assert "riskcast.db" in banner  # says where the data is
    created = riskcast(cwd, "users", "create", "ada", "--role", "admin")
    token = created.stdout.strip().splitlines()[-1]
    login = riskcast(cwd, "login", "--token-stdin", input=f"{token}\n")
    assert "signed in as ada (admin)" in login.stdout
    riskcast(
        cwd,
        "communities",
        "add",
        "bokeo",
        "--name",
        "Bokeo province",
        "--country",
        "LA",
        "--language",
        "lo",
    )
    riskcast(cwd, "contacts", "add", "020 5555 1234", "--language", "lo", "--community", "bokeo")
    riskcast(cwd, "contacts", "add", "+66 81 234 5678", "--language", "th", "--community", "bokeo")
    riskcast(
        cwd, "contacts", "add", "+856 20 7777 8899", "--language", "en", "--community", "bokeo"
    )
    riskcast(cwd, "templates", "load", str(catalog_dir()))
    keys = {t["key"] for t in json.loads(riskcast(cwd, "templates", "list", "--json").stdout)}
    assert "covid-hotline" in keys
    created = riskcast(
        cwd,
        "campaigns",
        "create",
        "--name",
        "Hotline",
        "--template",
        "covid-hotline",
        "--community",
        "bokeo",
    )
    campaign_id = created.stdout.strip().splitlines()[-1]
    riskcast(cwd, "campaigns", "launch", campaign_id)

    def delivered() -> dict[str, object] | None:
        status = json.loads(riskcast(cwd, "campaigns", "status", campaign_id, "--json").stdout)
        return (
            status
            if status["state"] == "completed" and status["counts"]["delivered"] == 3
            else None
        )

    status = wait_for(delivered, 60, "three deliveries")
    assert status["counts"]["failed"] == 0


def test_a_bad_setting_stops_start_up_with_one_line(tmp_path: Path) -> None:
    result = riskcast(
        tmp_path, "campaigns", "list", check=False, env={"RISKCAST_SEND_RATE": "fast"}
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "RISKCAST_SEND_RATE" in lines[0] and "'fast'" in lines[0]


def test_twilio_provider_without_credentials_names_them(tmp_path: Path) -> None:
    result = riskcast(
        tmp_path, "campaigns", "list", check=False, env={"RISKCAST_PROVIDER": "twilio"}
    )
    assert result.returncode == 2
    assert "TWILIO_ACCOUNT_SID" in result.stderr and "TWILIO_AUTH_TOKEN" in result.stderr


def test_serve_reports_its_worker_alive(served: tuple[Path, str]) -> None:
    cwd, banner = served
    match = re.search(r"http://127\.0\.0\.1:\d+", banner)
    assert match, banner
    token = riskcast(cwd, "users", "create", "ada", "--role", "admin").stdout.split()[-1]

    def alive() -> dict[str, object] | None:
        response = httpx.get(
            f"{match.group(0)}/api/v1/workers",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        body: dict[str, object] = response.raise_for_status().json()
        return body if body["alive"] == 1 else None

    body = wait_for(alive, 30, "the in-process worker's heartbeat")
    assert body["error"] is None
    (worker,) = body["workers"]  # type: ignore[misc]
    assert worker["queues"] == ["bulk", "control", "urgent"] and worker["concurrency"] == 4


def test_api_in_two_processes_takes_signed_callbacks_in_both(tmp_path: Path) -> None:
    """`riskcast api --workers 2`: refused without a shared session key; with one, two
    server processes answer, and a signed status callback is taken (204), a forged one
    refused (403)."""
    refused = riskcast(tmp_path, "api", "--workers", "2", check=False)
    assert refused.returncode != 0
    assert "RISKCAST_SECRET_KEY" in refused.stderr + refused.stdout

    from twilio.request_validator import RequestValidator  # noqa: PLC0415

    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = {
        **clean_env(),
        "RISKCAST_SECRET_KEY": "k" * 32,
        "TWILIO_AUTH_TOKEN": "two-process-token",
        "RISKCAST_PUBLIC_URL": public,
    }
    riskcast(tmp_path, "db", "upgrade", env=env)
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "api", "--port", str(port), "--workers", "2"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{public}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "the API to start")
        wait_for(
            lambda: len(set(re.findall(r"Started server process \[(\d+)\]", log.read_text()))) == 2,
            30,
            "two server processes",
        )
        url = f"{public}/webhooks/twilio/status?d=1"
        form = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
        signature = RequestValidator("two-process-token").compute_signature(url, form)
        with httpx.Client() as client:  # several connections: both processes take some
            for _ in range(4):
                signed = client.post(url, data=form, headers={"X-Twilio-Signature": signature})
                assert signed.status_code == 204
            forged = client.post(url, data=form, headers={"X-Twilio-Signature": "x" + signature})
            assert forged.status_code == 403
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)
