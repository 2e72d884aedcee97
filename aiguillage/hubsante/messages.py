"""The messages the door sends on the hub: an EDXL-DE envelope, an RC-DE header and one
use case (RC-REF ack, RS-ERROR, RS-SAS-RDV appointment, RS-EDA-MAJ case update)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

# How long what we send stays meaningful to the hub (dateTimeExpires).
EXPIRES_AFTER = timedelta(days=1)


class ErrorCode(IntEnum):
    """The hub's ErrorCode list (the codes this door answers with)."""

    SENDER_INCONSISTENCY = 200
    INVALID_MESSAGE = 300
    INTERNAL_CLIENT_ERROR = 700
    CASE_ALREADY_EXISTS = 701
    WRONG_MESSAGE_SEQUENCE = 702
    INSUFFICIENT_DATA = 704


def hub_time(value: datetime | None = None) -> str:
    """The hub's date-time: seconds and a numeric offset, no fraction (its pattern)."""
    moment = (value or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return moment.isoformat()


def distribution_id(client_id: str) -> str:
    return f"{client_id}_{uuid.uuid4()}"


def _party(client_id: str) -> dict[str, str]:
    return {"name": client_id.rsplit(".", 1)[-1], "URI": f"hubex:{client_id}"}


def envelope(
    client_id: str, recipient: str, kind: str, use_case: str, content: dict[str, Any]
) -> dict[str, Any]:
    """A whole message from us to ``recipient``: kind Report, Update, Cancel, Ack or Error."""
    identifier = distribution_id(client_id)
    now = datetime.now(UTC)
    message: dict[str, Any] = {
        "messageId": identifier,
        "sender": _party(client_id),
        "sentAt": hub_time(now),
        "kind": kind,
        "status": "Actual",
        "recipient": [_party(recipient)],
        use_case: content,
    }
    return {
        "distributionID": identifier,
        "senderID": client_id,
        "dateTimeSent": hub_time(now),
        "dateTimeExpires": hub_time(now + EXPIRES_AFTER),
        "distributionStatus": "Actual",
        "distributionKind": kind,
        "descriptor": {
            "language": "fr-FR",
            "explicitAddress": {
                "explicitAddressScheme": "hubex",
                "explicitAddressValue": recipient,
            },
        },
        "content": [{"jsonContent": {"embeddedJsonContent": {"message": message}}}],
    }


def ack(client_id: str, recipient: str, received_id: str) -> dict[str, Any]:
    return envelope(client_id, recipient, "Ack", "reference", {"distributionID": received_id})


def error(
    client_id: str,
    recipient: str,
    code: ErrorCode,
    cause: str,
    referenced_id: str,
    source: Any = None,
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "errorCode": {"statusCode": int(code), "statusString": code.name},
        "errorCause": cause,
        "referencedDistributionID": referenced_id,
    }
    if isinstance(source, dict):
        content["sourceMessage"] = source
    return envelope(client_id, recipient, "Error", "error", content)


# A title before the regulator's name in the case's operator label ("Dr. Sophie Bernard").
_TITLE = re.compile(r"^(?:dr|docteur|pr|professeur|mme|m)\.?\s+", re.IGNORECASE)
# RS-SAS-RDV requires a first name: the case's label may give a surname only.
UNKNOWN_FIRST_NAME = "non renseigné"
_REGULATOR_FIELDS = ("regulatorName", "regulatorFirstname", "regulatorEmail")


def regulator(label: str, email: str) -> dict[str, str]:
    """RS-SAS-RDV's regulator block (every field required by the hub's schema) from the
    case's operator label and the SAMU's functional e-mail: never an empty field."""
    if not email.strip():
        raise ValueError("the regulator block needs the SAMU's functional e-mail")
    words = _TITLE.sub("", label.strip()).split() or [label.strip() or "régulateur"]
    return {
        "regulatorName": " ".join(words[1:]) if len(words) > 1 else words[0],
        "regulatorFirstname": words[0] if len(words) > 1 else UNKNOWN_FIRST_NAME,
        "regulatorEmail": email.strip(),
    }


def appointment(
    client_id: str,
    recipient: str,
    *,
    appointment_id: str,
    method: str,
    status: str,
    start: str,
    end: str | None,
    centre_id: str | None,
    centre_name: str | None,
    regulator: dict[str, str],
) -> dict[str, Any]:
    if not all(str(regulator.get(k, "")).strip() for k in _REGULATOR_FIELDS):
        raise ValueError("RS-SAS-RDV's regulator block has an empty field")
    content: dict[str, Any] = {
        "appointmentId": appointment_id,
        "method": method,
        "created": hub_time(),
        "start": hub_time(datetime.fromisoformat(start)),
        "status": status,
        "regulator": regulator,
    }
    if end:
        content["end"] = hub_time(datetime.fromisoformat(end))
    if centre_id:
        # A centre activated by the ARS: its id is Aiguillage's (no FINESS is kept).
        content["organization"] = {"organizationId": centre_id, "name": centre_name or centre_id}
    return envelope(client_id, recipient, "Report", "appointment", content)


def case_note(client_id: str, recipient: str, case_id: str, text: str) -> dict[str, Any]:
    """An update of the LRM's own case with a note the regulator reads: how an
    escalation, a refusal or a waiting list goes back (RS-SAS-RDV has no word for it)."""
    note = {
        "operator": {"role": "AUTRE", "label": "Aiguillage"},
        "medicalNoteId": f"{client_id}.medicalNote.{uuid.uuid4().hex[:12]}",
        "creation": hub_time(),
        "freetext": text,
    }
    return envelope(
        client_id,
        recipient,
        "Update",
        "createCaseHealthUpdate",
        {"caseId": case_id, "medicalNote": [note]},
    )
