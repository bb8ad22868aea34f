"""Send payloads: what is accepted, what is refused and why, and the /messages body built."""

from __future__ import annotations

from typing import Any

import pytest

from onboarding.outbound.payload import InvalidMessageError, validate_payload
from tests.onboarding.outbound.helpers import BSUID, TEMPLATE, TEXT, TEXT_TO_BSUID, TO

PARENT_BSUID = "US.ENT.11815799212886844830"


def test_text_payload_becomes_metas_send_body() -> None:
    """A text payload is sent as Meta's body: messaging_product, individual, to, type, text."""
    assert validate_payload(TEXT).graph_body() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": "text",
        "text": {"body": "Your order ships tomorrow"},
    }


def test_template_payload_keeps_its_name_and_language() -> None:
    """A template payload is sent with its name and language code."""
    body = validate_payload(TEMPLATE).graph_body()

    assert body["template"] == {"name": "order_update", "language": {"code": "en_US"}}


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({**TEXT, "to": "+16505551234"}, "digits"),
        ({**TEXT, "to": "123"}, "digits"),
        ({**TEXT, "type": "image"}, "type must be one of"),
        ({"to": TO, "type": "text"}, "needs a 'text' object"),
        ({**TEXT, "text": {"body": "  "}}, "non-empty"),
        ({**TEXT, "text": {"body": "x" * 4097}}, "over 4096"),
        ({**TEXT, "text": {"body": "hi", "bold": True}}, "unknown text keys"),
        ({**TEMPLATE, "template": {"name": "order_update"}}, "language.code"),
        ({**TEMPLATE, "template": {"language": {"code": "en"}}}, "template.name"),
        ({**TEXT, "idempotency_key": ""}, "idempotency_key"),
        ({**TEXT, "priority": "high"}, "unknown payload keys"),
    ],
)
def test_unusable_payloads_are_refused_with_the_reason(payload: Any, why: str) -> None:
    """Each unusable payload is an InvalidMessageError naming what is wrong."""
    with pytest.raises(InvalidMessageError, match=why):
        validate_payload(payload)


def test_bsuid_only_payload_is_sent_with_recipient() -> None:
    """A payload naming only a BSUID is sent with Meta's recipient field and no to."""
    message = validate_payload(
        {"recipient": BSUID, "type": "text", "text": {"body": "Does it come in another color?"}}
    )

    body = message.graph_body()

    assert body["recipient"] == BSUID
    assert "to" not in body
    assert (message.address_field, message.address) == ("recipient", BSUID)


def test_parent_bsuid_is_a_valid_recipient() -> None:
    """A parent BSUID (US.ENT.…) is accepted as the recipient."""
    message = validate_payload({**TEXT_TO_BSUID, "recipient": PARENT_BSUID})

    assert message.graph_body()["recipient"] == PARENT_BSUID


def test_phone_number_wins_over_bsuid() -> None:
    """With both to and recipient, the body addresses the phone number, as Meta would."""
    message = validate_payload({**TEXT, "recipient": BSUID})

    body = message.graph_body()

    assert body["to"] == TO
    assert "recipient" not in body
    assert (message.address_field, message.address) == ("to", TO)


def test_known_phone_number_readdresses_a_bsuid_message() -> None:
    """A BSUID-only message addressed with a phone number found later goes to that number."""
    message = validate_payload(TEXT_TO_BSUID).with_phone(TO)

    assert message.graph_body()["to"] == TO
    assert message.recipient == BSUID


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({"type": "text", "text": {"body": "hi"}}, "needs to .* or recipient"),
        ({**TEXT_TO_BSUID, "recipient": "13491208655302741918"}, "business-scoped user id"),
        ({**TEXT_TO_BSUID, "recipient": "us.13491208655302741918"}, "business-scoped user id"),
        ({**TEXT_TO_BSUID, "recipient": "US." + "1" * 129}, "business-scoped user id"),
        ({**TEXT_TO_BSUID, "recipient": "US.1349-1208"}, "business-scoped user id"),
        ({**TEXT, "recipient": 13491208655302741918}, "business-scoped user id"),
    ],
)
def test_unusable_recipients_are_refused_with_the_reason(payload: Any, why: str) -> None:
    """A payload with no address, or a recipient not shaped like a BSUID, is refused."""
    with pytest.raises(InvalidMessageError, match=why):
        validate_payload(payload)
