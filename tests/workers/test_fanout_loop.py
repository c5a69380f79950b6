"""The fan-out task's loop: every page written once, its batches enqueued once, on both
databases (PostgreSQL prepares the next page while it writes the current one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from broadcaster import campaigns, scheduling
from broadcaster.config import load_settings
from broadcaster.db import utcnow
from broadcaster.models import Campaign, CampaignMessage, CampaignState, Contact, Delivery
from broadcaster.runtime import Runtime
from tests import factories
from tests.conftest import BACKENDS
from tests.services import migrated_database
from workers.context import Context
from workers.leases import MemoryLeases
from workers.pipeline import run_fanout
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.provider import SimulatorProvider
from workers.ratelimit import MemoryRateLimiter
from workers.sending import SEND_TASK

NAMES = ['Noy "Bo"', "back\\slash", "{a,b}", "NULL", "Somchai", "O'Neil", "Keo", "Vanh"]


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    with migrated_database(request.param, str(tmp_path)) as (url, _engine):
        rt = Runtime(load_settings(database_url=url, fanout_batch_size=3, send_batch_size=2))
        try:
            yield rt
        finally:
            rt.dispose()


def context(runtime: Runtime, enqueued: list[tuple[str, list[Any]]]) -> Context:
    core = SimulatorCore("AC" + "4" * 32, "t", deliver_callbacks=False)
    return Context(
        runtime=runtime,
        provider=SimulatorProvider(
            core, account_sid="AC" + "4" * 32, auth_token="t", from_number="+15005550006"
        ),
        limiter=MemoryRateLimiter(10),
        leases=MemoryLeases(),
        enqueue=lambda task, args, _queue: enqueued.append((task, list(args))),
    )


def launch(runtime: Runtime) -> tuple[int, list[int]]:
    with runtime.session() as session:
        factories.community(session, "village")
        key = factories.english_template(session, "named", "{{ name }}: call {{ hotline }}.")
        people = [factories.contact(session, community_slugs=("village",), name=n) for n in NAMES]
        for person in people[::2]:
            person.channel = "whatsapp"
        session.flush()
        camp = factories.campaign(session, ["village"], key=key, channel="preferred")
        campaigns.schedule(session, camp.id)
        assert scheduling.claim_due(session, utcnow()) == [(camp.id, camp.priority)]
        return camp.id, [p.id for p in people]


def test_every_page_written_once_and_every_batch_enqueued_once(runtime: Runtime) -> None:
    enqueued: list[tuple[str, list[Any]]] = []
    ctx = context(runtime, enqueued)
    campaign_id, people = launch(runtime)

    assert run_fanout(ctx, campaign_id) == len(NAMES)

    with runtime.session() as session:
        rows = session.execute(
            select(Delivery.contact_id, Delivery.channel, Delivery.batch, CampaignMessage.body)
            .join(CampaignMessage, CampaignMessage.id == Delivery.message_id)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.campaign_id == campaign_id)
        ).all()
        camp = session.get_one(Campaign, campaign_id)
        assert camp.state == CampaignState.SENDING and camp.recipients == len(NAMES)
    assert sorted(r.contact_id for r in rows) == sorted(people)
    by_contact = {r.contact_id: r for r in rows}
    for i, (person, name) in enumerate(zip(people, NAMES, strict=True)):
        assert by_contact[person].body == f"{name}: call 1166."
        assert by_contact[person].channel == ("whatsapp" if i % 2 == 0 else "sms")
    sent_tokens = [args[0] for task, args in enqueued if task == SEND_TASK]
    assert sorted(sent_tokens) == sorted({r.batch for r in rows})
    assert len(sent_tokens) == len(set(sent_tokens)) == 5  # pages of 3 in batches of 2: 2+1, 2+1, 2

    # A redelivered task, from the start again: nothing is created or enqueued twice.
    with runtime.session() as session:
        camp = session.get_one(Campaign, campaign_id)
        camp.fanout_cursor = 0
        campaigns.move(session, campaign_id, CampaignState.PAUSED)
        campaigns.move(session, campaign_id, CampaignState.FANNING_OUT)
    enqueued.clear()
    assert run_fanout(ctx, campaign_id) == 0
    assert [args for task, args in enqueued if task == SEND_TASK] == []
    with runtime.session() as session:
        count = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.campaign_id == campaign_id)
        )
        assert count == len(NAMES)
        assert session.get_one(Campaign, campaign_id).state == CampaignState.SENDING
