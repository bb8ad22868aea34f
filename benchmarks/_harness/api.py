"""The web app's HTTP API as the tests and benchmarks use it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import httpx

from benchmarks._harness.services import STUCK_STATES, poll_until
from benchmarks._harness.stack import StackConfig
from models import OnboardingState, SyncState

# -- the web app's API ---------------------------------------------------------------------


def syncs_requested(detail: Mapping[str, Any]) -> bool:
    """The onboarding is ``syncing`` and Meta accepted both of its sync requests."""
    return detail["state"] == OnboardingState.SYNCING and all(
        sync["state"] == SyncState.REQUESTED for sync in detail["sync"].values()
    )


def describe(detail: Mapping[str, Any]) -> str:
    """One line about an onboarding, for failure messages."""
    syncs = ", ".join(
        f"{label}={sync['state']}/{sync['attempts']} attempts"
        + (f" ({sync['last_error']})" if sync["last_error"] else "")
        for label, sync in detail["sync"].items()
    )
    timeline = " > ".join(step["to"] for step in detail["timeline"])
    alerts = ", ".join(alert["kind"] for alert in detail["alerts"]) or "none"
    error = detail["last_error"] or "none"
    return (
        f"onboarding {detail['id']} {detail['state']} [{timeline}] syncs: {syncs};"
        f" last error: {error}; alerts: {alerts}"
    )


class CoexistApi:
    """The web app over HTTP, with the signup and admin bearers."""

    def __init__(
        self, base_url: str, config: StackConfig, *, timeout: float = 10.0, connections: int = 16
    ) -> None:
        self._signup = {"Authorization": f"Bearer {config.signup_token}"}
        self._admin = {"Authorization": f"Bearer {config.admin_token}"}
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._http = httpx.Client(base_url=base_url, timeout=timeout, limits=limits)

    def post_signup(self, session: Mapping[str, Any], code: str | None = None) -> httpx.Response:
        """``POST /signup`` with the browser's hand-off (``code`` absent for a CANCEL)."""
        body: dict[str, Any] = {"session": dict(session)}
        if code is not None:
            body["code"] = code
        return self._http.post("/signup", json=body, headers=self._signup)

    def onboarding(self, onboarding_id: int) -> dict[str, Any]:
        """``GET /onboardings/{id}``: the operator's view of one onboarding."""
        response = self._http.get(f"/onboardings/{onboarding_id}", headers=self._admin)
        response.raise_for_status()
        detail: dict[str, Any] = response.json()
        return detail

    def wait_for_onboarding(
        self,
        onboarding_id: int,
        until: Callable[[Mapping[str, Any]], bool] = syncs_requested,
        *,
        what: str = "both syncs requested",
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Poll the onboarding until ``until`` holds; fail early if it is stuck."""
        detail = poll_until(
            lambda: self.onboarding(onboarding_id),
            lambda d: until(d) or d["state"] in STUCK_STATES,
            what=f"onboarding {onboarding_id}: {what}",
            timeout=timeout,
            describe=describe,
        )
        if not until(detail):
            raise AssertionError(f"{what}: never, the onboarding is stuck: {describe(detail)}")
        return detail

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CoexistApi:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
