"""Invitation links from the CLI (``coexist connect-link``) and the admin API."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from onboarding.cli import app
from onboarding.connect.links import verify
from onboarding.runtime import Runtime
from tests.conftest import ADMIN_TOKEN
from tests.onboarding.connect.conftest import LINK_SECRET

runner = CliRunner()
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def verifies(url: str, ref: str) -> None:
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert verify(LINK_SECRET, q["ref"], q["exp"], q["sig"]).ref == ref


def test_the_cli_prints_a_link_under_the_public_url(connect_web: TestClient, rt: Runtime) -> None:
    """``connect-link --ref`` prints a verifiable link under ``COEX_PUBLIC_URL``."""
    rt.settings.public_url = "https://onboard.example.com"

    result = runner.invoke(app, ["connect-link", "--ref", "customer-4711", "--expires", "2d"])

    assert result.exit_code == 0, result.output
    url = result.stdout.strip()
    assert url.startswith("https://onboard.example.com/connect?ref=customer-4711&")
    verifies(url, "customer-4711")


def test_the_cli_refuses_a_bad_ref_with_exit_2(connect_web: TestClient, rt: Runtime) -> None:
    """A ref outside the charset is a usage error naming the rule."""
    rt.settings.public_url = "https://onboard.example.com"

    result = runner.invoke(app, ["connect-link", "--ref", "a b"])

    assert result.exit_code == 2
    assert "ref must be" in result.output


def test_the_cli_needs_a_public_url(connect_web: TestClient, rt: Runtime) -> None:
    """Without ``COEX_PUBLIC_URL`` the CLI has no base for a link and says so."""
    result = runner.invoke(app, ["connect-link", "--ref", "c1", "--json"])

    assert result.exit_code == 2
    assert "COEX_PUBLIC_URL" in result.output


def test_the_admin_api_makes_a_link_on_its_own_host(connect_web: TestClient) -> None:
    """``POST /v1/admin/connect-links`` answers 201 with a link on the request's host."""
    answer = connect_web.post(
        "/v1/admin/connect-links", json={"ref": "customer-4711", "expires": "12h"}, headers=ADMIN
    )

    assert answer.status_code == 201
    body = answer.json()
    assert body["url"].startswith("http://testserver/connect?ref=customer-4711&")
    assert body["expires_at"].endswith("Z")
    verifies(body["url"], "customer-4711")


def test_the_admin_api_refuses_a_lifetime_over_90_days(connect_web: TestClient) -> None:
    """A lifetime beyond 90 days is 422 with the rule."""
    answer = connect_web.post(
        "/v1/admin/connect-links", json={"ref": "c1", "expires": "91d"}, headers=ADMIN
    )

    assert answer.status_code == 422
    assert "90 days" in answer.json()["detail"]


def test_the_admin_api_refuses_a_bad_ref(connect_web: TestClient) -> None:
    """A ref with a space is 422 naming the field."""
    answer = connect_web.post("/v1/admin/connect-links", json={"ref": "a b"}, headers=ADMIN)

    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["body.ref"]


def test_the_admin_api_needs_the_admin_token(connect_web: TestClient) -> None:
    """Without the admin token no link is made."""
    answer = connect_web.post("/v1/admin/connect-links", json={"ref": "c1"})

    assert answer.status_code == 401
    assert json.loads(answer.text)["error"] == "unauthorized"
