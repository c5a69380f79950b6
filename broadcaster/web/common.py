"""What the API routers share: the error body, the errors every route may answer, paging."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel

from broadcaster.phones import mask_phone, mask_phones_in_text
from broadcaster.web.deps import Actor

MAX_ID = 2_147_483_647  # ids are 32-bit integers in PostgreSQL
Id = Annotated[int, Path(ge=1, le=MAX_ID)]


class ErrorOut(BaseModel):
    """Every error: what is wrong, and the field (and file row) it is about when there is one."""

    error: str
    field: str | None = None
    row: int | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No token, or an invalid or revoked one."},
    403: {"model": ErrorOut, "description": "The token's user does not have the role."},
    404: {"model": ErrorOut, "description": "No such object."},
    409: {"model": ErrorOut, "description": "The state machine does not allow this move."},
    413: {"model": ErrorOut, "description": "The request body is over the route's limit."},
    422: {"model": ErrorOut, "description": "Bad input; `field` names it."},
}


def phone_for(caller: Actor, phone: str | None) -> str | None:
    """Whole numbers for admins only; everyone else sees ``+856 20 ••• ••34``."""
    if phone is None:
        return None
    return phone if caller.is_admin else mask_phone(phone)


def text_for(caller: Actor, text: str) -> str:
    """Free text (an inbound reply) with any phone number in it masked, except for admins."""
    return text if caller.is_admin else mask_phones_in_text(text)
