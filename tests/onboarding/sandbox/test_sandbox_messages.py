"""The Cloud API send ``POST /{phone_number_id}/messages``: Meta's shapes and its throughput."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from onboarding.sandbox import Business, Faults, Sandbox
from onboarding.sandbox.records import SentMessage

Send = Callable[..., httpx.Response]
RECIPIENT = "16505551234"


def text(body: str = "Your order ships tomorrow", to: str = RECIPIENT) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}


@pytest.fixture
def onboarded(sandbox: Sandbox, business: Business) -> str:
    """The id of a coexistence number whose signup just finished (it is on the Cloud API)."""
    return sandbox.complete_signup(business.waba_id, business.phone_number_ids[0]).phone_number_id


@pytest.fixture
def send(graph: httpx.Client, auth: dict[str, str], onboarded: str) -> Send:
    """POST a message body from the onboarded number (or ``number``) with the business token."""

    def run(body: dict[str, Any], number: str = onboarded, **kw: Any) -> httpx.Response:
        return graph.post(f"/{number}/messages", json=body, headers=kw.get("headers", auth))

    return run


def test_text_send_answers_contacts_and_a_wamid(send: Send) -> None:
    """A text send answers messaging_product, the recipient's wa_id and a wamid."""
    response = send(text())

    assert response.status_code == 200
    body = response.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": RECIPIENT, "wa_id": RECIPIENT}]
    [message] = body["messages"]
    assert message["id"].startswith("wamid.")
    assert RECIPIENT.encode() in base64.b64decode(message["id"].removeprefix("wamid."))


def test_recipient_with_plus_is_answered_without_it(send: Send) -> None:
    """A ``to`` written with a leading + comes back as given in input and as digits in wa_id."""
    body = send(text(to=f"+{RECIPIENT}")).json()

    assert body["contacts"] == [{"input": f"+{RECIPIENT}", "wa_id": RECIPIENT}]


def test_template_send_is_accepted_with_message_status(send: Send) -> None:
    """A template send answers its wamid with message_status accepted, as Meta does."""
    template = {"name": "order_update", "language": {"code": "en_US"}, "components": []}
    body = {"messaging_product": "whatsapp", "to": RECIPIENT, "type": "template"}

    response = send({**body, "template": template})

    assert response.status_code == 200
    assert response.json()["messages"][0]["message_status"] == "accepted"


def test_accepted_send_is_recorded_with_its_time(
    sandbox: Sandbox, send: Send, onboarded: str
) -> None:
    """Each accepted send is recorded with its number, recipient, wamid, type and time."""
    wamid = send(text()).json()["messages"][0]["id"]

    assert sandbox.sent_messages(onboarded) == [
        SentMessage(onboarded, RECIPIENT, wamid, "text", sandbox.now())
    ]
    assert sandbox.sent_messages("1") == []


def test_every_send_gets_its_own_wamid(send: Send) -> None:
    """Two identical sends are two messages with different wamids."""
    first = send(text()).json()["messages"][0]["id"]
    second = send(text()).json()["messages"][0]["id"]

    assert first != second


def test_send_over_the_throughput_is_code_130429(sandbox: Sandbox, send: Send) -> None:
    """The 21st send within one second is refused with Meta's 130429 envelope, not sent."""
    for _ in range(20):
        assert send(text()).status_code == 200

    response = send(text())

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 130429
    assert error["message"] == "(#130429) Rate limit hit"
    assert error["error_data"] == {
        "messaging_product": "whatsapp",
        "details": "Cloud API message throughput has been reached.",
    }
    assert len(sandbox.sent_messages()) == 20
    assert sandbox.throughput_rejections() == 1


def test_throughput_window_slides(sandbox: Sandbox, send: Send) -> None:
    """Sends leave the window one second after they were accepted, not at a second boundary."""
    for _ in range(10):
        send(text())
    sandbox.advance_clock(0.5)
    for _ in range(10):
        send(text())
    sandbox.advance_clock(0.5)

    assert send(text()).status_code == 200  # the first ten are a second old
    assert send(text()).status_code == 200
    sandbox.advance_clock(0.4)
    codes = [send(text()).json().get("error", {}).get("code") for _ in range(9)]
    assert codes == [None] * 8 + [130429]


def test_throughput_is_per_number(
    sandbox: Sandbox, send: Send, business: Business, onboarded: str
) -> None:
    """A number at its limit does not slow another number of the same business."""
    other = sandbox.complete_signup(business.waba_id, business.phone_number_ids[1])
    for _ in range(20):
        send(text())

    assert send(text()).status_code == 400
    assert send(text(), other.phone_number_id).status_code == 200


def test_per_number_throughput_can_be_lowered(sandbox: Sandbox, send: Send, onboarded: str) -> None:
    """A number limited to 5 per second has its 6th send in a second refused with 130429."""
    sandbox.set_message_throughput(onboarded, 5)

    codes = [send(text()).status_code for _ in range(6)]

    assert codes == [200] * 5 + [400]
    assert sandbox.message_throughput_for(onboarded) == 5


def test_send_needs_a_bearer_token(send: Send) -> None:
    """A send without a token is Graph's 'access token is required' (code 104), not sent."""
    response = send(text(), headers={})

    assert response.json()["error"]["code"] == 104


def test_send_from_another_business_number_is_subcode_33(
    sandbox: Sandbox, send: Send, onboarded: str
) -> None:
    """Another business's token cannot send from this number: unsupported post, subcode 33."""
    stranger = sandbox.add_business("Stranger", 1)
    token = sandbox.issue_token(stranger.id)

    error = send(text(), headers={"Authorization": f"Bearer {token}"}).json()["error"]

    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert sandbox.sent_messages() == []


@pytest.mark.parametrize(
    "body",
    [
        {"to": RECIPIENT, "type": "text", "text": {"body": "hi"}},
        {**text(), "messaging_product": "sms"},
        {**text(), "to": "not-a-number"},
        {k: v for k, v in text().items() if k != "to"},
        {**text(), "type": "image", "image": {"id": "1"}},
        {**text(), "text": {}},
        {**text(), "text": {"body": "x" * 4097}},
        {"messaging_product": "whatsapp", "to": RECIPIENT, "type": "template", "template": {}},
        {
            "messaging_product": "whatsapp",
            "to": RECIPIENT,
            "type": "template",
            "template": {"name": "order_update"},
        },
    ],
)
def test_malformed_send_is_code_100_and_not_sent(
    sandbox: Sandbox, send: Send, body: dict[str, Any]
) -> None:
    """A send missing or misusing a parameter is refused with code 100 and counts nothing."""
    response = send(body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100
    assert sandbox.sent_messages() == []


def test_send_from_a_number_not_on_the_cloud_api_is_133010(
    sandbox: Sandbox, send: Send, business: Business
) -> None:
    """A Business app number that never finished signup cannot send: 133010, not registered."""
    error = send(text(), business.phone_number_ids[1]).json()["error"]

    assert error["code"] == 133010
    assert sandbox.sent_messages() == []


def test_get_on_messages_is_unsupported(
    graph: httpx.Client, auth: dict[str, str], onboarded: str
) -> None:
    """``GET /{phone_number_id}/messages`` is Graph's unsupported request (subcode 33)."""
    response = graph.get(f"/{onboarded}/messages", headers=auth)

    assert response.json()["error"]["error_subcode"] == 33


def test_messages_faults_apply_before_the_send(sandbox: Sandbox, send: Send) -> None:
    """An injected 5xx on the ``messages`` key answers an error and sends nothing."""
    sandbox.set_faults(Faults.only("messages", error_5xx=1.0, seed=1))

    response = send(text())

    assert response.status_code >= 500
    assert sandbox.sent_messages() == []
    assert sandbox.call_counts()["messages"] == 1


def test_dropped_response_still_sends(sandbox: Sandbox, send: Send) -> None:
    """A response dropped after apply loses the answer, but the message was sent."""
    sandbox.set_faults(Faults.only("messages", drop_after_apply=1.0, seed=1))

    with pytest.raises(httpx.RemoteProtocolError):
        send(text())

    assert len(sandbox.sent_messages()) == 1


def test_control_route_lists_sends_and_rejections(
    sandbox: Sandbox, send: Send, onboarded: str
) -> None:
    """``GET /_sandbox/messages?phone_number_id=`` lists accepted sends and counts 130429s."""
    sandbox.set_message_throughput(onboarded, 1)
    wamid = send(text()).json()["messages"][0]["id"]
    send(text())

    with httpx.Client(transport=sandbox.mock_transport(), base_url="http://sandbox") as client:
        listed = client.get("/_sandbox/messages", params={"phone_number_id": onboarded}).json()
        stats = client.get("/_sandbox/stats").json()

    assert [m["wamid"] for m in listed["data"]] == [wamid]
    assert listed["data"][0]["to"] == RECIPIENT
    assert listed["throughput_rejections"] == 1
    assert (stats["messages_sent"], stats["throughput_rejections"]) == (1, 1)


def test_reset_forgets_sends_and_limits(sandbox: Sandbox, send: Send, onboarded: str) -> None:
    """A reset sandbox has no sends, no rejections and only the default throughput."""
    sandbox.set_message_throughput(onboarded, 1)
    send(text())

    sandbox.reset()

    assert sandbox.sent_messages() == []
    assert sandbox.throughput_rejections() == 0
    assert sandbox.message_throughput_for(onboarded) == 20


def test_throughput_below_one_is_rejected(sandbox: Sandbox, onboarded: str) -> None:
    """A per-number throughput under one message per second is a ValueError."""
    with pytest.raises(ValueError, match="at least 1"):
        sandbox.set_message_throughput(onboarded, 0.5)


# -- business-scoped user ids ----------------------------------------------------------------

BSUID = "US.13491208655302741918"


def to_bsuid(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` addressed by Meta's example BSUID instead of a phone number."""
    readdressed = {key: value for key, value in body.items() if key != "to"}
    return {**readdressed, "recipient": BSUID}


def auth_template() -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": RECIPIENT,
        "type": "template",
        "template": {"name": "auth_code", "language": {"code": "en_US"}},
    }


def test_send_to_a_bsuid_answers_its_user_id(sandbox: Sandbox, send: Send) -> None:
    """A send with recipient (a BSUID) is accepted; contacts names the user_id, not a wa_id."""
    response = send(to_bsuid(text()))

    assert response.status_code == 200
    assert response.json()["contacts"] == [{"input": BSUID, "user_id": BSUID}]
    [sent] = sandbox.sent_messages()
    assert sent.to == BSUID


def test_send_to_a_parent_bsuid_is_accepted(send: Send) -> None:
    """A parent BSUID (US.ENT.…) is a valid recipient."""
    body = {**to_bsuid(text()), "recipient": "US.ENT.11815799212886844830"}

    assert send(body).status_code == 200


def test_phone_number_wins_when_both_are_given(sandbox: Sandbox, send: Send) -> None:
    """With both to and recipient, the message goes to the phone number."""
    response = send({**text(), "recipient": BSUID})

    assert response.json()["contacts"] == [{"input": RECIPIENT, "wa_id": RECIPIENT}]
    assert sandbox.sent_messages()[0].to == RECIPIENT


def test_authentication_template_to_a_bsuid_is_131062(sandbox: Sandbox, send: Send) -> None:
    """An authentication template sent to a BSUID is refused with 131062 and not sent."""
    response = send(to_bsuid(auth_template()))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 131062
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert "phone number" in error["error_data"]["details"]
    assert sandbox.sent_messages() == []


def test_authentication_template_to_a_phone_number_is_sent(send: Send) -> None:
    """The same authentication template sent to the phone number is accepted."""
    assert send(auth_template()).status_code == 200


@pytest.mark.parametrize("recipient", ["13491208655302741918", "US.", "US.12-34", 42])
def test_malformed_recipient_is_code_100(sandbox: Sandbox, send: Send, recipient: Any) -> None:
    """A recipient not shaped like a BSUID is refused with code 100 and nothing is sent."""
    response = send({**to_bsuid(text()), "recipient": recipient})

    assert response.json()["error"]["code"] == 100
    assert sandbox.sent_messages() == []


def test_send_to_the_longest_bsuid_answers_a_wamid_of_metas_length(send: Send) -> None:
    """A BSUID of 128 alphanumerics after the country is accepted; its wamid stays short."""
    response = send({**to_bsuid(text()), "recipient": "US." + "7" * 128})

    assert response.status_code == 200
    assert len(response.json()["messages"][0]["id"]) <= 80
