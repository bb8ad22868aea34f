"""Small builders shared by the onboarding tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from config import Settings
from models import Onboarding
from models.crypto import TokenCipher
from onboarding.sandbox import Sandbox
from onboarding.signup.intake import SignupBody, accept_signup


def signup(
    session: Session,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    *,
    numbers: Any = 1,
    include_phone_number_id: bool = False,
) -> Onboarding:
    """Seed a business in the sandbox, finish its signup and record it; returns the row."""
    business = sandbox.add_business("Lucky Shrub", numbers)
    result = sandbox.complete_signup(
        business.waba_id, include_phone_number_id=include_phone_number_id
    )
    body = SignupBody.model_validate({"code": result.code, "session": dict(result.session)})
    outcome = accept_signup(session, body, settings=settings, cipher=cipher)
    assert outcome.onboarding_id is not None
    onboarding = session.get(Onboarding, outcome.onboarding_id)
    assert onboarding is not None
    return onboarding
