"""The hosted signup page in a real browser (headless Chromium), with the sandbox's stand-in SDK
playing Meta: a business follows its invitation link, connects, and watches its history arrive;
bad links, foreign messages, a cancelled flow and a code held too long are each answered."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from selenium import webdriver
from selenium.webdriver.common.by import By
from sqlalchemy import select

from models import AbandonedSignup, Onboarding, utcnow
from onboarding.connect.service import create_link
from onboarding.demo.servers import serve
from onboarding.runtime import Runtime
from onboarding.sandbox import DeliveryOptions, HistoryProfile, Sandbox, SandboxServer
from onboarding.web import create_app
from tests.browser.test_console import shot, wait_for

pytestmark = pytest.mark.browser

PROFILE = HistoryProfile(seed=5, threads=6, messages_per_thread=15, contacts=8, chunk_size=10)
REF = "customer-4711"


@pytest.fixture
def meta(sandbox: Sandbox) -> Iterator[str]:
    """The sandbox over HTTP: its origin serves the stand-in SDK and the signup dialog."""
    with SandboxServer(sandbox) as server:
        yield server.url


@pytest.fixture
def site(rt: Runtime, meta: str, tmp_path: Path) -> Iterator[str]:
    rt.settings.media_dir = tmp_path / "media"
    rt.settings.connect_link_secret = SecretStr("connect-link-secret-for-tests-0123")
    rt.settings.meta_config_id = "987654321"
    rt.settings.connect_sdk_url = f"{meta}/_sandbox/sdk.js"
    rt.settings.connect_sandbox_origin = meta
    with serve(create_app(rt)) as url:
        yield url


def invitation(rt: Runtime, site: str, lifetime: timedelta = timedelta(days=7)) -> str:
    return create_link(rt.settings, REF, lifetime, fallback_base=site).url


def launch(driver: webdriver.Chrome) -> str:
    """Press the page's button and switch to the dialog it opens; returns the page's handle."""
    page = driver.current_window_handle
    wait_for(lambda: driver.find_element(By.ID, "start").is_enabled(), "the SDK to load")
    driver.find_element(By.ID, "start").click()
    wait_for(lambda: len(driver.window_handles) == 2, "the signup dialog")
    driver.switch_to.window(next(h for h in driver.window_handles if h != page))
    return page


def step(driver: webdriver.Chrome, key: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'#steps li[data-step="{key}"]')


def onboardings(rt: Runtime) -> list[Onboarding]:
    with rt.db.sessionmaker() as session:
        return list(session.scalars(select(Onboarding)))


def test_a_business_follows_its_link_and_watches_history_reach_100_percent(
    chromium: webdriver.Chrome, site: str, rt: Runtime, sandbox: Sandbox, tmp_path: Path
) -> None:
    """The dialog's code is handed over at once; the page shows each step live, the number
    and its verified name, and history at 100 %; the onboarding keeps the link's ref."""
    sandbox.configure_webhooks(
        callback_url=f"{site}/webhooks/meta",
        profile=PROFILE,
        delivery=DeliveryOptions(background=True, timeout=20),
    )
    sandbox.add_business("Lucky Shrub", ["+1 650 555 1234"])
    chromium.get(invitation(rt, site))
    shot(chromium, tmp_path, "connect-page")
    page = launch(chromium)
    assert "whatsapp_business_app_onboarding" in chromium.find_element(By.ID, "extras").text
    chromium.find_element(By.ID, "connect").click()
    wait_for(lambda: chromium.find_element(By.ID, "finish").is_displayed(), "the finish step")
    chromium.find_element(By.ID, "finish").click()
    chromium.switch_to.window(page)
    wait_for(lambda: step(chromium, "number").get_attribute("data-status") == "done", "number")
    assert "+1 650-555-1234" in step(chromium, "number").text
    assert "Lucky Shrub" in step(chromium, "number").text
    wait_for(
        lambda: step(chromium, "done").get_attribute("data-status") == "done",
        "history at 100 %",
        timeout=60,
    )
    assert "100 %" in step(chromium, "history").text
    assert step(chromium, "contacts").get_attribute("data-status") == "done"
    shot(chromium, tmp_path, "connect-done")
    [onboarding] = onboardings(rt)
    assert onboarding.connect_ref == REF
    assert onboarding.state == "synced"


def test_an_expired_link_is_refused(chromium: webdriver.Chrome, site: str, rt: Runtime) -> None:
    """A link past its expiry shows why and offers no button."""
    signed_at = utcnow() - timedelta(minutes=2)
    chromium.get(
        create_link(rt.settings, REF, timedelta(minutes=1), fallback_base=site, now=signed_at).url
    )
    assert "expired" in chromium.find_element(By.ID, "refused").text
    assert not chromium.find_elements(By.ID, "start")


def test_a_tampered_link_is_refused(chromium: webdriver.Chrome, site: str, rt: Runtime) -> None:
    """A link whose ref was changed after signing is refused and offers no button."""
    link = invitation(rt, site).replace(f"ref={REF}", "ref=customer-4712")
    chromium.get(link)
    assert "not valid" in chromium.find_element(By.ID, "refused").text
    assert not chromium.find_elements(By.ID, "start")


class _Forger(BaseHTTPRequestHandler):
    """A page on a foreign origin that opens the signup page and posts it a forged finish."""

    target = ""

    def do_GET(self) -> None:
        body = (
            "<!doctype html><script>"
            f"var w = window.open({self.target!r}, 'victim');"
            "var forged = JSON.stringify({type: 'WA_EMBEDDED_SIGNUP', "
            "event: 'FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING', "
            "data: {waba_id: '524126980791429'}});"
            "setInterval(function () { w.postMessage(forged, '*'); "
            "w.postMessage({sandboxSdk: 'auth', code: 'AQforged'}, '*'); }, 200);"
            "</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_a_message_from_a_foreign_origin_is_ignored(
    chromium: webdriver.Chrome, site: str, rt: Runtime
) -> None:
    """Session info posted by a page outside Facebook's (and the sandbox's) origins reaches the
    page, is counted as ignored, and hands nothing over."""
    handler = type("Forger", (_Forger,), {"target": invitation(rt, site)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        chromium.get(f"http://127.0.0.1:{server.server_address[1]}/")
        forger = chromium.current_window_handle
        wait_for(lambda: len(chromium.window_handles) == 2, "the signup page")
        chromium.switch_to.window(next(h for h in chromium.window_handles if h != forger))

        def ignored() -> bool:
            count = chromium.find_element(By.TAG_NAME, "body").get_attribute(
                "data-ignored-messages"
            )
            return int(count or 0) >= 4

        wait_for(ignored, "the forged messages to arrive")
        assert chromium.find_element(By.ID, "steps").get_attribute("hidden") is not None
        assert onboardings(rt) == []
        chromium.close()
        chromium.switch_to.window(forger)
    finally:
        server.shutdown()
        server.server_close()


def test_a_cancelled_signup_is_recorded_as_abandoned(
    chromium: webdriver.Chrome, site: str, rt: Runtime, sandbox: Sandbox
) -> None:
    """Cancel in the dialog records an abandoned signup under the link's ref, and the page
    offers to start again."""
    sandbox.add_business("Lucky Shrub", ["+1 650 555 1234"])
    chromium.get(invitation(rt, site))
    page = launch(chromium)
    chromium.find_element(By.ID, "cancel").click()
    chromium.switch_to.window(page)
    wait_for(lambda: "cancelled" in chromium.find_element(By.ID, "problem").text, "the notice")
    assert chromium.find_element(By.ID, "start").is_enabled()
    with rt.db.sessionmaker() as session:
        [row] = session.scalars(select(AbandonedSignup)).all()
        assert (row.event, row.current_step, row.connect_ref) == (
            "CANCEL",
            "PHONE_NUMBER_SETUP",
            REF,
        )
    assert onboardings(rt) == []


def test_a_code_held_past_30_seconds_says_start_again(
    chromium: webdriver.Chrome, site: str, rt: Runtime, sandbox: Sandbox, tmp_path: Path
) -> None:
    """A code Meta issued more than 30 s before it reaches coexist is refused by Meta; the page
    shows the code expired and offers to start again."""
    sandbox.add_business("Lucky Shrub", ["+1 650 555 1234"])
    chromium.get(invitation(rt, site))
    page = launch(chromium)
    chromium.find_element(By.ID, "connect").click()
    wait_for(lambda: chromium.find_element(By.ID, "finish").is_displayed(), "the finish step")
    sandbox.advance_clock(31)
    chromium.find_element(By.ID, "finish").click()
    chromium.switch_to.window(page)
    wait_for(
        lambda: (
            chromium.find_element(By.ID, "connect").get_attribute("data-problem") == "code_expired"
        ),
        "the expired code",
    )
    assert "Start again" in chromium.find_element(By.ID, "problem").text
    assert chromium.find_element(By.ID, "start").is_enabled()
    shot(chromium, tmp_path, "connect-code-expired")
    [onboarding] = onboardings(rt)
    assert onboarding.state == "code_expired"
