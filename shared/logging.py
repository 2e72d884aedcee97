"""structlog set-up: JSON lines, the correlation id bound per message, and
redaction of personal data before anything is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

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

# NIR: sex digit, year, month, département (digits or 2A/2B), commune, order, optional key.
_NIR = re.compile(
    r"\b[12]\s?\d{2}\s?(0[1-9]|1[0-2]|[2-9]\d)\s?(\d{2}|2[AB])\s?\d{3}\s?\d{3}(\s?\d{2})?\b"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# French phone numbers, national or international form, with common separators.
_PHONE = re.compile(r"(?<!\w)(\+33\s?|0033\s?|0)[1-9]([\s.-]?\d{2}){4}(?!\w)")


class PersonalDataRedactor:
    """Redacts names, NIR, phone numbers and e-mails from a log event.

    Known personal keys are blanked whatever their value; every string anywhere in
    the event is scrubbed of NIR, phone and e-mail patterns; and the values of
    ``sensitive`` (names of the patients in hand, bound by intake) are replaced
    wherever they appear, since a name has no pattern.
    """

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        names = event_dict.pop("_sensitive", ())
        return {k: self._clean(k, v, names) for k, v in event_dict.items()}

    def _clean(self, key: str, value: Any, names: tuple[str, ...]) -> Any:
        if key in PERSONAL_KEYS and value not in (None, "", False):
            return REDACTED
        return self._scrub(value, names)

    def _scrub(self, value: Any, names: tuple[str, ...]) -> Any:
        if isinstance(value, str):
            return scrub_text(value, names)
        if isinstance(value, Mapping):
            return {str(k): self._clean(str(k), v, names) for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return [self._scrub(v, names) for v in value]
        if isinstance(value, BaseException):
            return scrub_text(repr(value), names)
        return value


def scrub_text(text: str, names: tuple[str, ...] = ()) -> str:
    text = _EMAIL.sub(REDACTED, text)
    text = _NIR.sub(REDACTED, text)
    text = _PHONE.sub(REDACTED, text)
    for name in names:
        if len(name) >= 2:
            text = re.sub(re.escape(name), REDACTED, text, flags=re.IGNORECASE)
    return text


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    """Route structlog and the standard library (FastStream, SQLAlchemy) through one
    redacting pipeline."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
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
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
