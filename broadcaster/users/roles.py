"""Who may do what: the one admission rule every door applies (the API's
``broadcaster.web.deps.require``, the command line's ``broadcaster.cli.common.signed_in``).

A door names the roles an action is for; admins are always admitted."""

from __future__ import annotations

from collections.abc import Iterable

from broadcaster.users.models import Role

# What everyone with an account may do (read campaigns, templates, communities...).
ANYONE = (Role.OFFICIAL, Role.OPERATOR)


def admitted(roles: Iterable[str]) -> frozenset[str]:
    """The roles admitted to an action for ``roles``: those, and admin."""
    return frozenset(str(r) for r in roles) | {Role.ADMIN.value}


def admits(role: str, allowed: frozenset[str]) -> bool:
    return role in allowed


def refusal(role: str, allowed: frozenset[str]) -> str:
    """What a refused caller is told."""
    return f"this needs the role {' or '.join(sorted(allowed))}; you are {role}"
