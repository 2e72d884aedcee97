"""The patient's link: a signed, expiring key to one appointment, with no log-in.

The appointment notice (SMS, e-mail, the referrer's printed notice) carries
``<AIGUILLAGE_PATIENT_LINK_BASE_URL>/patient/<token>``. The token names the appointment
and its referral, until when it works (the appointment's end), and carries an HMAC of
all of it under ``AIGUILLAGE_PATIENT_LINK_KEY``::

    p1.<appointment id>.<referral id>.<expiry, Unix seconds>.<signature>

The token is the patient's credential: the service that acts on it (intake cancels
the referral, the scheduler moves the appointment, and reads it for the page) checks
it itself with :func:`verify_link`, then checks against its own records that the
appointment is still the referral's current one; nothing a form or a caller says
besides the token is believed. The token is never logged (it opens an appointment).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared.settings import Settings

VERSION = "p1"
# Our ids are UUIDs: letters, digits and dashes, no dot (the separator).
_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")
# The longest a well-formed token can be (ids of 36, ten-digit expiry, 43 of signature).
MAX_TOKEN_LENGTH = 140


class LinkRefused(Exception):
    """Why a link is not taken. ``expired`` tells a link that was genuine but is past
    its time (410 Gone) from a forged, altered or malformed one (403)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class PatientLink:
    appointment_id: str
    referral_id: str
    expires: int  # Unix seconds


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _sign(key: str, body: str) -> str:
    # A key derived for patient links only: a signature made for another purpose
    # (bearer tokens, webhooks) never passes for a link, even under the same secret.
    derived = hmac.new(key.encode(), b"aiguillage-patient-link-v1", hashlib.sha256).digest()
    return _b64(hmac.new(derived, body.encode(), hashlib.sha256).digest())


def issue_link(key: str, appointment_id: str, referral_id: str, expires: datetime | int) -> str:
    """The token for one appointment, valid until ``expires`` (its end)."""
    if not key:
        raise ValueError("a patient link needs a key")
    for value in (appointment_id, referral_id):
        if not _ID.match(value):
            raise ValueError("an appointment or referral id of letters, digits and dashes")
    expiry = int(expires.timestamp()) if isinstance(expires, datetime) else int(expires)
    body = f"{VERSION}.{appointment_id}.{referral_id}.{expiry}"
    return f"{body}.{_sign(key, body)}"


def verify_link(key: str, token: str, *, now: float | None = None) -> PatientLink:
    """What a genuine, unexpired token names; :class:`LinkRefused` otherwise."""
    if not key:
        raise LinkRefused("no key to check patient links with")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise LinkRefused("malformed link")
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != VERSION:
        raise LinkRefused("malformed link")
    _, appointment_id, referral_id, expiry_text, signature = parts
    body, _, _ = token.rpartition(".")
    # The signature first: nothing an unsigned token says is worth acting on.
    if not hmac.compare_digest(_sign(key, body).encode(), signature.encode()):
        raise LinkRefused("the link's signature is invalid")
    if not (_ID.match(appointment_id) and _ID.match(referral_id) and expiry_text.isdigit()):
        raise LinkRefused("malformed link")
    expiry = int(expiry_text)
    if expiry <= (time.time() if now is None else now):
        raise LinkRefused("the link has expired", expired=True)
    return PatientLink(appointment_id, referral_id, expiry)


def link_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/patient/{token}"


def patient_link_for(settings: Settings) -> Callable[[str, str, datetime], str]:
    """The patient's link the notifier puts in each appointment notice: (appointment id,
    referral id, the appointment's end) -> its URL.

    Signed where the notice is written, with ``AIGUILLAGE_PATIENT_LINK_KEY``; valid until
    the appointment's end. A moved appointment gets a new notice with a new link; the old
    one stops working with the old appointment."""

    def link(appointment_id: str, referral_id: str, end: datetime) -> str:
        token = issue_link(settings.patient_link_key, appointment_id, referral_id, end)
        return link_url(settings.patient_link_base_url, token)

    return link


# The header a caller (the console) passes the patient's token in to a service: a
# header rather than the URL, so that no access log writes it down.
HEADER = "X-Patient-Link"
