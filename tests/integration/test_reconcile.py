"""Reconciliation on PostgreSQL over several onboardings, against the sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from benchmarks._harness import CoexistApi, ManagedProcess, StackConfig
from config import Settings
from models import Alert, Database, Onboarding
from models.crypto import TokenCipher
from onboarding import reconcile
from onboarding.meta.graph import GraphClient
from onboarding.sandbox import Faults, Sandbox, SandboxServer

pytestmark = pytest.mark.integration


@pytest.fixture
def proof_required(sandbox: Sandbox) -> Iterator[None]:
    """The sandbox refuses calls without appsecret_proof for the duration of the test."""
    sandbox.set_require_appsecret_proof(True)
    yield
    sandbox.set_require_appsecret_proof(False)


def _onboard(api: CoexistApi, sandbox: Sandbox, count: int) -> list[int]:
    ids = []
    for i in range(count):
        business = sandbox.add_business(f"Shop {i}", [f"+1 650 555 13{i:02d}"])
        signup = sandbox.complete_signup(business.waba_id)
        response = api.post_signup(signup.session, signup.code)
        assert response.status_code == 202, response.text
        ids.append(response.json()["onboarding_id"])
    for onboarding_id in ids:
        assert api.wait_for_onboarding(onboarding_id)["state"] == "syncing"
    return ids


def _settings(stack_config: StackConfig, server: SandboxServer) -> Settings:
    base = stack_config.settings(server.url)
    return base.model_copy(update={"reconcile_batch_size": 3})


def _run_due(db: Database, settings: Settings, cipher: TokenCipher) -> list[reconcile.Report]:
    reports: list[reconcile.Report] = []
    with GraphClient.from_settings(settings) as graph, db.session() as session:
        due = reconcile.due(session, settings=settings)
        for batch in reconcile.batches(due, settings.reconcile_batch_size):
            reports += reconcile.reconcile_batch(
                session, graph, settings=settings, cipher=cipher, onboarding_ids=batch
            )
    return reports


def test_reconcile_finds_each_drift_across_onboardings(
    api: CoexistApi,
    worker: ManagedProcess,
    sandbox: Sandbox,
    sandbox_server: SandboxServer,
    db: Database,
    stack_config: StackConfig,
    proof_required: None,
) -> None:
    """Four onboardings (one left the app, one unsubscribed, one with a dead token, one clean)
    are reconciled in batches of three: each drift is alerted on PostgreSQL, the clean one is
    not, every one is stamped, and none is due again; every call carried appsecret_proof."""
    ids = _onboard(api, sandbox, 4)
    with db.sessionmaker() as session:
        rows = {i: session.get_one(Onboarding, i) for i in ids}
        wabas = {i: (row.waba_id, row.phone_number_id or "") for i, row in rows.items()}
    sandbox.set_number_platform(wabas[ids[0]][1], is_on_biz_app=False)
    sandbox.unsubscribe(wabas[ids[1]][0])
    sandbox.revoke_tokens(sandbox.owner_of(wabas[ids[2]][0]))
    settings = _settings(stack_config, sandbox_server)
    cipher = TokenCipher(stack_config.token_keys)

    reports = _run_due(db, settings, cipher)

    assert sorted(r.onboarding_id for r in reports) == sorted(ids)
    assert all(r.error is None for r in reports)
    with db.sessionmaker() as session:
        kinds = {
            i: set(session.scalars(select(Alert.kind).where(Alert.onboarding_id == i))) for i in ids
        }
        assert session.get_one(Onboarding, ids[0]).is_on_biz_app is False
        assert all(session.get_one(Onboarding, i).reconciled_at is not None for i in ids)
        assert reconcile.due(session, settings=settings) == []
    assert "number_left_coexistence" in kinds[ids[0]]
    assert "subscription_gone" in kinds[ids[1]]
    assert "token_dead" in kinds[ids[2]]
    assert kinds[ids[3]] == set()


def test_meta_outage_leaves_postgresql_unchanged(
    api: CoexistApi,
    worker: ManagedProcess,
    sandbox: Sandbox,
    sandbox_server: SandboxServer,
    db: Database,
    stack_config: StackConfig,
) -> None:
    """With every Graph call answered 5xx, reconciliation reports unknown and writes no drift,
    no alert and no change to the stored number."""
    ids = _onboard(api, sandbox, 2)
    with db.sessionmaker() as session:
        before = {i: session.get_one(Onboarding, i).is_on_biz_app for i in ids}
        numbers = [session.get_one(Onboarding, i).phone_number_id or "" for i in ids]
    for number in numbers:
        sandbox.set_number_platform(number, is_on_biz_app=False)
    sandbox.set_faults(Faults.only("*", error_5xx=1.0, seed=1))
    settings = _settings(stack_config, sandbox_server).model_copy(update={"graph_max_attempts": 1})

    reports = _run_due(db, settings, TokenCipher(stack_config.token_keys))

    assert {f.verdict.value for r in reports for f in r.findings} == {"unknown"}
    with db.sessionmaker() as session:
        assert {i: session.get_one(Onboarding, i).is_on_biz_app for i in ids} == before
        assert session.scalars(select(Alert.kind).where(Alert.onboarding_id.in_(ids))).all() == []
