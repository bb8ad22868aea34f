"""Settings: COEX_ environment variables, validation, derived values."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

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


def test_2025_preset_blocks_the_brief_list_and_extras_add_to_it() -> None:
    """The named preset blocks the brief's regions; extra regions add to any policy."""
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
        "ingest",
        "followups",
        "send",
    ]
    assert conf["task_routes"]["coexist.signup.*"] == {"queue": "signup"}
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
