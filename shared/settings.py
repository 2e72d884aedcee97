"""Settings read from the environment (prefix ``AIGUILLAGE_``).

Every service reads the same settings class and uses the part it needs, so one
``.env`` or one set of variables configures a whole deployment.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServiceName(StrEnum):
    INTAKE = "intake"
    REGULATION = "regulation"
    SCHEDULER = "scheduler"
    NOTIFIER = "notifier"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIGUILLAGE_", env_file=".env", extra="ignore")

    broker_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/", description="AMQP URL of the RabbitMQ broker."
    )
    namespace: str = Field(
        "aiguillage",
        description="Prefix of every exchange and queue, so that deployments and test runs "
        "sharing a broker do not collide.",
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
    )
    data_dir: Path = Field(
        Path("data"), description="Folder of the SQLite files when no database URL is given."
    )
    intake_database_url: str | None = Field(None, description="Intake's database (SQLAlchemy URL).")
    regulation_database_url: str | None = Field(None, description="Regulation's database.")
    scheduler_database_url: str | None = Field(None, description="Scheduler's database.")
    notifier_database_url: str | None = Field(None, description="Notifier's database.")

    http_host: str = Field("127.0.0.1", description="Interface the services' HTTP APIs listen on.")
    intake_http_port: int | None = Field(8001, description="Intake's HTTP port (empty: no HTTP).")
    regulation_http_port: int | None = Field(8002, description="Regulation's HTTP port.")
    scheduler_http_port: int | None = Field(8003, description="The scheduler's HTTP port.")
    notifier_http_port: int | None = Field(8004, description="The notifier's HTTP port.")

    log_level: str = Field("INFO", description="Log level.")
    log_json: bool = Field(True, description="JSON log lines (false: readable console lines).")

    prefetch: int = Field(
        32,
        ge=1,
        description="Unacknowledged deliveries a consumer holds at once (its concurrency).",
    )
    max_deliveries: int = Field(
        5,
        ge=1,
        description="Tries of a message that fails for a possibly temporary reason "
        "before it is dead-lettered with its error.",
    )
    retry_backoff_seconds: float = Field(
        0.5, ge=0, description="First wait before a failed message is handed back; doubles per try."
    )
    outbox_poll_seconds: float = Field(
        0.5,
        gt=0,
        description="How often the outbox relay looks for events committed by "
        "another process (events committed by its own process are relayed at once).",
    )
    outbox_batch: int = Field(200, ge=1, description="Events the outbox relay publishes per batch.")
    outbox_high_water: int = Field(
        2000,
        ge=1,
        description="Events staged and not yet relayed at which the service's consumers "
        "pause (until half are relayed), so that a backlog stays in the broker's queues.",
    )

    broker_operators: Annotated[list[str], NoDecode] = Field(
        ["guest"],
        description="Broker users trusted as operators (administrators): a door believes "
        "what their messages say of the actor they act for; comma-separated.",
    )
    broker_user_suffix: str = Field(
        "",
        description="Suffix of this deployment's broker users (`aiguillage broker provision "
        "--user-suffix`): a door maps `referrer-<id><suffix>` to referrer <id>.",
    )
    max_message_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Largest message a door takes from outside (larger ones are refused).",
    )

    pseudonym_secret: str = Field(
        "change-me-in-production",
        description="Secret key of the HMAC that turns a patient's identity into the "
        "pseudonymous reference carried downstream.",
    )

    auth_secret: str = Field(
        "change-me-too",
        description="Key of the HMAC in the per-actor bearer tokens of the HTTP APIs "
        "(issue them with `aiguillage token`).",
    )

    patient_channels: Annotated[list[str], NoDecode] = Field(
        ["record"],
        description="How the notifier reaches patients: any of record (a table and the "
        "log, for demos), email, sms; comma-separated.",
    )
    smtp_host: str = Field("127.0.0.1", description="SMTP server for e-mails to patients.")
    smtp_port: int = Field(25, description="SMTP port.")
    smtp_username: str | None = Field(None, description="SMTP user, if the server wants one.")
    smtp_password: str | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    mail_from: str = Field("ne-pas-repondre@aiguillage.example", description="Sender address.")
    sms_gateway_url: str | None = Field(None, description="HTTP SMS gateway (POST JSON).")
    sms_api_key: str | None = Field(None, description="Bearer key of the SMS gateway.")
    webhook_secret: str = Field(
        "change-me-webhooks",
        description="Key of the HMAC-SHA256 signature (X-Aiguillage-Signature) on webhooks.",
    )
    notify_max_attempts: int = Field(5, ge=1, description="Tries of a notification.")
    notify_backoff_seconds: float = Field(
        1.0, ge=0, description="First wait before a failed notification is tried again; doubles."
    )

    travel_weight: float = Field(
        1.0, ge=0, description="Scheduler cost of one kilometre between patient and centre."
    )
    wait_weight: float = Field(
        0.1, ge=0, description="Scheduler cost of one minute of waiting for the slot."
    )
    max_travel_km: float = Field(
        60.0, gt=0, description="Farthest centre the scheduler proposes to a patient."
    )
    candidate_centres: int = Field(
        8, ge=1, description="Nearest centres the scheduler weighs for each patient."
    )
    saturation_threshold: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Occupancy of a département's next 24 hours that "
        "raises a capacity.alert for the ARS.",
    )

    @field_validator(
        "intake_http_port",
        "regulation_http_port",
        "scheduler_http_port",
        "notifier_http_port",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # AIGUILLAGE_<SERVICE>_HTTP_PORT= (empty) turns the service's HTTP API off.
        return None if value == "" else value

    @field_validator("patient_channels", "broker_operators", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def http_port(self, service: ServiceName | str) -> int | None:
        port: int | None = getattr(self, f"{ServiceName(service).value}_http_port")
        return port

    def database_url(self, service: ServiceName | str) -> str:
        url: str | None = getattr(self, f"{ServiceName(service).value}_database_url")
        if url:
            return url
        return f"sqlite+aiosqlite:///{self.data_dir / f'{ServiceName(service).value}.db'}"


@cache
def get_settings() -> Settings:
    return Settings()
