"""The operator console in a real browser (headless Chromium): log in, watch an onboarding
progress to 100 %, retry a step, replay a quarantined delivery, and see strangers' markup
shown as text."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By

from models import Message, Onboarding, SyncType
from onboarding.demo.servers import serve
from onboarding.ingest.dispatch import process_delivery
from onboarding.ingest.inbox import receive
from onboarding.runtime import Runtime
from onboarding.sandbox import DeliveryOptions, HistoryProfile, Sandbox
from onboarding.web import create_app
from tests.conftest import ADMIN_TOKEN, SIGNUP_TOKEN

pytestmark = pytest.mark.browser

PROFILE = HistoryProfile(seed=9, threads=8, messages_per_thread=20, contacts=12, chunk_size=10)
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


@pytest.fixture
def site(rt: Runtime, tmp_path: Path) -> Iterator[str]:
    rt.settings.media_dir = tmp_path / "media"
    with serve(create_app(rt)) as url:
        yield url


def shot(driver: webdriver.Chrome, tmp_path: Path, name: str) -> Path:
    """A screenshot under the test's directory (and ``COEX_TEST_SCREENSHOTS`` if set)."""
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path))
    keep = os.environ.get("COEX_TEST_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``check`` until true; a page still loading (its elements not there yet, or gone)
    is a check that is not true yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except WebDriverException:
            pass
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def log_in(driver: webdriver.Chrome, site: str) -> None:
    driver.get(f"{site}/console/login")
    driver.find_element(By.NAME, "token").send_keys(ADMIN_TOKEN)
    driver.find_element(By.ID, "login").click()
    wait_for(lambda: driver.current_url.endswith("/console/onboardings"), "the list")


def start_onboarding(site: str, sandbox: Sandbox, rt: Runtime, *, webhooks: bool = True) -> int:
    """A business's signup posted to the served app; with ``webhooks`` the sandbox then
    delivers its contacts and history in the background."""
    if webhooks:
        sandbox.configure_webhooks(
            callback_url=f"{site}/webhooks/meta",
            profile=PROFILE,
            delivery=DeliveryOptions(background=True, timeout=20),
        )
    business = sandbox.add_business("Lucky Shrub", ["+1 650 555 1234"])
    signup = sandbox.complete_signup(business.waba_id)
    answer = httpx.post(
        f"{site}/signup",
        json={"code": signup.code, "session": dict(signup.session)},
        headers={"Authorization": f"Bearer {SIGNUP_TOKEN}"},
        timeout=30,
        trust_env=False,
    )
    assert answer.status_code == 202, answer.text
    value: int = answer.json()["onboarding_id"]

    def requested() -> bool:  # the hand-off runs after the 202
        with rt.db.sessionmaker() as session:
            onboarding = session.get_one(Onboarding, value)
            return all(onboarding.sync(t).request_id for t in SyncType)

    wait_for(requested, "both syncs requested")
    return value


def test_an_operator_watches_an_onboarding_reach_100_percent(
    chromium: webdriver.Chrome, site: str, rt: Runtime, sandbox: Sandbox, tmp_path: Path
) -> None:
    """After login the list shows the onboarding with a ticking 24 h countdown; reloading,
    the history bar reaches 100 % and the onboarding page draws its chunk ledger."""
    log_in(chromium, site)
    onboarding_id = start_onboarding(site, sandbox, rt)
    chromium.get(f"{site}/console/onboardings")
    clock = chromium.find_element(By.CSS_SELECTOR, f'tr[data-onboarding="{onboarding_id}"] time')
    first = clock.text
    wait_for(lambda: clock.text != first, "the countdown to tick", timeout=5)
    assert clock.text.endswith("left")
    shot(chromium, tmp_path, "console-onboardings-syncing")

    def complete() -> bool:
        chromium.get(f"{site}/console/onboardings")
        row = chromium.find_element(By.CSS_SELECTOR, f'tr[data-onboarding="{onboarding_id}"]')
        return "100 %" in row.text and "synced" in row.text

    wait_for(complete, "history at 100 %", timeout=60)
    shot(chromium, tmp_path, "console-onboardings")

    def ledger_whole() -> bool:
        # Meta's chunks come in any order: the one saying 100 % may come before the last.
        chromium.get(f"{site}/console/onboardings/{onboarding_id}")
        got = chromium.find_elements(By.CSS_SELECTOR, ".ledger .chunk.got")
        return bool(got) and not chromium.find_elements(By.CSS_SELECTOR, ".ledger .chunk.gap")

    wait_for(ledger_whole, "every chunk in the ledger", timeout=30)
    assert "syncing" in chromium.find_element(By.CSS_SELECTOR, "table.timeline").text
    shot(chromium, tmp_path, "console-onboarding")


def test_an_operator_retries_a_step_and_replays_a_delivery(
    chromium: webdriver.Chrome, site: str, rt: Runtime, sandbox: Sandbox, tmp_path: Path
) -> None:
    """The retry button runs the same retry as the CLI; the inbox's replay button processes a
    quarantined delivery again."""
    log_in(chromium, site)
    onboarding_id = start_onboarding(site, sandbox, rt, webhooks=False)
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, onboarding_id)
        onboarding.sync(SyncType.HISTORY).state = "unknown"
        onboarding.sync(SyncType.HISTORY).request_id = None
    chromium.get(f"{site}/console/onboardings/{onboarding_id}")
    chromium.find_element(By.NAME, "force").click()
    chromium.find_element(By.ID, "retry").click()
    wait_for(lambda: "Retrying" in chromium.find_element(By.TAG_NAME, "main").text, "notice")
    shot(chromium, tmp_path, "console-retry")

    with rt.db.session() as session:
        intake = receive(session, b"{broken")
        process_delivery(session, intake.delivery_id, settings=rt.settings)
    chromium.get(f"{site}/console/inbox?status=quarantined")
    row = chromium.find_element(By.CSS_SELECTOR, f'tr[data-delivery="{intake.delivery_id}"]')
    assert "not JSON" in row.text
    shot(chromium, tmp_path, "console-inbox")
    row.find_element(By.CSS_SELECTOR, "button.replay").click()
    wait_for(
        lambda: "Replaying 1 deliveries" in chromium.find_element(By.TAG_NAME, "main").text,
        "the replay notice",
    )


def test_markup_in_a_message_and_a_notice_stays_inert(
    chromium: webdriver.Chrome, site: str, rt: Runtime, sandbox: Sandbox, tmp_path: Path
) -> None:
    """A stranger's message carrying a script and an ``onerror=`` image, and the same markup
    in a notice, are shown as text and run nothing."""
    log_in(chromium, site)
    onboarding_id = start_onboarding(site, sandbox, rt, webhooks=False)
    with rt.db.session() as session:
        session.add(
            Message(
                onboarding_id=onboarding_id,
                wamid="wamid.hostile",
                thread="16505551234",
                direction="inbound",
                source="history",
                sent_at=datetime.now(UTC),
                type="text",
                text_body=HOSTILE,
                media_state="none",
            )
        )
    chromium.get(
        f"{site}/console/onboardings/{onboarding_id}?notice="
        + httpx.URL("", params={"n": HOSTILE}).query.decode().removeprefix("n=")
    )
    time.sleep(0.5)
    assert chromium.execute_script("return window.__pwned") is None
    texts = [e.text for e in chromium.find_elements(By.CSS_SELECTOR, "table.messages td.text")]
    assert HOSTILE in texts
    assert HOSTILE in chromium.find_element(By.CSS_SELECTOR, ".notice").text
    assert not chromium.find_elements(By.CSS_SELECTOR, "table.messages img")
    shot(chromium, tmp_path, "console-escaped")
