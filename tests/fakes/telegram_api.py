"""A fake Telegram Bot API server that speaks the real HTTP protocol.

The server answers ``/bot<token>/<method>`` exactly like ``https://api.telegram.org`` does: bodies may be
``application/json``, ``application/x-www-form-urlencoded`` or ``multipart/form-data`` (python-telegram-bot
sends form data, with JSON-valued fields such as ``reply_markup`` encoded as JSON strings), method names are
case-insensitive, and every answer is ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "..."}`` with the descriptions the real server uses. Files are
downloadable at ``/file/bot<token>/<file_path>``. Because it is a real HTTP server, any client (PTB with its
default httpx transport, our :class:`handlers.telegram_request.AiohttpRequest`, curl) can talk to it.

In-process, in an async test::

    async with FakeBotAPI(token=TOKEN) as fake:
        bot = telegram.Bot(TOKEN, base_url=f"{fake.url}/bot", base_file_url=f"{fake.url}/file/bot")
        async with bot:
            await bot.send_message(42, "Xin chào")
        assert fake.sent_to(42) == ["Xin chào"]
        fake.enqueue_update(fake.make_message(42, "/start"))   # delivered by getUpdates
        fake.fail_next("sendMessage", status=429, retry_after=3)  # next sendMessage -> RetryAfter(3)

As a standalone process (benchmarks, manual runs), from the project root::

    python -m tests.fakes.telegram_api --port 8081 --delay-ms 50 [--token T] [--record]

It prints ``ready http://127.0.0.1:PORT`` on stdout once it listens (``--port 0`` picks a free port) and runs
until SIGTERM or SIGINT. Without ``--token`` every well-formed token is accepted. Without ``--record`` it keeps
no call log, so that long benchmark runs do not grow its memory.

Deliberate differences from the real server, all in the direction of "works on a laptop": webhooks may use
plain ``http://`` URLs on any port, any integer ``chat_id`` is a reachable chat (unless :meth:`block_chat`),
URLs given as files are not downloaded (they become empty files), and images are not resized (every photo
size of one upload downloads the original bytes). Text length limits count Unicode code points.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import copy
import itertools
import json
import mimetypes
import re
import secrets
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, SupportsIndex, cast, overload

import aiohttp
from aiohttp import web

__all__ = [
    "DEFAULT_TOKEN",
    "BotAPIError",
    "Call",
    "FakeBotAPI",
    "RateViolation",
    "SentMessage",
    "StoredFile",
    "UploadedFile",
    "main",
]

DEFAULT_TOKEN = "123456789:AAE-fake-token-for-pakn-tests_0123456789"
"""Token used by :class:`FakeBotAPI` when none is given."""

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024
MAX_UPLOAD_SIZE = 50 * 1024 * 1024

SEND_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendVoice",
        "sendMediaGroup",
        "sendLocation",
        "copyMessage",
        "forwardMessage",
    }
)
"""Methods that create messages; these are the ones the rate check counts."""

_CHAT_TARGET_METHODS = SEND_METHODS | {
    "editMessageText",
    "editMessageReplyMarkup",
    "editMessageCaption",
    "deleteMessage",
    "sendChatAction",
}
"""Methods refused with 403 when their ``chat_id`` is blocked."""

_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_API_PATH_RE = re.compile(r"^/bot(?P<token>[^/]*)/(?P<method>[^/]*)$")
_FILE_PATH_RE = re.compile(r"^/file/bot(?P<token>[^/]*)/(?P<path>.+)$")

_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "commands",
        "scope",
        "allowed_updates",
        "media",
        "reply_parameters",
        "link_preview_options",
        "menu_button",
        "message_ids",
    }
)
_INT_PARAMS = frozenset(
    {
        "chat_id",
        "from_chat_id",
        "message_id",
        "offset",
        "limit",
        "timeout",
        "message_thread_id",
        "reply_to_message_id",
        "max_connections",
        "duration",
        "width",
        "height",
        "cache_time",
        "user_id",
        "live_period",
    }
)
_FLOAT_PARAMS = frozenset({"latitude", "longitude", "horizontal_accuracy"})
_BOOL_PARAMS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "drop_pending_updates",
        "show_alert",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "has_spoiler",
        "disable_content_type_detection",
        "show_caption_above_media",
        "allow_paid_broadcast",
    }
)

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_DEFAULT_UPDATE_TYPES_EXCLUDED = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_INLINE_BUTTON_KINDS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)

_VIETNAMESE_NAMES = [
    ("An", "Nguyễn"),
    ("Bình", "Trần"),
    ("Chi", "Lê"),
    ("Dũng", "Phạm"),
    ("Hà", "Hoàng"),
    ("Lan", "Vũ"),
    ("Minh", "Đặng"),
    ("Thảo", "Bùi"),
]

# A valid 1x1 PNG, the default content of photos made by FakeBotAPI.make_photo.
_TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e221bc330000000049454e44ae426082"
)
_TINY_PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
_TINY_OGG = b"OggS\x00\x02" + b"\x00" * 20 + b"OpusHead"

_NGINX_PAGES = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}

_current_token: contextvars.ContextVar[str | None] = contextvars.ContextVar("fake_bot_api_token", default=None)


# ---------------------------------------------------------------------------------------------------------------
# Public records
# ---------------------------------------------------------------------------------------------------------------


class BotAPIError(Exception):
    """An error answer of the Bot API. Raise it from a handler given to :meth:`FakeBotAPI.set_handler`."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


@dataclass
class Call:
    """One request the fake received.

    ``method`` is the canonical Bot API name (``sendMessage`` whatever the case used in the URL; unknown
    methods keep the name as sent; file downloads are recorded as ``"file"`` with ``{"file_path": ...}``).
    ``params`` are decoded like the real server decodes them: ``chat_id``/``message_id``/... are ints,
    booleans are bools, JSON-valued fields (``reply_markup``, ``entities``, ``commands``, ``media``, ...)
    are dicts/lists, and uploaded files are :class:`UploadedFile` objects. ``at`` is ``time.monotonic()`` when
    the request arrived; ``status`` and ``response`` (the JSON answer) are filled in once it is answered.
    """

    method: str
    params: dict[str, Any]
    at: float
    status: int | None = None
    response: dict[str, Any] | None = None
    answered_at: float | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def result(self) -> Any:
        """The ``result`` of a successful answer (``None`` otherwise)."""
        return self.response.get("result") if self.response else None


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request."""

    filename: str | None
    content_type: str
    data: bytes


@dataclass
class StoredFile:
    """A file the fake server knows, downloadable at ``/file/bot<token>/<file_path>``."""

    file_id: str
    file_unique_id: str
    content: bytes
    file_path: str
    kind: str = "document"
    file_name: str | None = None
    mime_type: str | None = None


@dataclass(frozen=True)
class RateViolation:
    """A send that went over one of Telegram's documented limits (recorded, never enforced).

    ``kind`` is ``"chat"`` (more than ``per_chat_per_second`` sends to one chat within 1 s), ``"group"``
    (more than ``group_per_minute`` sends to one group within 60 s) or ``"global"`` (more than
    ``global_per_second`` sends within 1 s over all chats). ``count`` is the number of sends in that window,
    this one included.
    """

    kind: str
    chat_id: int | str | None
    method: str
    at: float
    count: int


class SentMessage(str):
    """A message the bot sent, as returned by :meth:`FakeBotAPI.sent_to`.

    It *is* the message's text (or caption, or ``""`` for media without caption), so
    ``"Cảm ơn" in fake.sent_to(chat)[-1]`` works, and it also gives the whole Message object Telegram
    returned: ``sent["reply_markup"]``, ``sent.get("photo")``, ``sent.message``, ``sent.message_id``,
    plus ``sent.method`` and ``sent.params`` (the request parameters, e.g. a reply keyboard, which Telegram
    does not echo in the Message). The message is a snapshot taken when it was sent.
    """

    message: dict[str, Any]
    method: str
    params: dict[str, Any]

    def __new__(cls, message: dict[str, Any], method: str, params: dict[str, Any]) -> SentMessage:
        text = message.get("text")
        if text is None:
            text = message.get("caption", "")
        obj = super().__new__(cls, text)
        obj.message = message
        obj.method = method
        obj.params = params
        return obj

    @overload  # type: ignore[override]
    def __getitem__(self, key: str) -> Any: ...

    @overload
    def __getitem__(self, key: SupportsIndex | slice) -> str: ...

    def __getitem__(self, key: str | SupportsIndex | slice) -> Any:
        if isinstance(key, str):
            return self.message[key]
        return str.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return self.message.get(key, default)

    def __reduce__(self) -> tuple[type[SentMessage], tuple[dict[str, Any], str, dict[str, Any]]]:
        return (SentMessage, (self.message, self.method, self.params))

    @property
    def text(self) -> str:
        return str(self)

    @property
    def message_id(self) -> int:
        return int(self.message["message_id"])

    @property
    def reply_markup(self) -> dict[str, Any] | None:
        return self.message.get("reply_markup")

    def __repr__(self) -> str:
        return f"SentMessage({self.method}, {str(self)!r})"


# ---------------------------------------------------------------------------------------------------------------
# Text formatting (parse_mode) like Telegram's own parsers
# ---------------------------------------------------------------------------------------------------------------


class _ParseError(Exception):
    pass


def _u16len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


class _TextBuilder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.len16 = 0

    def add(self, piece: str) -> None:
        self.parts.append(piece)
        self.len16 += _u16len(piece)

    def text(self) -> str:
        return "".join(self.parts)


_HTML_TAG_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_ENTITY_RE = re.compile(r"&(?:(lt|gt|amp|quot)|#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _html_unescape(raw: str) -> str:
    def repl(match: re.Match[str]) -> str:
        if match.group(1):
            return _HTML_NAMED[match.group(1)]
        code = int(match.group(2)) if match.group(2) else int(match.group(3), 16)
        if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
            return chr(code)
        return match.group(0)

    return _HTML_ENTITY_RE.sub(repl, raw)


def _html_attributes(text: str, j: int, tag: str, begin: int) -> tuple[dict[str, str], int]:
    attrs: dict[str, str] = {}
    n = len(text)
    unclosed = f"Unclosed start tag at byte offset {_byte_offset(text, begin)}"
    while True:
        while j < n and text[j].isspace():
            j += 1
        if j >= n:
            raise _ParseError(unclosed)
        if text[j] == ">":
            return attrs, j + 1
        k = j
        while k < n and not text[k].isspace() and text[k] not in "=>":
            k += 1
        name = text[j:k].lower()
        if not name:
            raise _ParseError(f'Empty attribute name in the tag "{tag}" at byte offset {_byte_offset(text, begin)}')
        while k < n and text[k].isspace():
            k += 1
        if k >= n or text[k] != "=":
            attrs[name] = ""
            j = k
            continue
        k += 1
        while k < n and text[k].isspace():
            k += 1
        if k >= n:
            raise _ParseError(unclosed)
        if text[k] in "\"'":
            end = text.find(text[k], k + 1)
            if end == -1:
                raise _ParseError(unclosed)
            value, j = text[k + 1 : end], end + 1
        else:
            end = k
            while end < n and not text[end].isspace() and text[end] != ">":
                end += 1
            value, j = text[k:end], end
        attrs[name] = _html_unescape(value)


def _html_entity(
    tag: str, start: int, length: int, attrs: dict[str, str], stack: list[tuple[str, int, dict[str, str]]]
) -> dict[str, Any] | None:
    if tag == "code" and stack and stack[-1][0] == "pre" and attrs.get("class", "").startswith("language-"):
        stack[-1][2]["\0language"] = attrs["class"][len("language-") :]
        return None
    if length <= 0:
        return None
    entity: dict[str, Any] = {"offset": start, "length": length, "type": _HTML_TAG_TYPES[tag]}
    if tag == "a":
        href = attrs.get("href", "")
        if not href:
            return None
        if href.startswith("tg://user?id="):
            user_id = href.removeprefix("tg://user?id=")
            if not user_id.isdigit():
                return None
            entity["type"] = "text_mention"
            entity["user"] = {"id": int(user_id), "is_bot": False, "first_name": ""}
        else:
            entity["url"] = href
    elif tag == "pre" and attrs.get("\0language"):
        entity["language"] = attrs["\0language"]
    elif tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    return entity


def _parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse ``parse_mode=HTML`` the way Telegram does (same tags, same error messages)."""
    out = _TextBuilder()
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, int, dict[str, str]]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "&":
            match = _HTML_ENTITY_RE.match(text, i)
            if match:
                out.add(_html_unescape(match.group(0)))
                i = match.end()
            else:
                out.add("&")
                i += 1
            continue
        if c != "<":
            j = i + 1
            while j < n and text[j] not in "<&":
                j += 1
            out.add(text[i:j])
            i = j
            continue
        begin = i
        if i + 1 < n and text[i + 1] == "/":
            if not stack:
                raise _ParseError(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
            j = i + 2
            while j < n and not text[j].isspace() and text[j] != ">":
                j += 1
            end_name = text[i + 2 : j].lower()
            while j < n and text[j].isspace():
                j += 1
            if j >= n or text[j] != ">":
                raise _ParseError(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
            tag, start, attrs = stack.pop()
            if end_name and end_name != tag:
                raise _ParseError(
                    f'Unmatched end tag at byte offset {_byte_offset(text, begin)}, expected "</{tag}>", '
                    f'found "</{end_name}>"'
                )
            entity = _html_entity(tag, start, out.len16 - start, attrs, stack)
            if entity:
                entities.append(entity)
            i = j + 1
            continue
        j = i + 1
        while j < n and not text[j].isspace() and text[j] not in "/>":
            j += 1
        tag = text[i + 1 : j].lower()
        if tag not in _HTML_TAG_TYPES:
            raise _ParseError(f'Unsupported start tag "{tag}" at byte offset {_byte_offset(text, begin)}')
        attrs, i = _html_attributes(text, j, tag, begin)
        if tag == "span" and attrs.get("class") != "tg-spoiler":
            raise _ParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(text, begin)}')
        stack.append((tag, out.len16, attrs))
    if stack:
        raise _ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return out.text(), entities


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_TYPE_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "code": "Code",
    "pre": "Pre",
}


def _parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse ``parse_mode=MarkdownV2`` like Telegram: every reserved character must be escaped."""
    out = _TextBuilder()
    entities: list[dict[str, Any]] = []
    stack: list[dict[str, Any]] = []  # {"type", "start", "byte"}
    quote_start: int | None = None
    i, n = 0, len(text)

    def reserved_error(ch: str) -> _ParseError:
        return _ParseError(f"Character '{ch}' is reserved and must be escaped with the preceding '\\'")

    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "\\" and nxt and 0 < ord(nxt) <= 126:
            out.add(nxt)
            i += 2
            continue
        top = stack[-1]["type"] if stack else None
        if c == "\n" and quote_start is not None and not text.startswith(">", i + 1):
            if out.len16 > quote_start:
                entities.append({"offset": quote_start, "length": out.len16 - quote_start, "type": "blockquote"})
            quote_start = None
        reserved = "`" if top in ("code", "pre") else _MDV2_RESERVED
        if c not in reserved:
            out.add(c)
            i += 1
            continue
        is_end = False
        if top == "bold":
            is_end = c == "*"
        elif top == "italic":
            is_end = c == "_" and nxt != "_"
        elif top == "underline":
            is_end = c == "_" and nxt == "_"
        elif top == "strikethrough":
            is_end = c == "~"
        elif top == "spoiler":
            is_end = c == "|" and nxt == "|"
        elif top in ("text_link", "custom_emoji"):
            is_end = c == "]"
        elif top == "code":
            is_end = c == "`"
        elif top == "pre":
            is_end = text.startswith("```", i)
        if is_end:
            entity = stack.pop()
            entity_type = entity.pop("type")
            start = entity.pop("start")
            entity.pop("byte")
            i += {"underline": 2, "spoiler": 2, "pre": 3}.get(entity_type, 1)
            if entity_type in ("text_link", "custom_emoji"):
                url = ""
                if i < n and text[i] == "(":
                    j, chars = i + 1, []
                    while j < n and text[j] != ")":
                        if text[j] == "\\" and j + 1 < n:
                            j += 1
                        chars.append(text[j])
                        j += 1
                    if j >= n:
                        raise _ParseError(f"Can't find end of a URL at byte offset {_byte_offset(text, i)}")
                    url, i = "".join(chars), j + 1
                if not url:
                    continue
                if entity_type == "custom_emoji":
                    entity["custom_emoji_id"] = url.removeprefix("tg://emoji?id=")
                elif url.startswith("tg://user?id=") and url.removeprefix("tg://user?id=").isdigit():
                    entity_type = "text_mention"
                    entity["user"] = {"id": int(url.removeprefix("tg://user?id=")), "is_bot": False, "first_name": ""}
                else:
                    entity["url"] = url
            if out.len16 > start:
                entities.append({"offset": start, "length": out.len16 - start, "type": entity_type, **entity})
            continue
        begin = i
        if c == ">" and (i == 0 or text[i - 1] == "\n") and not stack:
            if quote_start is None:
                quote_start = out.len16
            i += 1
            continue
        new: dict[str, Any] = {"start": out.len16, "byte": _byte_offset(text, begin)}
        if c == "_":
            new["type"] = "underline" if nxt == "_" else "italic"
            i += 2 if nxt == "_" else 1
        elif c == "*":
            new["type"] = "bold"
            i += 1
        elif c == "~":
            new["type"] = "strikethrough"
            i += 1
        elif c == "|" and nxt == "|":
            new["type"] = "spoiler"
            i += 2
        elif c == "[":
            new["type"] = "text_link"
            i += 1
        elif c == "!" and nxt == "[":
            new["type"] = "custom_emoji"
            i += 2
        elif c == "`" and text.startswith("```", i):
            i += 3
            j = i
            while j < n and not text[j].isspace() and text[j] != "`":
                j += 1
            language = text[i:j]
            if language and j < n and text[j] == "\n":
                new["language"] = language
                i = j + 1
            elif j < n and text[j] == "\n" and not language:
                i = j + 1
            new["type"] = "pre"
        elif c == "`":
            new["type"] = "code"
            i += 1
        else:
            raise reserved_error(c)
        stack.append(new)
    if stack:
        entity = stack[-1]
        raise _ParseError(
            f"Can't find end of {_MDV2_TYPE_NAMES[entity['type']]} entity at byte offset {entity['byte']}"
        )
    if quote_start is not None and out.len16 > quote_start:
        entities.append({"offset": quote_start, "length": out.len16 - quote_start, "type": "blockquote"})
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return out.text(), entities


def _parse_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse the legacy ``parse_mode=Markdown``: *bold*, _italic_, `code`, ```pre```, [text](url)."""
    out = _TextBuilder()
    entities: list[dict[str, Any]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
            continue
        if c not in "_*`[":
            out.add(c)
            i += 1
            continue
        begin = i
        not_found = _ParseError(f"Can't find end of the entity starting at byte offset {_byte_offset(text, begin)}")
        start = out.len16
        if text.startswith("```", i):
            end = text.find("```", i + 3)
            if end == -1:
                raise not_found
            body = text[i + 3 : end]
            entity: dict[str, Any] = {"type": "pre"}
            first, sep, rest = body.partition("\n")
            if sep and first and not first[0].isspace() and " " not in first:
                entity["language"], body = first, rest
            out.add(body)
            i = end + 3
        elif c == "[":
            end = text.find("]", i + 1)
            if end == -1:
                raise not_found
            label = text[i + 1 : end]
            out.add(label)
            i = end + 1
            entity = {"type": "text_link"}
            if i < n and text[i] == "(":
                close = text.find(")", i + 1)
                if close == -1:
                    raise not_found
                entity["url"] = text[i + 1 : close]
                i = close + 1
            if not entity.get("url"):
                continue
        else:
            end = text.find(c, i + 1)
            if end == -1:
                raise not_found
            out.add(text[i + 1 : end])
            entity = {"type": {"*": "bold", "_": "italic", "`": "code"}[c]}
            i = end + 1
        if out.len16 > start:
            entities.append({"offset": start, "length": out.len16 - start, **entity})
    return out.text(), entities


def _strip_formatted(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram trims leading and trailing whitespace; entities are moved and clipped accordingly."""
    core = text.strip()
    if core == text:
        return text, entities
    shift = _u16len(text[: len(text) - len(text.lstrip())])
    total = _u16len(core)
    kept = []
    for entity in entities:
        start = max(0, int(entity["offset"]) - shift)
        end = min(int(entity["offset"]) + int(entity["length"]) - shift, total)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return core, kept


def _format_text(text: str, parse_mode: Any, entities: Any) -> tuple[str, list[dict[str, Any]]]:
    if entities is not None:
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            raise BotAPIError(400, "Bad Request: can't parse entities JSON object")
        return _strip_formatted(text, [dict(e) for e in entities])
    if not parse_mode:
        return _strip_formatted(text, [])
    parsers = {"html": _parse_html, "markdownv2": _parse_markdown_v2, "markdown": _parse_markdown}
    parser = parsers.get(str(parse_mode).lower())
    if parser is None:
        raise BotAPIError(400, "Bad Request: unsupported parse_mode")
    try:
        parsed, found = parser(text)
    except _ParseError as exc:
        raise BotAPIError(400, f"Bad Request: can't parse entities: {exc}") from None
    return _strip_formatted(parsed, found)


_AUTO_ENTITY_RES = [
    ("bot_command", re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")),
    ("url", re.compile(r"\bhttps?://[^\s<>\"']+")),
    ("email", re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}\b")),
    ("hashtag", re.compile(r"(?<![\w#])#\w+")),
]


def _auto_entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram detects in a user's plain text (commands, URLs, e-mails, mentions, hashtags)."""
    found: list[tuple[int, int, str]] = []
    for kind, pattern in _AUTO_ENTITY_RES:
        for match in pattern.finditer(text):
            found.append((match.start(), match.end(), kind))
    found.sort()
    entities: list[dict[str, Any]] = []
    last_end = 0
    for start, end, kind in found:
        if start < last_end:
            continue
        entities.append({"offset": _u16len(text[:start]), "length": _u16len(text[start:end]), "type": kind})
        last_end = end
    return entities


# ---------------------------------------------------------------------------------------------------------------
# Helpers for parameters, markup and files
# ---------------------------------------------------------------------------------------------------------------


def _parse_bool(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0", ""):
            return False
    return value


def _decode_params(raw: dict[str, Any]) -> tuple[dict[str, Any], BotAPIError | None]:
    """Type the raw parameters like the real server does; keeps the raw value when decoding fails."""
    params: dict[str, Any] = {}
    error: BotAPIError | None = None
    for name, value in raw.items():
        if isinstance(value, str):
            if name in _JSON_PARAMS:
                try:
                    value = json.loads(value)
                except ValueError:
                    what = "reply keyboard markup" if name == "reply_markup" else name.replace("_", " ")
                    error = error or BotAPIError(400, f"Bad Request: can't parse {what} JSON object")
            elif name in _INT_PARAMS:
                with contextlib.suppress(ValueError):
                    value = int(value)
            elif name in _FLOAT_PARAMS:
                with contextlib.suppress(ValueError):
                    value = float(value)
            elif name in _BOOL_PARAMS:
                value = _parse_bool(value)
        params[name] = value
    return params, error


def _json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def _nginx_response(status: int) -> web.Response:
    phrase = _NGINX_PAGES.get(status, "Error")
    page = (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
    )
    return web.Response(text=page, status=status, content_type="text/html")


def _default_description(status: int, retry_after: int) -> str:
    return {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden: bot was blocked by the user",
        404: "Not Found",
        409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
        429: f"Too Many Requests: retry after {retry_after}",
        500: "Internal Server Error",
    }.get(status, "Internal Server Error")


def _validate_reply_markup(markup: Any) -> None:
    bad_markup = BotAPIError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    if not isinstance(markup, dict):
        raise bad_markup
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_markup
        for row in rows:
            for button in row:
                if not isinstance(button, dict):
                    raise BotAPIError(
                        400, "Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an Object"
                    )
                if not isinstance(button.get("text"), str):
                    raise BotAPIError(
                        400, 'Bad Request: can\'t parse inline keyboard button: Field "text" must be of type String'
                    )
                if not any(kind in button for kind in _INLINE_BUTTON_KINDS):
                    raise BotAPIError(
                        400,
                        "Bad Request: can't parse inline keyboard button: "
                        "Text buttons are unallowed in the inline keyboard",
                    )
                if "callback_data" in button:
                    data = button["callback_data"]
                    if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES:
                        raise BotAPIError(400, "Bad Request: BUTTON_DATA_INVALID")
                if "url" in button:
                    url = button["url"]
                    if not isinstance(url, str) or not re.match(r"^(https?|tg|ton)://[^\s]+$", url):
                        raise BotAPIError(400, "Bad Request: BUTTON_URL_INVALID")
    elif "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_markup
        for row in rows:
            for button in row:
                if not isinstance(button, str) and not (
                    isinstance(button, dict) and isinstance(button.get("text"), str)
                ):
                    raise BotAPIError(
                        400, "Bad Request: can't parse keyboard button: KeyboardButton must be a String or an Object"
                    )
    elif not ("remove_keyboard" in markup or "force_reply" in markup):
        raise bad_markup


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG/JPEG/GIF/WebP/BMP image, or ``None`` when the bytes are not an image."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"GIF8") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data.startswith(b"BM") and len(data) >= 26:
        return int.from_bytes(data[18:22], "little"), abs(int.from_bytes(data[22:26], "little", signed=True))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return 512, 512
    if data.startswith(b"\xff\xd8\xff"):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            length = int.from_bytes(data[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
            i += 2 + length
        return 640, 480
    return None


@dataclass
class _ChatState:
    chat: dict[str, Any]
    next_message_id: int = 1
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    sent: list[SentMessage] = field(default_factory=list)
    reply_keyboard: dict[str, Any] | None = None


@dataclass
class _Fault:
    status: int
    retry_after: int
    description: str | None
    remaining: int


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    allowed_updates: list[str] | None
    max_connections: int
    token: str | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None


Handler = Callable[[dict[str, Any]], Any]


# ---------------------------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------------------------


class FakeBotAPI:
    """A Bot API server on 127.0.0.1, see the module docstring.

    Args:
        token: the one valid token (``None``: accept every well-formed token). A well-formed but different
            token gets 401 "Unauthorized", a malformed one 404 "Not Found", as on the real server.
        host, port: where to listen; port 0 picks a free port (see :attr:`url`).
        delay: seconds to wait before answering each request (also the attribute ``delay``).
        record: keep :attr:`calls` (the standalone server turns it off unless ``--record``).
        history_limit: keep at most this many messages per chat (``None``: all).
        per_chat_per_second, group_per_minute, global_per_second: thresholds of the rate check, which only
            records :class:`RateViolation` entries in :attr:`rate_violations` (and only when ``record``).
    """

    def __init__(
        self,
        token: str | None = DEFAULT_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        delay: float = 0.0,
        record: bool = True,
        history_limit: int | None = None,
        bot_first_name: str = "PAKN Test Bot",
        bot_username: str = "pakn_test_bot",
        per_chat_per_second: int = 1,
        group_per_minute: int = 20,
        global_per_second: int = 30,
    ) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.delay = delay
        self.record = record
        self.history_limit = history_limit
        self.bot_first_name = bot_first_name
        self.bot_username = bot_username
        self.per_chat_per_second = per_chat_per_second
        self.group_per_minute = group_per_minute
        self.global_per_second = global_per_second

        self.calls: list[Call] = []
        self.rate_violations: list[RateViolation] = []
        self.files: dict[str, StoredFile] = {}
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        """Bot commands per ``(scope key, language_code)``; see :meth:`commands_for`."""
        self.users: dict[int, dict[str, Any]] = {}
        self.answered_callbacks: dict[str, dict[str, Any]] = {}

        self._url: str | None = None
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._closing = False
        self._chats: dict[int, _ChatState] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._blocked: set[int] = set()
        self._faults: dict[str, deque[_Fault]] = {}
        self._custom: dict[str, Handler] = {}
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 100_000_001
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._webhook: _Webhook | None = None
        self._wakeup: asyncio.Event | None = None
        self._call_event: asyncio.Event | None = None
        self._chat_sends: dict[int, deque[float]] = {}
        self._group_sends: dict[int, deque[float]] = {}
        self._all_sends: deque[float] = deque()
        self._callback_ids = itertools.count(4_000_000_000_000_000_000 + secrets.randbelow(10**17))
        self._file_counter = itertools.count(1)
        self._media_group_ids = itertools.count(13_000_000_000_000_000)

        self._methods: dict[str, tuple[str, Callable[[dict[str, Any]], Awaitable[Any]]]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "logOut": self._true,
                "close": self._true,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "editMessageCaption": self._edit_message_caption,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "sendPhoto": self._send_photo,
                "sendDocument": self._send_document,
                "sendVoice": self._send_voice,
                "sendMediaGroup": self._send_media_group,
                "sendLocation": self._send_location,
                "copyMessage": self._copy_message,
                "forwardMessage": self._forward_message,
                "sendChatAction": self._send_chat_action,
                "getFile": self._get_file,
                "getChat": self._get_chat,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "setMyDescription": self._true,
                "setMyShortDescription": self._true,
                "setMyName": self._true,
                "setChatMenuButton": self._true,
            }.items()
        }

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening; :attr:`url` is known afterwards."""
        if self._runner is not None:
            raise RuntimeError("FakeBotAPI is already running")
        self._closing = False
        self._wakeup = asyncio.Event()
        self._call_event = asyncio.Event()
        app = web.Application(client_max_size=MAX_UPLOAD_SIZE + 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=2048)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.port = port
        self._url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Stop listening; long polls in progress are answered with an empty result first."""
        self._closing = True
        self._wake_pollers()
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Server root such as ``http://127.0.0.1:PORT``; clients use ``f"{url}/bot"`` as their base URL."""
        if self._url is None:
            raise RuntimeError("FakeBotAPI is not started")
        return self._url

    @property
    def base_url(self) -> str:
        """``f"{url}/bot"``, the ``base_url`` argument of :class:`telegram.Bot`."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """``f"{url}/file/bot"``, the ``base_file_url`` argument of :class:`telegram.Bot`."""
        return f"{self.url}/file/bot"

    @property
    def bot_user(self) -> dict[str, Any]:
        """The User object getMe returns for the configured token."""
        return self._bot_user(self.token or DEFAULT_TOKEN)

    # -- recording ------------------------------------------------------------------------------------------

    def calls_of(self, method: str) -> list[Call]:
        """Recorded calls of one method (case-insensitive name)."""
        wanted = method.lower()
        return [call for call in self.calls if call.method.lower() == wanted]

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 5.0,
        *,
        after: int | None = None,
        answered: bool = True,
    ) -> Call:
        """Wait until a matching call has been recorded and return it.

        Calls recorded before this wait count too, unless ``after`` is given: then only calls at index
        ``>= after`` in :attr:`calls` match (take ``after=len(fake.calls)`` before triggering the action).
        With ``answered=True`` (default) the call must also have been answered, so whatever it changed (a
        stored message, :meth:`sent_to`) is visible; pass ``answered=False`` to catch a long poll as it starts.
        ``method="*"`` matches any method. Raises :class:`TimeoutError`.
        """
        if not self.record:
            raise RuntimeError("wait_for needs record=True")
        wanted = method.lower()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for call in self.calls[after or 0 :]:
                if wanted not in ("*", call.method.lower()):
                    continue
                if answered and not call.answered:
                    continue
                if predicate is None or predicate(call):
                    return call
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = ", ".join(call.method for call in self.calls[after or 0 :][-20:])
                raise TimeoutError(f"no matching {method} call within {timeout} s (recorded: {seen or 'none'})")
            event = self._call_event
            if event is None:
                raise RuntimeError("FakeBotAPI is not started")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await event.wait()

    def clear_calls(self) -> None:
        """Forget the recorded calls and rate violations."""
        self.calls.clear()
        self.rate_violations.clear()

    def sent_to(self, chat_id: int | str) -> list[SentMessage]:
        """Messages the bot sent to a chat, oldest first, as :class:`SentMessage` (a text with the message)."""
        state = self._chats.get(self._chat_key(chat_id))
        return list(state.sent) if state else []

    def chat_messages(self, chat_id: int | str) -> list[dict[str, Any]]:
        """Current messages of a chat (both sides, edits applied, deleted ones gone), oldest first."""
        state = self._chats.get(self._chat_key(chat_id))
        return copy.deepcopy(list(state.messages.values())) if state else []

    def reply_keyboard(self, chat_id: int | str) -> dict[str, Any] | None:
        """The reply keyboard (``ReplyKeyboardMarkup``) the user currently sees in a chat, if any."""
        state = self._chats.get(self._chat_key(chat_id))
        return state.reply_keyboard if state else None

    def commands_for(self, language_code: str = "", scope: str | dict[str, Any] = "default") -> list[dict[str, Any]]:
        """Commands set for a scope (``"default"``, ``"all_private_chats"``, a BotCommandScope dict) and language."""
        key = scope if isinstance(scope, str) else self._scope_key(scope)
        return list(self.commands.get((key, language_code), []))

    def max_sends_per_second(self, chat_id: int | str | None = None) -> int:
        """Largest number of sends (to one chat, or to all) recorded within any 1-second window."""
        times = sorted(
            call.at
            for call in self.calls
            if call.method in SEND_METHODS and (chat_id is None or call.params.get("chat_id") == chat_id)
        )
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= 1.0:
                start += 1
            best = max(best, end - start + 1)
        return best

    # -- control --------------------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int = 1,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (``"*"``: any method) with an error.

        429 carries ``parameters.retry_after`` and "Too Many Requests: retry after N"; 502/503/504 answer with
        nginx's HTML page like the real front end does; other statuses use the usual descriptions unless
        ``description`` is given. Several ``fail_next`` calls for one method queue up in order.
        """
        key = "*" if method == "*" else self._canonical(method).lower()
        self._faults.setdefault(key, deque()).append(_Fault(status, retry_after, description, times))

    def block_chat(self, chat_id: int) -> None:
        """Every send to this chat answers 403 ("Forbidden: bot was blocked by the user" for a private chat)."""
        self._blocked.add(int(chat_id))

    def unblock_chat(self, chat_id: int) -> None:
        self._blocked.discard(int(chat_id))

    def set_handler(self, method: str, handler: Handler | None) -> None:
        """Answer ``method`` with ``handler(params)`` (sync or async; its return value is the result; raise
        :class:`BotAPIError` for an error). Works for unknown methods too. ``None`` removes the override."""
        key = method.lower()
        if handler is None:
            self._custom.pop(key, None)
        else:
            self._custom[key] = handler

    def add_chat(
        self, chat_id: int, type: str, *, title: str | None = None, username: str | None = None
    ) -> dict[str, Any]:
        """Register a chat explicitly, e.g. a channel (``type="channel"``) reachable by ``@username``."""
        chat: dict[str, Any] = {"id": chat_id, "type": type}
        if type != "private":
            chat["title"] = title or f"Chat {chat_id}"
        if username:
            chat["username"] = username
        state = self._chats.get(chat_id)
        if state is None:
            self._chats[chat_id] = _ChatState(chat)
        else:
            state.chat = chat
        return chat

    def add_file(
        self,
        file_id: str | None,
        content: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        kind: str = "document",
    ) -> str:
        """Register a file (``file_id=None``: generate one) so getFile and the download URL serve it."""
        return self._store_file(content, kind=kind, file_name=file_name, mime_type=mime_type, file_id=file_id).file_id

    # -- updates --------------------------------------------------------------------------------------------

    def enqueue_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates (assigning ``update_id`` if missing) and wake a waiting long poll."""
        update = self._assign_update_id(update)
        self._updates.append(update)
        self._updates.sort(key=lambda u: u["update_id"])
        self._wake_pollers()
        return update

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Queued updates not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    @property
    def webhook_url(self) -> str | None:
        return self._webhook.url if self._webhook else None

    async def push_update(self, update: dict[str, Any], timeout: float = 10.0) -> int:
        """POST an update to the webhook like Telegram does (JSON body, ``X-Telegram-Bot-Api-Secret-Token``
        header when a secret is set) and return the HTTP status. A non-2xx status or a connection error is
        also reported by getWebhookInfo's ``last_error_message``; a connection error is re-raised."""
        webhook = self._webhook
        if webhook is None:
            raise RuntimeError("no webhook is set: call setWebhook first")
        update = self._assign_update_id(update)
        headers = {"Content-Type": "application/json"}
        if webhook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = webhook.secret_token
        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession()
        try:
            async with self._client.post(
                webhook.url,
                data=json.dumps(update, ensure_ascii=False).encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                reply = await response.read()
                status = response.status
                content_type = response.content_type
        except (aiohttp.ClientError, TimeoutError) as exc:
            webhook.last_error_date = int(time.time())
            webhook.last_error_message = f"Connection failed: {exc.__class__.__name__}"
            raise
        if not 200 <= status <= 299:
            webhook.last_error_date = int(time.time())
            webhook.last_error_message = f"Wrong response from the webhook: {status} {response.reason or ''}".strip()
        else:
            await self.perform_webhook_reply(content_type, reply)
        return status

    # -- update builders ------------------------------------------------------------------------------------

    def make_user(self, user_id: int, **overrides: Any) -> dict[str, Any]:
        """A realistic (Vietnamese) user object; the same id always gives the same user."""
        user = self.users.get(user_id)
        if user is None:
            first, last = _VIETNAMESE_NAMES[user_id % len(_VIETNAMESE_NAMES)]
            user = {
                "id": user_id,
                "is_bot": False,
                "first_name": first,
                "last_name": last,
                "username": f"user{user_id}",
                "language_code": "vi",
            }
            self.users[user_id] = user
        if overrides:
            user.update(overrides)
        return dict(user)

    def make_message(
        self, chat_id: int, text: str, user: dict[str, Any] | int | None = None, **extra: Any
    ) -> dict[str, Any]:
        """A ``message`` update from a user, with the entities Telegram would detect (e.g. ``bot_command``)."""
        content: dict[str, Any] = {"text": text}
        entities = _auto_entities(text)
        if entities:
            content["entities"] = entities
        return self._user_update(chat_id, user, content, extra)

    def make_callback(
        self,
        chat_id: int,
        data: str,
        message_id: int | None = None,
        user: dict[str, Any] | int | None = None,
    ) -> dict[str, Any]:
        """A ``callback_query`` update for a button of a bot message (default: the bot's latest message in
        the chat). A message that no longer exists is sent as an inaccessible message (``date`` 0)."""
        state = self._chat_state(chat_id)
        sender = self._resolve_user(chat_id, user)
        bot_id = self.bot_user["id"]
        message: dict[str, Any] | None = None
        if message_id is None:
            for candidate in reversed(state.messages.values()):
                if candidate.get("from", {}).get("id") == bot_id:
                    message = candidate
                    break
        else:
            message = state.messages.get(message_id)
        if message is None:
            message = {"chat": copy.deepcopy(state.chat), "message_id": message_id or 1, "date": 0}
        query_id = str(next(self._callback_ids))
        return {
            "callback_query": {
                "id": query_id,
                "from": sender,
                "message": copy.deepcopy(message),
                "chat_instance": str(-(abs(hash((chat_id, bot_id))) % 10**18)),
                "data": data,
            }
        }

    def make_contact(
        self,
        chat_id: int,
        phone_number: str,
        first_name: str | None = None,
        user_id: int | None = None,
        *,
        last_name: str | None = None,
        user: dict[str, Any] | int | None = None,
    ) -> dict[str, Any]:
        """A message sharing a contact (by default the sender's own, as the request_contact button does)."""
        sender = self._resolve_user(chat_id, user)
        contact: dict[str, Any] = {
            "phone_number": phone_number,
            "first_name": first_name or sender["first_name"],
            "user_id": user_id if user_id is not None else sender["id"],
        }
        if last_name or (first_name is None and sender.get("last_name")):
            contact["last_name"] = last_name or sender["last_name"]
        return self._user_update(chat_id, sender, {"contact": contact}, {})

    def make_photo(
        self,
        chat_id: int,
        file_id: str | None = None,
        caption: str | None = None,
        *,
        content: bytes | None = None,
        user: dict[str, Any] | int | None = None,
    ) -> dict[str, Any]:
        """A message with a photo (the bytes are downloadable through getFile; default: a 1x1 PNG)."""
        data = content if content is not None else _TINY_PNG
        stored = self._store_file(data, kind="photo", file_id=file_id, mime_type="image/jpeg")
        content_fields: dict[str, Any] = {"photo": self._photo_sizes(stored)}
        if caption is not None:
            content_fields["caption"] = caption
        return self._user_update(chat_id, user, content_fields, {})

    def make_document(
        self,
        chat_id: int,
        file_id: str | None = None,
        file_name: str = "tai-lieu.pdf",
        mime_type: str | None = None,
        *,
        content: bytes | None = None,
        caption: str | None = None,
        user: dict[str, Any] | int | None = None,
    ) -> dict[str, Any]:
        """A message with a document (default: a tiny PDF)."""
        data = content if content is not None else _TINY_PDF
        mime = mime_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        stored = self._store_file(data, kind="document", file_id=file_id, file_name=file_name, mime_type=mime)
        content_fields: dict[str, Any] = {"document": self._document_object(stored)}
        if caption is not None:
            content_fields["caption"] = caption
        return self._user_update(chat_id, user, content_fields, {})

    def make_voice(
        self,
        chat_id: int,
        file_id: str | None = None,
        duration: int = 3,
        *,
        content: bytes | None = None,
        user: dict[str, Any] | int | None = None,
    ) -> dict[str, Any]:
        """A message with a voice note."""
        data = content if content is not None else _TINY_OGG
        stored = self._store_file(data, kind="voice", file_id=file_id, mime_type="audio/ogg")
        voice = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": len(data),
        }
        return self._user_update(chat_id, user, {"voice": voice}, {})

    def make_location(
        self, chat_id: int, lat: float, lon: float, *, user: dict[str, Any] | int | None = None
    ) -> dict[str, Any]:
        """A message sharing a location."""
        return self._user_update(chat_id, user, {"location": {"latitude": lat, "longitude": lon}}, {})

    # -- request handling -----------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        match = _API_PATH_RE.match(path)
        if match:
            return await self._handle_api(request, match["token"], match["method"])
        match = _FILE_PATH_RE.match(path)
        if match:
            return await self._handle_file(request, match["token"], match["path"])
        return _json_response(BotAPIError(404, "Not Found").to_json(), 404)

    async def _handle_api(self, request: web.Request, token: str, method: str) -> web.StreamResponse:
        error: BotAPIError | None = self._token_error(token)
        try:
            raw = await self._read_raw_params(request)
        except BotAPIError as exc:
            raw, error = {}, error or exc
        call = await self._call(token, method, raw, dict(request.headers), error)
        if call.response is None:
            return _nginx_response(call.status or 500)
        return _json_response(call.response, call.status or 500)

    async def _call(
        self, token: str, method: str, raw: dict[str, Any], headers: dict[str, str], error: BotAPIError | None = None
    ) -> Call:
        """One Bot API method call, from an HTTP request or from a webhook's reply; the call's ``response`` is
        its JSON body, or None for one of the proxy's HTML error pages."""
        params, decode_error = _decode_params(raw)
        canonical = self._canonical(method)
        call = self._record(canonical, params, headers)
        status, body = 500, BotAPIError(500, "Internal Server Error").to_json()
        try:
            if self.delay > 0:
                await asyncio.sleep(self.delay)
            if error is not None:
                raise error
            entry = self._methods.get(canonical.lower())
            custom = self._custom.get(canonical.lower())
            if entry is None and custom is None:
                raise BotAPIError(404, "Not Found")
            fault = self._take_fault(canonical)
            if fault is not None:
                if fault.status in _NGINX_PAGES and fault.description is None:
                    self._finish(call, fault.status, None)
                    return call
                parameters = {"retry_after": fault.retry_after} if fault.status == 429 else None
                description = fault.description or _default_description(fault.status, fault.retry_after)
                raise BotAPIError(fault.status, description, parameters)
            if canonical in SEND_METHODS and self.record:
                self._check_rate(canonical, params.get("chat_id"))
            if decode_error is not None:
                raise decode_error
            if canonical in _CHAT_TARGET_METHODS:
                self._check_blocked(params.get("chat_id"))
            _current_token.set(token)
            if custom is not None:
                result = custom(params)
                if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                    result = await result
            else:
                assert entry is not None
                result = await entry[1](params)
            if isinstance(result, _Described):
                body = {"ok": True, "result": result.result, "description": result.description}
            else:
                body = {"ok": True, "result": result}
            status = 200
        except BotAPIError as exc:
            status, body = exc.status, exc.to_json()
        self._finish(call, status, body)
        return call

    async def perform_webhook_reply(self, content_type: str, body: bytes) -> Call | None:
        """Telegram's "reply to the webhook": a JSON response naming a ``method`` is performed as a call of that
        method by the bot whose webhook it is; its result goes nowhere (the bot cannot know it). Returns the
        call, or None when the response asked for nothing."""
        if content_type != "application/json" or not body.strip():
            return None
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("method"), str):
            return None
        method = data.pop("method")
        token = (self._webhook.token if self._webhook else None) or self.token or DEFAULT_TOKEN
        return await self._call(token, method, data, {"X-Webhook-Reply": "1"})

    async def _handle_file(self, request: web.Request, token: str, path: str) -> web.StreamResponse:
        call = self._record("file", {"file_path": path}, dict(request.headers))
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        error = self._token_error(token)
        stored = self._files_by_path.get(path)
        if error is None and stored is None:
            error = BotAPIError(404, "Not Found")
        if error is not None:
            self._finish(call, error.status, error.to_json())
            return _json_response(error.to_json(), error.status)
        assert stored is not None
        self._finish(call, 200, None)
        return web.Response(body=stored.content, content_type=stored.mime_type or "application/octet-stream")

    async def _read_raw_params(self, request: web.Request) -> dict[str, Any]:
        raw: dict[str, Any] = dict(request.query)
        if not request.can_read_body:
            return raw
        content_type = request.content_type
        if content_type == "application/json":
            body = await request.read()
            if body.strip():
                try:
                    data = json.loads(body)
                except ValueError:
                    raise BotAPIError(400, "Bad Request: can't parse JSON") from None
                if not isinstance(data, dict):
                    raise BotAPIError(400, "Bad Request: JSON object expected")
                raw.update(data)
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    raw[name] = UploadedFile(value.filename, value.content_type, value.file.read())
                else:
                    raw[name] = value
        else:
            await request.read()
        return raw

    def _record(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> Call:
        call = Call(method, params, time.monotonic(), headers=headers)
        if self.record:
            self.calls.append(call)
            self._notify_calls()
        return call

    def _finish(self, call: Call, status: int, body: dict[str, Any] | None) -> None:
        call.status = status
        call.response = body
        call.answered_at = time.monotonic()
        if self.record:
            self._notify_calls()

    def _notify_calls(self) -> None:
        if self._call_event is not None:
            self._call_event.set()
            self._call_event = asyncio.Event()

    def _wake_pollers(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = asyncio.Event()

    def _canonical(self, method: str) -> str:
        entry = self._methods.get(method.lower())
        return entry[0] if entry else method

    def _token_error(self, token: str) -> BotAPIError | None:
        if not _TOKEN_RE.match(token):
            return BotAPIError(404, "Not Found")
        if self.token is not None and token != self.token:
            return BotAPIError(401, "Unauthorized")
        return None

    def _take_fault(self, method: str) -> _Fault | None:
        for key in (method.lower(), "*"):
            queue = self._faults.get(key)
            if queue:
                fault = queue[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.popleft()
                return fault
        return None

    def _check_rate(self, method: str, chat_id: Any) -> None:
        now = time.monotonic()
        self._all_sends.append(now)
        while now - self._all_sends[0] >= 1.0:
            self._all_sends.popleft()
        if len(self._all_sends) > self.global_per_second:
            self.rate_violations.append(RateViolation("global", chat_id, method, now, len(self._all_sends)))
        if not isinstance(chat_id, int):
            return
        window, limit, kind, store = (1.0, self.per_chat_per_second, "chat", self._chat_sends)
        if chat_id < 0:
            window, limit, kind, store = (60.0, self.group_per_minute, "group", self._group_sends)
        times = store.setdefault(chat_id, deque())
        times.append(now)
        while now - times[0] >= window:
            times.popleft()
        if len(times) > limit:
            self.rate_violations.append(RateViolation(kind, chat_id, method, now, len(times)))

    def _check_blocked(self, chat_id: Any) -> None:
        if not isinstance(chat_id, int) or chat_id not in self._blocked:
            return
        chat_type = self._chat_state(chat_id).chat["type"]
        description = {
            "private": "Forbidden: bot was blocked by the user",
            "group": "Forbidden: bot was kicked from the group chat",
            "supergroup": "Forbidden: bot was kicked from the supergroup chat",
            "channel": "Forbidden: bot is not a member of the channel chat",
        }[chat_type]
        raise BotAPIError(403, description)

    # -- state helpers --------------------------------------------------------------------------------------

    def _bot_user(self, token: str | None = None) -> dict[str, Any]:
        token = token or _current_token.get() or self.token or DEFAULT_TOKEN
        return {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _chat_key(self, chat_id: int | str) -> int:
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            for key, state in self._chats.items():
                if state.chat.get("username", "").lower() == chat_id[1:].lower():
                    return key
            return 0
        return int(chat_id)

    def _chat_state(self, chat_id: int) -> _ChatState:
        state = self._chats.get(chat_id)
        if state is None:
            if chat_id > 0:
                user = self.make_user(chat_id)
                chat = {"id": chat_id, "first_name": user["first_name"], "type": "private"}
                for optional in ("last_name", "username"):
                    if user.get(optional):
                        chat[optional] = user[optional]
            elif chat_id <= -1_000_000_000_000:
                chat = {"id": chat_id, "title": f"Nhóm {-chat_id % 10_000}", "type": "supergroup"}
            else:
                chat = {"id": chat_id, "title": f"Nhóm {-chat_id % 10_000}", "type": "group"}
            state = self._chats[chat_id] = _ChatState(chat)
        return state

    def _target_chat(self, params: dict[str, Any], name: str = "chat_id") -> _ChatState:
        chat_id = params.get(name)
        if chat_id is None or chat_id == "":
            raise BotAPIError(400, f"Bad Request: {name} is empty")
        if isinstance(chat_id, str):
            key = self._chat_key(chat_id) if chat_id.startswith("@") else 0
            if key == 0:
                raise BotAPIError(400, "Bad Request: chat not found")
            chat_id = key
        if not isinstance(chat_id, int) or chat_id == 0:
            raise BotAPIError(400, "Bad Request: chat not found")
        return self._chat_state(chat_id)

    def _resolve_user(self, chat_id: int, user: dict[str, Any] | int | None) -> dict[str, Any]:
        if isinstance(user, int):
            return self.make_user(user)
        if isinstance(user, dict):
            if "id" in user:
                return {**self.make_user(int(user["id"])), **user}
            default_id = chat_id if chat_id > 0 else 10_001
            return {**self.make_user(default_id), **user}
        return self.make_user(chat_id if chat_id > 0 else 10_001)

    def _new_message(self, state: _ChatState, sender: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        content = dict(content)
        message_id = int(content.pop("message_id", 0)) or state.next_message_id
        state.next_message_id = max(state.next_message_id, message_id + 1)
        message = {
            "message_id": message_id,
            "from": sender,
            "chat": copy.deepcopy(state.chat),
            "date": int(time.time()),
            **content,
        }
        state.messages[message_id] = message
        if self.history_limit is not None and len(state.messages) > self.history_limit:
            del state.messages[next(iter(state.messages))]
        return message

    def _user_update(
        self, chat_id: int, user: dict[str, Any] | int | None, content: dict[str, Any], extra: dict[str, Any]
    ) -> dict[str, Any]:
        state = self._chat_state(chat_id)
        sender = self._resolve_user(chat_id, user)
        message = self._new_message(state, sender, {**content, **extra})
        return {"message": copy.deepcopy(message)}

    def _assign_update_id(self, update: dict[str, Any]) -> dict[str, Any]:
        update = dict(update)
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        return update

    def _store_sent(
        self,
        state: _ChatState,
        method: str,
        params: dict[str, Any],
        content: dict[str, Any],
        markup: dict[str, Any] | None = None,
        reply_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if reply_to is not None:
            content["reply_to_message"] = reply_to
        if markup:
            content["reply_markup"] = markup
        if params.get("protect_content"):
            content["has_protected_content"] = True
        message = self._new_message(state, self._bot_user(), content)
        snapshot = copy.deepcopy(message)
        state.sent.append(SentMessage(snapshot, method, params))
        if self.history_limit is not None and len(state.sent) > self.history_limit:
            del state.sent[0]
        return snapshot

    def _markup(self, params: dict[str, Any], state: _ChatState) -> dict[str, Any] | None:
        """Validate ``reply_markup``; returns it when Telegram echoes it (non-empty inline keyboards)."""
        markup = params.get("reply_markup")
        if markup is None:
            return None
        _validate_reply_markup(markup)
        if "keyboard" in markup:
            state.reply_keyboard = markup
        elif "remove_keyboard" in markup:
            state.reply_keyboard = None
        if markup.get("inline_keyboard"):
            return cast(dict[str, Any], markup)
        return None

    def _reply_to(self, params: dict[str, Any], state: _ChatState) -> dict[str, Any] | None:
        reply = params.get("reply_parameters")
        if reply is None and params.get("reply_to_message_id") is not None:
            reply = {"message_id": params["reply_to_message_id"]}
        if not isinstance(reply, dict):
            return None
        allow = bool(reply.get("allow_sending_without_reply") or params.get("allow_sending_without_reply"))
        source = state
        if reply.get("chat_id") is not None:
            source = self._target_chat(reply)
        message = source.messages.get(int(reply.get("message_id", 0)))
        if message is None:
            if allow:
                return None
            raise BotAPIError(400, "Bad Request: message to be replied not found")
        quoted = copy.deepcopy(message)
        quoted.pop("reply_to_message", None)
        return quoted

    def _scope_key(self, scope: Any) -> str:
        if not isinstance(scope, dict) or not scope.get("type"):
            return "default"
        parts = [str(scope["type"])]
        for name in ("chat_id", "user_id"):
            if name in scope:
                parts.append(str(scope[name]))
        return ":".join(parts)

    def _store_file(
        self,
        content: bytes,
        *,
        kind: str,
        file_name: str | None = None,
        mime_type: str | None = None,
        file_id: str | None = None,
    ) -> StoredFile:
        number = next(self._file_counter)
        prefix = {"photo": "AgACAgIAAxkBAA", "voice": "AwACAgIAAxkBAA", "video": "BAACAgIAAxkBAA"}.get(
            kind, "BQACAgIAAxkBAA"
        )
        folder = {"photo": "photos", "voice": "voice", "video": "videos", "audio": "music"}.get(kind, "documents")
        extension = ""
        if file_name and "." in file_name:
            extension = "." + file_name.rsplit(".", 1)[1]
        elif mime_type:
            extension = mimetypes.guess_extension(mime_type) or ""
        if kind == "photo":
            extension = ".jpg"
        elif kind == "voice":
            extension = ".oga"
        stored = StoredFile(
            file_id=file_id or f"{prefix}{number}{secrets.token_urlsafe(27)}",
            file_unique_id=f"AQAD{secrets.token_urlsafe(12)}",
            content=content,
            file_path=f"{folder}/file_{number}{extension}",
            kind=kind,
            file_name=file_name,
            mime_type=mime_type,
        )
        self.files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _photo_sizes(self, stored: StoredFile) -> list[dict[str, Any]]:
        width, height = _image_size(stored.content) or (800, 600)
        sizes: list[dict[str, Any]] = []
        for limit in (90, 320, 800, 1280):
            scale = min(1.0, limit / max(width, height, 1))
            size_file = stored
            if scale < 1.0:
                size_file = self.files.get(f"{stored.file_id}-{limit}") or self._store_file(
                    stored.content, kind="photo", mime_type=stored.mime_type, file_id=f"{stored.file_id}-{limit}"
                )
            sizes.append(
                {
                    "file_id": size_file.file_id,
                    "file_unique_id": size_file.file_unique_id,
                    "file_size": len(stored.content),
                    "width": max(1, round(width * scale)),
                    "height": max(1, round(height * scale)),
                }
            )
            if scale >= 1.0:
                break
        return sizes

    @staticmethod
    def _document_object(stored: StoredFile) -> dict[str, Any]:
        document: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        if stored.file_name:
            document["file_name"] = stored.file_name
        if stored.mime_type:
            document["mime_type"] = stored.mime_type
        document["file_size"] = len(stored.content)
        return document

    def _input_file(self, value: Any, params: dict[str, Any], kind: str, field_name: str) -> StoredFile:
        """Resolve a file parameter: an uploaded part, ``attach://name``, a file_id or an HTTP URL."""
        if value is None or value == "":
            raise BotAPIError(400, f"Bad Request: there is no {field_name} in the request")
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value.removeprefix("attach://"))
            if not isinstance(value, UploadedFile):
                raise BotAPIError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if isinstance(value, UploadedFile):
            if not value.data:
                raise BotAPIError(400, "Bad Request: file must be non-empty")
            if kind == "photo" and _image_size(value.data) is None:
                raise BotAPIError(400, "Bad Request: IMAGE_PROCESS_FAILED")
            mime = value.content_type
            if kind == "voice":
                mime = "audio/ogg"
            return self._store_file(value.data, kind=kind, file_name=value.filename, mime_type=mime)
        if not isinstance(value, str):
            raise BotAPIError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if re.match(r"^https?://", value):
            name = value.rsplit("/", 1)[-1] or None
            return self._store_file(b"", kind=kind, file_name=name, mime_type=mimetypes.guess_type(value)[0])
        stored = self.files.get(value)
        if stored is None:
            raise BotAPIError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if (stored.kind == "photo") != (kind == "photo"):
            raise BotAPIError(400, "Bad Request: type of file mismatch")
        return stored

    def _caption(self, params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        caption = params.get(f"{prefix}caption")
        if caption is None:
            return {}
        text, entities = _format_text(str(caption), params.get("parse_mode"), params.get("caption_entities"))
        if len(text) > MAX_CAPTION_LENGTH:
            raise BotAPIError(400, "Bad Request: message caption is too long")
        content: dict[str, Any] = {}
        if text:
            content["caption"] = text
            if entities:
                content["caption_entities"] = entities
        return content

    def _message_to_edit(self, params: dict[str, Any]) -> tuple[_ChatState, dict[str, Any]] | None:
        if params.get("inline_message_id"):
            return None
        state = self._target_chat(params)
        message_id = params.get("message_id")
        if message_id is None:
            raise BotAPIError(400, "Bad Request: message identifier is not specified")
        message = state.messages.get(message_id) if isinstance(message_id, int) else None
        if message is None:
            raise BotAPIError(400, "Bad Request: message to edit not found")
        if message.get("from", {}).get("id") != self._bot_user()["id"]:
            raise BotAPIError(400, "Bad Request: message can't be edited")
        return state, message

    @staticmethod
    def _apply_edit(message: dict[str, Any], changes: dict[str, Any], markup: dict[str, Any] | None) -> dict[str, Any]:
        current = {key: message.get(key) for key in changes}
        if current == changes and message.get("reply_markup") == markup:
            raise BotAPIError(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup are exactly "
                "the same as a current content and reply markup of the message",
            )
        for key, value in changes.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    # -- Bot API methods ------------------------------------------------------------------------------------

    async def _true(self, params: dict[str, Any]) -> bool:
        return True

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self._webhook is not None:
            raise BotAPIError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the "
                "webhook first",
            )
        offset = params.get("offset")
        limit = params.get("limit")
        timeout = params.get("timeout")
        limit = min(100, max(1, limit)) if isinstance(limit, int) else 100
        try:
            wait = max(0.0, float(timeout or 0))
        except (TypeError, ValueError):
            wait = 0.0
        if "allowed_updates" in params and isinstance(params["allowed_updates"], list):
            self._allowed_updates = params["allowed_updates"]
        if isinstance(offset, int) and offset < 0:
            self._updates = self._updates[offset:]
        elif isinstance(offset, int) and offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            if generation != self._poll_generation:
                raise BotAPIError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                )
            if self._webhook is not None:
                raise BotAPIError(409, "Conflict: terminated by setWebhook request")
            batch = self._deliverable(limit)
            if batch or self._closing:
                return batch
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            event = self._wakeup
            assert event is not None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await event.wait()

    def _deliverable(self, limit: int) -> list[dict[str, Any]]:
        allowed = self._allowed_updates
        kept: list[dict[str, Any]] = []
        batch: list[dict[str, Any]] = []
        for update in self._updates:
            kind = next((key for key in update if key != "update_id"), "")
            wanted = kind in allowed if allowed else kind not in _DEFAULT_UPDATE_TYPES_EXCLUDED
            if wanted:
                kept.append(update)
                if len(batch) < limit:
                    batch.append(update)
        self._updates = kept
        return copy.deepcopy(batch)

    async def _set_webhook(self, params: dict[str, Any]) -> _Described:
        url = params.get("url") or ""
        if not url:
            return await self._delete_webhook(params)
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
            raise BotAPIError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token") or None
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise BotAPIError(400, "Bad Request: secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._updates.clear()
        allowed = params.get("allowed_updates")
        max_connections = params.get("max_connections")
        self._webhook = _Webhook(
            url=url,
            secret_token=secret,
            allowed_updates=allowed if isinstance(allowed, list) else None,
            max_connections=max_connections if isinstance(max_connections, int) else 40,
            token=_current_token.get(),
        )
        self._wake_pollers()
        return _Described(True, "Webhook was set")

    async def _delete_webhook(self, params: dict[str, Any]) -> _Described:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        was_set = self._webhook is not None
        self._webhook = None
        return _Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")

    async def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        webhook = self._webhook
        info: dict[str, Any] = {
            "url": webhook.url if webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if webhook is not None:
            info["max_connections"] = webhook.max_connections
            info["ip_address"] = "127.0.0.1"
            if webhook.allowed_updates is not None:
                info["allowed_updates"] = webhook.allowed_updates
            if webhook.last_error_date is not None:
                info["last_error_date"] = webhook.last_error_date
                info["last_error_message"] = webhook.last_error_message
        return info

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        state = self._target_chat(params)
        raw_text = params.get("text")
        text, entities = _format_text(
            "" if raw_text is None else str(raw_text), params.get("parse_mode"), params.get("entities")
        )
        if not text:
            raise BotAPIError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise BotAPIError(400, "Bad Request: message is too long")
        markup = self._markup(params, state)
        reply_to = self._reply_to(params, state)
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        if isinstance(params.get("link_preview_options"), dict):
            content["link_preview_options"] = params["link_preview_options"]
        elif params.get("disable_web_page_preview"):
            content["link_preview_options"] = {"is_disabled": True}
        return self._store_sent(state, "sendMessage", params, content, markup, reply_to)

    async def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        raw_text = params.get("text")
        text, entities = _format_text(
            "" if raw_text is None else str(raw_text), params.get("parse_mode"), params.get("entities")
        )
        if not text:
            raise BotAPIError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise BotAPIError(400, "Bad Request: message is too long")
        target = self._message_to_edit(params)
        if target is None:
            if params.get("reply_markup") is not None:
                _validate_reply_markup(params["reply_markup"])
            return True
        state, message = target
        if "text" not in message:
            raise BotAPIError(400, "Bad Request: there is no text in the message to edit")
        markup = self._markup(params, state)
        return self._apply_edit(message, {"text": text, "entities": entities or None}, markup)

    async def _edit_message_caption(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        caption = self._caption(params)
        target = self._message_to_edit(params)
        if target is None:
            return True
        state, message = target
        if "text" in message:
            raise BotAPIError(400, "Bad Request: there is no caption in the message to edit")
        markup = self._markup(params, state)
        changes = {"caption": caption.get("caption"), "caption_entities": caption.get("caption_entities")}
        return self._apply_edit(message, changes, markup)

    async def _edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        target = self._message_to_edit(params)
        if target is None:
            return True
        state, message = target
        markup = self._markup(params, state)
        return self._apply_edit(message, {}, markup)

    async def _delete_message(self, params: dict[str, Any]) -> bool:
        state = self._target_chat(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int) or state.messages.pop(message_id, None) is None:
            raise BotAPIError(400, "Bad Request: message to delete not found")
        return True

    async def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        query_id = params.get("callback_query_id")
        if not query_id:
            raise BotAPIError(400, "Bad Request: query_id is empty")
        if str(query_id) in self.answered_callbacks:
            raise BotAPIError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        self.answered_callbacks[str(query_id)] = params
        return True

    async def _send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        state = self._target_chat(params)
        stored = self._input_file(params.get("photo"), params, "photo", "photo")
        content: dict[str, Any] = {"photo": self._photo_sizes(stored), **self._caption(params)}
        if params.get("has_spoiler"):
            content["has_media_spoiler"] = True
        return self._store_sent(
            state, "sendPhoto", params, content, self._markup(params, state), self._reply_to(params, state)
        )

    async def _send_document(self, params: dict[str, Any]) -> dict[str, Any]:
        state = self._target_chat(params)
        stored = self._input_file(params.get("document"), params, "document", "document")
        content = {"document": self._document_object(stored), **self._caption(params)}
        return self._store_sent(
            state, "sendDocument", params, content, self._markup(params, state), self._reply_to(params, state)
        )

    async def _send_voice(self, params: dict[str, Any]) -> dict[str, Any]:
        state = self._target_chat(params)
        stored = self._input_file(params.get("voice"), params, "voice", "voice")
        voice = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "duration": params.get("duration") if isinstance(params.get("duration"), int) else 0,
            "mime_type": stored.mime_type or "audio/ogg",
            "file_size": len(stored.content),
        }
        content = {"voice": voice, **self._caption(params)}
        return self._store_sent(
            state, "sendVoice", params, content, self._markup(params, state), self._reply_to(params, state)
        )

    async def _send_media_group(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        state = self._target_chat(params)
        media = params.get("media")
        if not isinstance(media, list) or not media or not all(isinstance(item, dict) for item in media):
            raise BotAPIError(400, "Bad Request: can't parse media JSON object")
        reply_to = self._reply_to(params, state)
        group_id = str(next(self._media_group_ids))
        contents: list[dict[str, Any]] = []
        for item in media:
            kind = item.get("type")
            if kind not in ("photo", "document", "video", "audio"):
                raise BotAPIError(400, "Bad Request: wrong type of the media")
            stored = self._input_file(item.get("media"), params, "photo" if kind == "photo" else kind, "media")
            content: dict[str, Any] = {"media_group_id": group_id}
            if kind == "photo":
                content["photo"] = self._photo_sizes(stored)
            elif kind == "document":
                content["document"] = self._document_object(stored)
            elif kind == "video":
                width, height = item.get("width") or 640, item.get("height") or 360
                content["video"] = {
                    **self._document_object(stored),
                    "width": width,
                    "height": height,
                    "duration": item.get("duration") or 0,
                }
            else:
                content["audio"] = {**self._document_object(stored), "duration": item.get("duration") or 0}
            content.update(self._caption({**item, "parse_mode": item.get("parse_mode")}))
            contents.append(content)
        return [
            self._store_sent(state, "sendMediaGroup", params, content, None, reply_to if index == 0 else None)
            for index, content in enumerate(contents)
        ]

    async def _send_location(self, params: dict[str, Any]) -> dict[str, Any]:
        state = self._target_chat(params)
        latitude, longitude = params.get("latitude"), params.get("longitude")
        if not isinstance(latitude, float | int) or not -90 <= latitude <= 90:
            raise BotAPIError(400, "Bad Request: wrong latitude")
        if not isinstance(longitude, float | int) or not -180 <= longitude <= 180:
            raise BotAPIError(400, "Bad Request: wrong longitude")
        content = {"location": {"latitude": latitude, "longitude": longitude}}
        return self._store_sent(
            state, "sendLocation", params, content, self._markup(params, state), self._reply_to(params, state)
        )

    def _source_message(self, params: dict[str, Any], not_found: str) -> dict[str, Any]:
        source = self._target_chat(params, "from_chat_id")
        message_id = params.get("message_id")
        message = source.messages.get(message_id) if isinstance(message_id, int) else None
        if message is None:
            raise BotAPIError(400, not_found)
        return message

    async def _copy_message(self, params: dict[str, Any]) -> dict[str, Any]:
        state = self._target_chat(params)
        source = self._source_message(params, "Bad Request: message to copy not found")
        skip = {"message_id", "from", "chat", "date", "edit_date", "reply_to_message", "reply_markup", "forward_origin"}
        content = {key: copy.deepcopy(value) for key, value in source.items() if key not in skip}
        if "caption" in params:
            content.pop("caption", None)
            content.pop("caption_entities", None)
            content.update(self._caption(params))
        message = self._store_sent(
            state, "copyMessage", params, content, self._markup(params, state), self._reply_to(params, state)
        )
        return {"message_id": message["message_id"]}

    async def _forward_message(self, params: dict[str, Any]) -> dict[str, Any]:
        state = self._target_chat(params)
        source = self._source_message(params, "Bad Request: message to forward not found")
        skip = {"message_id", "from", "chat", "date", "edit_date", "reply_to_message", "reply_markup"}
        content = {key: copy.deepcopy(value) for key, value in source.items() if key not in skip}
        sender = source.get("from") or {}
        if sender:
            content.setdefault(
                "forward_origin", {"type": "user", "date": source["date"], "sender_user": copy.deepcopy(sender)}
            )
        return self._store_sent(state, "forwardMessage", params, content)

    async def _send_chat_action(self, params: dict[str, Any]) -> bool:
        self._target_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise BotAPIError(400, "Bad Request: wrong parameter action in request")
        return True

    async def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params.get("file_id")
        if not file_id:
            raise BotAPIError(400, "Bad Request: file_id is empty")
        stored = self.files.get(str(file_id))
        if stored is None:
            raise BotAPIError(400, "Bad Request: invalid file_id")
        if len(stored.content) > MAX_DOWNLOAD_SIZE:
            raise BotAPIError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

    async def _get_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        state = self._target_chat(params)
        return {
            **copy.deepcopy(state.chat),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    async def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or not all(isinstance(c, dict) for c in commands):
            raise BotAPIError(400, "Bad Request: can't parse commands JSON object")
        if len(commands) > 100:
            raise BotAPIError(400, "Bad Request: too many commands specified")
        for command in commands:
            name, description = command.get("command"), command.get("description")
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name.removeprefix("/")):
                raise BotAPIError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise BotAPIError(400, "Bad Request: command description is empty")
        language = str(params.get("language_code") or "")
        key = (self._scope_key(params.get("scope")), language)
        if commands:
            self.commands[key] = [
                {"command": c["command"].removeprefix("/"), "description": c["description"]} for c in commands
            ]
        else:
            self.commands.pop(key, None)
        return True

    async def _get_my_commands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        language = str(params.get("language_code") or "")
        return copy.deepcopy(self.commands.get((self._scope_key(params.get("scope")), language), []))

    async def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        language = str(params.get("language_code") or "")
        self.commands.pop((self._scope_key(params.get("scope")), language), None)
        return True


@dataclass(frozen=True)
class _Described:
    """A successful result that also carries a ``description`` (as setWebhook/deleteWebhook answers do)."""

    result: Any
    description: str


# ---------------------------------------------------------------------------------------------------------------
# Standalone process
# ---------------------------------------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeBotAPI(
        token=args.token,
        host=args.host,
        port=args.port,
        delay=args.delay_ms / 1000.0,
        record=args.record,
        history_limit=None if args.record else 1000,
    )
    await fake.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"ready {fake.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.telegram_api", description="Fake Telegram Bot API server for tests and benchmarks."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port (printed on the ready line)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="artificial delay before each answer")
    parser.add_argument("--token", default=None, help="the only valid token (default: accept any well-formed one)")
    parser.add_argument("--record", action="store_true", help="keep a log of all calls (grows without bound)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
