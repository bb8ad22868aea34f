"""The reconcile checks read Meta's documented answers; anything incomplete is unknown."""

from __future__ import annotations

from typing import Any

import httpx

from config import Settings
from models import Onboarding
from onboarding.meta.graph import GraphClient
from onboarding.reconcile import checks
from onboarding.reconcile.checks import Verdict

APP = "1"


def graph_answering(body: dict[str, Any], status: int = 200) -> GraphClient:
    return GraphClient(
        app_id=APP,
        app_secret="app-secret-value",
        transport=httpx.MockTransport(lambda r: httpx.Response(status, json=body)),
        max_wait=0.001,
    )


def onboarding() -> Onboarding:
    return Onboarding(
        waba_id="102290129340398",
        phone_number_id="106540352242922",
        is_on_biz_app=True,
        platform_type="CLOUD_API",
    )


def test_debug_token_valid_answer_is_ok() -> None:
    """Meta's debug_token answer with is_valid true and expires_at 0 is a live token."""
    body = {
        "data": {
            "app_id": APP,
            "type": "SYSTEM_USER",
            "application": "Lucky Shrub",
            "expires_at": 0,
            "is_valid": True,
            "scopes": ["whatsapp_business_management", "whatsapp_business_messaging"],
        }
    }
    finding = checks.token_state(graph_answering(body), "EAAGtoken")

    assert finding.verdict is Verdict.OK
    assert "never expires" in finding.detail


def test_debug_token_without_is_valid_is_unknown() -> None:
    """A debug_token answer lacking is_valid says nothing: unknown, no alert."""
    finding = checks.token_state(graph_answering({"data": {"app_id": APP}}), "EAAGtoken")

    assert (finding.verdict, finding.alert) == (Verdict.UNKNOWN, None)


def test_refused_app_token_is_unknown_not_a_dead_business_token() -> None:
    """A 190 on the debug_token call itself is about the app token: unknown."""
    body = {
        "error": {
            "message": "Invalid OAuth access token",
            "type": "OAuthException",
            "code": 190,
            "fbtrace_id": "A1",
        }
    }
    finding = checks.token_state(graph_answering(body, 401), "EAAGtoken")

    assert finding.verdict is Verdict.UNKNOWN


def test_number_answer_from_metas_example_matches_what_is_stored() -> None:
    """``{"is_on_biz_app": true, "platform_type": "CLOUD_API", "id": …}`` is no drift."""
    body = {"is_on_biz_app": True, "platform_type": "CLOUD_API", "id": "106540352242922"}

    assert checks.number(graph_answering(body), onboarding(), "EAAGtoken").verdict is Verdict.OK


def test_number_answer_without_is_on_biz_app_is_unknown() -> None:
    """A number answer missing is_on_biz_app is unknown; nothing is updated."""
    finding = checks.number(graph_answering({"id": "106540352242922"}), onboarding(), "EAAG1")

    assert (finding.verdict, finding.updates) == (Verdict.UNKNOWN, ())


def test_subscription_with_override_and_nothing_configured_is_ok(settings: Settings) -> None:
    """Our app subscribed with an override, and none configured: ok, the override is named."""
    body = {
        "data": [
            {
                "whatsapp_business_api_data": {
                    "id": APP,
                    "link": f"https://www.facebook.com/games/?app_id={APP}",
                    "name": "Lucky Shrub",
                },
                "override_callback_uri": "https://my-waba-alternate-callback.com/webhook",
            }
        ]
    }
    finding = checks.subscription(graph_answering(body), settings, onboarding(), "EAAG1")

    assert finding.verdict is Verdict.OK
    assert "https://my-waba-alternate-callback.com/webhook" in finding.detail
