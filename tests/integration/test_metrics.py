"""``/metrics`` on the real stack: the web app's scrape adds up what the Celery workers did
(prometheus-client's multiprocess mode, one directory shared by every process)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks._harness import CoexistApi, WebServer
from onboarding.sandbox import Sandbox

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(web: WebServer) -> Samples:
    answer = httpx.get(f"{web.url}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def test_a_scrape_of_the_web_app_counts_the_workers_calls(
    api: CoexistApi, web: WebServer, sandbox: Sandbox
) -> None:
    """The code exchange and both smb_app_data calls happen in a worker process; the web
    app's ``/metrics`` shows them."""
    smb = ("coexist_graph_calls_total", (("endpoint", "{id}/smb_app_data"), ("outcome", "ok")))
    exchanges = ("coexist_code_exchange_seconds_count", ())
    before = scrape(web)
    business = sandbox.add_business("Lucky Shrub")
    signup = sandbox.complete_signup(business.waba_id)
    answer = api.post_signup(signup.session, signup.code)
    assert answer.status_code == 202, answer.text
    api.wait_for_onboarding(answer.json()["onboarding_id"])
    after = scrape(web)
    assert after.get(smb, 0) - before.get(smb, 0) == 2
    assert after.get(exchanges, 0) - before.get(exchanges, 0) == 1
    assert after[("coexist_onboardings", (("state", "syncing"),))] >= 1
