"""Configuration from the environment.

Every setting is read once, validated, and a bad value stops start-up with one line
that names the variable (see :func:`load_settings`).
"""

from __future__ import annotations

import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import phonenumbers
from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SIMULATOR_ACCOUNT_SID = "AC" + "0" * 32
SIMULATOR_AUTH_TOKEN = "simulator-auth-token"  # noqa: S105 - the built-in simulator's own fixed secret
SIMULATOR_FROM_NUMBER = "+15005550006"  # Twilio's magic "valid From" test number


def _default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'riskcast.db'}"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    """riskcast settings. Environment variables are ``RISKCAST_<NAME>`` unless aliased."""

    model_config = SettingsConfigDict(
        env_prefix="RISKCAST_", extra="ignore", frozen=True, populate_by_name=True
    )

    database_url: str = Field(default_factory=_default_database_url)
    # None means "in-process" (only `riskcast serve` can run that way).
    broker_url: str | None = None
    # Fleet-wide rate limiter, locks and queue metrics; defaults to the broker when it is Redis.
    redis_url: str | None = None
    provider: Literal["simulator", "twilio"] = "simulator"
    twilio_account_sid: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_ACCOUNT_SID")
    )
    twilio_auth_token: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_AUTH_TOKEN"), repr=False
    )
    twilio_messaging_service_sid: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_MESSAGING_SERVICE_SID")
    )
    twilio_from_number: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_FROM_NUMBER")
    )
    twilio_base_url: str | None = None
    # With the simulator provider: a `riskcast simulator` server that every process of the
    # fleet sends to (docker compose runs one) instead of a simulator of its own in each
    # process, which the others could not see. Unused with RISKCAST_PROVIDER=twilio.
    simulator_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    # The dashboard cookie's Secure flag: unset, it follows public_url (on when https).
    cookie_secure: bool | None = None
    # Officials and admins must sign in with a two-factor code (broadcaster.users.totp).
    require_totp: bool = False
    # The hotline people are told to call in keyword replies (HELP, JOIN...).
    hotline: str = Field(default="1166", min_length=1)
    # Hotlines by the country of a person's number, over RISKCAST_HOTLINE (which every
    # country not listed gets): a Thai number is told Thailand's 1422, not Laos's 1166, in
    # keyword replies and in a campaign's `hotline` unless the campaign set its own.
    # JSON in the environment: RISKCAST_HOTLINES='{"TH": "1422", "KH": "115"}'.
    hotlines: Annotated[dict[str, str], NoDecode] = Field(default_factory=lambda: {"TH": "1422"})
    # The currency RISKCAST_SEGMENT_PRICES are in, named wherever a cost is shown.
    currency: str = Field(default="USD", min_length=1, max_length=8)
    # An operator's JSON or YAML file of extra provider error codes (workers.providers.errors).
    error_codes_file: str | None = None
    default_region: str = "LA"
    send_rate: float = Field(default=50.0, gt=0)
    approval_threshold: int = Field(default=1000, ge=0)
    # Seconds a delivery may sit in `sending` with no provider SID before it is "in doubt"
    # and the reconciler asks the provider whether it has it (never less than the
    # provider's request timeout plus a margin: see `in_doubt_after`).
    sending_timeout: float = Field(default=120.0, gt=0)
    # Seconds the Twilio SDK waits for an answer before the send is in doubt.
    twilio_timeout: float = Field(default=10.0, gt=0)
    # In-doubt lookups: read API requests per second, fleet-wide (on top of the send rate,
    # which each request also counts against); lookups per reconciler run; the clock-skew
    # margin taken before a delivery's `sending_at`; and seconds after which a delivery
    # still unresolved (the read API never answering) fails as `unconfirmed` when its
    # campaign has no `valid_until` of its own.
    lookup_rate: float = Field(default=5.0, gt=0)
    lookup_batch: int = Field(default=50, ge=1)
    lookup_skew: float = Field(default=60.0, ge=0)
    in_doubt_limit: float = Field(default=43200.0, gt=0)
    # The built-in simulator's Twilio timing (the in-process one of `riskcast serve`, and
    # `riskcast simulator`): seconds a message stays queued before `sent`, and seconds
    # between storing a message and answering the request.
    simulator_queue_delay: float = Field(default=0.05, ge=0)
    simulator_answer_delay: float = Field(default=0.0, ge=0)
    # Attempts (worker deaths included) after which a delivery fails for good.
    max_attempts: int = Field(default=8, ge=1)
    # First retry delay in seconds; it doubles per attempt (with jitter) up to 5 minutes.
    retry_base: float = Field(default=2.0, gt=0)
    # Seconds a running task's lease lasts without renewal: how soon the work of a killed
    # worker is handed to another one.
    lease_ttl: float = Field(default=60.0, gt=0)
    # Seconds after which Redis hands an unacknowledged task to another worker (a task that
    # a killed worker had reserved). Tasks are short and idempotent, so a rerun is harmless.
    visibility_timeout: float = Field(default=300.0, gt=0)
    # Seconds after which a delivery still `sent` (its final callback never came) is looked
    # up at the provider by the reconciler.
    confirm_after: float = Field(default=900.0, gt=0)
    scheduler_interval: float = Field(default=1.0, gt=0)
    # Seconds between a worker's heartbeats; one unheard of for three intervals is no longer
    # counted alive (broadcaster.monitoring.service).
    heartbeat_interval: float = Field(default=10.0, gt=0)
    reconcile_interval: float = Field(default=15.0, gt=0)
    # Celery task events (task-sent, -received, -started, -succeeded) for Flower. Off by
    # default: riskcast's own heartbeats and metrics do not need them, and publishing four
    # events per task cost each worker's main process a tenth of a core. Flower turns
    # them on at run time by itself ("enable_events").
    task_events: bool = False
    fanout_batch_size: int = Field(default=5000, ge=1)
    send_batch_size: int = Field(default=100, ge=1)
    # Price of one SMS segment per destination country (ISO code), for the cost estimate in
    # campaign previews; "default" prices every country not listed. JSON in the environment:
    # RISKCAST_SEGMENT_PRICES='{"LA": 0.045, "TH": 0.03, "default": 0.05}'.
    segment_prices: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    # Days after which a contact with no activity, delivery or message is erased
    # (broadcaster.contacts.privacy.erase_inactive): by `riskcast scheduler` every
    # `retention_interval` seconds, or at once by `riskcast contacts purge-inactive`.
    # None keeps contacts until they are erased one by one.
    retention_days: int | None = Field(default=None, ge=1)
    retention_interval: float = Field(default=3600.0, gt=0)
    # Largest request body, in bytes, of an API call (JSON), and of a contacts CSV upload
    # (streamed to a temporary file, never held in memory). A larger body gets 413, refused
    # unread when its Content-Length says so, cut off at the limit when it does not.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_import_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}; use a two-letter code such as LA or TH")
        return region

    @field_validator("segment_prices", mode="before")
    @classmethod
    def _prices(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f'must be JSON such as {{"LA": 0.045, "TH": 0.03, "default": 0.05}} ({exc.msg})'
                ) from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object of country -> price per segment")
        prices: dict[str, float] = {}
        for raw_key, price in value.items():
            key = str(raw_key).strip()
            key = "default" if key.lower() == "default" else key.upper()
            if key != "default" and key not in phonenumbers.SUPPORTED_REGIONS:
                raise ValueError(f"{raw_key!r} is not a two-letter country code or 'default'")
            if isinstance(price, bool) or not isinstance(price, int | float):
                raise ValueError(f"the price for {key} must be a number, got {price!r}")
            if not math.isfinite(price) or price < 0:
                raise ValueError(f"the price for {key} must be zero or more, got {price!r}")
            prices[key] = float(price)
        return prices

    @field_validator("hotlines", mode="before")
    @classmethod
    def _hotlines(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f'must be JSON such as {{"TH": "1422"}} ({exc.msg})') from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object of country -> hotline number")
        hotlines: dict[str, str] = {}
        for raw_key, number in value.items():
            key = str(raw_key).strip().upper()
            if key not in phonenumbers.SUPPORTED_REGIONS:
                raise ValueError(f"{raw_key!r} is not a two-letter country code")
            text = str(number).strip() if isinstance(number, str | int) else ""
            if not text or isinstance(number, bool):
                raise ValueError(f"the hotline for {key} must be a number such as 1422")
            hotlines[key] = text
        return hotlines

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return value.strip()

    @field_validator("cookie_secure", mode="before")
    @classmethod
    def _unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("public_url", "twilio_base_url", "simulator_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {value!r})")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError(f"must be a sqlite:/// or postgresql:// URL (got {value!r})")
        if value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship.
            return "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("broker_url", "redis_url")
    @classmethod
    def _broker(cls, value: str | None) -> str | None:
        if value in (None, "", "memory://", "memory"):
            return None
        if not value.startswith(("redis://", "rediss://", "amqp://")):
            raise ValueError(f"must be a redis:// URL, or empty for in-process (got {value!r})")
        return value

    @model_validator(mode="after")
    def _twilio_complete(self) -> Settings:
        if self.provider == "twilio":
            missing = [
                name
                for name, value in (
                    ("TWILIO_ACCOUNT_SID", self.twilio_account_sid),
                    ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
                )
                if not value
            ]
            if not (self.twilio_messaging_service_sid or self.twilio_from_number):
                missing.append("TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER")
            if missing:
                raise ValueError("RISKCAST_PROVIDER=twilio needs " + ", ".join(missing))
        return self

    # -- derived values -------------------------------------------------------------
    @property
    def effective_redis_url(self) -> str | None:
        if self.redis_url:
            return self.redis_url
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None

    @property
    def account_sid(self) -> str:
        return self.twilio_account_sid or SIMULATOR_ACCOUNT_SID

    @property
    def auth_token(self) -> str:
        """The secret that signs Twilio webhooks (the simulator's own in simulator mode)."""
        return self.twilio_auth_token or SIMULATOR_AUTH_TOKEN

    @property
    def from_number(self) -> str | None:
        if self.twilio_messaging_service_sid:
            return None
        return self.twilio_from_number or SIMULATOR_FROM_NUMBER

    @property
    def in_doubt_after(self) -> float:
        """Seconds after its claim a `sending` delivery with no SID is in doubt: the sending
        timeout, but never before a request that left could still be answered. The SDK's
        timeout holds for connecting and again for reading, so twice it, plus the longest a
        worker goes from its claim to its request without re-confirming the claim
        (``workers.sending.FENCE_AFTER``) and a margin."""
        return max(self.sending_timeout, 2 * self.twilio_timeout + 3.0)

    @property
    def secure_cookies(self) -> bool:
        """Whether the dashboard's cookie is sent over HTTPS only: as RISKCAST_COOKIE_SECURE
        says, else when the service is reached over HTTPS."""
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.public_url.startswith("https://")

    def hotline_for(self, country: str | None) -> str:
        """The hotline a person whose number is of ``country`` is told to call."""
        return self.hotlines.get((country or "").upper(), self.hotline)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


# What a deployment running on the simulator sets to send through Twilio instead.
TWILIO_SWITCH = (
    "RISKCAST_PROVIDER=twilio, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, "
    "TWILIO_MESSAGING_SERVICE_SID (or TWILIO_FROM_NUMBER) and RISKCAST_PUBLIC_URL"
)


def provider_notice(settings: Settings) -> str:
    """One line for a process's start: where its messages go and, on the simulator, how to
    send through Twilio instead."""
    if settings.provider == "twilio":
        return (
            f"provider: twilio ({settings.twilio_base_url or 'https://api.twilio.com'}); "
            f"webhooks at {settings.public_url}"
        )
    where = settings.simulator_url or "in this process"
    return (
        f"provider: simulator ({where}); no message reaches a phone. "
        f"To send through Twilio, set {TWILIO_SWITCH}"
    )


_ALIASES = {
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "twilio_messaging_service_sid": "TWILIO_MESSAGING_SERVICE_SID",
    "twilio_from_number": "TWILIO_FROM_NUMBER",
}


def _env_name(field: str) -> str:
    return _ALIASES.get(field, f"RISKCAST_{field.upper()}")


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise :class:`ConfigError` naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(part) for part in first["loc"]]
        msg = str(first["msg"]).removeprefix("Value error, ")
        if loc:
            name = _env_name(loc[0])
            raw = os.environ.get(name)
            shown = (
                f" (got {raw!r})"
                if raw is not None and "got" not in msg and "AUTH" not in name
                else ""
            )
            raise ConfigError(f"{name}: {msg}{shown}") from None
        raise ConfigError(msg) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
