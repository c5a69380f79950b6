# ruff: noqa: F811 - pytest fixtures imported by name
"""Every /api/v1 route (and /metrics): 401 without a valid token, 403 with the wrong role;
tokens stored hashed; revoked tokens and inactive users refused."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.errors import Forbidden
from broadcaster.models import ApiToken
from broadcaster.users import auth
from broadcaster.web.app import API_ROUTERS
from broadcaster.web.routes.metrics import metrics_router
from tests.broadcaster.apiclient import Person, TestClient, app, client, people, person  # noqa: F401 - fixtures

SAMPLE = {"campaign_id": "1", "key": "x", "name": "x", "token_id": "1", "message_id": "1"}


def allowed_roles(route: APIRoute) -> frozenset[str] | None:
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "allowed_roles", None)
        if roles is not None:
            return frozenset(roles)
        stack.extend(dep.dependencies)
    return None


def protected_routes() -> list[tuple[str, str, frozenset[str] | None]]:
    routes = []
    for router in (*API_ROUTERS, metrics_router):
        for route in router.routes:
            assert isinstance(route, APIRoute)
            path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], route.path)
            for method in sorted(route.methods):
                routes.append((method, path, allowed_roles(route)))
    return routes


ROUTES = protected_routes()
IDS = [f"{m} {p}" for m, p, _ in ROUTES]


def test_every_api_route_names_its_roles() -> None:
    assert len(ROUTES) > 25
    assert all(roles is not None for _, _, roles in ROUTES), [
        (m, p) for m, p, roles in ROUTES if roles is None
    ]


@pytest.mark.parametrize(("method", "path", "roles"), ROUTES, ids=IDS)
def test_401_without_or_with_a_bad_token(
    client: TestClient, method: str, path: str, roles: frozenset[str]
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}):
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"]
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "roles"), ROUTES, ids=IDS)
def test_403_with_the_wrong_role(
    client: TestClient, people: dict[str, Person], method: str, path: str, roles: frozenset[str]
) -> None:
    wrong = [p for p in people.values() if p.role not in roles]
    if not wrong:
        pytest.skip("every role may call this route")
    for who in wrong:
        response = client.request(method, path, headers=who.headers)
        assert response.status_code == 403, (who.role, response.text)
        assert "role" in response.json()["error"]


def test_admins_may_call_every_route() -> None:
    assert all("admin" in roles for _, _, roles in ROUTES if roles is not None)


def test_tokens_are_stored_hashed_and_can_be_revoked(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    official = people["official"]
    stored = session.scalars(select(ApiToken.token_hash)).all()
    assert official.token not in stored
    assert auth.hash_token(official.token) in stored
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stored)
    assert client.get("/api/v1/communities", headers=official.headers).status_code == 200

    token_id = session.scalar(
        select(ApiToken.id).where(ApiToken.token_hash == auth.hash_token(official.token))
    )
    admin = people["admin"].headers
    assert client.post(f"/api/v1/tokens/{token_id}/revoke", headers=admin).status_code == 200
    assert client.get("/api/v1/communities", headers=official.headers).status_code == 401


def test_a_deactivated_user_is_refused(client: TestClient, people: dict[str, Person]) -> None:
    operator = people["operator"]
    assert client.get("/api/v1/queue", headers=operator.headers).status_code == 200
    response = client.post("/api/v1/users/otto/deactivate", headers=people["admin"].headers)
    assert response.status_code == 200 and response.json()["active"] is False
    assert client.get("/api/v1/queue", headers=operator.headers).status_code == 401


def test_an_admin_invites_and_the_person_makes_their_own_token(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    """An admin who created an account used to be shown its first token, and could act as
    its person: now they get an invitation, redeemed once by the person themselves."""
    admin = people["admin"].headers
    made = client.post("/api/v1/users", json={"name": "nina", "role": "operator"}, headers=admin)
    assert made.status_code == 201, made.text
    assert "token" not in made.json()
    code = made.json()["invitation"]
    assert client.get("/api/v1/users/nina/tokens", headers=admin).json() == []  # none yet
    with pytest.raises(Forbidden):
        auth.accept_invitation(session, "nina", code + "x", password=None, source="test")
    user, own = auth.accept_invitation(session, "nina", code, password=None, source="test")
    session.commit()
    assert own is not None and user.name == "nina"
    nina = {"Authorization": f"Bearer {own[1]}"}
    assert client.get("/api/v1/queue", headers=nina).status_code == 200
    with pytest.raises(Forbidden):  # once only
        auth.accept_invitation(session, "nina", code, password=None, source="test")
    # While nina holds a live token, no admin can invite their way into her account.
    again = client.post("/api/v1/users/nina/invite", headers=admin)
    assert again.status_code == 403 and "live token" in again.json()["error"]
    listed = client.get("/api/v1/users/nina/tokens", headers=admin).json()
    assert len(listed) == 1 and "token" not in listed[0]
    with_password = client.post(
        "/api/v1/users",
        json={"name": "noy", "role": "official", "password": "chosen by the admin"},
        headers=admin,
    )
    assert with_password.status_code == 422
    bad = client.post("/api/v1/users", json={"name": "x", "role": "king"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["field"] == "role"
    twice = client.post("/api/v1/users", json={"name": "nina", "role": "admin"}, headers=admin)
    assert twice.status_code == 422 and twice.json()["field"] == "name"


def test_passwords_are_argon2_hashed(session: Session) -> None:
    person(session, "olivia", "official", password="correct horse battery")
    user = auth.get_user(session, "olivia")
    assert user.password_hash and user.password_hash.startswith("$argon2id$")
    assert auth.authenticate(session, "olivia", "correct horse battery") is not None
    assert auth.authenticate(session, "olivia", "wrong password!") is None
    assert auth.authenticate(session, "nobody", "correct horse battery") is None


def test_openapi_declares_bearer_auth(app: FastAPI) -> None:
    schema = app.openapi()
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert "/healthz" not in schema["paths"]


def test_the_route_list_is_the_whole_api(app: FastAPI) -> None:
    documented = {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if path.startswith("/api/") or path == "/metrics"
    }
    listed = {
        (m, p)
        for router in (*API_ROUTERS, metrics_router)
        for r in router.routes
        for m in r.methods
        for p in [r.path]
    }  # type: ignore[attr-defined]
    assert documented == listed


def test_a_token_is_made_by_its_own_user_only(
    client: TestClient, people: dict[str, Person]
) -> None:
    for who in people.values():  # nobody, not even an admin, makes another person's token
        other = "omar" if who.name != "omar" else "olivia"
        response = client.post(f"/api/v1/users/{other}/tokens", headers=who.headers)
        assert response.status_code == 403, (who.name, response.text)
        assert "own user" in response.json()["error"]
    mine = client.post("/api/v1/users/olivia/tokens", headers=people["official"].headers)
    assert mine.status_code == 201 and mine.json()["user"]["name"] == "olivia"
    fresh = {"Authorization": f"Bearer {mine.json()['token']}"}
    assert client.get("/api/v1/communities", headers=fresh).status_code == 200
    me = client.post("/api/v1/users/me/tokens", headers=people["operator"].headers)
    assert me.status_code == 201 and me.json()["user"]["name"] == "otto"


def test_a_new_admin_needs_a_second_admin(
    client: TestClient, session: Session, people: dict[str, Person]
) -> None:
    ada = people["admin"].headers
    bea = person(session, "bea", "admin").headers
    made = client.post("/api/v1/users", json={"name": "cid", "role": "admin"}, headers=ada)
    assert made.status_code == 201, made.text
    assert made.json()["pending"] is True and made.json()["user"]["active"] is False
    _, own = auth.accept_invitation(
        session, "cid", made.json()["invitation"], password=None, source="test"
    )
    session.commit()
    assert own is not None
    cid = {"Authorization": f"Bearer {own[1]}"}
    assert client.get("/api/v1/users", headers=cid).status_code == 401

    own = client.post("/api/v1/users/cid/confirm", headers=ada)
    assert own.status_code == 403 and "second admin" in own.json()["error"]
    assert (
        client.post("/api/v1/users/cid/confirm", headers=people["official"].headers).status_code
        == 403
    )
    confirmed = client.post("/api/v1/users/cid/confirm", headers=bea)
    assert confirmed.status_code == 200 and confirmed.json()["active"] is True
    assert client.get("/api/v1/users", headers=cid).status_code == 200
    again = client.post("/api/v1/users/cid/confirm", headers=bea)
    assert again.status_code == 422 and again.json()["field"] == "name"

    official = client.post("/api/v1/users", json={"name": "nina", "role": "official"}, headers=ada)
    assert official.json()["pending"] is False and official.json()["user"]["active"] is True
