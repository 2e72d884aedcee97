"""The ways the notifier reaches people, behind one interface: the outbound adapters
(SMTP e-mail, the SMS gateway, referrers' webhooks, the demos' record), and which of
them the settings choose. Each raises ``TemporaryFailure`` (try again later) or
``PermanentFailure`` (no use trying again)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
import structlog

from shared.events.phone import e164, takes_sms
from shared.settings import Settings
from shared.webhooks import WebhookPolicy, WebhookRefused, check_addresses, check_url

log = structlog.get_logger(__name__)


class TemporaryFailure(Exception):
    pass


class PermanentFailure(Exception):
    pass


class Refused(PermanentFailure):
    """Not sent because a rule says no (a quota, a channel the referrer is not registered
    for, a webhook address): permanent, with a stable ``code``. ``dead_letter``: someone
    has something to mend (a registered webhook), rather than a rule simply applied."""

    def __init__(self, code: str, message: str, *, dead_letter: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.dead_letter = dead_letter


@dataclass(frozen=True)
class Contact:
    first_name: str
    last_name: str
    phone: str | None
    email: str | None
    sms_consent: bool


@dataclass(frozen=True)
class PatientMessage:
    notification_id: str  # the idempotency key a receiver can de-duplicate on
    subject: str
    text: str


class PatientChannel(Protocol):
    name: str

    def reaches(self, contact: Contact) -> bool: ...

    async def send(self, contact: Contact, message: PatientMessage) -> None: ...


class RecordChannel:
    """Keeps the message (in the notifications table) and logs that it was sent:
    for demos, where nobody should get a real SMS."""

    name = "record"

    def reaches(self, contact: Contact) -> bool:
        return True

    async def send(self, contact: Contact, message: PatientMessage) -> None:
        log.info(
            "patient notice recorded", notification_id=message.notification_id, text=message.text
        )


class SmtpEmail:
    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls = username, password, starttls

    def reaches(self, contact: Contact) -> bool:
        return bool(contact.email)

    async def send(self, contact: Contact, message: PatientMessage) -> None:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = contact.email
        mail["Subject"] = message.subject
        # A stable Message-ID: a resend after a crash can be recognised downstream.
        mail["Message-ID"] = f"<{message.notification_id}@aiguillage>"
        mail.set_content(message.text)
        await asyncio.to_thread(self._deliver, mail)

    def _deliver(self, mail: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=15) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username and self.password:
                    smtp.login(self.username, self.password)
                smtp.send_message(mail)
        except smtplib.SMTPResponseException as exc:
            error = f"SMTP {exc.smtp_code} {exc.smtp_error!r}"
            if 400 <= exc.smtp_code < 500:
                raise TemporaryFailure(error) from exc
            raise PermanentFailure(error) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            error = f"SMTP recipients refused {codes}"
            if all(400 <= code < 500 for code in codes):
                raise TemporaryFailure(error) from exc
            raise PermanentFailure(error) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryFailure(f"SMTP: {type(exc).__name__}: {exc}") from exc


class HttpSms:
    """An SMS gateway reached over HTTP: POST {to, text, id} with a bearer key."""

    name = "sms"

    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.url, self.api_key = url, api_key

    def reaches(self, contact: Contact) -> bool:
        return bool(contact.phone) and contact.sms_consent

    async def send(self, contact: Contact, message: PatientMessage) -> None:
        if not takes_sms(contact.phone or ""):
            # Intake refuses SMS consent for a landline (sms_to_landline); a contact kept
            # from before it did is refused here, as a rule applied, not sent into a void.
            raise Refused("sms_not_mobile", "the patient's number is not a mobile")
        headers = {"Idempotency-Key": message.notification_id}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        # E.164, as gateways take it (intake sends it so; a contact kept from before, in
        # its national form, is put so here).
        to = e164(contact.phone or "") or contact.phone
        body = {"to": to, "text": message.text, "id": message.notification_id}
        await post(self.url, json.dumps(body).encode(), headers)


async def post(url: str, body: bytes, headers: dict[str, str]) -> None:
    """POST JSON; 5xx, 429 and network errors are temporary, other 4xx permanent."""
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                url, content=body, headers={"content-type": "application/json", **headers}
            )
    except httpx.HTTPError as exc:
        raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from exc
    _judge(response)


def _judge(response: httpx.Response) -> None:
    if response.status_code >= 500 or response.status_code == 429:
        raise TemporaryFailure(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        raise PermanentFailure(f"HTTP {response.status_code}: {response.text[:200]}")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system's resolver, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class Webhook:
    """A referrer's webhook: the outcome as JSON, signed so that the receiver can check
    it came from us (``X-Aiguillage-Signature: sha256=<HMAC of the body>``).

    The URL is judged at each send (shared/webhooks.py): https outside development, and
    the host resolved here, every address it resolves to allowed. The request then goes
    to the address that was checked, not to the name: the URL carries the IP, the Host
    header and the TLS server name (SNI, and the name the certificate is checked against)
    carry the name. A DNS answer that changes between the check and the connection
    (rebinding) therefore cannot take the request elsewhere; no redirect is followed.
    A refusal is permanent: nothing was sent, and trying again would not change it."""

    def __init__(
        self,
        secret: str,
        *,
        policy: WebhookPolicy | None = None,
        resolver: Resolver = resolve,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.secret = secret
        self.policy = policy or WebhookPolicy()
        self.resolver = resolver
        self.transport = transport  # tests put a MockTransport here

    async def send(self, url: str, notification_id: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, sort_keys=True).encode()
        try:
            _, host, port = check_url(url, self.policy)
            try:
                addresses = await self.resolver(host, port)
            except OSError as exc:  # the name does not resolve now: DNS may come back
                raise TemporaryFailure(f"webhook host does not resolve: {exc}") from exc
            address = check_addresses(host, addresses, self.policy)
        except WebhookRefused as exc:
            raise Refused(exc.code, str(exc), dead_letter=True) from exc
        pinned = httpx.URL(url).copy_with(host=str(address))
        headers = {
            "content-type": "application/json",
            "Host": httpx.URL(url).netloc.decode("ascii"),
            "X-Aiguillage-Signature": signature(self.secret, body),
            "X-Aiguillage-Delivery": notification_id,
        }
        try:
            async with httpx.AsyncClient(
                timeout=10, transport=self.transport, follow_redirects=False
            ) as client:
                response = await client.post(
                    pinned, content=body, headers=headers, extensions={"sni_hostname": host}
                )
        except httpx.HTTPError as exc:
            raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from exc
        _judge(response)


def patient_channels(settings: Settings) -> list[PatientChannel]:
    """The patient channels ``AIGUILLAGE_PATIENT_CHANNELS`` names, in its order."""
    channels: list[PatientChannel] = []
    for name in settings.patient_channels:
        if name == "record":
            channels.append(RecordChannel())
        elif name == "email":
            channels.append(
                SmtpEmail(
                    settings.smtp_host,
                    settings.smtp_port,
                    settings.mail_from,
                    settings.smtp_username,
                    settings.smtp_password,
                    settings.smtp_starttls,
                )
            )
        elif name == "sms":
            if not settings.sms_gateway_url:
                raise ValueError("AIGUILLAGE_SMS_GATEWAY_URL is needed for the sms channel")
            channels.append(HttpSms(settings.sms_gateway_url, settings.sms_api_key))
        else:
            raise ValueError(f"unknown patient channel {name!r} (record, email, sms)")
    return channels


def oncall_channels(settings: Settings) -> list[PatientChannel]:
    """How the ARS's on-call contacts are reached: e-mail, and SMS where a gateway is
    set (whatever the patients' channels are)."""
    channels: list[PatientChannel] = [
        SmtpEmail(
            settings.smtp_host,
            settings.smtp_port,
            settings.mail_from,
            settings.smtp_username,
            settings.smtp_password,
            settings.smtp_starttls,
        )
    ]
    if settings.sms_gateway_url:
        channels.append(HttpSms(settings.sms_gateway_url, settings.sms_api_key))
    return channels
