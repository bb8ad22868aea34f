"""Media synced by late-media webhooks: GET /{media_id}, the download URL and their lifetimes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from onboarding.sandbox import (
    Business,
    CollectingSink,
    Faults,
    HistoryProfile,
    Sandbox,
    SandboxServer,
    WebhookDispatcher,
)

SEVEN_DAYS = 7 * 24 * 3600
Sync = Callable[[str, str], httpx.Response]


@pytest.fixture
def media(
    configure: Callable[..., WebhookDispatcher],
    sink: CollectingSink,
    subscribed_number: str,
    sync: Sync,
) -> list[dict[str, Any]]:
    """The typed media objects of the late-media webhooks of a delivered history sync."""
    dispatcher = configure(sink=sink, profile=HistoryProfile(shuffle=False, duplicate_share=0))
    sync(subscribed_number, "history")
    assert dispatcher.wait_idle(5)
    objects = [
        message[message["type"]]
        for value in sink.values("history")
        if "messages" in value
        for message in value["messages"]
    ]
    assert objects
    return objects


@pytest.fixture
def medium(media: list[dict[str, Any]]) -> dict[str, Any]:
    """One media object from a late-media webhook."""
    return media[0]


def test_media_node_answers_metadata_and_url(
    graph: httpx.Client, auth: dict[str, str], medium: dict[str, Any]
) -> None:
    """GET /{media_id} answers url, mime_type, sha256, file_size, id and messaging_product."""
    response = graph.get(f"/{medium['id']}", headers=auth)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"messaging_product", "url", "mime_type", "sha256", "file_size", "id"}
    assert body["messaging_product"] == "whatsapp"
    assert (body["id"], body["mime_type"], body["sha256"]) == (
        medium["id"],
        medium["mime_type"],
        medium["sha256"],
    )
    assert isinstance(body["file_size"], int)
    assert body["url"].startswith("https://graph.facebook.com/_media/")


def test_download_with_bearer_returns_the_announced_bytes(
    graph: httpx.Client, auth: dict[str, str], medium: dict[str, Any]
) -> None:
    """The URL with the business token yields bytes matching sha256, size and type."""
    meta = graph.get(f"/{medium['id']}", headers=auth).json()

    download = graph.get(meta["url"], headers=auth)

    assert download.status_code == 200
    assert download.headers["content-type"] == meta["mime_type"]
    assert len(download.content) == meta["file_size"]
    assert hashlib.sha256(download.content).hexdigest() == meta["sha256"]


def test_download_without_bearer_is_401(
    graph: httpx.Client, auth: dict[str, str], medium: dict[str, Any]
) -> None:
    """The media URL without Authorization is refused with 401."""
    url = graph.get(f"/{medium['id']}", headers=auth).json()["url"]

    assert graph.get(url).status_code == 401
    assert graph.get(url, headers={"Authorization": "Bearer EAAGnope"}).status_code == 401


def test_download_with_another_business_token_is_404(
    sandbox: Sandbox, graph: httpx.Client, auth: dict[str, str], medium: dict[str, Any]
) -> None:
    """Another business's valid token cannot fetch the medium."""
    url = graph.get(f"/{medium['id']}", headers=auth).json()["url"]
    other = sandbox.add_business("Other Shop", 1)

    response = graph.get(url, headers={"Authorization": f"Bearer {sandbox.issue_token(other.id)}"})

    assert response.status_code == 404


def test_url_lives_five_minutes(
    sandbox: Sandbox, graph: httpx.Client, auth: dict[str, str], medium: dict[str, Any]
) -> None:
    """The URL works 299 s after it was issued and is a 404 after 301 s."""
    url = graph.get(f"/{medium['id']}", headers=auth).json()["url"]

    sandbox.advance_clock(299)
    assert graph.get(url, headers=auth).status_code == 200
    sandbox.advance_clock(2)
    assert graph.get(url, headers=auth).status_code == 404


def test_expired_url_can_be_replaced_by_asking_again(
    sandbox: Sandbox, graph: httpx.Client, auth: dict[str, str], medium: dict[str, Any]
) -> None:
    """After the URL expires a new GET /{media_id} gives a working one."""
    sandbox.advance_clock(600)

    url = graph.get(f"/{medium['id']}", headers=auth).json()["url"]

    assert graph.get(url, headers=auth).status_code == 200


def test_tampered_url_is_404(
    graph: httpx.Client, auth: dict[str, str], media: list[dict[str, Any]]
) -> None:
    """Pointing a signed URL at another medium breaks its hash and is a 404."""
    url = httpx.URL(graph.get(f"/{media[0]['id']}", headers=auth).json()["url"])

    forged = url.copy_merge_params({"mid": media[-1]["id"]})

    assert graph.get(forged, headers=auth).status_code == 404


def test_media_id_lives_seven_days(
    sandbox: Sandbox, graph: httpx.Client, auth: dict[str, str], medium: dict[str, Any]
) -> None:
    """Seven days after its late-media webhook the id works; a second later it is gone (100/33)."""
    sandbox.advance_clock(SEVEN_DAYS)
    assert graph.get(f"/{medium['id']}", headers=auth).status_code == 200

    sandbox.advance_clock(1)
    error = graph.get(f"/{medium['id']}", headers=auth).json()["error"]

    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert error["type"] == "GraphMethodException"
    assert sandbox.media_item(medium["id"]) is None


def test_valid_url_stops_working_when_the_media_expires(
    sandbox: Sandbox, graph: httpx.Client, auth: dict[str, str], medium: dict[str, Any]
) -> None:
    """A URL fetched just before the 7-day expiry dies with the medium."""
    sandbox.advance_clock(SEVEN_DAYS - 60)
    url = graph.get(f"/{medium['id']}", headers=auth).json()["url"]

    sandbox.advance_clock(61)

    assert graph.get(url, headers=auth).status_code == 404


def test_media_of_another_business_is_unsupported(
    sandbox: Sandbox, graph: httpx.Client, medium: dict[str, Any]
) -> None:
    """Another business's token sees no such object (100/33)."""
    other = sandbox.add_business("Other Shop", 1)

    response = graph.get(
        f"/{medium['id']}", headers={"Authorization": f"Bearer {sandbox.issue_token(other.id)}"}
    )

    assert response.json()["error"]["error_subcode"] == 33


def test_media_node_needs_a_token(graph: httpx.Client, medium: dict[str, Any]) -> None:
    """Without a token the media node is Graph's code 104."""
    assert graph.get(f"/{medium['id']}").json()["error"]["code"] == 104


def test_phone_number_id_must_match_the_medium(
    graph: httpx.Client, auth: dict[str, str], business: Business, medium: dict[str, Any]
) -> None:
    """A phone_number_id that is not the medium's number is an invalid parameter."""
    other_number = business.phone_number_ids[1]

    response = graph.get(f"/{medium['id']}", params={"phone_number_id": other_number}, headers=auth)

    assert response.json()["error"]["code"] == 100


def test_phone_numbers_are_still_served_next_to_media(
    graph: httpx.Client, auth: dict[str, str], business: Business, medium: dict[str, Any]
) -> None:
    """GET /{id} still answers a phone number node once media exist."""
    response = graph.get(f"/{business.phone_number_ids[0]}", headers=auth)

    assert response.json()["display_phone_number"] == "+1 555-078-3881"


def test_media_calls_are_counted(
    sandbox: Sandbox, graph: httpx.Client, auth: dict[str, str], medium: dict[str, Any]
) -> None:
    """Media node and download calls count under media and media_download."""
    url = graph.get(f"/{medium['id']}", headers=auth).json()["url"]
    graph.get(url, headers=auth)

    counts = sandbox.call_counts()
    assert (counts["media"], counts["media_download"]) == (1, 1)


def test_media_node_faults_inject_5xx(
    sandbox: Sandbox, graph: httpx.Client, auth: dict[str, str], medium: dict[str, Any]
) -> None:
    """A media fault answers Graph's 5xx envelope."""
    sandbox.set_faults(Faults.only("media", error_5xx=1.0, seed=1))

    response = graph.get(f"/{medium['id']}", headers=auth)

    assert response.status_code in {500, 503}
    assert sandbox.fault_counts()["media"]["error_5xx"] == 1


def test_media_download_faults_inject_latency_and_5xx(
    sandbox: Sandbox, graph: httpx.Client, auth: dict[str, str], medium: dict[str, Any]
) -> None:
    """Faults on media_download delay and fail downloads without touching the node."""
    url = graph.get(f"/{medium['id']}", headers=auth).json()["url"]
    sandbox.set_faults(Faults.only("media_download", error_5xx=1.0, latency_ms=1, seed=2))

    assert graph.get(url, headers=auth).status_code in {500, 503}
    assert graph.get(f"/{medium['id']}", headers=auth).status_code == 200
    assert sandbox.fault_counts()["media_download"] == {
        "latency": 1,
        "error_5xx": 1,
        "throttle": 0,
        "drop_after_apply": 0,
    }


def test_reset_forgets_media(
    sandbox: Sandbox, graph: httpx.Client, auth: dict[str, str], medium: dict[str, Any]
) -> None:
    """After a reset the media id is unknown."""
    sandbox.reset()

    assert sandbox.media_item(medium["id"]) is None
    assert sandbox.stats()["media"] == 0


@pytest.fixture
def server(sandbox: Sandbox) -> Iterator[SandboxServer]:
    """The sandbox served on a free loopback port."""
    with SandboxServer(sandbox) as running:
        yield running


def test_url_points_at_the_host_the_request_came_to(
    server: SandboxServer, auth: dict[str, str], medium: dict[str, Any]
) -> None:
    """Over real HTTP the media URL is absolute on the sandbox server and downloads there."""
    with httpx.Client(base_url=server.url, timeout=5) as http:
        url = http.get(f"/v25.0/{medium['id']}", headers=auth).json()["url"]
        download = http.get(url, headers=auth)

    assert url.startswith(f"{server.url}/_media/")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == medium["sha256"]
