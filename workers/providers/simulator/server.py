"""The simulator over HTTP: Twilio's Messages API paths, for the real SDK to talk to.

Twilio routes are plain Starlette endpoints (no FastAPI validation layer) because the
benchmark measures the ceiling of ``client.messages.create`` in a loop against them.
Admin routes under ``/_sim`` are for tests and benchmarks; they show phone numbers,
which is fine for a test double that listens on loopback by default.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import socket
import threading
import time
from typing import Any
from urllib.parse import parse_qsl

import requests
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from workers.providers.simulator.core import SimulatorCore

MESSAGES_PATH = "/2010-04-01/Accounts/{account_sid}/Messages.json"
MESSAGE_PATH = "/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json"


def basic_auth(header: str | None) -> tuple[str, str] | None:
    """(username, password) from an ``Authorization: Basic`` header, or None."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def _json(status: int, payload: Any) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type="application/json")


class ConfigBody(BaseModel):
    error_rates: dict[int, float] | None = None
    latency: float | None = None
    deliver_callbacks: bool | None = None
    callback_delay: float | None = None
    queue_delay: float | None = None
    answer_delay: float | None = None
    read_error_rates: dict[int, float] | None = None


class ResetBody(BaseModel):
    config: bool = False


class OutcomeBody(BaseModel):
    to: str
    status: str
    error_code: int | None = None


class ForceErrorBody(BaseModel):
    to: str
    http_status: int
    code: int
    times: int | None = None


class CallbackBody(BaseModel):
    sid: str
    status: str
    error_code: int | None = None


class InboundBody(BaseModel):
    webhook_url: str
    from_: str = Field(alias="from")
    to: str
    body: str


def create_simulator_app(core: SimulatorCore) -> FastAPI:
    app = FastAPI(title="riskcast Twilio simulator", docs_url=None, redoc_url=None)

    async def create_message(request: Request) -> Response:
        raw = await request.body()
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        if core.latency:
            await asyncio.sleep(core.latency)
        status, payload = core.create_message(
            request.path_params["account_sid"],
            basic_auth(request.headers.get("authorization")),
            form,
            simulate_latency=False,
        )
        if status == 201 and core.answer_delay:
            # Stored and on its way; the answer leaves later (the in-doubt window).
            await asyncio.sleep(core.answer_delay)
        return _json(status, payload)

    async def list_messages(request: Request) -> Response:
        if core.latency:
            await asyncio.sleep(core.latency)
        status, payload = core.list_messages(
            request.path_params["account_sid"],
            basic_auth(request.headers.get("authorization")),
            dict(request.query_params),
        )
        return _json(status, payload)

    async def get_message(request: Request) -> Response:
        if core.latency:
            await asyncio.sleep(core.latency)
        status, payload = core.get_message(
            request.path_params["account_sid"],
            basic_auth(request.headers.get("authorization")),
            request.path_params["sid"],
        )
        return _json(status, payload)

    app.add_route(MESSAGES_PATH, create_message, methods=["POST"])
    app.add_route(MESSAGES_PATH, list_messages, methods=["GET"])
    app.add_route(MESSAGE_PATH, get_message, methods=["GET"])

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_sim/stats")
    def stats() -> dict[str, Any]:
        return core.stats()

    @app.post("/_sim/config")
    def configure(body: ConfigBody) -> dict[str, Any]:
        try:
            core.configure(**body.model_dump())
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        return core.config()

    @app.post("/_sim/reset")
    def reset(body: ResetBody | None = None) -> dict[str, Any]:
        core.reset(config=body.config if body else False)
        return core.stats()

    @app.post("/_sim/outcome")
    def outcome(body: OutcomeBody) -> dict[str, str]:
        try:
            core.set_outcome(body.to, body.status, body.error_code)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        return {"status": "ok"}

    @app.post("/_sim/force_error")
    def force_error(body: ForceErrorBody) -> dict[str, str]:
        try:
            core.force_error(body.to, body.http_status, body.code, times=body.times)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        return {"status": "ok"}

    # Plain ``def``: these post to a receiver that may live in this very process.
    @app.post("/_sim/callback")
    def callback(body: CallbackBody) -> dict[str, int | None]:
        try:
            receiver_status = core.send_callback(body.sid, body.status, body.error_code)
        except KeyError as exc:
            raise HTTPException(404, str(exc)) from exc
        return {"receiver_status": receiver_status}

    @app.post("/_sim/inbound")
    def inbound(body: InboundBody) -> dict[str, Any]:
        receiver_status, answer = core.inject_inbound(
            body.webhook_url, body.from_, body.to, body.body
        )
        return {"receiver_status": receiver_status, "answer": answer}

    return app


def _uvicorn_config(core: SimulatorCore, **kwargs: Any) -> uvicorn.Config:
    return uvicorn.Config(
        create_simulator_app(core),
        log_level="warning",
        access_log=False,
        lifespan="off",
        **kwargs,
    )


def run_simulator(host: str, port: int, core: SimulatorCore) -> None:
    """Serve the simulator in the foreground until interrupted (``riskcast simulator``)."""
    try:
        uvicorn.Server(_uvicorn_config(core, host=host, port=port)).run()
    finally:
        core.stop(drain=False)


class SimulatorServer:
    """The simulator on a free loopback port, in a background thread (tests, benchmarks).

    The listening socket is bound before the thread starts, so ``port`` is known at once
    and no other process can take it in between.
    """

    def __init__(self, core: SimulatorCore, host: str = "127.0.0.1", port: int = 0) -> None:
        self.core = core
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        if self._thread is not None:
            raise RuntimeError("simulator server already started")
        # proto must be IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted
        # sockets whose proto says TCP, and without it every keep-alive response waits
        # ~40 ms for a delayed ACK (Nagle), capping the simulator at ~25 requests/s.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        self._server = uvicorn.Server(_uvicorn_config(self.core))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with requests.Session() as session:
            while time.monotonic() < deadline:
                if self._thread is None or not self._thread.is_alive():
                    raise RuntimeError("simulator server thread exited during start-up")
                try:
                    if session.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                        return
                except requests.RequestException:
                    pass
                time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"simulator server not ready on {self.url} after {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
