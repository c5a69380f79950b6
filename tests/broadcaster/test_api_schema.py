"""schemathesis against the app's own OpenAPI: every /api/v1 operation, called as an admin
with generated input (valid and invalid), answers without a 5xx, with a status code the
schema declares and a body matching the declared model.

The app runs on a real Runtime over a migrated PostgreSQL database with a little data in it
(a community with contacts, a template, campaigns in several states), so generated ids and
names sometimes hit real rows. Hypothesis is derandomized and bounded, so the run is the same
every time and takes well under a minute.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core import NOT_SET
from schemathesis.core.result import Ok
from sqlalchemy import select, update

from broadcaster.campaigns import scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.fanout import fanout_page
from broadcaster.config import load_settings
from broadcaster.db import utcnow
from broadcaster.models import ApiToken, Delivery, InboundMessage, User
from broadcaster.runtime import Runtime
from broadcaster.users import auth
from broadcaster.web.app import API_ROUTERS, create_app
from broadcaster.web.deps import db_session
from broadcaster.web.routes import dashboard
from broadcaster.web.routes.metrics import metrics_router
from tests import factories
from tests.services import migrated_database

ADMIN = "schema-admin"
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}
FIXED_EXAMPLES = 4  # when the path or body is given, fewer generated variations are left
# Bodies that name real rows, so creating gets past the 404s (generated ones rarely do).
KNOWN_BODIES: dict[str, list[dict[str, object]]] = {
    "POST /api/v1/templates": [
        {
            "key": "known-template",
            "name": "Known",
            "default_language": "en",
            "variables": {"hotline": "1166"},
            "variants": {"en": "Call {{ hotline }}.", "lo": "ໂທ {{ hotline }}."},
        }
    ],
    "POST /api/v1/campaigns": [
        {"name": "known", "template": "covid-test", "communities": ["laos"]},
        {
            "name": "urgent, Thai only, quiet at night",
            "template": "covid-test",
            "communities": ["laos"],
            "languages": ["th"],
            "priority": "urgent",
            "variables": {"hotline": "1422"},
            "quiet_hours": [22, 6],
            "valid_hours": 0.5,
        },
        {
            "name": "whatsapp",
            "template": "covid-test",
            "communities": ["bokeo"],
            "channel": "whatsapp",
        },
        {
            "name": "bad hours",
            "template": "covid-test",
            "communities": ["laos"],
            "quiet_hours": [25, -1],
        },
        {"name": "none", "template": "covid-test", "communities": ["laos"], "countries": ["ZZ"]},
        # PostgreSQL cannot store NUL: these were 500s
        {"name": "nul\x00", "template": "covid-test", "communities": ["laos"]},
        {"name": "nul", "template": "covid-test\x00", "communities": ["laos\x00"]},
    ],
    "POST /api/v1/contacts": [
        {"phone": "020 5555 0404", "language": "lo", "communities": ["bokeo"]},
        {"phone": "+66 81 234 0404", "name": "Somchai", "language": "th"},
        {"phone": "020 5555 0404"},
        {"phone": "+1 202 555 0101", "communities": ["nowhere"]},
        {"phone": "020 5555 0405", "name": "nul\x00"},
    ],
    "POST /api/v1/cap/mappings": [
        {"kind": "geocode", "value": "LA-BK", "community": "bokeo"},
        {"kind": "name", "value": "Bokeo", "community": "nowhere"},
    ],
    "POST /api/v1/contacts/import": [
        {"file": b"phone,name,communities\n020 5555 0406,Known,bokeo\n0000,bad\n"},
        {"file": b"phone;name\n020 5555 0407;nul\x00\n"},
    ],
    "POST /api/v1/communities": [
        {"slug": "houaphanh", "name": "Houaphanh", "parent": "laos", "kind": "province"},
        {"slug": "houaphanh", "name": "again"},
        {"slug": "tz", "name": "Bad zone", "timezone": "Mars/Olympus"},
        {"slug": "nul", "name": "nul\x00"},
    ],
    "PUT /api/v1/inbox/{message_id}/tag": [{"tag": "question"}, {"tag": None}],
    "POST /api/v1/campaigns/{campaign_id}/schedule": [
        {"send_at": "2030-01-01T09:00:00+07:00"},
        {"send_at": "2000-01-01T09:00:00Z"},
        {},
    ],
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class Api:
    app: FastAPI
    runtime: Runtime
    known: dict[str, list[object]]
    token: str = ""
    failures: list[str] = field(default_factory=list)
    answers: dict[str, set[int]] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        """The admin's Bearer token, made again if a generated call revoked it or deactivated
        the admin (both are legal moves for an admin, and would turn the rest into 401s)."""
        with self.runtime.session() as session:
            admin = session.scalar(select(User).where(User.name == ADMIN))
            assert admin is not None
            admin.active = True
            live = session.scalar(
                select(ApiToken.id).where(
                    ApiToken.token_hash == auth.hash_token(self.token),
                    ApiToken.revoked_at.is_(None),
                )
            )
            if live is None:
                _, self.token = auth.issue_token(session, admin)
        return {"Authorization": f"Bearer {self.token}"}


def seed(runtime: Runtime) -> dict[str, list[object]]:
    """A little of everything; returns the path parameters that name real rows."""
    with runtime.session() as session:
        factories.community(session, "laos", country="LA", language="lo")
        factories.community(session, "bokeo", parent="laos")
        for i in range(4):
            factories.contact(session, factories.lao_number(300 + i), community_slugs=("bokeo",))
        thai = factories.contact(session, factories.thai_number(301), community_slugs=("laos",))
        key = factories.template(session)
        auth.create_user(session, ADMIN, role="admin")
        proposer = auth.create_user(session, "schema-proposer", role="admin")
        # an admin another admin proposed, waiting for a second admin (the schema admin)
        auth.add_user(
            session, auth.actor_for(session, proposer, "test"), "schema-pending", role="admin"
        )
        author = auth.create_user(session, "schema-official", role="official")
        second = auth.create_user(session, "schema-second", role="official")
        decoy, _ = auth.issue_token(session, second)
        draft = factories.campaign(session, ["laos"], key=key, name="draft", created_by=author.id)
        sending = factories.campaign(
            session, ["laos"], key=key, name="sending", created_by=author.id
        )
        campaigns.approve(session, sending.id, second.id)
        campaigns.schedule(session, sending.id, approval_threshold=3)
        scheduling.claim_due(session, utcnow())
        while not fanout_page(session, sending.id, page_size=100, batch_size=100).done:
            pass
        failed = list(
            session.scalars(select(Delivery.id).where(Delivery.campaign_id == sending.id).limit(2))
        )
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(failed))
            .values(state="failed", error_code=30003, error_message="Unreachable handset")
        )
        reply = InboundMessage(
            provider_sid="SM" + "2" * 32,
            contact_id=thai.id,
            from_phone=thai.phone,
            to_phone="+15005550006",
            body="is the test free? call me on +66 81 000 0301",
        )
        session.add(reply)
        session.flush()
        return {
            "campaign_id": [draft.id, sending.id],
            "key": [key, "nul\x00"],
            "name": ["schema-official", "schema-pending", "me", "nul\x00"],
            "message_id": [reply.id],
            "token_id": [decoy.id],
        }


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("schema")
    with migrated_database("postgresql", str(tmp)) as (url, _engine):
        runtime = Runtime(load_settings(database_url=url, approval_threshold=3))
        try:
            known = seed(runtime)
            yield Api(create_app(runtime), runtime, known)
        finally:
            runtime.dispose()


def run_operation(
    api: Api,
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    path_parameters: dict[str, object] | None = None,
    body: object = NOT_SET,
) -> None:
    fixed = " ".join(repr(x) for x in (path_parameters, body) if x and x is not NOT_SET)
    label = f"{operation.label} ({mode.value}{' ' + fixed if fixed else ''})"

    @settings(
        max_examples=EXAMPLES[mode] if fixed == "" else FIXED_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters, body=body)
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers=api.headers(), checks=CHECKS)
        api.answers.setdefault(label, set()).add(response.status_code)

    try:
        check()
    except (
        Exception,
        BaseExceptionGroup,
    ) as exc:  # collect every operation's failure, then fail once
        api.failures.append(f"{label}:\n{exc}")


def operations(api: Api) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app).include(
        path_regex=r"^/api/v1/|^/metrics$"
    )
    found = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"schemathesis cannot read an operation: {result.err()}"
        found.append(result.ok())
    # cancel last, so the moves before it (pause, retry-failed...) meet a live campaign
    return sorted(found, key=lambda op: op.path.endswith("/cancel"))


def test_every_api_operation_keeps_to_its_schema(api: Api) -> None:
    ops = operations(api)
    assert len(ops) > 25, [op.label for op in ops]
    for op in ops:
        for mode in EXAMPLES:
            run_operation(api, op, mode)
        # and again on the rows that exist, so the calls get past the 404s
        names = [p.name for p in op.path_parameters]
        if names:
            for values in itertools.product(*(api.known[n] for n in names)):
                path = dict(zip(names, values, strict=True))
                run_operation(api, op, GenerationMode.POSITIVE, path)
                for body in KNOWN_BODIES.get(op.label, []):
                    run_operation(api, op, GenerationMode.POSITIVE, path, body)
        else:
            for body in KNOWN_BODIES.get(op.label, []):
                run_operation(api, op, GenerationMode.POSITIVE, None, body)
    assert not api.failures, "\n\n".join(api.failures)
    # the data made the calls reach the handlers' happy paths, not only their refusals
    succeeded = {label.split(" (")[0] for label, codes in api.answers.items() if min(codes) < 300}
    missed = sorted({op.label for op in ops} - succeeded)
    assert len(missed) <= 2, missed


def test_every_api_operation_declares_bearer_auth_and_its_errors(api: Api) -> None:
    spec = api.app.openapi()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    ops = [
        (f"{method.upper()} {path}", op)
        for path, item in spec["paths"].items()
        if path.startswith("/api/v1/")
        for method, op in item.items()
    ]
    for label, op in ops:
        assert op.get("security") == [{"HTTPBearer": []}], label
        assert {"401", "403", "422"} <= set(op["responses"]), label


def test_every_api_and_dashboard_route_commits_before_it_answers(api: Api) -> None:
    """The unit of work ends (commits) before the response leaves: with FastAPI's default
    "request" scope the dashboard's redirect was followed before the commit, and the next
    page showed the campaign unapproved (or missing) about one time in three."""

    def uses(dependant: Any) -> Iterator[Any]:
        for dep in dependant.dependencies:
            yield dep
            yield from uses(dep)

    routes = [
        r
        for router in (*API_ROUTERS, metrics_router, dashboard.router, api.app.router)
        for r in router.routes
        if isinstance(r, APIRoute)
    ]
    assert len(routes) > 45
    late = [
        f"{sorted(r.methods or ())} {r.path}"
        for r in routes
        for dep in uses(r.dependant)
        if dep.call is db_session and dep.scope != "function"
    ]
    assert not late, late
