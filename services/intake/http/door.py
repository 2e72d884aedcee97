"""What every intake route needs, put in the app's state at wiring (``install``), and
read back by FastAPI dependencies: the routes are module-level functions, no closure
in a builder."""

# No ``from __future__ import annotations``: FastAPI reads the dependencies from the
# live annotations.

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from services.intake.handlers import IntakeHandlers
from shared.auth import BEARER, Principal, Role, forbid
from shared.db import Database
from shared.events import Reason
from shared.outbox import OutboxRelay
from shared.territory import Territories, centre_15_scope, samu_and_regulator


@dataclass(frozen=True)
class Door:
    handlers: IntakeHandlers
    database: Database
    relay: OutboxRelay
    territories: Territories
    # The key that signs the patients' links (shared/patient_link.py).
    link_key: str
    # ``shared.auth.authenticator`` for intake: the caller of a bearer token, or a 401.
    authenticate: Callable[..., Principal]


def door(request: Request) -> Door:
    return cast(Door, request.app.state.intake)


def caller(
    request: Request,
    # The scheme every service's authenticator documents: one in the OpenAPI.
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> Principal:
    return door(request).authenticate(credentials)


TheDoor = Annotated[Door, Depends(door)]
Caller = Annotated[Principal, Depends(caller)]


def referrer_of(principal: Principal, territories: Territories) -> tuple[str, str]:
    """(kind, identifier) a caller may refer as: a referrer's token names both
    (``gp:10001234567``); Centre 15's names its SAMU (``samu-35``, a known one only)."""
    if principal.role is Role.CENTRE_15:
        centre_15_scope(territories, principal)  # 403: no known SAMU
        return "centre_15", samu_and_regulator(principal.subject)[0]
    if principal.role is Role.REFERRER:
        kind, _, identifier = principal.subject.partition(":")
        return kind, identifier
    raise forbid("only referrers and Centre 15 submit and read referrals")


def problem(
    code: int,
    error_code: str,
    reasons: tuple[Reason, ...],
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A refusal: its code, and every reason (a stable code, a field, a French message)."""
    return JSONResponse(
        status_code=code,
        content={
            "error_code": error_code,
            "reasons": [r.model_dump(mode="json") for r in reasons],
            **extra,
        },
        headers=headers,
    )
