"""The steps of a report, as a citizen takes them in any chat (Telegram or the web chat), up to the choice of
identity: one place to change when the dialog changes."""

from __future__ import annotations

from typing import Protocol


class Chat(Protocol):
    async def say(self, text: str) -> str: ...

    async def press(self, label: str) -> str: ...

    @property
    def labels(self) -> list[str]: ...


async def fill_in_report(
    chat: Chat, *, kind: str = "Phản ánh", category: str = "Đất đai", commune: str, description: str
) -> str:
    """From the menu to the identity question: kind, category, commune typed, no exact place, not about a
    unit's conduct, the description, no attachment (where the chat takes files). Returns the identity question."""
    await to_conduct_question(chat, kind=kind, category=category, commune=commune)
    await chat.press("Không")  # not about a unit's conduct
    await chat.say(description)
    asked = await chat.press("Xong")
    if "Bỏ qua" not in chat.labels:  # a text-only chat (the web chat) has no attachments step
        return asked
    return await chat.press("Bỏ qua")  # no attachment


async def to_conduct_question(
    chat: Chat, *, kind: str = "Phản ánh", category: str = "Đất đai", commune: str = "Mường Phăng"
) -> str:
    """From the menu to "is it about a unit's conduct?": kind, category, commune typed, no exact place."""
    await chat.press("Gửi phản ánh")
    await chat.press(kind)
    await chat.press(category)
    await chat.say(commune)
    return await chat.press("Bỏ qua")  # the exact place
