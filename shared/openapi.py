"""What the services' HTTP APIs answer when they refuse, as OpenAPI documents it.

Every refusal has one of two bodies: ``{"detail": str}`` (FastAPI's HTTPException: 401,
403, 404...) or intake's ``{"error_code", "reasons"}`` (a referral refused with every
reason; the 413 of an oversized body too). The routers declare the statuses they answer
with these dicts (FastAPI's ``responses=``), so that a client generated from
``/openapi.json``, or schemathesis, knows every answer it may get.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from shared.events import Reason


class ErrorBody(BaseModel):
    """A refusal said in one sentence (FastAPI's HTTPException)."""

    detail: str = Field(description="Why, for the person reading (never personal data).")


class TerritoryRefusal(BaseModel):
    """A refusal with its stable code: a SAMU acting outside its départements
    (``outside_territory``, shared.territory), or a role's or subject's 403 (detail only)."""

    detail: str = Field(description="Why, in French for the person reading.")
    error_code: str | None = None


class ValidationErrorBody(BaseModel):
    """A refusal of a request that does not fit its schema: FastAPI's own list of
    errors, or one sentence when the rule that refuses is the service's."""

    detail: str | list[dict[str, Any]]


class ProblemBody(BaseModel):
    """A refusal with every reason, each with a stable code (intake's door, 413)."""

    # The refusals name what they are about (submission_id, referral_id): kept open.
    model_config = ConfigDict(extra="allow")

    error_code: str
    reasons: list[Reason]


Responses = dict[int | str, dict[str, Any]]

UNAUTHORIZED: Responses = {
    401: {
        "model": ErrorBody,
        "description": "No bearer token, or one that is expired, revoked, for another "
        "service or not signed with an accepted key (the detail says which).",
    }
}
FORBIDDEN: Responses = {
    403: {"model": ErrorBody, "description": "The caller's role or subject may not do this."}
}
# Every route behind a token: who calls, and whether they may.
AUTHENTICATED: Responses = {**UNAUTHORIZED, **FORBIDDEN}


def not_found(what: str) -> Responses:
    return {404: {"model": ErrorBody, "description": what}}


def invalid(what: str = "The request does not fit its schema.") -> Responses:
    return {422: {"model": ValidationErrorBody, "description": what}}


# A body over AIGUILLAGE_MAX_BODY_BYTES, refused before it is read (shared.http.BodyLimit).
TOO_LARGE: Responses = {
    413: {"model": ProblemBody, "description": "The request body is over the size limit."}
}
# For the routes a rate limit guards (``Retry-After`` says when to come back).
RATE_LIMITED: Responses = {
    429: {"model": ErrorBody, "description": "Too many requests from this caller; retry later."}
}
# A body that is not read: one FastAPI cannot decode (not UTF-8), its own 400 before
# validation; one nested too deep (too_deep), refused before routing (shared.http.BodyLimit).
MALFORMED: Responses = {
    400: {
        "model": ErrorBody | ProblemBody,
        "description": "The body cannot be read as JSON, or nests arrays or objects over "
        "32 levels (too_deep).",
    }
}
# Routes that take a JSON body FastAPI reads: what the body alone may earn.
BODY: Responses = {**MALFORMED, **TOO_LARGE}

# A centre's id in a path: the word its routing keys carry (shared.events.RoutingWord),
# checked here so that a bad one is a 422, never an event that cannot be built (500).
CentreId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]{1,64}$")]
