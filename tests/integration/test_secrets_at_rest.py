"""Secrets on the real stack: nothing readable in PostgreSQL or in the processes' logs."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import MetaData, select

from benchmarks._harness import CoexistApi, ManagedProcess, StackConfig, WebServer
from models import Database, Onboarding
from models.crypto import TokenCipher
from onboarding.sandbox import Sandbox

pytestmark = pytest.mark.integration


def dump_every_table(db: Database) -> bytes:
    """Every value of every row of every table in the schema, as bytes."""
    metadata = MetaData()
    metadata.reflect(db.engine)
    out = io.BytesIO()
    with db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    out.write(value if isinstance(value, bytes) else str(value).encode())
                    out.write(b"\n")
    return out.getvalue()


def test_no_plaintext_secret_in_postgresql_or_the_logs_after_an_onboarding(
    api: CoexistApi,
    sandbox: Sandbox,
    db: Database,
    stack_config: StackConfig,
    worker: ManagedProcess,
    web: WebServer,
) -> None:
    """After signup, token exchange, subscription and both syncs on the real services, a scan
    of every PostgreSQL table finds neither the signup code nor the business token (they are
    stored encrypted and decrypt with the configured keys), and neither they nor the app
    secret or the bearer tokens appear in the worker's or the web app's log."""
    business = sandbox.add_business("Lucky Shrub")
    signup = sandbox.complete_signup(business.waba_id)
    response = api.post_signup(signup.session, signup.code)
    assert response.status_code == 202, response.text
    detail = api.wait_for_onboarding(response.json()["onboarding_id"])
    assert detail["state"] == "syncing"

    with db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, detail["id"])
        assert onboarding.token_ciphertext
        token = TokenCipher(stack_config.token_keys).decrypt(onboarding.token_ciphertext)
    assert token.startswith("EAA")

    stored = dump_every_table(db)
    assert b"token_exchanged" in stored  # the scan saw the onboarding's rows
    assert token.encode() not in stored
    assert signup.code.encode() not in stored

    logs = worker.log_path.read_bytes() + web.process.log_path.read_bytes()
    assert b"token_exchanged" in logs  # the worker did log the exchange
    for secret in (
        signup.code,
        token,
        stack_config.app_secret,
        stack_config.signup_token,
        stack_config.admin_token,
        stack_config.token_keys,
    ):
        assert secret.encode() not in logs
