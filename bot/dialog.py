"""Channel-neutral conversation types: what comes in (Event), what goes out (Reply), what must be done
against the database (Effect) and what the dialog returns (Step).

A dialog is a pure function ``(state, event) → Step``: no I/O, no Telegram or aiohttp types. When it needs
the database (submit an item, look one up) it returns an Effect; the runner (``bot.conversation``) performs
it in the same transaction and hands the outcome back with ``on_result``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bot.i18n import Localized, Msg

MAX_PAYLOAD_BYTES = 64

Text = Msg | Localized | str


@dataclass(frozen=True)
class Event:
    """One thing the user did. ``kind``: text, button, contact, location, attachment, command."""

    kind: str
    text: str = ""
    payload: str = ""
    command: str = ""
    args: str = ""
    phone: str = ""
    first_name: str = ""
    last_name: str = ""
    contact_is_own: bool = True
    latitude: float | None = None
    longitude: float | None = None
    attachment: dict[str, Any] | None = None
    language: str | None = None  # the client's language, used only to pick the first locale
    files: bool = True  # the channel can carry photos and files (the web chat cannot)


@dataclass(frozen=True)
class Button:
    label: Text
    payload: str

    def __post_init__(self) -> None:
        if len(self.payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"button payload over {MAX_PAYLOAD_BYTES} bytes: {self.payload!r}")


@dataclass(frozen=True)
class Reply:
    """One outgoing message: paragraphs of text, button rows, and optional contact/location requests."""

    texts: tuple[Text, ...]
    buttons: tuple[tuple[Button, ...], ...] = ()
    request_contact: Text | None = None  # label of the "share my phone number" key
    request_location: Text | None = None  # label of the "share my location" key
    input_hint: str = ""  # for the web chat: "phone", "name", "code" change the input field

    @staticmethod
    def of(*texts: Text, buttons: tuple[tuple[Button, ...], ...] = (), **extra: Any) -> Reply:
        return Reply(texts=texts, buttons=buttons, **extra)


# Effects: work the runner does against the database on the dialog's behalf.


@dataclass(frozen=True)
class ResolveDesk:
    payload: str


@dataclass(frozen=True)
class SubmitDraft:
    draft: dict[str, Any]


@dataclass(frozen=True)
class TrackItem:
    code: str


@dataclass(frozen=True)
class AddInfo:
    code: str
    text: str
    attachments: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class RateItem:
    code: str
    rating: int


@dataclass(frozen=True)
class ReopenItem:
    code: str
    reason: str


@dataclass(frozen=True)
class RateDesk:
    desk_code: str
    score: int


@dataclass(frozen=True)
class SetLanguage:
    """The citizen chose a language: what reaches them later (an item accepted, an answer) follows it."""

    locale: str


Effect = ResolveDesk | SubmitDraft | TrackItem | AddInfo | RateItem | ReopenItem | RateDesk | SetLanguage


# Results the runner hands back.


@dataclass(frozen=True)
class DeskInfo:
    code: str
    name: str
    unit_code: str
    commune_code: str | None


@dataclass(frozen=True)
class SubmittedInfo:
    receipt_code: str
    unit_code: str
    accept_due: date
    accept_days: int
    accept_unit: str
    resolve_due: date | None
    resolve_days: int | None
    resolve_unit: str | None


@dataclass(frozen=True)
class TimelineEntry:
    action: str
    at_text: str  # already formatted in the citizen's locale by the runner


@dataclass(frozen=True)
class TrackInfo:
    receipt_code: str
    type: str
    status: str
    unit_code: str
    owned: bool  # filed from this chat: the answer and the actions are shown
    timeline: tuple[TimelineEntry, ...] = ()
    answer: str | None = None
    rating: int | None = None
    accept_due: date | None = None
    resolve_due: date | None = None


@dataclass(frozen=True)
class Outcome:
    """The result of an effect: ``value`` on success, or ``error`` (a catalog message) on refusal."""

    value: Any = None
    error: Msg | None = None


@dataclass
class Step:
    state: dict[str, Any]
    replies: list[Reply] = field(default_factory=list)
    effect: Effect | None = None
    durable: bool = False  # the replies must reach the user even after a crash: send through the outbox
