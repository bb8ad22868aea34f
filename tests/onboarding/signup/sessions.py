"""Embedded Signup session-info messages in Meta's documented shapes (docs/meta.md#12, v4).

Built from the examples on Meta's Implementation, Versions, Errors and coexistence onboarding
pages: v4 messages carry no ``version`` key; v3 ones carry ``version: 3``.
"""

from __future__ import annotations

from typing import Any

WABA = "524126980791429"
NUMBER = "106540352242922"
BUSINESS = "2729063490586005"
#: Every id list a v4 ``data`` may carry (multi-WABA flows, ads, pages, datasets...).
ID_LISTS: dict[str, list[str]] = {
    "waba_ids": [WABA, "524126980791430"],
    "ad_account_ids": ["1234567890"],
    "page_ids": ["1029384756"],
    "dataset_ids": ["5647382910"],
    "catalog_ids": ["998877665544"],
    "instagram_account_ids": ["17841400000000000"],
}


def v4(event: str, **data: Any) -> dict[str, Any]:
    """A v4 session-info message: no ``version`` key."""
    return {"type": "WA_EMBEDDED_SIGNUP", "event": event, "data": data}


def v3(event: str, **data: Any) -> dict[str, Any]:
    """A v3 session-info message: ``version: 3``."""
    return {**v4(event, **data), "version": 3}


def all_ids(**extra: Any) -> dict[str, Any]:
    """The three ids of a finished flow."""
    return {"phone_number_id": NUMBER, "waba_id": WABA, "business_id": BUSINESS, **extra}
