"""Reading users' identifiers from webhook items: phone numbers, BSUIDs, usernames."""

from __future__ import annotations

from onboarding.ingest.identity import (
    Identity,
    bsuid,
    contacts_index,
    of_message,
    of_state_contact,
    of_thread,
    phone,
)
from tests.onboarding.ingest.bsuid_payloads import (
    PABLO,
    SHEENA,
    SHEENA_CONTACT,
    SHEENA_PARENT,
    thread,
    user_text,
)

BUSINESS = "15550783881"


def test_bsuids_are_read_in_meta_format_and_nothing_else_is() -> None:
    """A BSUID and a parent BSUID as Meta writes them are read; numbers and junk are not."""
    assert bsuid(SHEENA) == SHEENA
    assert bsuid(SHEENA_PARENT) == SHEENA_PARENT
    assert bsuid(PABLO) is None
    assert bsuid("us.123") is None
    assert bsuid("US." + "1" * 129) is None
    assert bsuid(1234) is None


def test_phone_numbers_are_digits_of_a_plausible_length() -> None:
    """A thread id or wa_id is a number of 6 to 15 digits; a group JID or a BSUID is not."""
    assert phone(PABLO) == PABLO
    assert phone("+" + PABLO) == PABLO
    assert phone("120363025246125486@g.us") is None
    assert phone(SHEENA) is None
    assert phone("12345") is None


def test_a_thread_without_id_is_named_by_its_context() -> None:
    """A history thread of a username adopter has no id; its context gives BSUID and username."""
    found = of_thread(thread([], user_id=SHEENA, parent=SHEENA_PARENT, username="realsheenanelson"))
    assert found == Identity(
        phone=None, user_id=SHEENA, parent_user_id=SHEENA_PARENT, username="realsheenanelson"
    )
    assert found.label == SHEENA


def test_a_thread_context_wa_id_gives_the_number_when_id_is_omitted() -> None:
    """``context.wa_id`` is the number when the thread's ``id`` is left out."""
    assert of_thread(thread([], user_id=SHEENA, wa_id=PABLO)).phone == PABLO


def test_a_message_without_from_is_from_its_from_user_id() -> None:
    """Meta's example message has no ``from``: its ``from_user_id`` names the user."""
    msg = user_text(
        "wamid.1", 1749416383, "Does it come in another color?", phone=None, user_id=SHEENA
    )
    msg["from_parent_user_id"] = SHEENA_PARENT
    assert of_message(msg, BUSINESS) == Identity(user_id=SHEENA, parent_user_id=SHEENA_PARENT)


def test_a_business_message_names_its_recipient_and_contacts_complete_it() -> None:
    """An echo with ``to`` omitted is to ``to_user_id``; ``contacts[]`` adds name and username."""
    echo = {
        "from": BUSINESS,
        "id": "wamid.E",
        "timestamp": "1",
        "type": "text",
        "to_user_id": SHEENA,
    }
    found = of_message(echo, BUSINESS, contacts_index({"contacts": [SHEENA_CONTACT]}))
    assert found.user_id == SHEENA
    assert found.phone is None
    assert (found.name, found.username) == ("Sheena Nelson", "realsheenanelson")


def test_a_contact_entry_with_wa_id_joins_number_and_bsuid() -> None:
    """A ``contacts[]`` entry with ``wa_id`` and ``user_id`` is indexed under both."""
    index = contacts_index({"contacts": [{"wa_id": PABLO, "user_id": SHEENA}, "junk", {}]})
    assert index[PABLO] is index[SHEENA]
    assert index[PABLO].phone == PABLO


def test_a_state_contact_may_have_no_phone_number() -> None:
    """An smb_app_state_sync contact names its user by ``user_id``, its number optional."""
    found = of_state_contact({"user_id": SHEENA, "username": "realsheenanelson"})
    assert found.known
    assert found.phone is None
    assert not of_state_contact({"full_name": "Nobody"}).known
