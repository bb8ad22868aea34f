"""Erasing the media of messages: an object goes only when no other message holds it, on both
the local and the S3 store."""

from __future__ import annotations

import hashlib

from config import Settings
from models import Database
from models.crypto import TokenCipher
from onboarding.media_store import MediaStore
from onboarding.media_store.erasure import erase_media
from onboarding.sandbox import Sandbox
from tests.onboarding.read.helpers import message, onboarding

ALONE = b"a photo only one onboarding has"
SHARED = b"a sticker two onboardings both received"


def stored_message(db: Database, onboarding_id: int, wamid: str, content: bytes) -> int:
    digest = hashlib.sha256(content).hexdigest()
    with db.session() as session:
        return message(
            session,
            onboarding_id,
            None,
            wamid,
            1,
            type="image",
            text_body=None,
            media_state="stored",
            media_sha256=digest,
        )


def two_onboardings(
    db: Database, sandbox: Sandbox, settings: Settings, cipher: TokenCipher
) -> tuple[int, int]:
    with db.session() as session:
        return (
            onboarding(session, sandbox, settings, cipher),
            onboarding(session, sandbox, settings, cipher),
        )


def test_an_object_no_other_message_holds_is_deleted(
    media_store: MediaStore,
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
) -> None:
    """The media of an erased message that nothing else references is removed from the store."""
    first, _ = two_onboardings(db, sandbox, settings, cipher)
    digest = media_store.put(ALONE)
    mid = stored_message(db, first, "wamid.ALONE", ALONE)
    with db.sessionmaker() as session:
        erased = erase_media(session, media_store, [mid])
    assert erased.deleted == [digest]
    assert media_store.exists(digest) is False


def test_an_object_another_onboardings_message_holds_stays(
    media_store: MediaStore,
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
) -> None:
    """A file shared with a message outside the erased set is kept, and reported as shared."""
    first, second = two_onboardings(db, sandbox, settings, cipher)
    digest = media_store.put(SHARED)
    erased_id = stored_message(db, first, "wamid.MINE", SHARED)
    stored_message(db, second, "wamid.THEIRS", SHARED)
    with db.sessionmaker() as session:
        erased = erase_media(session, media_store, [erased_id])
    assert (erased.deleted, erased.shared) == ([], [digest])
    assert media_store.exists(digest) is True


def test_an_object_held_only_by_messages_of_the_set_is_deleted_once(
    media_store: MediaStore,
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
) -> None:
    """Two erased messages with the same content delete their one object."""
    first, _ = two_onboardings(db, sandbox, settings, cipher)
    digest = media_store.put(SHARED)
    ids = [stored_message(db, first, f"wamid.{n}", SHARED) for n in range(2)]
    with db.sessionmaker() as session:
        erased = erase_media(session, media_store, ids)
    assert erased.deleted == [digest]
    assert media_store.exists(digest) is False


def test_an_object_already_gone_does_not_stop_the_erasure(
    media_store: MediaStore,
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
) -> None:
    """An erasure run again after a partial one deletes what is left without an error."""
    first, _ = two_onboardings(db, sandbox, settings, cipher)
    gone = stored_message(db, first, "wamid.GONE", SHARED)
    alone = stored_message(db, first, "wamid.ALONE", ALONE)
    digest = media_store.put(ALONE)
    with db.sessionmaker() as session:
        erased = erase_media(session, media_store, [gone, alone])
    assert sorted(erased.deleted) == sorted([digest, hashlib.sha256(SHARED).hexdigest()])
    assert media_store.exists(digest) is False


def test_messages_without_stored_media_delete_nothing(
    media_store: MediaStore,
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
) -> None:
    """A text message, or media still awaited under Meta's digest, names no object to delete."""
    first, _ = two_onboardings(db, sandbox, settings, cipher)
    digest = media_store.put(ALONE)
    with db.session() as session:
        text = message(session, first, None, "wamid.TEXT", 1)
        awaiting = message(
            session,
            first,
            None,
            "wamid.AWAIT",
            2,
            type="image",
            media_state="awaiting_media",
            media_sha256=digest,
        )
    with db.sessionmaker() as session:
        erased = erase_media(session, media_store, [text, awaiting])
    assert (erased.deleted, erased.shared) == ([], [])
    assert media_store.exists(digest) is True
