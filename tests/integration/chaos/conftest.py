"""What every chaos test shares: a sandbox that sends no webhook of another test's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from onboarding.sandbox import Sandbox


@pytest.fixture(autouse=True)
def _no_webhooks_left(sandbox: Sandbox) -> Iterator[None]:
    """No webhook configuration of another test applies here, and none of ours outlives us."""
    sandbox.disable_webhooks()
    yield
    sandbox.disable_webhooks()
