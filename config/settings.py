"""One typed settings object, read from ``COEX_*`` environment variables and ``.env``.

Nothing else in coexist reads ``os.environ``: build :class:`Settings` (tests pass values
explicitly) or call :func:`get_settings` for the process-wide instance.

Platform conventions: ``DATABASE_URL`` and ``REDIS_URL`` (what hosting add-ons inject) are read
when ``COEX_DATABASE_URL`` / ``COEX_BROKER_URL`` are not set, and a ``postgres://`` URL is read
as PostgreSQL through psycopg. Every secret can come from a file instead (container secrets):
``COEX_<NAME>_FILE`` names the file, whose content (without its final newline) is the value.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

#: Regions (ISO 3166-1 alpha-2) that Meta's coexistence documentation listed as unsupported on
#: 2025-09-13: EU/EEA, UK, Australia, Japan, Nigeria, Philippines, Russia, South Korea,
#: South Africa, Turkey. Meta has since enabled all of them (docs/meta.md#10-region-eligibility).
EU_EEA = frozenset(
    {
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
    }
)
ELIGIBILITY_PRESETS: dict[str, frozenset[str]] = {
    "meta-current": frozenset(),
    "meta-2025-09-13": EU_EEA | {"GB", "AU", "JP", "NG", "PH", "RU", "KR", "ZA", "TR"},
}

Environment = Literal["production", "development"]

#: Standard Webhooks secrets: ``whsec_`` and the base64 of 24 to 64 random bytes
#: (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md).
WHSEC_PREFIX = "whsec_"
WHSEC_BYTES = (24, 64)
WHSEC_EXAMPLE = (
    'python -c "import base64, secrets; '
    "print('whsec_' + base64.b64encode(secrets.token_bytes(32)).decode())\""
)


def whsec_problem(secret: str) -> str | None:
    """Why ``secret`` is not a usable Standard Webhooks secret, or None (never echoes it)."""
    if not secret.startswith(WHSEC_PREFIX):
        return f"must start with {WHSEC_PREFIX!r}"
    try:
        key = base64.b64decode(secret[len(WHSEC_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return f"must be {WHSEC_PREFIX!r} followed by base64"
    low, high = WHSEC_BYTES
    if not low <= len(key) <= high:
        return f"must encode {low} to {high} bytes, not {len(key)}"
    return None


#: S3 bucket names: 3 to 63 lowercase letters, digits, dots and hyphens, a letter or digit at
#: each end (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
#: One segment of an object key prefix: printable, no slash, nothing a URL or shell would bend.
S3_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9!_.*'()-]+")
S3_EXAMPLE = "s3://bucket or s3://bucket/some/prefix"


def s3_location(url: str) -> tuple[str, str]:
    """``s3://bucket/a/prefix`` as ``("bucket", "a/prefix")``; ValueError naming the problem."""
    scheme, sep, rest = url.partition("://")
    if scheme != "s3" or not sep:
        raise ValueError(f"must be a directory or an S3 URL ({S3_EXAMPLE})")
    bucket, _, prefix = rest.partition("/")
    if not S3_BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValueError(
            "names no valid bucket (3 to 63 lowercase letters, digits, dots and hyphens)"
        )
    segments = prefix.strip("/").split("/") if prefix.strip("/") else []
    for segment in segments:
        if segment in {".", ".."} or not S3_PREFIX_SEGMENT.fullmatch(segment):
            raise ValueError(
                f"has an unusable prefix segment {segment[:40]!r} "
                "(letters, digits and !_.*'()- only; no empty, '.' or '..' segment)"
            )
    return bucket, "/".join(segments)


def media_store_problem(store: str) -> str | None:
    """Why ``store`` is neither a directory nor an ``s3://`` URL, or None."""
    if "://" not in store:
        if any(c in store for c in "\0\n\r"):
            return "must be a directory path or an S3 URL"
        return None
    try:
        s3_location(store)
    except ValueError as exc:
        return str(exc)
    return None


def _http_url_problem(url: str) -> str | None:
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if scheme not in ("http", "https") or not host or any(c.isspace() for c in url):
        return "must be an http(s) URL with a host"
    return None


class Settings(BaseSettings):
    """Every knob coexist has. Durations are seconds unless the name says days."""

    model_config = SettingsConfigDict(
        env_prefix="COEX_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        # A refused value is named, never printed: it may be a secret.
        hide_input_in_errors=True,
    )

    environment: Environment = "development"
    log_level: str = "INFO"

    # Storage and broker.
    database_url: str = Field(
        default="sqlite:///var/coexist.db",
        validation_alias=AliasChoices("COEX_DATABASE_URL", "DATABASE_URL"),
    )
    broker_url: str = Field(
        default="redis://localhost:6379/0",
        validation_alias=AliasChoices("COEX_BROKER_URL", "REDIS_URL"),
    )
    tasks_eager: bool = False
    broker_visibility_timeout: int = Field(default=7200, ge=60)
    #: Seconds the beat process holds the schedule's lock in Redis without renewing it: a second
    #: beat (a rolling deploy) waits, and takes over this long after the first one died.
    beat_lock_timeout: int = Field(default=60, ge=10, le=3600)

    # Meta app and Graph API.
    meta_app_id: str = ""
    meta_app_secret: SecretStr = SecretStr("")
    meta_graph_url: str = "https://graph.facebook.com"
    meta_api_version: str = "v25.0"
    graph_timeout: float = Field(default=10.0, gt=0)
    graph_max_attempts: int = Field(default=3, ge=1, le=10)
    #: Send ``appsecret_proof`` with every Graph call that carries a token
    #: (docs/meta.md#118-appsecret_proof).
    graph_appsecret_proof: bool = True
    #: A WABA-level webhook override coexist sets when it subscribes a WABA (empty: none; an
    #: override already on the WABA is kept). https, at most 200 characters; needs its verify
    #: token (docs/meta.md#117-subscribing-without-losing-an-override).
    webhook_override_url: str = ""
    webhook_override_verify_token: SecretStr = SecretStr("")

    # The relay to the provider's own webhook receiver (README, "Where coexist sits").
    #: Forward stored Meta deliveries here, raw and with Meta's signature (empty: no relay).
    relay_url: str = ""
    #: Fields to forward, comma separated (empty: every field); a delivery goes whole if any of
    #: its fields is listed. Beside the provider's callback: ``messages``.
    relay_fields: str = ""
    #: Where a relay with no cursor yet starts: the oldest stored delivery, or the next one.
    relay_start: Literal["earliest", "latest"] = "earliest"
    relay_timeout: float = Field(default=10.0, gt=0, le=120)
    #: Failed attempts in a row (waits doubling from 1 s up to ``relay_retry_max_seconds``)
    #: before the relay is failing and an operator alert is raised.
    relay_max_attempts: int = Field(default=8, ge=1, le=50)
    relay_retry_max_seconds: float = Field(default=60.0, ge=1, le=900)
    #: While failing, one attempt per this many seconds, from the cursor.
    relay_failing_retry_seconds: float = Field(default=60.0, ge=1, le=3600)
    #: Inbox rows read per step; the cursor is committed after each step.
    relay_batch_size: int = Field(default=100, ge=1, le=5000)

    # The hosted signup page (README, "The hosted signup page").
    #: Where coexist is reached from the internet (``https://onboard.example.com``); invitation
    #: links start with it. Empty: the admin API uses the request's own base URL.
    public_url: str = ""
    #: The Facebook Login for Business configuration that launches Embedded Signup.
    meta_config_id: str = ""
    #: Key of the invitation links' HMAC-SHA256 signature (``/connect?ref=&exp=&sig=``).
    connect_link_secret: SecretStr = SecretStr("")
    #: Meta's JavaScript SDK; the page's Content-Security-Policy allows this script's origin.
    connect_sdk_url: str = "https://connect.facebook.net/en_US/sdk.js"
    #: ``extras`` of ``FB.login``: ``coexistence`` sends ``{setup: {}, featureType:
    #: "whatsapp_business_app_onboarding", sessionInfoVersion: "3"}`` (Meta's coexistence page);
    #: ``v4`` sends ``{setup: {}}`` (Meta's Versions page says v4's extras are empty).
    connect_extras: Literal["coexistence", "v4"] = "coexistence"
    #: One more origin whose ``message`` events the page accepts besides Facebook's: the
    #: sandbox's, when ``connect_sdk_url`` is the sandbox's stand-in SDK (it must be served
    #: from this origin). Empty in production.
    connect_sandbox_origin: str = ""
    #: How long the token a finished signup hands the page lets it follow the onboarding.
    connect_watch_hours: float = Field(default=24, gt=0, le=168)
    #: How long one progress stream stays open before the page reconnects.
    connect_stream_seconds: float = Field(default=300, ge=5, le=3600)

    # Reconciliation (re-reading what a missed webhook would have told us).
    #: Hours between two reconciliations of the same active onboarding (beat runs hourly).
    reconcile_interval_hours: float = Field(default=24, gt=0)
    #: Onboardings one reconcile task checks (one transaction each).
    reconcile_batch_size: int = Field(default=25, ge=1, le=500)
    #: Onboardings one beat run hands out at most; the rest wait for the next run.
    reconcile_max_per_run: int = Field(default=500, ge=1, le=100_000)

    # Inbound credentials.
    webhook_verify_token: SecretStr = SecretStr("")
    signup_token: SecretStr = SecretStr("")
    admin_token: SecretStr = SecretStr("")
    #: Serve the API's documentation at ``/docs`` and ``/redoc`` (``/openapi.json`` always).
    api_docs: bool = True
    #: Where unhandled errors are reported (a Sentry DSN; empty: nowhere). Events are scrubbed
    #: of secrets as log lines are (config/errors.py).
    sentry_dsn: SecretStr = SecretStr("")
    #: Bearer token ``/metrics`` asks for (empty: open, for a scraper on a private network).
    metrics_token: SecretStr = SecretStr("")
    #: prometheus-client's multiprocess directory (its own variable, ``PROMETHEUS_MULTIPROC_DIR``,
    #: which the library reads too): one empty directory per host, shared by the web app and the
    #: workers, so ``/metrics`` counts what the workers did.
    prometheus_multiproc_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR")
    )
    #: Bearer token of the feed and the read API (``/v1/…``); empty: those routes answer 401.
    feed_token: SecretStr = SecretStr("")

    # The event feed (README, "The event feed").
    #: Write feed events with every change (off: nothing is written and the feed stays empty).
    feed_enabled: bool = True
    #: Push delivery (README, "Push delivery"): where batches of events are POSTed (empty: off),
    #: signed per Standard Webhooks with this ``whsec_`` secret.
    feed_webhook_url: str = ""
    feed_webhook_secret: SecretStr = SecretStr("")
    #: Events per request (the pull API's own maximum, 1000, is the ceiling).
    feed_webhook_batch_size: int = Field(default=100, ge=1, le=1000)
    feed_webhook_timeout: float = Field(default=10.0, gt=0, le=20)
    #: Failed attempts at one batch before push is marked failing and an alert raised; it is
    #: still retried after that, at the capped backoff.
    feed_webhook_max_attempts: int = Field(default=8, ge=1, le=100)
    #: The wait after a failed attempt doubles from this to the cap (jittered: half to all).
    feed_webhook_backoff_seconds: float = Field(default=1.0, gt=0, le=600)
    feed_webhook_backoff_max_seconds: float = Field(default=300.0, gt=0, le=3600)
    #: How often beat starts a delivery run, and how long one run may keep sending.
    feed_push_interval_seconds: float = Field(default=2.0, ge=0.5, le=300)
    feed_push_budget_seconds: float = Field(default=20.0, gt=0, le=30)
    #: Comma-separated Fernet keys, newest first; the first encrypts, all decrypt.
    token_keys: SecretStr = SecretStr("")
    signup_max_body_bytes: int = Field(default=65_536, ge=1024)

    #: Where downloaded media is kept (README, "Media storage"): a directory, or an
    #: S3-compatible bucket as ``s3://bucket/optional/prefix``. Empty: ``media_dir``.
    media_store: str = ""
    #: The older name of a directory store, used while ``media_store`` is empty.
    media_dir: Path = Path("var/media")
    #: The S3 API's endpoint (MinIO, R2, a test server); empty: AWS's for the region.
    media_s3_endpoint_url: str = ""
    media_s3_region: str = ""
    #: Both or neither; neither: boto3's default credential chain (environment, profile, role).
    media_s3_access_key_id: str = ""
    media_s3_secret_access_key: SecretStr = SecretStr("")
    #: Attempts of one S3 call (boto3's standard retries) before the store counts as unavailable.
    media_s3_max_attempts: int = Field(default=3, ge=1, le=10)
    #: Seconds to connect to, and then to wait for an answer from, the S3 endpoint.
    media_s3_timeout: float = Field(default=10.0, gt=0, le=120)
    #: Seconds before a download held up by an unreachable media store is tried again.
    media_store_retry_seconds: float = Field(default=30.0, gt=0, le=600)
    media_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    #: Hosts Meta's media URLs may point at (the business token is sent there).
    media_url_hosts: str = "lookaside.fbsbx.com,lookaside.facebook.com"
    #: Meta's media ids die this many days after they are sent.
    media_id_ttl_days: float = Field(default=7, gt=0)
    #: Download attempts (each with quick retries inside) before media is ``failed``; waits
    #: double from 10 s to a 10-minute cap, so 10 attempts ride out about half an hour of
    #: Meta errors, well inside the 7-day life of a media id.
    media_max_attempts: int = Field(default=10, ge=1, le=20)

    # Webhook intake and ingestion.
    webhook_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    #: A request body (signup or webhook) not received in full within this is answered 408.
    request_body_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    #: Messages written per transaction when a history chunk is ingested.
    ingest_page_size: int = Field(default=1000, ge=10, le=50_000)
    #: A pending inbox row older than this is dispatched again by beat (broker outage).
    inbox_redispatch_after_seconds: int = Field(default=300, ge=10)
    #: A delivery still waiting for its onboarding this long is orphaned (Meta's 7 days).
    inbox_orphan_after_days: float = Field(default=7, gt=0)
    #: Drop the raw body of a processed inbox row this many days after it was received,
    #: keeping the row's metadata (None: keep every body). Never a body the relay still owes.
    inbox_body_retention_days: float | None = Field(default=None, gt=0)
    #: Bodies one beat tick drops at most (one short transaction).
    inbox_body_retention_batch: int = Field(default=1000, ge=1, le=50_000)
    #: Erase an onboarding this many days after Meta's ``PARTNER_REMOVED`` disconnected it
    #: (None: never automatically).
    erase_after_disconnect_days: float | None = Field(default=None, gt=0)
    #: Erase an onboarding this many days after its signup failed (``failed``,
    #: ``code_expired``, ``ineligible``; None: never automatically).
    erase_after_failure_days: float | None = Field(default=None, gt=0)
    #: Erasures beat's ``erase-onboardings`` starts, and running ones it resumes, per tick.
    erase_sweep_limit: int = Field(default=10, ge=1, le=1000)
    #: Rows one erasure step deletes per transaction.
    erase_batch_size: int = Field(default=2000, ge=1, le=50_000)
    #: Batches one erasure task runs before it hands over to a fresh task.
    erase_batches_per_run: int = Field(default=50, ge=1, le=10_000)
    #: An ``account_update`` for a WABA with no onboarding waits this long for the signup
    #: that may be on its way (the browser's hand-off can reach coexist after Meta's
    #: PARTNER_ADDED), then is recorded as not applied: Meta sends these for every customer.
    account_update_signup_grace_seconds: int = Field(default=600, ge=0, le=86_400)
    #: A history sync requested this long ago with no history webhook is stalled.
    history_stall_minutes: float = Field(default=60, gt=0)

    # Policy knobs.
    code_ttl_seconds: int = Field(default=30, ge=1)
    sync_window_hours: float = Field(default=24, gt=0)
    #: Share of the sync window after which an onboarding whose syncs are not yet requested
    #: raises a ``sync_deadline_near`` alert.
    sync_deadline_alert_share: float = Field(default=0.5, gt=0, lt=1)
    #: How many times an ambiguous smb_app_data outcome may be probed by re-sending (Meta's
    #: 2593107 answer then confirms the earlier call was accepted).
    sync_max_probes: int = Field(default=8, ge=0, le=20)
    #: How long a worker may hold a step before another may take it over (crash recovery).
    step_lease_seconds: int = Field(default=120, ge=5)
    history_window_days: int = Field(default=180, ge=1)
    media_cutoff_days: int = Field(default=14, ge=0)
    #: Remind the business to open the Business app after this many days without app activity
    #: (Meta disconnects after about 14 days; the business is told to open it every 13).
    heartbeat_reminder_days: list[float] = Field(default_factory=lambda: [10.0, 12.0])
    #: Companion relink reminders, hours after onboarding (and after each reconnection).
    relink_reminder_hours: list[float] = Field(default_factory=lambda: [0.0, 24.0, 72.0])
    throughput_per_number: int = Field(default=20, ge=1)

    # Follow-up notifications (onboarding/followups/wiring.py builds the channels).
    #: Channels, comma separated: log, webhook, whatsapp_template.
    notify_channels: str = "log"
    #: Attempts per notification across task runs before it is failed.
    notify_max_attempts: int = Field(default=5, ge=1, le=20)
    notify_webhook_url: str = ""
    notify_webhook_secret: SecretStr = SecretStr("")
    notify_webhook_timeout: float = Field(default=10.0, gt=0)
    notify_webhook_max_attempts: int = Field(default=3, ge=1, le=10)
    #: The provider's own number (phone number id) and its system user token.
    notify_whatsapp_phone_number_id: str = ""
    notify_whatsapp_token: SecretStr = SecretStr("")
    notify_whatsapp_template: str = ""
    notify_whatsapp_language: str = "en"
    #: Template body parameters in order: text, subject, kind, or a fact's name.
    notify_whatsapp_parameters: str = "text"
    eligibility_policy: str = "meta-current"
    #: Extra regions to block on top of the policy preset, comma separated (e.g. "RU,KP").
    eligibility_blocked_regions: str = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, dotenv_settings, SecretFiles(settings_cls))

    @field_validator("database_url")
    @classmethod
    def _postgres_through_psycopg(cls, value: str) -> str:
        """``postgres://`` and driverless ``postgresql://`` (as hosting platforms give them)
        mean PostgreSQL through psycopg, the driver coexist ships with."""
        for scheme in ("postgres://", "postgresql://"):
            if value.startswith(scheme):
                return "postgresql+psycopg://" + value[len(scheme) :]
        return value

    @field_validator("eligibility_policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value not in ELIGIBILITY_PRESETS:
            known = ", ".join(sorted(ELIGIBILITY_PRESETS))
            raise ValueError(f"unknown eligibility policy {value!r}; known: {known}")
        return value

    @field_validator("meta_api_version")
    @classmethod
    def _version_shape(cls, value: str) -> str:
        if not value.startswith("v") or not value[1:].replace(".", "", 1).isdigit():
            raise ValueError("meta_api_version looks like 'v25.0'")
        return value

    @model_validator(mode="after")
    def _graph_url_has_no_version(self) -> Settings:
        self.meta_graph_url = self.meta_graph_url.rstrip("/")
        return self

    @model_validator(mode="after")
    def _override_is_usable(self) -> Settings:
        url = self.webhook_override_url.strip()
        self.webhook_override_url = url
        if not url:
            return self
        if len(url) > 200:
            raise ValueError(f"webhook_override_url is {len(url)} characters; Meta allows 200")
        if not url.startswith("https://") or len(url) <= len("https://"):
            raise ValueError("webhook_override_url must be an https URL")
        if not self.webhook_override_verify_token.get_secret_value():
            raise ValueError("webhook_override_url needs webhook_override_verify_token")
        return self

    @model_validator(mode="after")
    def _sandbox_origin_only_for_its_sdk(self) -> Settings:
        """The extra message origin is the stand-in SDK's own, never a loophole beside Meta's."""
        origin = self.connect_sandbox_origin
        if not origin:
            return self
        if not re.fullmatch(r"https?://[A-Za-z0-9.\[\]:-]+", origin):
            raise ValueError("connect_sandbox_origin must be a bare origin: scheme://host[:port]")
        if not self.connect_sdk_url.startswith(origin + "/"):
            raise ValueError("connect_sandbox_origin is allowed only when connect_sdk_url is on it")
        return self

    @model_validator(mode="after")
    def _relay_is_usable(self) -> Settings:
        self.relay_url = self.relay_url.strip()
        if self.relay_url:
            try:
                url = httpx.URL(self.relay_url) if "://" in self.relay_url else None
            except httpx.InvalidURL:
                url = None
            if url is None or url.scheme not in ("http", "https") or not url.host:
                raise ValueError("relay_url must be an http or https URL with a host")
        fields = [f.strip() for f in self.relay_fields.split(",") if f.strip()]
        bad = [f for f in fields if not f.replace("_", "").isalnum() or len(f) > 64]
        if bad:
            raise ValueError(f"relay_fields holds names that are no webhook field: {bad[:3]}")
        self.relay_fields = ",".join(fields)
        return self

    @property
    def relay_field_set(self) -> frozenset[str] | None:
        """The fields the relay forwards, or None for every field."""
        fields = frozenset(f for f in self.relay_fields.split(",") if f)
        return fields or None

    @model_validator(mode="after")
    def _push_is_usable(self) -> Settings:
        url = self.feed_webhook_url.strip()
        self.feed_webhook_url = url
        if not url:
            return self
        problem = _http_url_problem(url)
        if problem:
            raise ValueError(f"feed_webhook_url {problem}")
        secret = self.feed_webhook_secret.get_secret_value()
        if not secret:
            raise ValueError(f"feed_webhook_url needs feed_webhook_secret ({WHSEC_EXAMPLE})")
        problem = whsec_problem(secret)
        if problem:
            raise ValueError(f"feed_webhook_secret {problem} ({WHSEC_EXAMPLE})")
        if self.feed_webhook_backoff_max_seconds < self.feed_webhook_backoff_seconds:
            raise ValueError(
                "feed_webhook_backoff_max_seconds is below feed_webhook_backoff_seconds"
            )
        return self

    @model_validator(mode="after")
    def _media_store_is_usable(self) -> Settings:
        problem = media_store_problem(self.media_store)
        if problem:
            raise ValueError(f"media_store {problem}")
        endpoint = self.media_s3_endpoint_url
        if endpoint and _http_url_problem(endpoint):
            raise ValueError(f"media_s3_endpoint_url {_http_url_problem(endpoint)}")
        if bool(self.media_s3_access_key_id) != bool(
            self.media_s3_secret_access_key.get_secret_value()
        ):
            raise ValueError(
                "media_s3_access_key_id and media_s3_secret_access_key are set together "
                "(or neither, for boto3's default credential chain)"
            )
        return self

    @property
    def media_location(self) -> str:
        """The media store in use: ``media_store``, else the ``media_dir`` directory."""
        return self.media_store or str(self.media_dir)

    @model_validator(mode="after")
    def _notify_secret_is_usable(self) -> Settings:
        secret = self.notify_webhook_secret.get_secret_value()
        problem = whsec_problem(secret) if secret else None
        if problem:
            raise ValueError(f"notify_webhook_secret {problem} ({WHSEC_EXAMPLE})")
        return self

    @property
    def webhook_override(self) -> tuple[str, str] | None:
        """The configured WABA override as ``(url, verify_token)``, or None."""
        if not self.webhook_override_url:
            return None
        return self.webhook_override_url, self.webhook_override_verify_token.get_secret_value()

    @property
    def reconcile_interval(self) -> timedelta:
        return timedelta(hours=self.reconcile_interval_hours)

    @property
    def sync_window(self) -> timedelta:
        return timedelta(hours=self.sync_window_hours)

    @property
    def code_ttl(self) -> timedelta:
        return timedelta(seconds=self.code_ttl_seconds)

    @property
    def blocked_regions(self) -> frozenset[str]:
        extra = {
            r.strip().upper() for r in self.eligibility_blocked_regions.split(",") if r.strip()
        }
        return ELIGIBILITY_PRESETS[self.eligibility_policy] | extra

    @property
    def media_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.media_url_hosts.split(",") if h.strip())

    @property
    def secret_values(self) -> list[str]:
        """Every configured secret, for the log redaction processor."""
        values = [
            getattr(self, name).get_secret_value()
            for name, field in type(self).model_fields.items()
            if field.annotation is SecretStr
        ]
        values += [k.strip() for k in self.token_keys.get_secret_value().split(",")]
        return [v for v in values if len(v) >= 6]

    def missing_for(self, role: str) -> list[str]:
        """The settings a process role cannot run without (empty when it can start)."""
        needed: dict[str, SecretStr | str] = {
            "COEX_META_APP_ID": self.meta_app_id,
            "COEX_META_APP_SECRET": self.meta_app_secret,
            "COEX_TOKEN_KEYS": self.token_keys,
        }
        if role == "web":
            needed["COEX_SIGNUP_TOKEN"] = self.signup_token
            needed["COEX_ADMIN_TOKEN"] = self.admin_token
            needed["COEX_WEBHOOK_VERIFY_TOKEN"] = self.webhook_verify_token
        missing = []
        for name, value in needed.items():
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not raw:
                missing.append(name)
        return missing


class SecretFiles(PydanticBaseSettingsSource):
    """Secrets read from the files ``COEX_<NAME>_FILE`` names (Docker and Kubernetes secrets).

    Only for secret settings; setting both ``COEX_<NAME>`` and ``COEX_<NAME>_FILE`` is refused
    (which one was meant cannot be told), and so is a file that cannot be read.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = f"COEX_{field_name.upper()}_FILE"
        path = os.environ.get(variable)
        if field.annotation is not SecretStr or not path:
            return None, field_name, False
        if os.environ.get(f"COEX_{field_name.upper()}"):
            raise ValueError(f"set COEX_{field_name.upper()} or {variable}, not both")
        try:
            value = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{variable}: cannot read {path}: {type(exc).__name__}") from None
        return value.removesuffix("\n").removesuffix("\r"), field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                found[key] = value
        return found


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built once from the environment."""
    return Settings()
