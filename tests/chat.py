"""A tiny web-chat client for tests: real HTTP against the aiohttp server on 127.0.0.1."""

from __future__ import annotations

import html
import re
from typing import Any

import aiohttp


def plain(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text))


class WebChat:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.replies: list[dict[str, Any]] = []
        self.locale = "vi"

    async def __aenter__(self) -> WebChat:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def open(self, desk: str = "", lang: str = "") -> str:
        query = {k: v for k, v in (("desk", desk), ("lang", lang)) if v}
        async with self.session.get(f"{self.base_url}/chat", params=query) as response:
            assert response.status == 200
            await response.text()
        event = (
            {"kind": "command", "command": "start", "args": desk} if desk else {"kind": "command", "command": "resume"}
        )
        if lang:
            event["language"] = lang
        return await self.post(event)

    async def post(self, event: dict[str, Any], expect: int = 200) -> str:
        async with self.session.post(f"{self.base_url}/chat/api/event", json=event) as response:
            assert response.status == expect, await response.text()
            if expect != 200:
                return ""
            data = await response.json()
        self.locale = data["locale"]
        self.replies = data["replies"]
        return self.text

    async def say(self, text: str) -> str:
        return await self.post({"kind": "text", "text": text})

    async def command(self, command: str, args: str = "") -> str:
        return await self.post({"kind": "command", "command": command, "args": args})

    async def press(self, label: str) -> str:
        """Press the first button of the latest replies whose label contains ``label``."""
        for reply in reversed(self.replies):
            for row in reply["buttons"]:
                for button in row:
                    if label in button["label"]:
                        return await self.post({"kind": "button", "payload": button["payload"]})
        raise AssertionError(f"no button {label!r} in {self.labels}")

    async def poll(self) -> str:
        async with self.session.get(f"{self.base_url}/chat/api/poll") as response:
            assert response.status == 200
            self.replies = (await response.json())["replies"]
        return self.text

    @property
    def text(self) -> str:
        return "\n".join(plain(reply["text"]) for reply in self.replies)

    @property
    def labels(self) -> list[str]:
        return [button["label"] for reply in self.replies for row in reply["buttons"] for button in row]
