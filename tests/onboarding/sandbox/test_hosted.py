"""The sandbox's stand-in SDK and signup dialog, served for the hosted signup page."""

from __future__ import annotations

import httpx

from onboarding.sandbox import NumberSpec, Sandbox


def get(sandbox: Sandbox, url: str) -> httpx.Response:
    with httpx.Client(transport=sandbox.mock_transport()) as client:
        return client.get(url)


def test_the_sdk_is_bound_to_the_origin_it_is_served_from(sandbox: Sandbox) -> None:
    """``/_sandbox/sdk.js`` is JavaScript that opens the dialog on the sandbox's own origin."""
    answer = get(sandbox, "http://127.0.0.1:8081/_sandbox/sdk.js")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert 'var SANDBOX = "http://127.0.0.1:8081";' in answer.text
    assert "window.fbAsyncInit()" in answer.text


def test_the_dialog_offers_only_business_app_numbers(sandbox: Sandbox) -> None:
    """The dialog lists each WABA's Business app numbers, not Cloud API-only ones."""
    app = sandbox.add_business("Lucky Shrub", ["+1 650 555 1234"])
    sandbox.add_business("Cloud Only", ["+1 650 555 9999"], coexistence=False)

    answer = get(sandbox, "http://127.0.0.1:8081/_sandbox/signup-dialog?extras=%7B%7D")

    assert f'value="{app.waba_id}"' in answer.text
    assert "Lucky Shrub" in answer.text
    assert "Cloud Only" not in answer.text


def test_the_dialog_shows_names_and_extras_as_text(sandbox: Sandbox) -> None:
    """A verified name or an ``extras`` value carrying markup is escaped."""
    sandbox.add_business(
        "Shop", [NumberSpec(display_phone_number="+1 650 555 1234", verified_name="<b>x</b>")]
    )

    answer = get(
        sandbox, "http://127.0.0.1:8081/_sandbox/signup-dialog?extras=%3Cscript%3Ealert(1)"
    )

    assert "<b>x</b>" not in answer.text
    assert "&lt;b&gt;x&lt;/b&gt;" in answer.text
    assert "<script>alert(1)" not in answer.text
