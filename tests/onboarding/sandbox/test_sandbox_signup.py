"""The browser half of Embedded Signup: session-info messages and codes."""

from __future__ import annotations

import json

import pytest

from onboarding.sandbox import Business, NumberSpec, Sandbox


def test_coexistence_session_is_v4_without_version(sandbox: Sandbox, business: Business) -> None:
    """A coexistence finish is Embedded Signup v4's message: only waba_id and no version key."""
    result = sandbox.complete_signup(business.waba_id)

    assert result.session == {
        "type": "WA_EMBEDDED_SIGNUP",
        "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
        "data": {"waba_id": business.waba_id},
    }


def test_coexistence_session_in_v3_form_has_version_3(sandbox: Sandbox, business: Business) -> None:
    """With session_version=3 the coexistence finish is Meta's v3 example: waba_id, version 3."""
    result = sandbox.complete_signup(business.waba_id, session_version=3)

    assert result.session == {
        "type": "WA_EMBEDDED_SIGNUP",
        "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
        "version": 3,
        "data": {"waba_id": business.waba_id},
    }


def test_unknown_session_version_is_a_caller_error(sandbox: Sandbox, business: Business) -> None:
    """A session version other than v4 (none) or 3 is refused."""
    with pytest.raises(ValueError, match="session_version"):
        sandbox.complete_signup(business.waba_id, session_version=2)


@pytest.mark.parametrize(
    ("event", "has_number"),
    [
        ("FINISH_ONLY_WABA", False),
        ("FINISH_OBO_MIGRATION", True),
        ("FINISH_GRANT_ONLY_API_ACCESS", True),
    ],
)
def test_other_flow_finish_names_the_waba_and_business(
    sandbox: Sandbox, business: Business, event: str, has_number: bool
) -> None:
    """A finish of another flow is a v4 message naming the WABA, business and maybe the number."""
    session = sandbox.finish_other_flow(business.waba_id, event)

    expected: dict[str, str] = {"waba_id": business.waba_id, "business_id": business.id}
    if has_number:
        expected["phone_number_id"] = business.phone_number_ids[0]
    assert session == {"type": "WA_EMBEDDED_SIGNUP", "event": event, "data": expected}


def test_other_flow_finish_refuses_an_onboarding_event(
    sandbox: Sandbox, business: Business
) -> None:
    """finish_other_flow only makes the finishes coexist does not onboard."""
    with pytest.raises(ValueError, match="event must be one of"):
        sandbox.finish_other_flow(business.waba_id, "FINISH")


def test_coexistence_session_may_include_all_ids(sandbox: Sandbox, business: Business) -> None:
    """With include_phone_number_id the coexistence finish also names the number and business."""
    result = sandbox.complete_signup(business.waba_id, include_phone_number_id=True)

    assert result.session["data"] == {
        "phone_number_id": business.phone_number_ids[0],
        "waba_id": business.waba_id,
        "business_id": business.id,
    }


def test_cloud_api_signup_is_a_finish_event(sandbox: Sandbox) -> None:
    """A non-coexistence signup sends FINISH with the number, WABA and business ids."""
    cloud = sandbox.add_business("Cloud Only", 1, coexistence=False)

    result = sandbox.complete_signup(cloud.waba_id, coexistence=False)

    assert result.session == {
        "type": "WA_EMBEDDED_SIGNUP",
        "event": "FINISH",
        "data": {
            "phone_number_id": cloud.phone_number_ids[0],
            "waba_id": cloud.waba_id,
            "business_id": cloud.id,
        },
    }


def test_signup_picks_the_business_app_number(sandbox: Sandbox) -> None:
    """Without a phone number id, signup picks the WABA's number that is on the Business app."""
    mixed = sandbox.add_business(
        "Mixed", [NumberSpec(is_on_biz_app=False), NumberSpec(is_on_biz_app=True)]
    )

    result = sandbox.complete_signup(mixed.waba_id)

    assert result.phone_number_id == mixed.phone_number_ids[1]


def test_coexistence_signup_of_a_cloud_number_is_rejected(sandbox: Sandbox) -> None:
    """Asking for a coexistence signup of a number not on the Business app is a caller error."""
    cloud = sandbox.add_business("Cloud Only", 1, coexistence=False)

    with pytest.raises(ValueError, match="not on the WhatsApp Business app"):
        sandbox.complete_signup(cloud.waba_id, cloud.phone_number_ids[0])


def test_code_is_long_and_url_safe(sandbox: Sandbox, business: Business) -> None:
    """The minted code looks like Meta's: an AQ-prefixed url-safe string of 100+ characters."""
    code = sandbox.complete_signup(business.waba_id).code

    assert code.startswith("AQ")
    assert len(code) >= 100
    assert set(code) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_session_json_is_what_event_data_carries(sandbox: Sandbox, business: Business) -> None:
    """session_json is the JSON string the browser's message event carries."""
    result = sandbox.complete_signup(business.waba_id)

    assert json.loads(result.session_json) == result.session


def test_cancel_names_the_last_step(sandbox: Sandbox) -> None:
    """An abandoned signup is a CANCEL with the current step."""
    assert sandbox.cancel_signup("PHONE_NUMBER_SETUP") == {
        "type": "WA_EMBEDDED_SIGNUP",
        "event": "CANCEL",
        "data": {"current_step": "PHONE_NUMBER_SETUP"},
    }


def test_reported_error_is_a_cancel_with_error_fields(sandbox: Sandbox) -> None:
    """A user-reported error is a CANCEL with message, code, session id and timestamp."""
    session = sandbox.fail_signup("Name rejected", "524126", session_id="f34b51dab5e0498")

    assert session["event"] == "CANCEL"
    assert session["data"]["error_message"] == "Name rejected"
    assert session["data"]["error_code"] == "524126"
    assert session["data"]["session_id"] == "f34b51dab5e0498"
    assert session["data"]["timestamp"] == str(int(sandbox.now()))


def test_seeded_ids_are_15_digit_strings(business: Business) -> None:
    """Business, WABA and number ids are 15-digit numeric strings, like Meta's."""
    for identifier in (business.id, business.waba_id, *business.phone_number_ids):
        assert identifier.isdigit()
        assert len(identifier) == 15


def test_same_seed_gives_the_same_ids() -> None:
    """Two sandboxes built with the same seed seed the same ids."""
    first = Sandbox("42", "secret", seed=3).add_business("A", 2)
    second = Sandbox("42", "secret", seed=3).add_business("A", 2)

    assert first == second


def test_duplicate_display_number_is_rejected(sandbox: Sandbox, business: Business) -> None:
    """Seeding a display number that already exists is a caller error."""
    with pytest.raises(ValueError, match="already seeded"):
        sandbox.add_business("Copycat", ["+1 555-078-3881"])
