"""Fault injection: 5xx errors, throttling, latency and responses dropped after apply."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from onboarding.sandbox import Business, DroppedResponse, FaultRule, Faults, Sandbox

Sync = Callable[[str, str], httpx.Response]
Exchange = Callable[..., httpx.Response]


@pytest.fixture
def onboarded(sandbox: Sandbox, business: Business) -> str:
    """The id of a coexistence number whose signup just finished."""
    return sandbox.complete_signup(business.waba_id).phone_number_id


def test_error_5xx_at_rate_one_fails_without_applying(
    sandbox: Sandbox, onboarded: str, sync: Sync
) -> None:
    """With error_5xx=1.0 the call gets Graph's 5xx envelope and no sync is recorded."""
    sandbox.set_faults(Faults.only("smb_app_data", error_5xx=1.0, seed=1))

    response = sync(onboarded, "history")

    assert response.status_code in {500, 503}
    error = response.json()["error"]
    expected = {
        500: (1, "An unknown error has occurred."),
        503: (2, "Service temporarily unavailable"),
    }
    assert (error["code"], error["message"]) == expected[response.status_code]
    assert error["type"] == "OAuthException"
    assert sandbox.accepted_syncs() == []


def test_error_5xx_yields_both_500_and_503(
    sandbox: Sandbox, business: Business, graph: httpx.Client, auth: dict[str, str]
) -> None:
    """Over many seeded draws the 5xx fault answers both HTTP 500 and HTTP 503."""
    sandbox.set_faults(Faults.only("phone_number", error_5xx=1.0, seed=5))

    statuses = {
        graph.get(f"/{business.phone_number_ids[0]}", headers=auth).status_code for _ in range(40)
    }

    assert statuses == {500, 503}


def test_rate_zero_injects_nothing(sandbox: Sandbox, onboarded: str, sync: Sync) -> None:
    """With every rate at 0.0 the call behaves normally and no fault is counted."""
    sandbox.set_faults(
        Faults({"*": FaultRule(error_5xx=0.0, throttle=0.0, drop_after_apply=0.0)}, seed=1)
    )

    assert sync(onboarded, "history").status_code == 200
    assert all(n == 0 for kinds in sandbox.fault_counts().values() for n in kinds.values())


def test_throttle_is_code_4_or_80007_with_usage_headers(
    sandbox: Sandbox, business: Business, graph: httpx.Client, auth: dict[str, str]
) -> None:
    """Code 4 carries X-App-Usage; 80007 carries the WABA's business use-case usage."""
    sandbox.set_faults(Faults.only("phone_numbers", throttle=1.0, seed=2))

    responses = [graph.get(f"/{business.waba_id}/phone_numbers", headers=auth) for _ in range(20)]

    assert {response.status_code for response in responses} == {400}
    assert {response.json()["error"]["code"] for response in responses} == {4, 80007}
    app_level = next(r for r in responses if r.json()["error"]["code"] == 4)
    assert json.loads(app_level.headers["x-app-usage"])["call_count"] == 100
    assert "x-business-use-case-usage" not in app_level.headers
    waba_level = next(r for r in responses if r.json()["error"]["code"] == 80007)
    usage = json.loads(waba_level.headers["x-business-use-case-usage"])
    assert usage[business.waba_id][0]["type"] == "whatsapp_business_management"
    assert usage[business.waba_id][0]["estimated_time_to_regain_access"] == 1


def test_throttle_regain_time_is_configurable(
    sandbox: Sandbox, business: Business, graph: httpx.Client, auth: dict[str, str]
) -> None:
    """throttle_regain_minutes sets the estimate; 0 leaves the estimate out."""
    sandbox.set_faults(
        Faults.only("phone_numbers", throttle=1.0, throttle_regain_minutes=0, seed=2)
    )
    responses = [graph.get(f"/{business.waba_id}/phone_numbers", headers=auth) for _ in range(10)]
    assert all("x-business-use-case-usage" not in r.headers for r in responses)


def test_throttled_call_is_not_applied(
    sandbox: Sandbox, business: Business, graph: httpx.Client, auth: dict[str, str]
) -> None:
    """A throttled subscribe does not subscribe the WABA."""
    sandbox.set_faults(Faults.only("subscribed_apps", throttle=1.0, seed=2))

    graph.post(f"/{business.waba_id}/subscribed_apps", headers=auth)

    assert not sandbox.is_subscribed(business.waba_id)


def test_latency_sleeps_the_fixed_delay_plus_jitter(
    clock: Callable[[], float], business: Business
) -> None:
    """latency_ms=250 with 50 ms jitter sleeps between 0.25 s and 0.30 s before answering."""
    slept: list[float] = []
    sandbox = Sandbox("42", "secret", clock=clock, sleep=slept.append)
    sandbox.set_faults(Faults.only("oauth", latency_ms=250, latency_jitter_ms=50, seed=3))

    with httpx.Client(transport=sandbox.mock_transport()) as client:
        client.get("https://graph.facebook.com/v25.0/oauth/access_token")

    assert len(slept) == 1
    assert 0.25 <= slept[0] <= 0.30
    assert sandbox.fault_counts()["oauth"]["latency"] == 1


def test_drop_after_apply_raises_remote_protocol_error(
    sandbox: Sandbox, onboarded: str, sync: Sync
) -> None:
    """Through MockTransport a dropped response is httpx.RemoteProtocolError."""
    sandbox.set_faults(Faults.only("smb_app_data", drop_after_apply=1.0, seed=1))

    with pytest.raises(httpx.RemoteProtocolError, match="Server disconnected"):
        sync(onboarded, "history")


def test_drop_after_apply_still_records_the_sync(
    sandbox: Sandbox, onboarded: str, sync: Sync
) -> None:
    """A dropped sync was accepted: it is recorded and a retry is refused with 2593107."""
    sandbox.set_faults(Faults.only("smb_app_data", drop_after_apply=1.0, seed=1))
    with pytest.raises(httpx.RemoteProtocolError):
        sync(onboarded, "history")
    sandbox.set_faults(None)

    assert [item.sync_type for item in sandbox.accepted_syncs(onboarded)] == ["history"]
    assert sync(onboarded, "history").json()["error"]["code"] == 2593107


def test_drop_after_apply_consumes_the_code(
    sandbox: Sandbox, business: Business, exchange: Exchange
) -> None:
    """A code exchange whose response is dropped has still used the code."""
    code = sandbox.complete_signup(business.waba_id).code
    sandbox.set_faults(Faults.only("oauth", drop_after_apply=1.0))
    with pytest.raises(httpx.RemoteProtocolError):
        exchange(code)
    sandbox.set_faults(None)

    assert exchange(code).json()["error"]["error_subcode"] == 36009


def test_handle_raises_dropped_response_with_the_lost_response(
    sandbox: Sandbox, onboarded: str, token: str
) -> None:
    """Sandbox.handle raises DroppedResponse carrying the response that never arrived."""
    sandbox.set_faults(Faults.only("smb_app_data", drop_after_apply=1.0))
    request = httpx.Request(
        "POST",
        f"https://graph.facebook.com/v25.0/{onboarded}/smb_app_data",
        json={"messaging_product": "whatsapp", "sync_type": "history"},
        headers={"Authorization": f"Bearer {token}"},
    )

    with pytest.raises(DroppedResponse) as dropped:
        sandbox.handle(request)

    assert dropped.value.endpoint == "smb_app_data"
    assert dropped.value.response.json()["messaging_product"] == "whatsapp"


def test_same_seed_draws_the_same_faults(clock: Callable[[], float]) -> None:
    """Two sandboxes with the same fault seed fail the same calls."""

    def outcomes() -> list[int]:
        sandbox = Sandbox("42", "secret", clock=clock)
        sandbox.set_faults(Faults.only("oauth", error_5xx=0.5, seed=11))
        with httpx.Client(transport=sandbox.mock_transport()) as client:
            return [
                client.get("https://graph.facebook.com/v25.0/oauth/access_token").status_code
                for _ in range(30)
            ]

    first = outcomes()
    assert first == outcomes()
    assert {400, 500} <= set(first)


def test_endpoint_rule_replaces_the_wildcard(
    sandbox: Sandbox, business: Business, graph: httpx.Client, auth: dict[str, str]
) -> None:
    """A rule for one endpoint overrides the "*" rule for that endpoint only."""
    sandbox.set_faults(Faults({"*": FaultRule(error_5xx=1.0), "waba": FaultRule()}, seed=1))

    assert graph.get(f"/{business.waba_id}", headers=auth).status_code == 200
    assert graph.get(f"/{business.phone_number_ids[0]}", headers=auth).status_code >= 500


def test_injected_faults_are_counted(sandbox: Sandbox, onboarded: str, sync: Sync) -> None:
    """Each injected fault is counted under its endpoint and kind."""
    sandbox.set_faults(Faults.only("smb_app_data", throttle=1.0, seed=1))

    sync(onboarded, "history")
    sync(onboarded, "smb_app_state_sync")

    assert sandbox.fault_counts()["smb_app_data"]["throttle"] == 2
    assert sandbox.stats()["faults"]["smb_app_data"]["throttle"] == 2


def test_faults_never_touch_the_control_api(sandbox: Sandbox, graph: httpx.Client) -> None:
    """With every endpoint failing, /_sandbox/ routes still answer normally."""
    sandbox.set_faults(Faults({"*": FaultRule(error_5xx=1.0, drop_after_apply=1.0)}))

    response = graph.get("https://graph.facebook.com/_sandbox/stats")

    assert response.status_code == 200


@pytest.mark.parametrize(
    "build",
    [
        lambda: FaultRule(error_5xx=1.5),
        lambda: FaultRule(latency_ms=-1),
        lambda: Faults({"telepathy": FaultRule()}),
        lambda: Faults.from_dict({"rules": {"oauth": {"explode": 1}}}),
        lambda: Faults.from_dict({"seed": "x"}),
    ],
)
def test_invalid_fault_config_is_rejected(build: Callable[[], object]) -> None:
    """Out-of-range rates, negative latency and unknown keys are rejected."""
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        build()


def test_fault_config_round_trips_through_json() -> None:
    """Faults.to_dict and Faults.from_dict are inverses."""
    faults = Faults(
        {"*": FaultRule(latency_ms=5), "smb_app_data": FaultRule(drop_after_apply=0.5)}, seed=9
    )

    assert Faults.from_dict(json.loads(json.dumps(faults.to_dict()))) == faults
