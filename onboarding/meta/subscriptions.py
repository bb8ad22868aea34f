"""The app's webhook subscription on a WABA, read from ``GET /{waba-id}/subscribed_apps``.

Meta lists every app subscribed to the WABA, each as ``{"whatsapp_business_api_data": {"id",
"link", "name"}}`` plus ``override_callback_uri`` when that app set a WABA-level override
(docs/meta.md#117-subscribing-without-losing-an-override). Only our app's item concerns
us; other apps (another partner's) are counted, never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Subscription:
    """Whether our app is subscribed to a WABA, and the override it set there, if any."""

    subscribed: bool
    override_callback_uri: str | None = None
    other_apps: int = 0


def of_app(items: list[dict[str, Any]], app_id: str) -> Subscription:
    """Our app's subscription among the ``data`` items of ``GET /{waba-id}/subscribed_apps``."""
    ours: dict[str, Any] | None = None
    others = 0
    for item in items:
        app = item.get("whatsapp_business_api_data")
        if isinstance(app, dict) and str(app.get("id")) == app_id:
            ours = item
        else:
            others += 1
    if ours is None:
        return Subscription(subscribed=False, other_apps=others)
    uri = ours.get("override_callback_uri")
    return Subscription(
        subscribed=True,
        override_callback_uri=uri if isinstance(uri, str) and uri else None,
        other_apps=others,
    )
