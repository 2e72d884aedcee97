"""What regulation's routes reach, put on ``app.state.regulation`` by ``app.py`` and
read through FastAPI dependencies, so that the routes are plain module functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from services.regulation.store.protocols import ProtocolBook
from shared.auth import BEARER, Principal
from shared.db import Database
from shared.outbox import OutboxRelay
from shared.territory import Scope, Territories, centre_15_scope


@dataclass(frozen=True)
class RegulationApi:
    database: Database
    relay: OutboxRelay
    book: ProtocolBook
    # shared.auth.authenticator for regulation's tokens, built from the settings' keys.
    authenticate: Callable[..., Principal]
    territories: Territories = field(default_factory=Territories)

    def regulator(self, caller: Principal) -> Scope:
        """The caller's territory: 403 for anyone but a known SAMU's Centre 15."""
        return centre_15_scope(self.territories, caller)


def the_api(request: Request) -> RegulationApi:
    return cast(RegulationApi, request.app.state.regulation)


def the_caller(
    request: Request,
    # The same bearer scheme as shared.auth.authenticator's, so that the OpenAPI
    # document names the same security scheme.
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> Principal:
    """The caller whose token is for regulation, or a 401 that says what is wrong."""
    return the_api(request).authenticate(credentials)


ApiDep = Annotated[RegulationApi, Depends(the_api)]
Caller = Annotated[Principal, Depends(the_caller)]
