"""Settings read from the environment (prefix ``AIGUILLAGE_``).

Every service reads the same settings class and uses the part it needs, so one
``.env`` or one set of variables configures a whole deployment.
"""

from __future__ import annotations

import ipaddress
import json
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Self
from urllib.parse import unquote, urlsplit

import structlog
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServiceName(StrEnum):
    INTAKE = "intake"
    REGULATION = "regulation"
    SCHEDULER = "scheduler"
    NOTIFIER = "notifier"


class Environment(StrEnum):
    """Development accepts the public development secrets (with a warning); production
    refuses to start on them."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


# The settings that are secrets: a service or the console in production refuses to start
# when one is missing, a known default or short. `aiguillage secrets generate` writes them.
SECRET_SETTINGS = (
    "auth_secret",
    "webhook_secret",
    "pseudonym_secret",
    "patient_link_key",
    "identity_kek",
    "identity_lookup_key",
)
# Secrets that may hold several values (older token keys still accepted): each is checked.
SECRET_LIST_SETTINGS = ("auth_keys",)
# 32 bytes (as UTF-8): what secrets.token_urlsafe(24) and more give; below it a key is
# guessable.
MIN_SECRET_LENGTH = 32
# Values published in this repository (the development defaults, the old compose file's):
# whoever reads the code knows them.
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "change-me",
        "change-me-too",
        "change-me-webhooks",
        "change-me-patient-links",
        "change-me-identity-kek",
        "change-me-identity-lookup",
        "change-me-in-production",
        "changeme",
        "secret",
    }
)
GENERATE_COMMAND = "aiguillage secrets generate"


def env_name(field: str) -> str:
    return f"AIGUILLAGE_{field.upper()}"


# The operator's broker user of a fresh RabbitMQ (and what an AMQP URL without a user
# logs in as): its password is public, and it may do anything.
GUEST = "guest"
LOOPBACK_HOSTS = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class UnsafeSecrets(Exception):
    """Production with secrets anyone may know, or settings that expose the deployment:
    the one message names each variable and what is wrong with it."""

    def __init__(self, component: str, problems: dict[str, str]) -> None:
        self.component = component
        self.problems = problems
        listed = "; ".join(f"{name} {why}" for name, why in problems.items())
        fixes = []
        if any(_is_secret_variable(name) for name in problems):
            fixes.append(f"make fresh secrets with `{GENERATE_COMMAND}` (it writes .env)")
        if not all(_is_secret_variable(name) for name in problems):
            fixes.append("set the other variables as said")
        fix = ", ".join(fixes)
        super().__init__(
            f"{component} refuses to start in production (AIGUILLAGE_ENVIRONMENT=production): "
            f"{listed}. {fix[:1].upper()}{fix[1:]}, or set AIGUILLAGE_ENVIRONMENT=development "
            "on a development machine"
        )


# What production refuses, whatever its name says: a service or the console stops on it.
UnsafeSettings = UnsafeSecrets


def _is_secret_variable(name: str) -> bool:
    return name in {env_name(f) for f in (*SECRET_SETTINGS, *SECRET_LIST_SETTINGS)}


# Once per process: every start of a runtime in one process (tests, the in-memory demo)
# would otherwise repeat it.
_warned_development = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIGUILLAGE_", env_file=".env", extra="ignore")

    environment: Environment = Field(
        Environment.PRODUCTION,
        description="development: the public development secrets are accepted, with a "
        "warning; production (the default, safe by default): a service or the console "
        "refuses to start on a missing, known or short secret.",
    )

    broker_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/", description="AMQP URL of the RabbitMQ broker."
    )
    broker_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="A RabbitMQ cluster: every node's AMQP URL, comma-separated. A service "
        "connects to one that answers and moves to another when its node goes "
        "(shared.broker_nodes). Empty: AIGUILLAGE_BROKER_URL alone; set, it is the "
        "default of AIGUILLAGE_BROKER_URL (its first).",
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
    console_database_url: str | None = Field(
        None,
        description="The web console's database: its people's accounts, sessions, log-in "
        "failures and audit trail (default: SQLite console.db in the data folder).",
    )
    console_secure_cookies: bool = Field(
        True,
        description="Mark the console's cookies Secure (sent over HTTPS only); false only "
        "for plain http on localhost in development.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Reverse proxies (addresses or networks, comma-separated) whose "
        "X-Forwarded-For and X-Forwarded-Proto the console and the services believe; from "
        "any other peer the socket's address is the client's and its scheme the request's.",
    )

    http_host: str = Field("127.0.0.1", description="Interface the services' HTTP APIs listen on.")
    services_host: str | None = Field(
        None,
        description="Where the console reaches each service's HTTP API: a host name with "
        "{service} in it (Kubernetes: '{service}', each service's Service); empty: "
        "AIGUILLAGE_HTTP_HOST (one host for all).",
    )
    intake_http_port: int | None = Field(8001, description="Intake's HTTP port (empty: no HTTP).")
    regulation_http_port: int | None = Field(8002, description="Regulation's HTTP port.")
    scheduler_http_port: int | None = Field(8003, description="The scheduler's HTTP port.")
    notifier_http_port: int | None = Field(8004, description="The notifier's HTTP port.")
    port_file_dir: Path | None = Field(
        None,
        description="Where a service writes the HTTP port it listens on, once it listens "
        "(`<dir>/<service>.port`): with a port of 0 the system picks a free one, and "
        "whoever started the service reads it there (tests, the demo). Empty: no file.",
    )

    log_level: str = Field("INFO", description="Log level.")
    log_json: bool = Field(True, description="JSON log lines (false: readable console lines).")
    tracing: bool = Field(
        False,
        description="Send OpenTelemetry traces to the OTLP collector (shared/tracing.py); also "
        "on when OTEL_EXPORTER_OTLP_ENDPOINT is set.",
    )

    emit_versions: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict,
        description="The version this service emits of an event type, while its consumers "
        "are older (`referral.regulated=1,slot.assigned=1`); unnamed types at their newest "
        "(shared/events/versions.py). A type or version it cannot emit: not started.",
    )

    prefetch: int = Field(
        32,
        ge=1,
        description="Unacknowledged deliveries a consumer holds at once (its concurrency).",
    )
    batch_max: int = Field(
        32,
        ge=1,
        description="Group commit: deliveries a consumer handles in one transaction at "
        "most (at most its prefetch; 1: one transaction per delivery).",
    )
    batch_window_ms: float = Field(
        2.0,
        ge=0,
        le=100,
        description="Group commit: how long the first delivery of a batch waits at most "
        "for the others the broker has already sent.",
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
    # Issue 28: each SAMU (Centre 15) sees and decides on its own départements only.
    samu_departements: str = Field(
        "",
        description="SAMUs whose départements are not (only) their own: "
        "`samu-75=75,92; samu-13=13,04` (each samu-<département> not named covers its "
        "own département only).",
    )
    centre_15_national: bool = Field(
        False,
        description="Enable the national Centre 15 (token subject `national`, broker user "
        "`centre_15`): every département; each use logged. Off: refused.",
    )
    max_message_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Largest message a door takes from outside (larger ones are refused).",
    )
    max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Largest request body an HTTP API takes (413 past it, read as it streams).",
    )
    referrer_per_minute: int = Field(
        60, ge=1, description="Submissions a referrer may make per minute, both doors (429 past)."
    )
    referrer_per_day: int = Field(
        2000, ge=1, description="Submissions a referrer may make per day, both doors (429 past)."
    )
    contact_messages_per_day: int = Field(
        5,
        ge=1,
        description="Messages the notifier sends one patient's phone or e-mail address a day "
        "(past it: not sent, notification.failed contact_quota).",
    )

    pseudonym_secret: str = Field(
        "change-me-in-production",
        description="Secret key of the HMAC that turns a patient's identity into the "
        "pseudonymous reference carried downstream.",
    )

    # Identity at rest (shared/sealing.py, issue 34): the KEK wraps intake's data keys,
    # the lookup key hashes the values looked up by equality (the NIR).
    identity_kek: str = Field(
        "change-me-identity-kek",
        description="Key-encryption key of the patients' identities at rest: it wraps "
        "intake's data keys (AES-256-GCM). AIGUILLAGE_IDENTITY_KEK_FILE takes precedence.",
    )
    identity_kek_file: Path | None = Field(
        None,
        description="A file holding the key-encryption key (a mounted secret), instead of "
        "AIGUILLAGE_IDENTITY_KEK.",
    )
    identity_lookup_key: str = Field(
        "change-me-identity-lookup",
        description="Key of the HMAC-SHA256 that intake compares for equality lookups on "
        "an identity (the NIR), instead of the plain value.",
    )

    auth_secret: str = Field(
        "change-me-too",
        description="Key of the HMAC in the per-actor bearer tokens of the HTTP APIs "
        "(issue them with `aiguillage token`).",
    )
    # Token keys and lifetimes (shared/auth.py). auth_secret stays the first key: the
    # one that signs; these are accepted too, so that keys rotate without a cut.
    auth_keys: Annotated[list[str], NoDecode] = Field(
        [],
        description="Older keys still accepted on bearer tokens while they rotate "
        "(comma-separated; AIGUILLAGE_AUTH_SECRET signs).",
    )
    token_ttl_seconds: int = Field(
        3600,
        ge=1,
        description="Lifetime of the bearer tokens `aiguillage token` and the "
        "console issue (default for `--ttl`).",
    )
    revoked_tokens: Annotated[list[str], NoDecode] = Field(
        [],
        description="Ids of bearer tokens refused before they expire (comma-separated; "
        "each service reads it at start).",
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
    oncall_contacts: str | None = Field(
        None,
        description="The ARS's on-call contacts per département, told of saturation alerts "
        'by e-mail and SMS: JSON ({"35": [{"email": "...", "phone": "+336..."}]}) or the '
        "path of a file holding it. Personal data: never logged.",
    )
    webhook_secret: str = Field(
        "change-me-webhooks",
        description="Key of the HMAC-SHA256 signature (X-Aiguillage-Signature) on webhooks.",
    )
    patient_link_key: str = Field(
        "change-me-patient-links",
        description="Key of the HMAC that signs the patient's link in the appointment "
        "notice (shared/patient_link.py): the link is the patient's only key to their "
        "appointment.",
    )
    patient_link_base_url: str = Field(
        "http://127.0.0.1:8080",
        description="Public address of the console, where the patient's link leads "
        "(<url>/patient/<token>).",
    )
    notify_max_attempts: int = Field(5, ge=1, description="Tries of a notification.")
    notify_backoff_seconds: float = Field(
        1.0, ge=0, description="First wait before a failed notification is tried again; doubles."
    )
    # Retention (issue 34, shared/retention.py): how long past the referral's final
    # state each category is kept; the pseudonymous record (state, times, centre,
    # priority) stays for the ARS's figures.
    retention_identity_days: int = Field(
        92,
        ge=1,
        description="Identity and contact (name, NIR, birth date, phone, e-mail, address): "
        "days kept after the referral's final state (3 months).",
    )
    retention_clinical_days: int = Field(
        92,
        ge=1,
        description="Clinical details (symptoms, signs, risk factors, a decision's reasons "
        "and comment): days kept after the referral's final state (3 months).",
    )
    retention_messaging_days: int = Field(
        7,
        ge=1,
        description="Outbox rows once published and inbox rows once processed: days kept "
        "(the deduplication window: a duplicate comes back within it).",
    )
    retention_access_log_days: int = Field(
        365,
        ge=1,
        description="The log of identity reads (who read whose file): days kept (a year, "
        "for the DPO to answer a patient's or the CNIL's question).",
    )
    retention_console_audit_days: int = Field(
        365,
        ge=1,
        description="The console's own traces (its audit of actions, failed log-ins, ended "
        "sessions): days kept (a year: the CNIL's 6 months to 1 year for access logs).",
    )
    retention_disabled_account_days: int = Field(
        365,
        ge=1,
        description="A disabled console account (name, login, role): days kept after it was "
        "disabled (as long as the audit that names it), then deleted.",
    )
    retention_dead_letter_days: int = Field(
        30,
        ge=1,
        description="Dead letters: days kept (a message TTL policy on the dead-letter "
        "queues, docs/operations/settings.md).",
    )
    purge_batch: int = Field(
        200, ge=1, description="Rows a purge deletes per transaction (`aiguillage purge`)."
    )
    purge_pause_ms: float = Field(
        50.0, ge=0, description="A purge's pause between two batches, so that others go first."
    )
    purge_interval_minutes: float = Field(
        360.0,
        ge=0,
        description="How often each service purges what is past its retention (0: never; "
        "then `aiguillage purge` or a CronJob does).",
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
        40, ge=1, description="Nearest centres the scheduler weighs for each patient."
    )
    booking_lead_minutes: float = Field(
        30.0,
        ge=0,
        description="Scheduler: no slot is offered or booked that starts sooner than this "
        "after the booking plus the patient's estimated travel to the centre (by the "
        "area of their commune: Paris and petite couronne, other urban, rural; "
        "services/scheduler/domain/reach.py).",
    )
    joint_batch: int = Field(
        8,
        ge=1,
        le=64,
        description="Scheduler: new referrals of one consumer batch placed jointly (1: one "
        "by one); the joint assignment's work grows with the square of it.",
    )
    saturation_threshold: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Occupancy of a département's next 24 hours that "
        "raises a capacity.alert for the ARS.",
    )
    # The saturation forecast (issue 31, services/scheduler/domain/forecast.py).
    forecast_alert_hours: float = Field(
        24.0,
        gt=0,
        description="Scheduler: a capacity.alert (kind forecast) is raised when a "
        "département's forecast median hours until full falls below this.",
    )
    forecast_every_seconds: float = Field(
        900.0,
        gt=0,
        description="Scheduler: how often each département's capacity.forecast is "
        "computed again (and on every capacity change).",
    )
    # The scheduler's online policy (services/scheduler/domain/policy.py says why).
    policy_forecast_minutes: float = Field(
        60.0,
        ge=0,
        description="Scheduler: how far ahead the recent booking rate of a centre's area is "
        "assumed to go on, to price its early slots (0: no price, nearest-first).",
    )
    policy_rate_window_minutes: float = Field(
        120.0, gt=0, description="Scheduler: the recent past the booking rates are learned from."
    )
    policy_rate_floor_minutes: float = Field(
        20.0,
        gt=0,
        description="Scheduler: the shortest span a booking rate is counted over when the "
        "recent bookings began less than a window ago.",
    )
    policy_area_km: float = Field(
        0.0, ge=0, description="Scheduler: centres this close share one booking rate (an area)."
    )
    policy_reserve_minutes: float = Field(
        360.0,
        ge=0,
        description="Scheduler: the window whose last free places at each centre are kept "
        "for urgent priorities, as many as its recent urgent bookings predict (0: none).",
    )
    policy_reserve_factor: float = Field(
        0.2, ge=0, description="Scheduler: reserved places per urgent booking predicted."
    )
    policy_few_options: int = Field(
        15,
        ge=0,
        description="Scheduler: a patient with at most this many candidate centres in reach "
        "has few options; centres they book lately hold places for them (0: no such holds).",
    )
    policy_few_hold_minutes: float = Field(
        720.0,
        ge=0,
        description="Scheduler: the window whose latest places are held for few-option "
        "patients (0: no such holds).",
    )
    policy_few_hold_factor: float = Field(
        0.7,
        ge=0,
        description="Scheduler: places held from patients with more options, per "
        "few-option booking predicted over that window.",
    )
    policy_few_urgent_factor: float = Field(
        1.0,
        ge=0,
        description="Scheduler: places held from routine patients, per urgent few-option "
        "booking predicted over that window.",
    )

    # The Hub Santé door (aiguillage/hubsante): Centre 15's LRM on the SAMU's hub.
    hubsante_url: str = Field(
        "",
        description="AMQP URL (with its vhost) of the Hub Santé broker the door connects "
        "to; empty: the door is off.",
    )
    hubsante_client_id: str = Field(
        "fr.health.aiguillage",
        description="Our Hub Santé client id: the routing key we publish with, the prefix "
        "of our distributionIDs and of the queues we read (<id>.message).",
        pattern=r"^([a-zA-Z0-9_-]+\.){2,}[a-zA-Z0-9_-]+$",
    )
    hubsante_samu: str = Field(
        "",
        description="The SAMU whose LRM the Hub Santé door relays (samu-35): the door "
        "acts for it (empty: for the national Centre 15, through an operator's user).",
        pattern=r"^(samu-[A-Za-z0-9_-]{1,59})?$",
    )
    hubsante_regulator_email: str = Field(
        "",
        description="The SAMU's functional e-mail for its regulators (regulation@samu35.fr), "
        "sent in every RS-SAS-RDV's regulator block (the hub requires it): required "
        "outside development, where the door refuses to start without it.",
        pattern=r"^([^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,63})?$",
    )
    hubsante_database_url: str | None = Field(
        None,
        description="The Hub Santé door's database: case id <-> referral id and the "
        "sender (default: SQLite hubsante.db in the data folder).",
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

    @field_validator("patient_channels", "broker_operators", "broker_urls", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("emit_versions", mode="before")
    @classmethod
    def _type_equals_version(cls, value: object) -> object:
        # "referral.regulated=1,slot.assigned=1" (or a JSON object, or a dict).
        if isinstance(value, str):
            if value.strip().startswith("{"):
                return json.loads(value)
            pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError("expected type=version pairs, comma-separated")
            return {name.strip(): version.strip() for name, version in pairs}
        return value

    @field_validator("samu_departements")
    @classmethod
    def _samu_departements(cls, value: str) -> str:
        from shared.territory import parse_samu_departements  # shared.territory reads geo

        parse_samu_departements(value)  # TerritoryError (a ValueError): not started
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for part in value:
                ipaddress.ip_network(str(part), strict=False)  # ValueError: not one
        return value

    @field_validator("auth_keys", "revoked_tokens", mode="before")
    @classmethod
    def _comma_separated_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _cluster_defaults_the_url(self) -> Self:
        # What knows one address only (the demo's waits, tools) gets the cluster's first.
        if self.broker_urls and "broker_url" not in self.model_fields_set:
            self.broker_url = self.broker_urls[0]
        return self

    @property
    def broker_nodes(self) -> list[str]:
        """The addresses to connect to: the cluster's nodes, or the one broker."""
        return list(self.broker_urls) or [self.broker_url]

    def http_port(self, service: ServiceName | str) -> int | None:
        port: int | None = getattr(self, f"{ServiceName(service).value}_http_port")
        return port

    def console_database(self) -> str:
        return self.console_database_url or f"sqlite+aiosqlite:///{self.data_dir / 'console.db'}"

    def database_url(self, service: ServiceName | str) -> str:
        url: str | None = getattr(self, f"{ServiceName(service).value}_database_url")
        if url:
            return url
        return f"sqlite+aiosqlite:///{self.data_dir / f'{ServiceName(service).value}.db'}"

    def secret_problems(self) -> dict[str, str]:
        """What is wrong with each secret (by its variable), or nothing."""
        problems: dict[str, str] = {}
        for field in SECRET_SETTINGS:
            value: str = getattr(self, field)
            if field == "identity_kek" and self.identity_kek_file is not None:
                continue  # read from its file (shared/sealing.py)
            if field not in self.model_fields_set:
                problems[env_name(field)] = "is not set (its public development default)"
            elif (why := _weakness(value)) is not None:
                problems[env_name(field)] = why
        for field in SECRET_LIST_SETTINGS:
            values: list[str] = getattr(self, field, [])
            weak = [why for v in values if (why := _weakness(v)) is not None]
            if weak:
                problems[env_name(field)] = f"holds a key that {weak[0].removeprefix('is ')}"
        for name, why in self._shared_secrets().items():
            problems.setdefault(name, why)
        return problems

    def _shared_secrets(self) -> dict[str, str]:
        """A secret equal to another: one leak opens both (a token key that also signs
        patients' links), and rotating one changes the other."""
        problems: dict[str, str] = {}
        seen: dict[str, str] = {}
        owned = [(env_name(f), str(getattr(self, f))) for f in SECRET_SETTINGS]
        # An older token key is the token key's own, but no other secret's.
        others = {v for f, v in owned if f != env_name("auth_secret")}
        for field, value in owned:
            if value and value in seen:
                problems[field] = f"equals {seen[value]} (each secret must be its own)"
            seen.setdefault(value, field)
        if any(key in others for key in self.auth_keys):
            problems[env_name("auth_keys")] = "holds a key equal to another secret"
        return problems

    def setting_problems(self) -> dict[str, str]:
        """What is wrong, for production, with the settings that are not secrets: each
        opens the deployment to whoever knows the defaults."""
        problems: dict[str, str] = {}
        if not self.console_secure_cookies:
            problems[env_name("console_secure_cookies")] = (
                "is false (the session cookie would travel over plain http): set it to true"
            )
        for field, urls in (("broker_url", [self.broker_url]), ("broker_urls", self.broker_urls)):
            if any(_broker_user(url) == GUEST for url in urls):
                problems[env_name(field)] = (
                    f"logs in as {GUEST!r} (the public administrator): give each service "
                    "its own broker user"
                )
        if GUEST in self.broker_operators:
            problems[env_name("broker_operators")] = (
                f"trusts {GUEST!r}, whose password is public: list the administrators only"
            )
        if (why := _link_base_problem(self.patient_link_base_url)) is not None:
            problems[env_name("patient_link_base_url")] = why
        return problems

    def production_problems(self) -> dict[str, str]:
        """Everything production refuses: the secrets, then the other settings."""
        return {**self.secret_problems(), **self.setting_problems()}

    def check_secrets(self, component: str) -> None:
        """At the start of a service or the console: in production, raise UnsafeSecrets
        when a secret or a setting is unsafe (production_problems); in development,
        warn once and go on."""
        global _warned_development
        problems = self.production_problems()
        if not problems:
            return
        if self.environment is Environment.PRODUCTION:
            raise UnsafeSecrets(component, problems)
        if not _warned_development:
            _warned_development = True
            structlog.get_logger(__name__).warning(
                "development settings in use: never in production",
                variables=sorted(problems),
                generate=GENERATE_COMMAND,
            )


def _weakness(value: str) -> str | None:
    if not value:
        return "is empty"
    if value in KNOWN_DEFAULT_SECRETS:
        return "is a known default"
    if len(value.encode()) < MIN_SECRET_LENGTH:
        return f"is shorter than {MIN_SECRET_LENGTH} bytes"
    return None


def _broker_user(url: str) -> str:
    """The user an AMQP URL logs in as: without one, the client's default, guest."""
    return unquote(urlsplit(url).username or GUEST)


def _link_base_problem(url: str) -> str | None:
    """Why patients' links may not lead to ``url`` (a loopback host, plain http)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host in LOOPBACK_HOSTS or host.endswith(".localhost")
    if loopback or not host:
        return (
            "is a loopback address (patients' links would lead nowhere): set the "
            "console's public https address"
        )
    if parts.scheme != "https":
        return "is not https (a patient's link is their key): set the console's https address"
    return None


@cache
def get_settings() -> Settings:
    return Settings()
