"""Owners of the HubSpot sandbox: the read-only owners API (``GET /crm/v3/owners``).

Shape per https://developers.hubspot.com/docs/api-reference/crm-crm-owners-v3/guide: each owner has
``id`` (what records' ``hubspot_owner_id`` holds), ``email``, ``type`` PERSON, ``firstName``,
``lastName``, ``userId``, ``createdAt``, ``updatedAt`` and ``archived``; the list is paged with
``limit`` and the ``after`` cursor of ``paging.next``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from sandboxes.hubspot_errors import HubSpotError, not_found
from sandboxes.hubspot_props import iso_ms

if TYPE_CHECKING:
    from sandboxes.hubspot import HubSpotSandbox

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
FIRST_OWNER_ID = 41629779


@dataclass
class Owner:
    """A portal user who can own records."""

    id: str
    user_id: int
    email: str
    first_name: str
    last_name: str
    created_at: datetime
    archived: bool = False

    def to_json(self) -> dict[str, Any]:
        stamp = iso_ms(self.created_at)
        return {
            "id": self.id,
            "email": self.email,
            "type": "PERSON",
            "firstName": self.first_name,
            "lastName": self.last_name,
            "userId": self.user_id,
            "userIdIncludingInactive": self.user_id,
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": self.archived,
        }


class Owners:
    """The portal's owners, in creation order."""

    def __init__(self) -> None:
        self.by_id: dict[str, Owner] = {}

    def add(self, first_name: str, last_name: str, email: str, now: datetime) -> str:
        """Create an owner (an admin adding a user); returns its owner id."""
        n = len(self.by_id)
        owner = Owner(str(FIRST_OWNER_ID + n), 9586504 + n, email, first_name, last_name, now)
        self.by_id[owner.id] = owner
        return owner.id

    def page(self, after: int, limit: int, archived: bool, email: str | None) -> tuple[list[Owner], bool]:
        chosen = [
            o
            for o in self.by_id.values()
            if o.archived == archived and (email is None or o.email.lower() == email.lower())
        ]
        return chosen[after : after + limit], after + limit < len(chosen)


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    try:
        return int(raw) if raw not in (None, "") else default
    except ValueError as exc:
        raise HubSpotError(400, f"Invalid input: {name} must be an integer") from exc


def owner_routes(app: FastAPI, sandbox: HubSpotSandbox) -> None:
    """``/crm/v3/owners``: list (paged, filtered by email or archived) and read one."""

    @app.get("/crm/v3/owners")
    @app.get("/crm/v3/owners/")
    async def list_owners(request: Request) -> Response:
        limit, after = _int(request, "limit", DEFAULT_LIMIT), _int(request, "after", 0)
        if not 1 <= limit <= MAX_LIMIT or after < 0:
            raise HubSpotError(400, f"Invalid input: limit must be between 1 and {MAX_LIMIT}")
        archived = request.query_params.get("archived", "false").lower() == "true"
        with sandbox.lock:
            owners, more = sandbox.owners.page(after, limit, archived, request.query_params.get("email"))
        body: dict[str, Any] = {"results": [o.to_json() for o in owners]}
        if more:
            nxt = str(after + limit)
            body["paging"] = {"next": {"after": nxt, "link": f"{request.base_url}crm/v3/owners/?after={nxt}"}}
        return JSONResponse(body)

    @app.get("/crm/v3/owners/{owner_id}")
    async def get_owner(owner_id: str) -> Response:
        with sandbox.lock:
            owner = sandbox.owners.by_id.get(owner_id)
        if owner is None:
            raise not_found(f"Unable to find owner {owner_id}")
        return JSONResponse(owner.to_json())
