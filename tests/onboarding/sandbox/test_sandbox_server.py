"""The sandbox as a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from onboarding.sandbox import Faults, Sandbox, SandboxServer


@pytest.fixture
def server(sandbox: Sandbox) -> Iterator[SandboxServer]:
    """The sandbox served on a free loopback port."""
    with SandboxServer(sandbox) as running:
        yield running


@pytest.fixture
def http(server: SandboxServer) -> Iterator[httpx.Client]:
    """A real HTTP client for the running server."""
    with httpx.Client(base_url=server.url, timeout=5) as client:
        yield client


def _onboard(http: httpx.Client) -> dict[str, Any]:
    business = http.post("/_sandbox/businesses", json={"name": "Wire Shop", "numbers": 3}).json()
    signup = http.post("/_sandbox/signups", json={"waba_id": business["waba_id"]}).json()
    token = http.get(
        "/v25.0/oauth/access_token",
        params={
            "client_id": "1234567890123",
            "client_secret": "sandbox-app-secret",
            "code": signup["code"],
        },
    ).json()["access_token"]
    return {**business, "token": token}


def test_server_binds_loopback_on_a_free_port(server: SandboxServer) -> None:
    """With port 0 the server picks a free port on 127.0.0.1."""
    url = httpx.URL(server.url)

    assert url.host == "127.0.0.1"
    assert url.port not in {None, 0}


def test_full_onboarding_over_http(http: httpx.Client) -> None:
    """Control API seeding, code exchange, listing, subscribing and syncing work over HTTP."""
    onboarded = _onboard(http)
    auth = {"Authorization": f"Bearer {onboarded['token']}"}

    listed = http.get(
        f"/v25.0/{onboarded['waba_id']}/phone_numbers",
        params={"fields": "is_on_biz_app"},
        headers=auth,
    )
    subscribed = http.post(f"/v25.0/{onboarded['waba_id']}/subscribed_apps", headers=auth)
    synced = http.post(
        f"/v25.0/{onboarded['phone_numbers'][0]['id']}/smb_app_data",
        json={"messaging_product": "whatsapp", "sync_type": "smb_app_state_sync"},
        headers=auth,
    )

    assert len(listed.json()["data"]) == 3
    assert subscribed.json() == {"success": True}
    assert synced.json()["request_id"].isdigit()
    assert http.get("/_sandbox/syncs").json()["data"][0]["sync_type"] == "smb_app_state_sync"


def test_graph_errors_keep_their_status_and_envelope(http: httpx.Client) -> None:
    """An error crosses the wire with its HTTP status and Meta's envelope."""
    response = http.get("/v25.0/123456789012345", headers={"Authorization": "Bearer EAAGx"})

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    assert response.json()["error"]["code"] == 190


def test_next_link_points_back_to_the_server(http: httpx.Client, server: SandboxServer) -> None:
    """paging.next is an absolute URL on the server itself and can be followed."""
    onboarded = _onboard(http)
    auth = {"Authorization": f"Bearer {onboarded['token']}"}

    first = http.get(
        f"/v25.0/{onboarded['waba_id']}/phone_numbers", params={"limit": 2}, headers=auth
    ).json()
    second = http.get(first["paging"]["next"], headers=auth).json()

    assert first["paging"]["next"].startswith(f"{server.url}/v25.0/")
    assert len(second["data"]) == 1
    assert "next" not in second["paging"]


def test_dropped_response_is_a_transport_error_after_apply(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    """A drop-after-apply fault disconnects the client, yet the sync is recorded as accepted."""
    onboarded = _onboard(http)
    number_id = onboarded["phone_numbers"][0]["id"]
    sandbox.set_faults(Faults.only("smb_app_data", drop_after_apply=1.0, seed=1))

    with pytest.raises(httpx.TransportError):
        http.post(
            f"/v25.0/{number_id}/smb_app_data",
            json={"messaging_product": "whatsapp", "sync_type": "history"},
            headers={"Authorization": f"Bearer {onboarded['token']}"},
        )

    assert [sync.sync_type for sync in sandbox.accepted_syncs(number_id)] == ["history"]
    assert http.get("/_sandbox/stats").json()["faults"]["smb_app_data"]["drop_after_apply"] == 1


def test_chunked_request_body_is_read(http: httpx.Client) -> None:
    """A chunked request body reaches the sandbox intact."""
    response = http.post(
        "/_sandbox/businesses", content=iter([b'{"name": "Chunky",', b' "numbers": 1}'])
    )

    assert response.status_code == 201
    assert response.json()["name"] == "Chunky"


def test_logs_never_carry_codes_or_tokens(
    http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Request logs strip query strings, so codes and tokens never reach them."""
    with caplog.at_level(logging.DEBUG, logger="onboarding.sandbox"):
        onboarded = _onboard(http)
        http.get(f"/v25.0/{onboarded['waba_id']}", params={"access_token": onboarded["token"]})

    assert "sandbox_http" in caplog.text
    assert "?[redacted]" in caplog.text
    assert onboarded["token"] not in caplog.text
    assert "sandbox-app-secret" not in caplog.text
    assert "code=" not in caplog.text


def test_stop_is_idempotent_and_url_needs_a_running_server(sandbox: Sandbox) -> None:
    """stop() twice is harmless and url is unavailable once stopped."""
    server = SandboxServer(sandbox)
    server.start()
    server.stop()
    server.stop()

    with pytest.raises(RuntimeError):
        _ = server.url


def test_server_can_restart(sandbox: Sandbox) -> None:
    """A stopped server can be started again and serves requests."""
    server = SandboxServer(sandbox)
    for _ in range(2):
        with server, httpx.Client(base_url=server.url) as client:
            assert client.get("/_sandbox/stats").status_code == 200


def test_concurrent_syncs_accept_exactly_one(sandbox: Sandbox, http: httpx.Client) -> None:
    """Eight simultaneous history syncs for one number over HTTP: one accepted, seven 2593107."""
    onboarded = _onboard(http)
    number_id = onboarded["phone_numbers"][0]["id"]

    def attempt(_: int) -> int:
        with httpx.Client(base_url=http.base_url, timeout=5) as client:
            response = client.post(
                f"/v25.0/{number_id}/smb_app_data",
                json={"messaging_product": "whatsapp", "sync_type": "history"},
                headers={"Authorization": f"Bearer {onboarded['token']}"},
            )
            code: int = response.json().get("error", {}).get("code", 0)
            return code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = sorted(pool.map(attempt, range(8)))

    assert codes == [0] + [2593107] * 7
    assert len(sandbox.accepted_syncs(number_id)) == 1
