"""A riskcast on one database with the API behind a TestClient and the in-process simulator
as provider: what the webhook and keyword tests share. Webhooks are signed exactly as
Twilio signs them, with the SDK's own RequestValidator."""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from httpx import Response
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from broadcaster import campaigns, scheduling
from broadcaster.api.app import create_app
from broadcaster.config import load_settings
from broadcaster.db import utcnow
from broadcaster.fanout import fanout_page
from broadcaster.models import Contact, Delivery
from broadcaster.runtime import Runtime
from tests import factories
from tests.services import migrated_database
from tests.stack import ApiServer
from workers.context import Context
from workers.leases import MemoryLeases
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.provider import SimulatorProvider
from workers.ratelimit import MemoryRateLimiter
from workers.sending import send_batch

with warnings.catch_warnings():
    # starlette's TestClient asks for its httpx fork; plain httpx works the same here.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ACCOUNT = "AC" + "4" * 32
TOKEN = "kit-auth-token"
OUR_NUMBER = "+15005550006"
PUBLIC_URL = "http://testserver"
INBOUND = "/webhooks/twilio/inbound"
STATUS = "/webhooks/twilio/status"


def new_sid() -> str:
    return f"SM{uuid.uuid4().hex}"


def sign(url: str, params: dict[str, str], token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


class Kit:
    def __init__(self, url: str, public_url: str = PUBLIC_URL, **settings: Any) -> None:
        self.public_url = public_url
        self.runtime = Runtime(
            load_settings(
                database_url=url, public_url=public_url, twilio_auth_token=TOKEN, **settings
            )
        )
        self.client = TestClient(create_app(self.runtime))
        self.core = SimulatorCore(ACCOUNT, TOKEN, deliver_callbacks=False)
        self.ctx = Context(
            runtime=self.runtime,
            provider=SimulatorProvider(
                self.core, account_sid=ACCOUNT, auth_token=TOKEN, from_number=OUR_NUMBER
            ),
            limiter=MemoryRateLimiter(10_000),
            leases=MemoryLeases(),
            enqueue=lambda _name, _args, _queue: None,
        )
        self._template: str | None = None

    def close(self) -> None:
        self.client.close()
        self.core.stop(drain=False)
        self.runtime.dispose()

    # -- webhooks --------------------------------------------------------------------
    def post(
        self,
        path: str,
        params: dict[str, str],
        *,
        signed_url: str | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """POST ``params`` to ``path``, signed for ``signed_url`` (default: the real URL)."""
        url = signed_url or self.public_url + path
        sig = signature if signature is not None else sign(url, params)
        all_headers = {"X-Twilio-Signature": sig} if sig else {}
        return self.client.post(path, data=params, headers={**all_headers, **(headers or {})})

    def text(self, from_: str, body: str, *, sid: str | None = None, **extra: str) -> Response:
        """Someone texts us ``body`` (Twilio's inbound webhook, signed)."""
        sid = sid or new_sid()
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": ACCOUNT,
            "From": from_,
            "To": OUR_NUMBER,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
            **extra,
        }
        return self.post(INBOUND, params)

    # -- campaigns -------------------------------------------------------------------
    def launch(self, slug: str, **campaign: Any) -> tuple[int, list[str]]:
        """A campaign to community ``slug``, scheduled, claimed and fanned out."""
        with self.runtime.session() as s:
            if self._template is None:
                self._template = factories.template(s)
            camp = factories.campaign(s, [slug], key=self._template, **campaign)
            campaigns.schedule(s, camp.id)
            scheduling.claim_due(s, utcnow())
            page = fanout_page(s, camp.id, page_size=1000, batch_size=100)
            return camp.id, page.batches

    def send(self, campaign_id: int, tokens: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for token in tokens:
            for key, n in send_batch(self.ctx, token, campaign_id, "urgent").outcomes.items():
                out[key] = out.get(key, 0) + n
        return out

    def deliveries(self, campaign_id: int) -> dict[str, tuple[str, str | None]]:
        """phone -> (state, reason) of a campaign's deliveries."""
        with self.runtime.session() as s:
            rows = s.execute(
                select(Contact.phone, Delivery.state, Delivery.reason)
                .join(Contact, Contact.id == Delivery.contact_id)
                .where(Delivery.campaign_id == campaign_id)
            ).all()
        return {phone: (state, reason) for phone, state, reason in rows}


@contextmanager
def kit_on(kind: str, tmp_dir: str, **settings: Any) -> Iterator[Kit]:
    with migrated_database(kind, tmp_dir) as (url, _engine):
        kit = Kit(url, **settings)
        try:
            yield kit
        finally:
            kit.close()


@contextmanager
def kit_with_api(kind: str, tmp_dir: str, **settings: Any) -> Iterator[Kit]:
    """A Kit whose public URL is a real API server on a socket, so the simulator's signed
    callbacks arrive as Twilio's would."""
    with uvicorn_logging_restored(), migrated_database(kind, tmp_dir) as (url, _engine):
        api = ApiServer()
        kit = Kit(url, public_url=api.url, **settings)
        api.start(kit.runtime)
        try:
            yield kit
        finally:
            api.stop()
            kit.close()


_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


@contextmanager
def uvicorn_logging_restored() -> Iterator[None]:
    """Undo the logging set-up a uvicorn server (tests.stack.ApiServer) makes when it starts,
    so later tests see the loggers as riskcast configures them."""
    saved = [
        (log, list(log.handlers), log.level, log.propagate, log.disabled)
        for log in map(logging.getLogger, _UVICORN_LOGGERS)
    ]
    try:
        yield
    finally:
        for log, handlers, level, propagate, disabled in saved:
            log.handlers[:] = handlers
            log.setLevel(level)
            log.propagate = propagate
            log.disabled = disabled
