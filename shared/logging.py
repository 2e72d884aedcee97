"""structlog set-up: JSON lines, the correlation id bound per message, and
redaction of personal data before anything is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from shared.tracing import add_trace_ids

REDACTED = "[redacted]"

# Keys whose values are personal data whatever they hold.
PERSONAL_KEYS = frozenset(
    {
        "first_name",
        "last_name",
        "name_patient",
        "patient_name",
        "birth_name",
        "nir",
        "phone",
        "email",
        "address",
        "birth_date",
        "patient",
    }
)
# Keys whose values name staff, never a patient: the reader of a patient's identity (a
# regulator's login, the subject of their token). The access trail must say who read,
# and a login is e-mail-like: it is kept from the e-mail pattern, and only from it (the
# patient's own values, NIR and phone patterns still go).
STAFF_KEYS = frozenset({"reader"})

# Libraries whose DEBUG lines quote the data they carry (configure_logging).
RAW_DATA_LOGGERS = ("aiosqlite", "aiormq")

# NIR: sex digit (3, 4, 7, 8 for special registrations), year, month, département
# (digits or 2A/2B), commune, order, optional key.
_NIR = re.compile(
    r"\b[123478]\s?\d{2}\s?(0[1-9]|1[0-2]|[2-9]\d)\s?(\d{2}|2[AB])\s?\d{3}\s?\d{3}(\s?\d{2})?\b"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# French phone numbers, national or international form, with common separators; and
# any number in international form (intake keeps them in E.164: +262692123456, a
# Belgian +32...), 8 to 15 digits after the +.
_PHONE = re.compile(
    r"(?<!\w)(\+33\s?|0033\s?|0)[1-9]([\s.-]?\d{2}){4}(?!\w)"
    r"|(?<![\w+])\+[1-9](?:[\s.-]?\d){7,14}(?!\w)"
)
# A search typed into a page (a referrer's list searched by a patient's name) travels in
# the URL's query, which the HTTP client logs: its value goes, whatever it holds.
_SEARCH_QUERY = re.compile(r"([?&]q=)[^&#\s\"']+")
_PATIENT_LINK = re.compile(r"\bp1\.[A-Za-z0-9-]{1,36}\.[A-Za-z0-9-]{1,36}\.\d+\.[\w-]+")


class PersonalDataRedactor:
    """Redacts names, birth dates, addresses, NIR, phone numbers and e-mails from a log
    event.

    Known personal keys are blanked whatever their value; the values of ``_sensitive``
    (the identity of the patient in hand, bound by intake) are replaced wherever they
    appear, since a name or an address has no pattern; and every string anywhere in the
    event is scrubbed of NIR, phone and e-mail patterns.
    """

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        # One pattern per event, for every string in it.
        sensitive = _literals(event_dict.pop("_sensitive", None) or ())
        return {k: self._clean(k, v, sensitive) for k, v in event_dict.items()}

    def _clean(self, key: str, value: Any, sensitive: re.Pattern[str] | None) -> Any:
        if key in PERSONAL_KEYS and value not in (None, "", False):
            return REDACTED
        if key in STAFF_KEYS and isinstance(value, str):
            return _scrub(value, sensitive, staff=True)
        return self._scrub(value, sensitive)

    def _scrub(self, value: Any, sensitive: re.Pattern[str] | None) -> Any:
        if isinstance(value, str):
            return _scrub(value, sensitive)
        if isinstance(value, Mapping):
            return {str(k): self._clean(str(k), v, sensitive) for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return [self._scrub(v, sensitive) for v in value]
        if isinstance(value, BaseException):
            return _scrub(repr(value), sensitive)
        return value


def scrub_text(text: str, sensitive: Iterable[object] = ()) -> str:
    """``text`` without personal data: the ``sensitive`` values, and the patterns."""
    return _scrub(text, _literals(sensitive))


def _scrub(text: str, sensitive: re.Pattern[str] | None, staff: bool = False) -> str:
    # The known values first: a pattern replacing part of one (a phone number in an
    # address) would leave the rest of it unmatched.
    if sensitive is not None:
        text = sensitive.sub(REDACTED, text)
    if not staff:
        text = _EMAIL.sub(REDACTED, text)
    text = _NIR.sub(REDACTED, text)
    # A patient's link (shared/patient_link.py) opens their appointment: never logged.
    text = _PATIENT_LINK.sub(REDACTED, text)
    text = _SEARCH_QUERY.sub(lambda found: found.group(1) + REDACTED, text)
    return _PHONE.sub(REDACTED, text)


def _forms(value: object) -> tuple[str, ...]:
    """How a value may read in a log line. A date: ISO, French, and as Python prints it
    (SQLAlchemy's errors quote their parameters so: ``datetime.date(1985, 5, 17)``)."""
    if isinstance(value, date):
        return (value.isoformat(), value.strftime("%d/%m/%Y"), repr(value))
    if isinstance(value, str):
        return (value, value.strip())
    return ()


def _literals(values: Iterable[object]) -> re.Pattern[str] | None:
    """One pattern for every form of the values, taken literally (a name may hold a
    regex's special characters); under 2 characters, a value would match everywhere."""
    if isinstance(values, str | date):  # one value bound alone, not its characters
        values = (values,)
    forms = {form for value in values for form in _forms(value) if len(form) >= 2}
    if not forms:
        return None
    # Longest first: "Dupont-Lajoie" whole, not "Dupont" and a leftover "-Lajoie".
    alternatives = sorted(forms, key=lambda form: (-len(form), form))
    return re.compile("|".join(map(re.escape, alternatives)), re.IGNORECASE)


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    """Route structlog and the standard library (FastStream, SQLAlchemy) through one
    redacting pipeline."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        # The trace a line belongs to (shared.tracing; nothing when tracing is off).
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks quote values (a failed validation echoes its input): format them
        # first, so that the redactor sees them as text.
        structlog.processors.format_exc_info,
        PersonalDataRedactor(),
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Their DEBUG lines carry raw data no redactor can read: aiosqlite logs every
    # statement with its parameters (a contact's names), aiormq every frame with its
    # payload (a message's body). Held at INFO whatever the level asked (issue 34).
    for name in RAW_DATA_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
