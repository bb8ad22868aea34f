"""Running the trigger and reading back what it stored."""

from __future__ import annotations

from sqlalchemy import select

from config import Settings
from models import Alert, Database, Onboarding
from models.crypto import TokenCipher
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import RetryLater
from onboarding.sandbox import Sandbox
from onboarding.sync import trigger as sync


def run_syncs(
    db: Database, graph: GraphClient, settings: Settings, cipher: TokenCipher, onboarding_id: int
) -> RetryLater | None:
    with db.session() as session:
        try:
            sync.request_syncs(
                session, graph, settings=settings, cipher=cipher, onboarding_id=onboarding_id
            )
        except RetryLater as exc:
            return exc
    return None


def load(db: Database, onboarding_id: int) -> Onboarding:
    with db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, onboarding_id)
        _ = onboarding.syncs, onboarding.transitions
        return onboarding


def alerts(db: Database, onboarding_id: int) -> set[str]:
    with db.sessionmaker() as session:
        return set(session.scalars(select(Alert.kind).where(Alert.onboarding_id == onboarding_id)))


def accepted(sandbox: Sandbox) -> list[str]:
    return [s.sync_type for s in sandbox.accepted_syncs()]
