"""Region eligibility: which countries a provider will onboard for coexistence.

Meta's current documentation lists no unsupported country (docs/meta.md#10-region-eligibility),
so the default policy ``meta-current`` blocks nothing; ``meta-2025-09-13`` reproduces the
list Meta published for coexistence in September 2025.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers


@dataclass(frozen=True)
class Eligibility:
    region: str | None
    eligible: bool
    reason: str


def region_of(display_phone_number: str | None) -> str | None:
    """ISO region of a number as Meta displays it (``+1 555-078-3881``), or None."""
    if not display_phone_number:
        return None
    digits = "".join(ch for ch in display_phone_number if ch.isdigit())
    if not digits:
        return None
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None
    # Exact region when the number is valid; otherwise the country code's main region
    # (fictional 555 numbers and new ranges still belong to a country).
    region: str | None = phonenumbers.region_code_for_number(parsed)
    if (not region or region == "ZZ") and parsed.country_code:
        region = phonenumbers.region_code_for_country_code(parsed.country_code)
    return None if not region or region == "ZZ" else region


def check(display_phone_number: str | None, blocked: frozenset[str], policy: str) -> Eligibility:
    region = region_of(display_phone_number)
    if region is None:
        return Eligibility(None, True, "region unknown; not blocked")
    if region in blocked:
        return Eligibility(region, False, f"region {region} is not eligible under policy {policy}")
    return Eligibility(region, True, f"region {region} eligible under policy {policy}")
