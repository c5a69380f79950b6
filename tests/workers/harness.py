"""The plain-function test harness for sending and reconciling (no Celery): a database,
the in-process simulator and a context, shared by the sending and settling tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select

from broadcaster import campaigns, scheduling
from broadcaster.config import load_settings
from broadcaster.db import utcnow
from broadcaster.fanout import fanout_page
from broadcaster.models import Contact, Delivery
from broadcaster.runtime import Runtime
from tests import factories
from tests.services import migrated_database
from workers.context import Context
from workers.leases import MemoryLeases
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.provider import SimulatorProvider
from workers.ratelimit import MemoryRateLimiter
from workers.sending import send_batch

ACCOUNT, TOKEN = "AC" + "2" * 32, "token"


class Harness:
    """One database, the in-process simulator as provider, a fast in-memory limiter, and
    the tasks a run would enqueue recorded in ``enqueued``."""

    def __init__(self, url: str, core: dict[str, Any] | None = None, **settings: Any) -> None:
        self.runtime = Runtime(
            load_settings(
                **{
                    "database_url": url,
                    "public_url": "http://127.0.0.1:9",
                    "max_attempts": 5,
                    "retry_base": 0.01,
                    **settings,
                }
            )
        )
        self.core = SimulatorCore(ACCOUNT, TOKEN, **{"deliver_callbacks": False, **(core or {})})
        self.enqueued: list[tuple[str, list[Any], str]] = []
        self.ctx = Context(
            runtime=self.runtime,
            provider=SimulatorProvider(
                self.core, account_sid=ACCOUNT, auth_token=TOKEN, from_number="+15005550006"
            ),
            limiter=MemoryRateLimiter(10_000),
            leases=MemoryLeases(),
            enqueue=lambda name, args, queue: self.enqueued.append((name, list(args), queue)),
        )

    def audience(self, phones: list[str], **campaign: Any) -> tuple[int, list[str]]:
        """A launched, fanned-out campaign to ``phones``; returns (campaign id, batch tokens)."""
        with self.runtime.session() as s:
            factories.community(s, "village", timezone="Asia/Vientiane")
            for p in phones:
                if p.startswith("+1500555"):
                    factories.raw_contact(s, p, "village")
                else:
                    factories.contact(s, p, community_slugs=("village",), language="lo")
            camp = factories.campaign(s, ["village"], **campaign)
            campaigns.schedule(s, camp.id)
            scheduling.claim_due(s, utcnow())
            page = fanout_page(s, camp.id, page_size=1000, batch_size=100)
            return camp.id, page.batches

    def states(self, campaign_id: int) -> dict[str, tuple[str, str | None]]:
        with self.runtime.session() as s:
            rows = s.execute(
                select(Contact.phone, Delivery.state, Delivery.reason)
                .join(Contact, Contact.id == Delivery.contact_id)
                .where(Delivery.campaign_id == campaign_id)
            ).all()
        return {phone: (state, reason) for phone, state, reason in rows}

    def send(self, campaign_id: int, tokens: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for token in tokens:
            for k, v in send_batch(self.ctx, token, campaign_id, "urgent").outcomes.items():
                out[k] = out.get(k, 0) + v
        return out


@contextmanager
def harness(backend: str, tmp: str, **kwargs: Any) -> Iterator[Harness]:
    with migrated_database(backend, tmp) as (url, _engine):
        made = Harness(url, **kwargs)
        try:
            yield made
        finally:
            made.core.stop(drain=False)
            made.runtime.dispose()
