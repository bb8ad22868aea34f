"""Reading our app's subscription out of GET /{waba-id}/subscribed_apps."""

from __future__ import annotations

from onboarding.meta.subscriptions import Subscription, of_app

APP = "670843887433847"


def item(app_id: str, override: str | None = None) -> dict[str, object]:
    entry: dict[str, object] = {
        "whatsapp_business_api_data": {
            "id": app_id,
            "link": f"https://www.facebook.com/games/?app_id={app_id}",
            "name": "Lucky Shrub",
        }
    }
    if override is not None:
        entry["override_callback_uri"] = override
    return entry


def test_our_app_with_its_override_is_found() -> None:
    """Meta's documented answer: our app's item, with override_callback_uri beside it."""
    found = of_app([item(APP, "https://my-waba-alternate-callback.com/webhook")], APP)

    assert found == Subscription(True, "https://my-waba-alternate-callback.com/webhook", 0)


def test_other_apps_only_means_not_subscribed() -> None:
    """Another partner's app on the WABA is counted, and our app is not subscribed."""
    assert of_app([item("999", "https://other.example/wa")], APP) == Subscription(False, None, 1)


def test_empty_data_is_not_subscribed() -> None:
    """``{"data": []}`` means no app is subscribed."""
    assert of_app([], APP) == Subscription(False)
