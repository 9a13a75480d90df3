"""A Telegram user for tests: sends updates through the fake Bot API and reads what the bot answered."""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any

from tests.fakes.telegram_api import FakeBotAPI

QUIET = 0.15


def plain(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text))


class TelegramUser:
    def __init__(self, fake: FakeBotAPI, user_id: int, *, language: str = "vi", webhook: bool = False) -> None:
        self.fake = fake
        self.chat_id = user_id
        self.webhook = webhook
        fake.make_user(user_id, language_code=language)
        self.received: list[Any] = []

    async def _deliver(self, update: dict[str, Any], expect_message: bool = True) -> str:
        before = len(self.fake.sent_to(self.chat_id))
        mark = len(self.fake.calls)
        if self.webhook:
            status = await self.fake.push_update(update)
            assert status == 200
        else:
            self.fake.enqueue_update(update)
        query = update.get("callback_query")
        if query is not None:  # a button press is answered (a toast), with or without new messages
            await self.fake.wait_for(
                "answerCallbackQuery",
                lambda call: str(call.params.get("callback_query_id")) == str(query["id"]),
                timeout=10,
                after=mark,
            )
        if expect_message:
            await self.fake.wait_for(
                "*",
                lambda call: (
                    call.params.get("chat_id") in (self.chat_id, str(self.chat_id))
                    and call.method.lower().startswith("send")
                ),
                timeout=10,
                after=mark,
            )
        while True:  # wait until the bot has stopped talking to this chat
            count = len(self.fake.sent_to(self.chat_id))
            await asyncio.sleep(QUIET)
            if len(self.fake.sent_to(self.chat_id)) == count:
                break
        self.received = self.fake.sent_to(self.chat_id)[before:]
        return self.text

    async def say(self, text: str) -> str:
        return await self._deliver(self.fake.make_message(self.chat_id, text, user=self.chat_id))

    async def share_contact(self, phone: str, first_name: str, last_name: str = "", own: bool = True) -> str:
        update = self.fake.make_contact(
            self.chat_id,
            phone_number=phone,
            first_name=first_name,
            last_name=last_name,
            user_id=self.chat_id if own else self.chat_id + 1,
            user=self.chat_id,
        )
        return await self._deliver(update)

    async def press(self, label: str, expect_message: bool = True) -> str:
        for message in reversed(self.received):
            markup = message.get("reply_markup") or {}
            for row in markup.get("inline_keyboard", []):
                for button in row:
                    if label in button["text"]:
                        update = self.fake.make_callback(
                            self.chat_id,
                            button["callback_data"],
                            message_id=message.get("message_id"),
                            user=self.chat_id,
                        )
                        return await self._deliver(update, expect_message)
        keyboard = self.fake.reply_keyboard(self.chat_id) or {}
        for row in keyboard.get("keyboard", []):  # a reply keyboard's key sends its label as text
            for key in row:
                if label in key["text"] and not key.get("request_contact") and not key.get("request_location"):
                    return await self.say(key["text"])
        raise AssertionError(f"no button {label!r} in {self.labels}")

    @property
    def text(self) -> str:
        return "\n".join(plain(message.text) for message in self.received)

    @property
    def labels(self) -> list[str]:
        markups = [message.get("reply_markup") or {} for message in self.received]
        keyboard = self.fake.reply_keyboard(self.chat_id) or {}
        return [button["text"] for markup in markups for row in markup.get("inline_keyboard", []) for button in row] + [
            key["text"] for row in keyboard.get("keyboard", []) for key in row
        ]
