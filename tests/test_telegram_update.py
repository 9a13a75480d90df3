"""Reading Telegram updates from the Bot API's JSON: the same result for a webhook and for long polling, and a
clear refusal of anything that is not an update."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from telegram import Bot, Update

from handlers.telegram_update import Incoming, MalformedUpdate, event_from_incoming
from tests.fakes.telegram_api import FakeBotAPI

FAKE = FakeBotAPI()
CHAT = 4242


def _updates() -> dict[str, dict[str, Any]]:
    FAKE.make_user(CHAT, first_name="Lò Văn", last_name="Bình", language_code="en")
    photo = FAKE.make_photo(CHAT, caption="Ảnh hiện trường", user=CHAT)
    document = FAKE.make_document(CHAT, caption="Biên bản", user=CHAT)
    button = FAKE.make_callback(CHAT, "cat:dat_dai", message_id=7, user=CHAT)
    return {
        "text": FAKE.make_message(CHAT, "Đường bị sạt lở", user=CHAT),
        "command": FAKE.make_message(CHAT, "/track@pakn_bot DB-1234-5678", user=CHAT),
        "button": button,
        "own contact": FAKE.make_contact(CHAT, "+84 912 345 678", user=CHAT),
        "someone else's contact": FAKE.make_contact(CHAT, "0912345678", user_id=99, user=CHAT),
        "location": FAKE.make_location(CHAT, 21.38, 103.02, user=CHAT),
        "photo": photo,
        "document": document,
        "voice": FAKE.make_voice(CHAT, user=CHAT),
    }


def _numbered(update: dict[str, Any]) -> dict[str, Any]:
    return {**update, "update_id": 1000}


@pytest.mark.parametrize("kind", list(_updates()))
def test_polling_and_webhook_read_the_same(kind: str) -> None:
    """Polling hands PTB's Update objects over as JSON again (``to_dict``): both paths see the same update."""
    raw = _numbered(_updates()[kind])
    from_webhook = Incoming.from_json(raw)
    from_polling = Incoming.from_json(Update.de_json(raw, Bot("1:A")).to_dict())
    # PTB adds its defaults to the message (``"group_chat_created": false`` …): the rest is identical
    assert replace(from_polling, message=None) == replace(from_webhook, message=None)
    assert from_webhook.chat_id == CHAT and from_webhook.user_id == CHAT and from_webhook.private
    assert from_webhook.user_name == "Lò Văn Bình" and from_webhook.language == "en"
    assert event_from_incoming(from_polling) == event_from_incoming(from_webhook)


def test_events_carry_what_the_dialog_needs() -> None:
    updates = {kind: event_from_incoming(Incoming.from_json(_numbered(u))) for kind, u in _updates().items()}
    assert updates["text"] is not None and updates["text"].text == "Đường bị sạt lở"
    command = updates["command"]
    assert command is not None and (command.command, command.args) == ("track", "DB-1234-5678")
    button = updates["button"]
    assert button is not None and (button.kind, button.payload) == ("button", "cat:dat_dai")
    own, other = updates["own contact"], updates["someone else's contact"]
    assert own is not None and own.contact_is_own and own.phone == "+84 912 345 678"
    assert other is not None and not other.contact_is_own
    location = updates["location"]
    assert location is not None and (location.latitude, location.longitude) == (21.38, 103.02)
    photo = updates["photo"]
    assert photo is not None and photo.attachment is not None
    assert photo.attachment["kind"] == "photo" and photo.attachment["caption"] == "Ảnh hiện trường"
    assert photo.attachment["file_id"]
    document = updates["document"]
    assert document is not None and document.attachment is not None
    assert document.attachment["kind"] == "document" and document.attachment["name"] == "tai-lieu.pdf"
    voice = updates["voice"]
    assert voice is not None and voice.attachment is not None and voice.attachment["kind"] == "voice"


def test_an_edited_message_and_a_channel_post() -> None:
    message = _numbered(FAKE.make_message(CHAT, "sửa lại", user=CHAT))
    edited = {"update_id": 5, "edited_message": message["message"]}
    assert Incoming.from_json(edited).edited
    post = {"update_id": 6, "channel_post": {"message_id": 1, "date": 1, "chat": {"id": -100, "type": "channel"}}}
    incoming = Incoming.from_json(post)
    assert incoming.chat_id is None and incoming.user_id is None  # nothing to handle: the router ignores it


@pytest.mark.parametrize(
    "data",
    [
        [],
        "update",
        {},
        {"update_id": "7"},
        {"update_id": True},
        {"update_id": 7, "message": {"chat": {"id": "x", "type": "private"}, "from": {"id": 1}}},
        {"update_id": 7, "message": {"chat": {"id": 1, "type": "private"}, "from": {"id": False}}},
        {"update_id": 7, "callback_query": {"from": {"id": 1}, "data": "x"}},
    ],
)
def test_anything_else_is_refused(data: Any) -> None:
    with pytest.raises(MalformedUpdate):
        Incoming.from_json(data)


def test_a_photo_without_a_file_id_is_refused() -> None:
    update = _numbered(FAKE.make_photo(CHAT, user=CHAT))
    update["message"]["photo"] = [{"width": 1}]
    with pytest.raises(MalformedUpdate):
        event_from_incoming(Incoming.from_json(update))
