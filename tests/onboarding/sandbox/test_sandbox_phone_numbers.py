"""Phone numbers: the paged ``/{waba_id}/phone_numbers`` list and the number node."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from onboarding.sandbox import Business, NumberSpec, Sandbox


@pytest.fixture
def big_business(sandbox: Sandbox) -> Business:
    """A business whose WABA has 60 numbers: three pages at the default limit."""
    return sandbox.add_business("Many Numbers", 60)


@pytest.fixture
def big_auth(sandbox: Sandbox, big_business: Business) -> dict[str, str]:
    """The bearer header of ``big_business``."""
    return {"Authorization": f"Bearer {sandbox.issue_token(big_business.id)}"}


def _pages(client: httpx.Client, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url is not None:
        response = client.get(next_url, headers=headers)
        assert response.status_code == 200
        page: dict[str, Any] = response.json()
        pages.append(page)
        next_url = page.get("paging", {}).get("next")
    return pages


def test_paging_follows_next_across_three_pages(
    graph: httpx.Client, big_business: Business, big_auth: dict[str, str]
) -> None:
    """Following paging.next lists 60 numbers as 25, 25 and 10, each exactly once."""
    pages = _pages(graph, f"/{big_business.waba_id}/phone_numbers", big_auth)

    assert [len(page["data"]) for page in pages] == [25, 25, 10]
    listed = [node["id"] for page in pages for node in page["data"]]
    assert listed == list(big_business.phone_number_ids)


def test_last_page_has_no_next(
    graph: httpx.Client, big_business: Business, big_auth: dict[str, str]
) -> None:
    """The last page has cursors but no next link."""
    pages = _pages(graph, f"/{big_business.waba_id}/phone_numbers", big_auth)

    assert "next" not in pages[-1]["paging"]
    assert set(pages[-1]["paging"]["cursors"]) == {"before", "after"}


def test_next_is_an_absolute_versioned_url(
    graph: httpx.Client, big_business: Business, big_auth: dict[str, str]
) -> None:
    """paging.next is an absolute URL with the version, limit and after cursor."""
    page = graph.get(
        f"/{big_business.waba_id}/phone_numbers", params={"limit": 10}, headers=big_auth
    ).json()

    next_url = httpx.URL(page["paging"]["next"])
    assert str(next_url).startswith(
        f"https://graph.facebook.com/v25.0/{big_business.waba_id}/phone_numbers?"
    )
    assert next_url.params["limit"] == "10"
    assert next_url.params["after"] == page["paging"]["cursors"]["after"]


def test_limit_sets_the_page_size(
    graph: httpx.Client, big_business: Business, big_auth: dict[str, str]
) -> None:
    """limit=7 returns seven numbers on the first page."""
    page = graph.get(
        f"/{big_business.waba_id}/phone_numbers", params={"limit": 7}, headers=big_auth
    ).json()

    assert len(page["data"]) == 7


def test_previous_link_returns_the_previous_page(
    graph: httpx.Client, big_business: Business, big_auth: dict[str, str]
) -> None:
    """The second page's previous link returns the first page again."""
    url = f"/{big_business.waba_id}/phone_numbers"
    first = graph.get(url, headers=big_auth).json()
    second = graph.get(first["paging"]["next"], headers=big_auth).json()

    again = graph.get(second["paging"]["previous"], headers=big_auth).json()

    assert again["data"] == first["data"]
    assert "previous" not in first["paging"]


def test_invalid_cursor_is_code_100(
    graph: httpx.Client, big_business: Business, big_auth: dict[str, str]
) -> None:
    """A forged after cursor is refused with code 100."""
    response = graph.get(
        f"/{big_business.waba_id}/phone_numbers", params={"after": "bm9wZQ"}, headers=big_auth
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100


def test_empty_waba_lists_no_paging(sandbox: Sandbox, graph: httpx.Client) -> None:
    """A WABA without numbers answers an empty data list and no paging."""
    empty = sandbox.add_business("Empty", 0)
    headers = {"Authorization": f"Bearer {sandbox.issue_token(empty.id)}"}

    assert graph.get(f"/{empty.waba_id}/phone_numbers", headers=headers).json() == {"data": []}


def test_list_node_has_meta_default_fields(
    graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """Without fields, a listed number carries Meta's default fields in Meta's formats."""
    node = graph.get(f"/{business.waba_id}/phone_numbers", headers=auth).json()["data"][0]

    assert node == {
        "id": business.phone_number_ids[0],
        "display_phone_number": "+1 555-078-3881",
        "verified_name": "Lucky Shrub",
        "quality_rating": "GREEN",
        "code_verification_status": "VERIFIED",
        "status": "CONNECTED",
        "name_status": "APPROVED",
        "throughput": {"level": "STANDARD"},
    }


def test_list_omits_biz_app_fields_unless_requested(
    graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """Without fields, the list carries neither is_on_biz_app nor platform_type."""
    node = graph.get(f"/{business.waba_id}/phone_numbers", headers=auth).json()["data"][0]

    assert "is_on_biz_app" not in node
    assert "platform_type" not in node


def test_list_returns_only_requested_fields(
    graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """With fields, a listed number carries the requested fields plus id, nothing else."""
    node = graph.get(
        f"/{business.waba_id}/phone_numbers",
        params={"fields": "is_on_biz_app,verified_name"},
        headers=auth,
    ).json()["data"][0]

    assert node == {
        "is_on_biz_app": True,
        "verified_name": "Lucky Shrub",
        "id": business.phone_number_ids[0],
    }


def test_list_can_model_meta_omitting_biz_app_fields(clock: Any) -> None:
    """With list_includes_biz_app_fields=False the list omits is_on_biz_app even if requested."""
    sandbox = Sandbox("42", "secret", clock=clock, list_includes_biz_app_fields=False)
    business = sandbox.add_business("Quirky", 1)
    headers = {"Authorization": f"Bearer {sandbox.issue_token(business.id)}"}

    with httpx.Client(
        transport=sandbox.mock_transport(), base_url="https://graph.facebook.com/v25.0"
    ) as client:
        listed = client.get(
            f"/{business.waba_id}/phone_numbers",
            params={"fields": "id,is_on_biz_app,platform_type"},
            headers=headers,
        ).json()["data"][0]
        node = client.get(
            f"/{business.phone_number_ids[0]}",
            params={"fields": "is_on_biz_app"},
            headers=headers,
        ).json()

    assert listed == {"id": business.phone_number_ids[0]}
    assert node["is_on_biz_app"] is True


def test_node_default_fields(graph: httpx.Client, business: Business, auth: dict[str, str]) -> None:
    """The number node answers id, display_phone_number and verified_name by default."""
    node = graph.get(f"/{business.phone_number_ids[0]}", headers=auth).json()

    assert node == {
        "id": business.phone_number_ids[0],
        "display_phone_number": "+1 555-078-3881",
        "verified_name": "Lucky Shrub",
    }


def test_coexistence_number_is_cloud_api_after_signup(
    sandbox: Sandbox, graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """After signup a coexistence number reports is_on_biz_app true and platform CLOUD_API."""
    sandbox.complete_signup(business.waba_id)

    node = graph.get(
        f"/{business.phone_number_ids[0]}",
        params={"fields": "is_on_biz_app,platform_type"},
        headers=auth,
    ).json()

    assert node == {
        "is_on_biz_app": True,
        "platform_type": "CLOUD_API",
        "id": business.phone_number_ids[0],
    }


def test_number_is_not_applicable_before_signup(
    graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """Before any signup a Business app number reports platform NOT_APPLICABLE."""
    node = graph.get(
        f"/{business.phone_number_ids[0]}", params={"fields": "platform_type"}, headers=auth
    ).json()

    assert node["platform_type"] == "NOT_APPLICABLE"


def test_seeded_states_are_reported(sandbox: Sandbox, graph: httpx.Client) -> None:
    """A seeded on-premise, disconnected Business app number is reported as seeded."""
    spec = NumberSpec(
        "+44 7700 900123", is_on_biz_app=True, platform_type="ON_PREMISE", status="DISCONNECTED"
    )
    odd = sandbox.add_business("Odd", [spec])
    headers = {"Authorization": f"Bearer {sandbox.issue_token(odd.id)}"}

    node = graph.get(
        f"/{odd.phone_number_ids[0]}",
        params={"fields": "is_on_biz_app,platform_type,status,display_phone_number"},
        headers=headers,
    ).json()

    assert node["platform_type"] == "ON_PREMISE"
    assert node["status"] == "DISCONNECTED"
    assert node["display_phone_number"].startswith("+44 ")


def test_unknown_field_is_code_100(
    graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """Requesting a field the number node lacks is refused with code 100, as on Graph."""
    response = graph.get(
        f"/{business.phone_number_ids[0]}", params={"fields": "favourite_colour"}, headers=auth
    )

    assert response.status_code == 400
    assert "nonexisting field (favourite_colour)" in response.json()["error"]["message"]


def test_sub_selection_in_fields_is_accepted(
    graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """fields=throughput{level} is understood as the throughput field."""
    node = graph.get(
        f"/{business.phone_number_ids[0]}", params={"fields": "throughput{level}"}, headers=auth
    ).json()

    assert node["throughput"] == {"level": "STANDARD"}
