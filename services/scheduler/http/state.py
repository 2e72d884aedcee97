"""What the ARS's routes reach, put on ``app.state.scheduler`` by ``app.py`` and read
through FastAPI dependencies, so that the routes are plain module functions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from shared.auth import BEARER, Principal
from shared.db import Database
from shared.events import Envelope

# Sends an actor's request on the ingress, in its name (ServiceRuntime.publish_at_door).
DoorPublish = Callable[..., Awaitable[Envelope]]


@dataclass(frozen=True)
class SchedulerApi:
    database: Database
    publish_at_door: DoorPublish
    # shared.auth.authenticator for the scheduler's tokens, built from the settings' keys.
    authenticate: Callable[..., Principal]


def the_api(request: Request) -> SchedulerApi:
    return cast(SchedulerApi, request.app.state.scheduler)


def the_caller(
    request: Request,
    # The same bearer scheme as shared.auth.authenticator's, so that the OpenAPI
    # document names the same security scheme.
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> Principal:
    """The caller whose token is for the scheduler, or a 401 that says what is wrong."""
    return the_api(request).authenticate(credentials)


ApiDep = Annotated[SchedulerApi, Depends(the_api)]
Caller = Annotated[Principal, Depends(the_caller)]
