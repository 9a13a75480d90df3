"""Telegram updates read from the Bot API's JSON: what the router needs, and the citizen dialog's event.

Updates are read as the plain JSON Telegram sends rather than as python-telegram-bot's ``Update`` objects:
building those (a ``Message`` with its ``User``, ``Chat`` and, for a button press, the whole keyboard it came
from) cost more CPU than handling a citizen's dialog step. PTB still does everything else: the Bot API
client, its errors and rate limits, and long polling (whose ``Update`` objects go back to JSON with
``to_dict()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.dialog import Event

UPDATE_KINDS = ("message", "edited_message", "callback_query")
MEDIA_KINDS = ("document", "voice", "video", "audio", "video_note")


class MalformedUpdate(ValueError):
    """The JSON is not a Bot API update."""


def _field(container: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True) -> Any:
    value = container.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise MalformedUpdate(f"{name}: {type(value).__name__}")
    return value


def _object(container: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = _field(container, name, dict, required=False)
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class Incoming:
    """One update as the router sees it. ``message`` is the message JSON (of a message or an edited message);
    ``chat_id`` is None for updates we do not handle (a button under an inline-mode message, a channel post)."""

    update_id: int
    chat_id: int | None
    chat_type: str
    chat_title: str
    user_id: int | None
    user_name: str
    language: str | None
    edited: bool
    message: dict[str, Any] | None
    callback_id: str | None
    callback_data: str | None

    @property
    def private(self) -> bool:
        return self.chat_type == "private"

    @property
    def text(self) -> str | None:
        text = self.message.get("text") if self.message is not None else None
        return text if isinstance(text, str) else None

    @classmethod
    def from_json(cls, data: Any) -> Incoming:
        """Read an update; ``MalformedUpdate`` when it is not one (wrong types, no ``update_id``)."""
        if not isinstance(data, dict):
            raise MalformedUpdate("not an object")
        update_id = _field(data, "update_id", int)
        query = _object(data, "callback_query")
        message = _object(data, "message") or _object(data, "edited_message")
        callback_id = callback_data = None
        if query is not None:
            callback_id = str(_field(query, "id", (str, int)))
            callback_data = _field(query, "data", str, required=False)
            sender = _object(query, "from")
            carrier = _object(query, "message")  # absent for a button under an inline-mode message
            chat = _object(carrier, "chat") if carrier is not None else None
            message = None
        elif message is not None:
            sender = _object(message, "from")
            chat = _object(message, "chat")
        else:
            sender = chat = None
        user_id = _field(sender, "id", int) if sender is not None else None
        name = ""
        language = None
        if sender is not None:
            first = _field(sender, "first_name", str, required=False) or ""
            last = _field(sender, "last_name", str, required=False) or ""
            name = f"{first} {last}".strip()
            language = _field(sender, "language_code", str, required=False)
        return cls(
            update_id=update_id,
            chat_id=_field(chat, "id", int) if chat is not None else None,
            chat_type=_field(chat, "type", str) if chat is not None else "",
            chat_title=(_field(chat, "title", str, required=False) or "") if chat is not None else "",
            user_id=user_id,
            user_name=name,
            language=language,
            edited=data.get("edited_message") is not None,
            message=message,
            callback_id=callback_id,
            callback_data=callback_data,
        )


def event_from_incoming(incoming: Incoming) -> Event | None:
    """The channel-neutral event for a private-chat update, or None when there is nothing to handle."""
    language = incoming.language
    if incoming.callback_id is not None:
        return Event(kind="button", payload=incoming.callback_data or "", language=language)
    message = incoming.message
    if message is None:
        return None
    contact = _object(message, "contact")
    if contact is not None:
        return Event(
            kind="contact",
            phone=str(_field(contact, "phone_number", str)),
            first_name=_field(contact, "first_name", str, required=False) or "",
            last_name=_field(contact, "last_name", str, required=False) or "",
            contact_is_own=incoming.user_id is not None and contact.get("user_id") == incoming.user_id,
            language=language,
        )
    location = _object(message, "location")
    if location is not None:
        return Event(
            kind="location",
            latitude=float(_field(location, "latitude", (int, float))),
            longitude=float(_field(location, "longitude", (int, float))),
            language=language,
        )
    attachment = attachment_of(message)
    if attachment is not None:
        return Event(kind="attachment", attachment=attachment, language=language)
    text = incoming.text
    if text is None:
        return Event(kind="other", language=language)
    if text.startswith("/"):
        head, _, args = text[1:].partition(" ")
        return Event(kind="command", command=head.split("@", 1)[0].lower(), args=args.strip(), language=language)
    return Event(kind="text", text=text, language=language)


def attachment_of(message: dict[str, Any]) -> dict[str, Any] | None:
    """What we keep of a file: Telegram's file id and its metadata (the file stays on Telegram's servers)."""
    caption = _field(message, "caption", str, required=False) or ""
    photos = _field(message, "photo", list, required=False)
    if photos:
        photo = photos[-1]  # the largest size
        if not isinstance(photo, dict):
            raise MalformedUpdate("photo")
        return {
            "kind": "photo",
            "file_id": _field(photo, "file_id", str),
            "file_unique_id": _field(photo, "file_unique_id", str),
            "width": photo.get("width"),
            "height": photo.get("height"),
            "size": photo.get("file_size"),
            "caption": caption,
        }
    for kind in MEDIA_KINDS:
        media = _object(message, kind)
        if media is not None:
            return {
                "kind": kind,
                "file_id": _field(media, "file_id", str),
                "file_unique_id": _field(media, "file_unique_id", str),
                "mime_type": media.get("mime_type"),
                "size": media.get("file_size"),
                "name": media.get("file_name"),
                "duration": media.get("duration"),
                "caption": caption,
            }
    return None
