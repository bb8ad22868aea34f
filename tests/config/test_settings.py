"""Settings: COEX_ environment variables, validation, derived values."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from config import Settings
from config.celery import celery_config
from tests.conftest import make_settings


def test_settings_come_from_coex_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """COEX_ variables fill the settings; secrets are SecretStr."""
    monkeypatch.setenv("COEX_META_APP_ID", "42")
    monkeypatch.setenv("COEX_META_APP_SECRET", "shh-secret")
    monkeypatch.setenv("COEX_SYNC_WINDOW_HOURS", "12")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.meta_app_id == "42"
    assert settings.meta_app_secret.get_secret_value() == "shh-secret"
    assert "shh-secret" not in repr(settings)
    assert settings.sync_window.total_seconds() == 12 * 3600


def test_unknown_eligibility_policy_is_refused() -> None:
    """A typo in the eligibility policy fails at start, naming the known presets."""
    with pytest.raises(ValidationError, match="meta-2025-09-13"):
        make_settings(eligibility_policy="meta-2024")


def test_2025_preset_blocks_metas_2025_list_and_extras_add_to_it() -> None:
    """The named preset blocks the regions of Meta's 2025 list; extra regions add to any policy."""
    preset = make_settings(eligibility_policy="meta-2025-09-13")
    assert {
        "DE",
        "GB",
        "AU",
        "JP",
        "NG",
        "PH",
        "RU",
        "KR",
        "ZA",
        "TR",
        "NO",
    } <= preset.blocked_regions
    assert "US" not in preset.blocked_regions
    assert make_settings().blocked_regions == frozenset()
    assert make_settings(eligibility_blocked_regions="kp, ir").blocked_regions == {"KP", "IR"}


def test_web_role_needs_its_secrets() -> None:
    """The web process lists every missing secret it needs."""
    missing = make_settings(meta_app_secret="", webhook_verify_token="").missing_for("web")
    assert missing == ["COEX_META_APP_SECRET", "COEX_WEBHOOK_VERIFY_TOKEN"]


def test_celery_config_is_json_only_with_late_acks_and_queue_routes() -> None:
    """Celery is configured JSON-only, acks late, with one queue per concern and the sweeper."""
    conf = celery_config(make_settings())
    assert conf["accept_content"] == ["json"]
    assert conf["task_acks_late"]
    assert conf["task_reject_on_worker_lost"]
    assert [q.name for q in conf["task_queues"]] == [
        "signup",
        "sync",
        "feed",
        "relay",
        "ingest",
        "followups",
        "send",
    ]
    assert conf["task_routes"]["coexist.signup.*"] == {"queue": "signup"}
    assert conf["task_routes"]["coexist.relay.*"] == {"queue": "relay"}
    relay = conf["beat_schedule"]["relay-deliveries"]
    assert (relay["task"], relay["schedule"]) == ("coexist.relay.forward", 1.0)
    assert conf["beat_schedule"]["sweep-sync-deadlines"]["schedule"] == 60.0
    lift = conf["beat_schedule"]["lift-expired-restrictions"]
    assert (lift["task"], lift["schedule"]) == ("coexist.ingest.lift_restrictions", 60.0)
    assert conf["broker_transport_options"]["visibility_timeout"] > 900


def test_visibility_timeout_must_exceed_countdowns() -> None:
    """A visibility timeout below the longest countdown is refused."""
    with pytest.raises(ValueError, match="visibility"):
        celery_config(make_settings(broker_visibility_timeout=600))


def test_appsecret_proof_is_on_by_default() -> None:
    """Graph calls carry appsecret_proof unless COEX_GRAPH_APPSECRET_PROOF turns it off."""
    assert make_settings().graph_appsecret_proof is True
    assert make_settings(graph_appsecret_proof=False).graph_appsecret_proof is False


def test_webhook_override_is_read_with_its_verify_token() -> None:
    """A configured override comes back as (url, verify token); its token is a secret."""
    settings = make_settings(
        webhook_override_url="https://hooks.example/wa", webhook_override_verify_token="vt-123456"
    )
    assert settings.webhook_override == ("https://hooks.example/wa", "vt-123456")
    assert "vt-123456" in settings.secret_values
    assert make_settings().webhook_override is None


@pytest.mark.parametrize(
    ("url", "token", "why"),
    [
        ("https://hooks.example/" + "a" * 200, "vt", "200"),
        ("http://hooks.example/wa", "vt", "https"),
        ("https://hooks.example/wa", "", "verify_token"),
    ],
)
def test_unusable_webhook_override_is_refused_at_start(url: str, token: str, why: str) -> None:
    """An override over 200 characters, not https, or without a verify token is refused."""
    with pytest.raises(ValidationError, match=why):
        make_settings(webhook_override_url=url, webhook_override_verify_token=token)


def fresh() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_platform_urls_are_read_when_coexist_names_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """``DATABASE_URL`` and ``REDIS_URL``, as hosting add-ons inject them, are used."""
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.internal:5432/app")
    monkeypatch.setenv("REDIS_URL", "rediss://cache.internal:6380/0")
    settings = fresh()
    assert settings.database_url == "postgresql+psycopg://u:p@db.internal:5432/app"
    assert settings.broker_url == "rediss://cache.internal:6380/0"


def test_coexist_names_win_over_platform_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://platform/app")
    monkeypatch.setenv("REDIS_URL", "redis://platform:6379/0")
    monkeypatch.setenv("COEX_DATABASE_URL", "sqlite:///mine.db")
    monkeypatch.setenv("COEX_BROKER_URL", "redis://mine:6379/3")
    settings = fresh()
    assert (settings.database_url, settings.broker_url) == (
        "sqlite:///mine.db",
        "redis://mine:6379/3",
    )


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ("postgresql://h/db", "postgresql+psycopg://h/db"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg://h/db"),
        ("sqlite:///var/x.db", "sqlite:///var/x.db"),
    ],
)
def test_a_driverless_postgres_url_goes_through_psycopg(given: str, read: str) -> None:
    assert make_settings(database_url=given).database_url == read


def test_a_secret_is_read_from_the_file_its_file_variable_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``COEX_<NAME>_FILE`` gives a secret from a file, without its final newline."""
    secret = tmp_path / "admin_token"
    secret.write_text("from-a-file-0123456789\n", encoding="utf-8")
    monkeypatch.setenv("COEX_ADMIN_TOKEN_FILE", str(secret))
    assert fresh().admin_token.get_secret_value() == "from-a-file-0123456789"


def test_a_secret_set_both_ways_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text("one", encoding="utf-8")
    monkeypatch.setenv("COEX_SIGNUP_TOKEN_FILE", str(secret))
    monkeypatch.setenv("COEX_SIGNUP_TOKEN", "two")
    with pytest.raises(ValueError, match="COEX_SIGNUP_TOKEN or COEX_SIGNUP_TOKEN_FILE"):
        fresh()


def test_an_unreadable_secret_file_is_refused_without_its_content(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COEX_META_APP_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="COEX_META_APP_SECRET_FILE: cannot read"):
        fresh()


def test_only_secrets_come_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A ``_FILE`` variable for a plain setting is not a way to set it."""
    plain = tmp_path / "id"
    plain.write_text("99", encoding="utf-8")
    monkeypatch.setenv("COEX_META_APP_ID_FILE", str(plain))
    assert fresh().meta_app_id == ""


def test_every_secret_setting_is_redacted_from_logs() -> None:
    """The redaction list is every secret setting, new ones included."""
    signing = "whsec_" + base64.b64encode(b"s" * 32).decode()  # signing secrets have a shape
    values = {
        name: signing if name.endswith("webhook_secret") else f"{name}-value-0123"
        for name, field in Settings.model_fields.items()
        if field.annotation is SecretStr
    }
    # An S3 secret key comes with its key id.
    settings = make_settings(
        **{k: SecretStr(v) for k, v in values.items()}, media_s3_access_key_id="AKIAEXAMPLE"
    )
    assert set(values.values()) <= set(settings.secret_values)
    assert "feed_token" in values


def test_beat_fires_under_a_lock_with_redis_only() -> None:
    """With a Redis broker beat uses the locked scheduler and its timeout; the embedded
    in-memory broker (no beat process) keeps Celery's default."""
    locked = celery_config(make_settings(broker_url="redis://cache:6379/2", beat_lock_timeout=30))
    assert locked["beat_scheduler"] == "tasks.beat:LockedScheduler"
    assert locked["coexist_beat_lock_url"] == "redis://cache:6379/2"
    assert locked["coexist_beat_lock_timeout"] == 30
    assert "beat_scheduler" not in celery_config(make_settings(broker_url="memory://"))


PUSH_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the base64 of 24 bytes


def test_feed_push_settings_are_read_with_their_secret() -> None:
    """A push URL with a whsec_ secret is accepted; the secret is masked in logs."""
    settings = make_settings(
        feed_webhook_url=" https://provider.example/coexist/feed ",
        feed_webhook_secret=PUSH_SECRET,
    )
    assert settings.feed_webhook_url == "https://provider.example/coexist/feed"
    assert (settings.feed_webhook_batch_size, settings.feed_webhook_max_attempts) == (100, 8)
    assert PUSH_SECRET in settings.secret_values


@pytest.mark.parametrize(
    ("values", "why"),
    [
        ({"feed_webhook_url": "https://p.example/feed"}, "needs feed_webhook_secret"),
        (
            {"feed_webhook_url": "ftp://p.example/feed", "feed_webhook_secret": PUSH_SECRET},
            "http(s) URL",
        ),
        (
            {"feed_webhook_url": "https://p.example/f", "feed_webhook_secret": "plain-secret-123"},
            "must start with 'whsec_'",
        ),
        (
            {"feed_webhook_url": "https://p.example/f", "feed_webhook_secret": "whsec_not base64!"},
            "followed by base64",
        ),
        (
            {"feed_webhook_url": "https://p.example/f", "feed_webhook_secret": "whsec_c2hvcnQ="},
            "24 to 64 bytes",
        ),
        ({"feed_webhook_batch_size": 1001}, "feed_webhook_batch_size"),
        ({"feed_webhook_max_attempts": 0}, "feed_webhook_max_attempts"),
        ({"notify_webhook_secret": "notify-webhook-secret-0123456789"}, "notify_webhook_secret"),
    ],
    ids=[
        "no-secret",
        "not-http",
        "not-whsec",
        "not-base64",
        "too-short",
        "batch",
        "attempts",
        "notify",
    ],
)
def test_unusable_push_settings_are_refused_at_start(values: dict[str, str], why: str) -> None:
    """A push URL without a usable whsec_ secret, or bounds out of range, fails at start."""
    with pytest.raises(ValidationError, match=re.escape(why)):
        make_settings(**values)


def test_a_refused_secret_is_never_printed() -> None:
    """The validation error names the setting, never the secret's value."""
    with pytest.raises(ValidationError) as refused:
        make_settings(
            feed_webhook_url="https://p.example/f", feed_webhook_secret="plain-secret-4a7c9e"
        )
    assert "plain-secret-4a7c9e" not in str(refused.value)


def test_beat_pushes_the_feed_every_interval_on_the_feed_queue() -> None:
    """Beat starts coexist.feed.push every COEX_FEED_PUSH_INTERVAL_SECONDS, routed to ``feed``."""
    conf = celery_config(make_settings(feed_push_interval_seconds=3))
    entry = conf["beat_schedule"]["push-feed"]
    assert (entry["task"], entry["schedule"], entry["options"]) == (
        "coexist.feed.push",
        3.0,
        {"expires": 3.0},
    )
    assert conf["task_routes"]["coexist.feed.*"] == {"queue": "feed"}


def test_inbox_body_retention_is_off_by_default_and_runs_on_beat_every_minute() -> None:
    """No retention unless set; when set, beat's ``drop-inbox-bodies`` runs every minute."""
    settings = make_settings()
    assert settings.inbox_body_retention_days is None
    entry = celery_config(settings)["beat_schedule"]["drop-inbox-bodies"]
    assert (entry["task"], entry["schedule"]) == ("coexist.ingest.drop_bodies", 60.0)


def test_inbox_body_retention_refuses_a_non_positive_number_of_days() -> None:
    """``COEX_INBOX_BODY_RETENTION_DAYS=0`` is refused rather than dropping every body at once."""
    with pytest.raises(ValidationError, match="inbox_body_retention_days"):
        make_settings(inbox_body_retention_days=0)


def test_the_sandbox_origin_is_refused_unless_the_sdk_is_served_from_it() -> None:
    """An extra message origin is accepted only as the origin of the configured SDK."""
    with pytest.raises(ValidationError, match="only when connect_sdk_url is on it"):
        make_settings(connect_sandbox_origin="http://127.0.0.1:8081")


def test_the_sandbox_origin_is_a_bare_origin() -> None:
    """A path or a wildcard in the extra origin is refused."""
    with pytest.raises(ValidationError, match="bare origin"):
        make_settings(
            connect_sdk_url="http://127.0.0.1:8081/_sandbox/sdk.js",
            connect_sandbox_origin="http://127.0.0.1:8081/_sandbox",
        )


def test_the_sandbox_origin_is_accepted_with_its_own_sdk() -> None:
    """The sandbox's origin is accepted when the SDK is the sandbox's stand-in."""
    settings = make_settings(
        connect_sdk_url="http://127.0.0.1:8081/_sandbox/sdk.js",
        connect_sandbox_origin="http://127.0.0.1:8081",
    )

    assert settings.connect_sandbox_origin == "http://127.0.0.1:8081"


def test_the_media_store_defaults_to_the_media_directory() -> None:
    """Unset, the media store is ``var/media``; COEX_MEDIA_DIR, the older name, still moves it."""
    assert make_settings().media_location == "var/media"
    assert make_settings(media_dir="/srv/media").media_location == "/srv/media"
    assert make_settings(media_store="s3://b-1/m", media_dir="/srv").media_location == "s3://b-1/m"


def test_the_media_store_is_read_from_coex_media_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """COEX_MEDIA_STORE and the S3 settings come from the environment, the secret kept secret."""
    monkeypatch.setenv("COEX_MEDIA_STORE", "s3://coexist-media/prod")
    monkeypatch.setenv("COEX_MEDIA_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("COEX_MEDIA_S3_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("COEX_MEDIA_S3_SECRET_ACCESS_KEY", "wJalrXUtnFEMIEXAMPLEKEY")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.media_location == "s3://coexist-media/prod"
    assert settings.media_s3_endpoint_url == "http://127.0.0.1:9000"
    assert "wJalrXUtnFEMIEXAMPLEKEY" not in repr(settings)
    assert "wJalrXUtnFEMIEXAMPLEKEY" in settings.secret_values


@pytest.mark.parametrize(
    ("store", "why"),
    [
        ("http://bucket/media", "must be a directory or an S3 URL"),
        ("s3://", "names no valid bucket"),
        ("s3://Upper-Case", "names no valid bucket"),
        ("s3://ab", "names no valid bucket"),
        ("s3://bucket..x", "names no valid bucket"),
        ("s3://bucket/a//b", "unusable prefix segment"),
        ("s3://bucket/../other", "unusable prefix segment"),
        ("s3://bucket/media?versionId=1", "unusable prefix segment"),
    ],
)
def test_an_unusable_media_store_url_is_refused_with_its_reason(store: str, why: str) -> None:
    """A URL that is not ``s3://bucket/optional/prefix`` fails at start, saying what is wrong."""
    with pytest.raises(ValidationError, match=re.escape(why)):
        make_settings(media_store=store)


@pytest.mark.parametrize(
    "store", ["s3://coexist-media", "s3://coexist.media-1/a/b/", "/srv/media", "var/media"]
)
def test_a_directory_or_a_bucket_url_is_a_usable_media_store(store: str) -> None:
    """A path, or ``s3://`` with a valid bucket and an optional prefix, is accepted."""
    assert make_settings(media_store=store).media_location == store


def test_s3_credentials_are_given_both_or_neither() -> None:
    """An access key id without its secret (or the reverse) is refused at start."""
    with pytest.raises(ValidationError, match="set together"):
        make_settings(media_store="s3://coexist-media", media_s3_access_key_id="AKIAEXAMPLE")
    with pytest.raises(ValidationError, match="set together"):
        make_settings(media_s3_secret_access_key=SecretStr("wJalrXUtnFEMIEXAMPLEKEY"))


def test_the_s3_endpoint_must_be_an_http_url() -> None:
    """COEX_MEDIA_S3_ENDPOINT_URL without http(s) and a host is refused."""
    with pytest.raises(ValidationError, match="media_s3_endpoint_url"):
        make_settings(media_s3_endpoint_url="minio:9000")
