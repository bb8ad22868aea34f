"""Bearer authentication, unknown routes and wrong methods."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from onboarding.sandbox import Business, Sandbox


def test_missing_token_is_code_104(graph: httpx.Client, business: Business) -> None:
    """A call without any access token is refused with HTTP 400 code 104."""
    response = graph.get(f"/{business.waba_id}/phone_numbers")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 104
    assert error["message"] == "An access token is required to request this resource."
    assert error["type"] == "OAuthException"


def test_unknown_token_is_http_401_code_190(graph: httpx.Client, business: Business) -> None:
    """A token the sandbox never issued is refused with HTTP 401 code 190."""
    response = graph.get(
        f"/{business.waba_id}/phone_numbers", headers={"Authorization": "Bearer EAAGforged"}
    )

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == 190
    assert error["message"] == "Invalid OAuth access token - Cannot parse access token"


def test_revoked_token_is_code_190(
    graph: httpx.Client, sandbox: Sandbox, business: Business, auth: dict[str, str]
) -> None:
    """A revoked business token is refused with code 190."""
    assert sandbox.revoke_tokens(business.id) == 1

    response = graph.get(f"/{business.waba_id}/phone_numbers", headers=auth)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == 190


def test_access_token_query_parameter_is_accepted(
    graph: httpx.Client, business: Business, token: str
) -> None:
    """The token may travel as the access_token query parameter, as Graph allows."""
    response = graph.get(f"/{business.waba_id}/phone_numbers", params={"access_token": token})

    assert response.status_code == 200


def test_error_carries_a_23_character_fbtrace_id(graph: httpx.Client, business: Business) -> None:
    """Every error envelope has a 23-character fbtrace_id, echoed in x-fb-trace-id."""
    response = graph.get(f"/{business.waba_id}/phone_numbers")

    trace = response.json()["error"]["fbtrace_id"]
    assert re.fullmatch(r"[A-Za-z0-9_\-]{23}", trace)
    assert response.headers["x-fb-trace-id"] == trace


@pytest.mark.parametrize("version", ["v19.0", "v25.0", "v26.0"])
def test_any_graph_version_is_accepted(
    sandbox: Sandbox, business: Business, token: str, version: str
) -> None:
    """Paths under any vNN.N version are served."""
    with httpx.Client(transport=sandbox.mock_transport()) as client:
        response = client.get(
            f"https://graph.facebook.com/{version}/{business.phone_number_ids[0]}",
            headers={"Authorization": f"Bearer {token}"},
        )

    assert response.status_code == 200


def test_unknown_object_is_subcode_33(graph: httpx.Client, auth: dict[str, str]) -> None:
    """An id the sandbox does not know is answered with code 100 subcode 33."""
    response = graph.get("/999999999999999", headers=auth)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert error["message"].startswith("Unsupported get request. Object with ID '999999999999999'")


def test_wrong_method_is_unsupported_request(
    graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """DELETE on a phone number's smb_app_data edge is an unsupported delete request."""
    response = graph.delete(f"/{business.phone_number_ids[0]}/smb_app_data", headers=auth)

    error = response.json()["error"]
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert error["message"].startswith("Unsupported delete request.")


def test_unknown_edge_is_nonexisting_field(
    graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """A GET of an edge the node type lacks names the field and node type."""
    response = graph.get(f"/{business.phone_number_ids[0]}/phone_numbers", headers=auth)

    error = response.json()["error"]
    assert error["code"] == 100
    assert error["message"] == (
        "(#100) Tried accessing nonexisting field (phone_numbers) on node type "
        "(WhatsAppBusinessPhoneNumber)"
    )


def test_extra_path_components_are_code_2500(
    graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """A path deeper than node/edge is refused with code 2500."""
    response = graph.get(f"/{business.waba_id}/phone_numbers/extra", headers=auth)

    error = response.json()["error"]
    assert (error["code"], error["message"]) == (
        2500,
        "Unknown path components: /phone_numbers/extra",
    )


def test_unversioned_path_is_unsupported(sandbox: Sandbox, token: str) -> None:
    """A path without a vNN.N version is answered with subcode 33."""
    with httpx.Client(transport=sandbox.mock_transport()) as client:
        response = client.get(
            "https://graph.facebook.com/me", headers={"Authorization": f"Bearer {token}"}
        )

    assert response.json()["error"]["error_subcode"] == 33
    assert sandbox.call_counts()["unknown"] == 1


def test_non_json_body_is_code_100(
    graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """A body that is not JSON where JSON is expected is refused with code 100."""
    response = graph.post(
        f"/{business.phone_number_ids[0]}/smb_app_data",
        content=b"sync_type=history&oops",
        headers={**auth, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100


def test_waba_node_is_served(graph: httpx.Client, business: Business, auth: dict[str, str]) -> None:
    """The WABA node answers its id and name by default."""
    response = graph.get(f"/{business.waba_id}", headers=auth)

    assert response.json() == {"id": business.waba_id, "name": "Lucky Shrub"}


def test_mock_transport_serves_an_async_client(
    sandbox: Sandbox, business: Business, token: str
) -> None:
    """The same MockTransport serves httpx.AsyncClient."""

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=sandbox.mock_transport()) as client:
            return await client.get(
                f"https://graph.facebook.com/v25.0/{business.waba_id}/phone_numbers",
                headers={"Authorization": f"Bearer {token}"},
            )

    response = asyncio.run(fetch())

    assert response.status_code == 200
    assert len(response.json()["data"]) == 2
