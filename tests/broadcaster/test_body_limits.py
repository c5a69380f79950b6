# ruff: noqa: F811 - pytest fixtures imported by name
"""Bodies are bounded, and the caller is checked before a body is read.

Against a real uvicorn server: a request the server may refuse without its body (no token,
no dashboard session, no Twilio signature) is answered before the client has sent it, and
the app never reads a byte of it; a body over its route's limit gets 413, refused unread
when its Content-Length says so, cut off at the limit when it comes in chunks. Over the
ASGI app: the contacts upload stops at RISKCAST_MAX_IMPORT_BYTES with nothing imported,
and a CAP alert with thousands of problems gets a short answer. Last, the server's memory
while 200 MB are thrown at it without a token (a measurement, printed)."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import func
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broadcaster.cap import service as cap
from broadcaster.config import load_settings
from broadcaster.errors import InvalidInput
from broadcaster.models import Contact
from broadcaster.runtime import Runtime
from broadcaster.users import auth
from broadcaster.web.app import create_app
from broadcaster.web.routes.webhooks import MAX_FORM_BYTES
from messages.cap import MAX_LISTED
from tests import factories
from tests.broadcaster.apiclient import Person, TestClient, make_app, people  # noqa: F401
from tests.services import migrated_database
from tests.stack import api_process, wait_for

MB = 1024 * 1024
API_LIMIT = 1 * MB  # RISKCAST_MAX_BODY_BYTES's default
CHUNK = 64 * 1024
# What uvicorn hands the app in one message at most (what it had buffered from the socket
# before it paused reading): the app takes the limit and at most this much more.
SERVER_BUFFER = 512 * 1024


class Counted:
    """The app, counting the body bytes it takes from the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.read = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counting, send)


@dataclass
class Server:
    host: str
    port: int
    app: Counted
    token: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The app on a real uvicorn server (on SQLite), with an official's token."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    with migrated_database("sqlite", str(tmp_path)) as (url, _engine):
        runtime = Runtime(load_settings(database_url=url, public_url=f"http://127.0.0.1:{port}"))
        with runtime.session() as session:
            user = auth.create_user(session, "olivia", role="official")
            _, token = auth.issue_token(session, user)
        app = Counted(create_app(runtime))
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", log_config=None)
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        wait_for(lambda: server.started, 10, "the API to start", 0.02)
        try:
            yield Server("127.0.0.1", port, app, token)
        finally:
            server.should_exit = True
            thread.join(10)
            sock.close()
            runtime.dispose()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client got onto the wire before the answer came

    def json(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.body)
        return data


def post(
    server: Server | tuple[str, int],
    path: str,
    headers: dict[str, str],
    *,
    declared: int | None = None,
    send_up_to: int = 0,
) -> Answer:
    """POST over a plain socket: the head (with ``Content-Length: declared``, or chunked
    when None), then body bytes up to ``send_up_to`` for as long as the server has not
    answered. Returns the answer and how much of the body went out before it."""
    address = (server.host, server.port) if isinstance(server, Server) else server
    head = [f"POST {path} HTTP/1.1", f"Host: {address[0]}:{address[1]}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append(
        f"Content-Length: {declared}" if declared is not None else "Transfer-Encoding: chunked"
    )
    chunk = b"x" * CHUNK
    piece = chunk if declared is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sent = 0
    with socket.create_connection(address, timeout=30) as conn:
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        while sent < send_up_to:
            readable, _, _ = select.select([conn], [], [], 0)
            if readable:
                break  # the server answered (or closed): send nothing more
            try:
                conn.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        else:
            if declared is None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    conn.sendall(b"0\r\n\r\n")  # the whole body went: end it
        received = b""
        while True:
            try:
                data = conn.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
            if b"\r\n\r\n" in received:
                top, _, body = received.partition(b"\r\n\r\n")
                length = [
                    int(line.split(b":", 1)[1])
                    for line in top.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if length and len(body) >= length[0]:
                    break
    top, _, body = received.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    answer_headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
    }
    return Answer(status, answer_headers, body, sent)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


JSON = {"Content-Type": "application/json"}


# -- the caller first ------------------------------------------------------------------


@pytest.mark.parametrize("auth_header", [{}, {"Authorization": "Bearer not-a-token"}])
def test_an_api_body_without_a_valid_token_is_refused_before_it_is_read(
    server: Server, auth_header: dict[str, str]
) -> None:
    """200 MB on their way in chunks, or announced by a Content-Length: 401 at once."""
    chunked = post(server, "/api/v1/campaigns", {**JSON, **auth_header}, send_up_to=200 * MB)
    assert chunked.status == 401, chunked.body
    assert chunked.json()["error"] in {
        "missing Authorization: Bearer <token>",
        "invalid or revoked token",
    }
    assert chunked.headers["www-authenticate"] == "Bearer"
    assert chunked.headers["connection"] == "close"
    declared = post(
        server, "/api/v1/campaigns", {**JSON, **auth_header}, declared=500 * MB, send_up_to=200 * MB
    )
    assert declared.status == 401
    assert server.app.read == 0
    # What the client pushed before the answer came is what the sockets' buffers hold.
    assert chunked.sent < 50 * MB and declared.sent < 50 * MB
    print(
        f"\nsent before the 401: {chunked.sent / MB:.1f} MB chunked, {declared.sent / MB:.1f} MB declared"
    )


def test_a_dashboard_form_without_a_session_is_sent_to_login_unread(server: Server) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    answer = post(
        server, "/dashboard/campaigns/1/launch", form, declared=100 * MB, send_up_to=20 * MB
    )
    assert (answer.status, answer.headers["location"]) == (303, "/login")
    logout = post(server, "/logout", form, send_up_to=20 * MB)
    assert (logout.status, logout.headers["location"]) == (303, "/login")
    assert server.app.read == 0


def test_an_unsigned_webhook_is_refused_unread(server: Server) -> None:
    """No signature, or a body that is no Twilio form: 403 before the body; announced over
    the webhooks' 64 KB, 413 whatever else is wrong."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert post(server, "/webhooks/twilio/inbound", form, send_up_to=20 * MB).status == 403
    multipart = {"Content-Type": "multipart/form-data; boundary=x", "X-Twilio-Signature": "abc"}
    assert post(server, "/webhooks/twilio/status", multipart, send_up_to=20 * MB).status == 403
    declared = post(server, "/webhooks/twilio/inbound", form, declared=1000 * MB)
    assert declared.status == 413
    assert declared.json()["error"] == (
        "the request body is larger than /webhooks/twilio/inbound takes (at most 65,536 bytes)"
    )
    assert server.app.read == 0


# -- the limits ------------------------------------------------------------------------


def test_an_api_body_over_the_limit_gets_413(server: Server) -> None:
    """With a valid token: refused unread when announced, cut off at 1 MB when chunked."""
    declared = post(server, "/api/v1/campaigns", bearer(server.token), declared=500 * MB)
    assert declared.status == 413
    assert declared.json() == {
        "error": "the request body is larger than /api/v1/campaigns takes (at most 1,048,576 bytes)",
        "field": "body",
    }
    assert server.app.read == 0
    chunked = post(server, "/api/v1/campaigns", bearer(server.token), send_up_to=200 * MB)
    assert chunked.status == 413
    assert chunked.headers["connection"] == "close"
    assert API_LIMIT < server.app.read <= API_LIMIT + SERVER_BUFFER
    # A body within the limit is read and answered as ever (here: not a campaign).
    small = httpx.post(
        f"{server.url}/api/v1/campaigns", json={"name": "x"}, headers=bearer(server.token)
    )
    assert small.status_code == 422


def test_a_webhook_form_over_64_kb_gets_413(server: Server) -> None:
    signed = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "abc"}
    declared = post(server, "/webhooks/twilio/inbound", signed, declared=1000 * MB)
    assert declared.status == 413
    assert server.app.read == 0
    chunked = post(server, "/webhooks/twilio/inbound", signed, send_up_to=100 * MB)
    assert chunked.status == 413
    assert "at most 65,536 bytes" in str(chunked.json()["error"])
    assert MAX_FORM_BYTES < server.app.read <= MAX_FORM_BYTES + SERVER_BUFFER


def test_an_upload_and_a_cap_alert_are_refused_unread_over_their_limits(server: Server) -> None:
    upload = {**bearer(server.token), "Content-Type": "multipart/form-data; boundary=x"}
    big = post(server, "/api/v1/contacts/import", upload, declared=101 * MB)
    assert big.status == 413
    assert "at most 104,857,600 bytes" in str(big.json()["error"])
    cap = {**bearer(server.token), "Content-Type": "application/cap+xml"}
    alert = post(server, "/api/v1/cap", cap, declared=2 * MB)
    assert alert.status == 413
    assert "at most 1,000,000 bytes" in str(alert.json()["error"])
    assert server.app.read == 0


def test_a_contacts_upload_over_the_limit_imports_nothing(session: Session) -> None:
    factories.community(session, "village")
    official = auth.create_user(session, "olivia", role="official")
    _, token = auth.issue_token(session, official)
    session.commit()
    rows = "".join(f"{factories.lao_number(n)};Person {n};lo;village\n" for n in range(4000))
    data = ("phone;name;language;communities\n" + rows).encode()
    assert 100_000 < len(data) < 200_000
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(make_app(session, max_import_bytes=100_000)) as client:
        answer = client.post(
            "/api/v1/contacts/import",
            files={"file": ("people.csv", data, "text/csv")},
            headers=headers,
        )
        assert answer.status_code == 413
        assert answer.json()["error"] == (
            "the request body is larger than /api/v1/contacts/import takes (at most 100,000 bytes)"
        )
        assert session.scalar(sql_select(func.count()).select_from(Contact)) == 0
    with TestClient(make_app(session, max_import_bytes=250_000)) as client:
        answer = client.post(
            "/api/v1/contacts/import",
            files={"file": ("people.csv", data, "text/csv")},
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["imported"] == 4000


# -- CAP: a short answer to a long list of problems ------------------------------------

INFO = (
    "<info><category>Met</category><event>Flood</event><urgency>Soon</urgency>"
    "<severity>Extreme</severity><certainty>Likely</certainty></info>"
)


def alert_with_problems(count: int) -> bytes:
    return (
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        "<identifier>MANY-1</identifier><sender>x@example.org</sender>"
        "<sent>2031-08-15T06:00:00+07:00</sent><status>Actual</status>"
        "<msgType>Alert</msgType><scope>Public</scope>" + INFO * count + "</alert>"
    ).encode()


def test_a_cap_alert_with_thousands_of_problems_gets_a_short_answer(
    session: Session, people: dict[str, Person]
) -> None:
    document = alert_with_problems(5000)
    headers = {**people["official"].headers, "Content-Type": "application/cap+xml"}
    with TestClient(make_app(session)) as client:
        answer = client.post("/api/v1/cap", content=document, headers=headers)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error.startswith("5,000 problems in the CAP alert:\n  alert/info[1]/urgency: 'Soon'")
    assert error.count("\n") == MAX_LISTED + 1
    assert error.endswith(f"... and {5000 - MAX_LISTED:,} more")
    assert len(answer.content) < 4000 < len(document)
    print(
        f"\nCAP answer: {len(answer.content):,} bytes for {len(document):,} bytes, 5,000 problems"
    )


def test_unmapped_areas_are_listed_twenty_at_most(session: Session) -> None:
    areas = "".join(f"<area><areaDesc>Village {n}</areaDesc></area>" for n in range(300))
    info = (
        "<info><category>Met</category><event>Flood</event><urgency>Immediate</urgency>"
        "<severity>Extreme</severity><certainty>Likely</certainty>"
        f"<headline>Flood</headline>{areas}</info>"
    )
    document = alert_with_problems(0).replace(b"</alert>", info.encode() + b"</alert>")
    with pytest.raises(InvalidInput) as caught:
        cap.import_alert(session, document, caller=factories.SYSTEM)
    message = str(caught.value)
    assert message.startswith("area: 300 area(s) map to no community:\n  alert/info[1]/area[1] ")
    assert "  ... and 280 more\n" in message
    assert "Village 19'" in message and "Village 20'" not in message


# -- memory ----------------------------------------------------------------------------


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_the_server_does_not_grow_under_bodies_it_refuses(tmp_path: Path) -> None:
    """`riskcast api` in its own process: its resident memory before and after 200 MB are
    thrown at it without a token, and at a webhook without a signature. Printed."""
    with (
        migrated_database("sqlite", str(tmp_path)) as (url, _engine),
        api_process(tmp_path, url, log_level="WARNING") as (port, proc, _log),
    ):
        address = ("127.0.0.1", port)
        # Warm up every path once, so what is measured is the bodies, not first imports.
        post(address, "/api/v1/campaigns", JSON, send_up_to=MB)
        post(address, "/webhooks/twilio/inbound", {}, send_up_to=MB)
        time.sleep(0.5)
        before = rss(proc.pid)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        attempts = [
            ("/api/v1/campaigns", JSON, None),
            ("/api/v1/campaigns", JSON, 200 * MB),
            ("/webhooks/twilio/inbound", form, None),
            ("/webhooks/twilio/inbound", {**form, "X-Twilio-Signature": "x"}, None),
        ]
        answers, highest = [], before
        for path, headers, declared in attempts:
            answers.append(post(address, path, headers, declared=declared, send_up_to=200 * MB))
            highest = max(highest, rss(proc.pid))  # right after the answer
        time.sleep(0.5)
        after = rss(proc.pid)
    assert [a.status for a in answers] == [401, 401, 403, 413]
    sent = sum(a.sent for a in answers)
    print(
        f"\nriskcast api RSS: {before / MB:.1f} MB before, {highest / MB:.1f} MB at most, "
        f"{after / MB:.1f} MB after; the client got {sent / MB:.1f} MB of the 800 MB onto "
        "the wire before the answers"
    )
    assert highest - before < 50 * MB
