"""Send payloads: what is accepted, what is refused and why, and the /messages body built."""

from __future__ import annotations

from typing import Any

import pytest

from onboarding.outbound.payload import InvalidMessageError, validate_payload
from tests.onboarding.outbound.helpers import TEMPLATE, TEXT, TO


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
