"""The fake Bot API server (tests/fakes/telegram_api.py) driven by a real telegram.Bot over real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaDocument,
    InputMediaPhoto,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, Conflict, EndPointNotFound, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import Application, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

from handlers.telegram_request import AiohttpRequest
from tests.fakes.telegram_api import DEFAULT_TOKEN, BotAPIError, FakeBotAPI, SentMessage

TOKEN = DEFAULT_TOKEN
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# A real 2x3 PNG (width 2, height 3).
PNG_2X3 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000020000000308020000001216f1"
    "4d0000001349444154789c63f8cfc0f09f819181e13f0300121e03fe2f4e5c3b0000000049454e44ae426082"
)


def make_bot(fake: FakeBotAPI, token: str = TOKEN) -> Bot:
    return Bot(
        token,
        base_url=f"{fake.url}/bot",
        base_file_url=f"{fake.url}/file/bot",
        request=AiohttpRequest(),
        get_updates_request=AiohttpRequest(),
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(token=TOKEN) as server:
        yield server


@pytest.fixture
async def bot(fake: FakeBotAPI) -> AsyncIterator[Bot]:
    async with make_bot(fake) as client:
        yield client


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(d, callback_data=d) for d in data]])


# -- basics ----------------------------------------------------------------------------------------------------


async def test_get_me_returns_the_bot_user(fake: FakeBotAPI, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == 123456789
    assert me.is_bot
    assert me.username == "pakn_test_bot"
    assert fake.calls_of("getMe")
    assert fake.calls_of("getme")[0].ok


async def test_send_message_returns_a_realistic_message(fake: FakeBotAPI, bot: Bot) -> None:
    first = await bot.send_message(42, "Xin chào", reply_markup=keyboard("yes", "no"))
    second = await bot.send_message(42, "Lần hai")
    other = await bot.send_message(77, "Chat khác")

    assert (first.message_id, second.message_id, other.message_id) == (1, 2, 1)
    assert first.chat.id == 42 and first.chat.type == "private"
    assert first.from_user is not None and first.from_user.id == 123456789 and first.from_user.is_bot
    assert first.text == "Xin chào"
    assert first.reply_markup == keyboard("yes", "no")
    assert abs(first.date.timestamp() - time.time()) < 5

    group = await bot.send_message(-4242, "Nhóm")
    supergroup = await bot.send_message(-1001234567890, "Siêu nhóm")
    assert group.chat.type == "group" and supergroup.chat.type == "supergroup"

    sent = fake.sent_to(42)
    assert sent == ["Xin chào", "Lần hai"]
    assert isinstance(sent[0], SentMessage)
    assert sent[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "yes"
    assert sent[0].message_id == 1 and sent[1].get("reply_markup") is None
    params = fake.calls_of("sendMessage")[0].params
    assert params["chat_id"] == 42
    assert isinstance(params["reply_markup"], dict)


@pytest.mark.parametrize(
    ("text", "description"),
    [
        ("", "Message text is empty"),
        ("   \n ", "Message text is empty"),
        ("x" * 4097, "Message is too long"),
    ],
)
async def test_bad_texts_surface_as_bad_request(bot: Bot, text: str, description: str) -> None:
    with pytest.raises(BadRequest) as excinfo:
        await bot.send_message(42, text)
    assert excinfo.value.message == description


async def test_text_of_exactly_4096_characters_is_accepted(bot: Bot) -> None:
    message = await bot.send_message(42, "ư" * 4096)
    assert len(message.text or "") == 4096


async def test_callback_data_is_limited_to_64_bytes(fake: FakeBotAPI, bot: Bot) -> None:
    await bot.send_message(42, "ok", reply_markup=keyboard("đ" * 32))  # 64 bytes in UTF-8
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(42, "too long", reply_markup=keyboard("đ" * 33))
    assert fake.calls_of("sendMessage")[-1].response == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: BUTTON_DATA_INVALID",
    }


async def test_reply_keyboards_are_tracked_but_not_echoed(fake: FakeBotAPI, bot: Bot) -> None:
    markup = ReplyKeyboardMarkup([[KeyboardButton("Gửi số điện thoại", request_contact=True)]])
    message = await bot.send_message(42, "Số điện thoại?", reply_markup=markup)
    assert message.reply_markup is None
    assert fake.reply_keyboard(42) == markup.to_dict()
    assert fake.sent_to(42)[-1].params["reply_markup"]["keyboard"][0][0]["request_contact"] is True
    await bot.send_message(42, "Cảm ơn", reply_markup=ReplyKeyboardRemove())
    assert fake.reply_keyboard(42) is None


# -- formatting ------------------------------------------------------------------------------------------------


async def test_html_parse_mode_gives_entities_with_utf16_offsets(bot: Bot) -> None:
    message = await bot.send_message(
        42, '😀 <b>Phản ánh</b> số <code>PA-1</code> &amp; <a href="https://example.vn">xem</a>', parse_mode="HTML"
    )
    assert message.text == "😀 Phản ánh số PA-1 & xem"
    kinds = [(e.type, e.offset, e.length) for e in message.entities]
    assert kinds == [("bold", 3, 8), ("code", 15, 4), ("text_link", 22, 3)]
    assert message.entities[2].url == "https://example.vn"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("a <br> b", 'Unsupported start tag "br" at byte offset 2'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("<b>đậm", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
    ],
)
async def test_bad_html_is_refused_like_telegram(fake: FakeBotAPI, bot: Bot, text: str, error: str) -> None:
    with pytest.raises(BadRequest, match="Can't parse entities"):
        await bot.send_message(42, text, parse_mode=ParseMode.HTML)
    response = fake.calls_of("sendMessage")[-1].response
    assert response is not None
    assert response["description"] == f"Bad Request: can't parse entities: {error}"


async def test_markdown_v2_requires_escaping(bot: Bot) -> None:
    message = await bot.send_message(42, r"*Mã* số: PA\-1\.", parse_mode=ParseMode.MARKDOWN_V2)
    assert message.text == "Mã số: PA-1."
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bold", 0, 2)]
    with pytest.raises(BadRequest, match=r"(?i)character '\.' is reserved and must be escaped"):
        await bot.send_message(42, "Hết.", parse_mode=ParseMode.MARKDOWN_V2)


# -- editing, callbacks, deleting ------------------------------------------------------------------------------


async def test_edit_message_text(fake: FakeBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(42, "Chờ xử lý", reply_markup=keyboard("ok"))
    edited = await bot.edit_message_text("Đã xử lý", chat_id=42, message_id=sent.message_id)
    assert not isinstance(edited, bool)
    assert edited.text == "Đã xử lý" and edited.edit_date is not None
    assert edited.reply_markup is None, "an edit without reply_markup removes the inline keyboard"
    assert fake.chat_messages(42)[-1]["text"] == "Đã xử lý"
    assert fake.sent_to(42)[-1] == "Chờ xử lý", "sent_to keeps the message as it was sent"

    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("Đã xử lý", chat_id=42, message_id=sent.message_id)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", chat_id=42, message_id=999)
    fake.enqueue_update(fake.make_message(42, "tin của người dân"))
    user_message_id = fake.chat_messages(42)[-1]["message_id"]
    with pytest.raises(BadRequest, match="Message can't be edited"):
        await bot.edit_message_text("x", chat_id=42, message_id=user_message_id)


async def test_edit_message_reply_markup(bot: Bot) -> None:
    sent = await bot.send_message(42, "Chọn", reply_markup=keyboard("a", "b"))
    edited = await bot.edit_message_reply_markup(42, sent.message_id, reply_markup=keyboard("c"))
    assert not isinstance(edited, bool)
    assert edited.reply_markup == keyboard("c")
    assert edited.text == "Chọn"
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(42, sent.message_id, reply_markup=keyboard("c"))


async def test_callback_query_round_trip(fake: FakeBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(42, "Đánh giá?", reply_markup=keyboard("good", "bad"))
    update_dict = fake.enqueue_update(fake.make_callback(42, "good"))
    assert "update_id" in update_dict

    (update,) = await bot.get_updates(timeout=0)
    query = update.callback_query
    assert query is not None
    assert query.data == "good"
    assert query.from_user.id == 42 and query.from_user.language_code == "vi"
    assert isinstance(query.message, Message) and query.message.message_id == sent.message_id
    assert query.message.reply_markup == keyboard("good", "bad")

    assert await query.answer("Cảm ơn")
    assert fake.calls_of("answerCallbackQuery")[0].params["text"] == "Cảm ơn"
    with pytest.raises(BadRequest, match="Query is too old"):
        await query.answer()


async def test_callback_for_a_deleted_message_is_inaccessible(fake: FakeBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(42, "Tạm")
    assert await bot.delete_message(42, sent.message_id)
    update = Update.de_json(fake.make_callback(42, "x", message_id=sent.message_id) | {"update_id": 1}, bot)
    assert update.callback_query is not None and update.callback_query.message is not None
    assert not update.callback_query.message.is_accessible


async def test_delete_and_copy_message(fake: FakeBotAPI, bot: Bot) -> None:
    update = fake.make_message(42, "Đường hỏng ở bản Mường Thanh")
    user_message_id = update["message"]["message_id"]
    copied = await bot.copy_message(-1001000000001, from_chat_id=42, message_id=user_message_id)
    assert copied.message_id == 1
    assert fake.sent_to(-1001000000001) == ["Đường hỏng ở bản Mường Thanh"]
    with pytest.raises(BadRequest, match="Message to copy not found"):
        await bot.copy_message(-1001000000001, from_chat_id=42, message_id=999)

    assert await bot.delete_message(42, user_message_id)
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(42, user_message_id)


async def test_send_chat_action(fake: FakeBotAPI, bot: Bot) -> None:
    assert await bot.send_chat_action(42, ChatAction.TYPING)
    with pytest.raises(BadRequest, match="Wrong parameter action"):
        await bot.send_chat_action(42, "dancing")
    assert [call.status for call in fake.calls_of("sendChatAction")] == [200, 400]


# -- files -----------------------------------------------------------------------------------------------------


async def test_send_document_uploads_multipart_and_downloads_again(fake: FakeBotAPI, bot: Bot, tmp_path: Path) -> None:
    path = tmp_path / "biên bản.pdf"
    content = b"%PDF-1.4\n" + os.urandom(50_000)
    path.write_bytes(content)
    with path.open("rb") as handle:
        message = await bot.send_document(42, handle, caption="Biên bản <b>kèm</b>", parse_mode="HTML")

    assert message.document is not None
    assert message.document.file_name == "biên bản.pdf"
    assert message.document.mime_type == "application/pdf"
    assert message.document.file_size == len(content)
    assert message.caption == "Biên bản kèm"

    call = fake.calls_of("sendDocument")[0]
    assert call.headers["Content-Type"].startswith("multipart/form-data")
    assert call.params["document"].data == content

    file = await bot.get_file(message.document.file_id)
    assert file.file_path is not None and file.file_path.startswith(f"{fake.url}/file/bot{TOKEN}/documents/")
    assert bytes(await file.download_as_bytearray()) == content
    with pytest.raises(BadRequest, match="Invalid file_id"):
        await bot.get_file("no-such-file")


async def test_registered_files_and_user_photos_are_downloadable(fake: FakeBotAPI, bot: Bot) -> None:
    file_id = fake.add_file("my-file", b"abc")
    assert file_id == "my-file"
    assert bytes(await (await bot.get_file("my-file")).download_as_bytearray()) == b"abc"

    update = Update.de_json(fake.make_photo(42, caption="Ổ gà", content=PNG_2X3) | {"update_id": 5}, bot)
    assert update.message is not None and update.message.caption == "Ổ gà"
    largest = update.message.photo[-1]
    assert (largest.width, largest.height) == (2, 3)
    photo_file = await largest.get_file()
    assert bytes(await photo_file.download_as_bytearray()) == PNG_2X3


async def test_send_photo_checks_the_image_and_file_ids(fake: FakeBotAPI, bot: Bot) -> None:
    message = await bot.send_photo(42, PNG_2X3, caption="Ảnh")
    assert message.photo[-1].width == 2 and message.photo[-1].height == 3
    again = await bot.send_photo(42, message.photo[-1].file_id)
    assert again.photo[-1].file_id == message.photo[-1].file_id

    with pytest.raises(BadRequest, match="Image_process_failed"):
        await bot.send_photo(42, b"not an image")
    with pytest.raises(BadRequest, match="Wrong file identifier"):
        await bot.send_photo(42, "AgACAgIAAxkBAAunknown")
    with pytest.raises(BadRequest, match="Type of file mismatch"):
        await bot.send_document(42, message.photo[-1].file_id)
    with pytest.raises(BadRequest, match="Message caption is too long"):
        await bot.send_photo(42, PNG_2X3, caption="x" * 1025)


async def test_send_voice_and_media_group(fake: FakeBotAPI, bot: Bot) -> None:
    voice = await bot.send_voice(42, b"OggS" + b"\x00" * 100, duration=4)
    assert voice.voice is not None and voice.voice.mime_type == "audio/ogg"
    assert fake.sent_to(42)[0]["voice"]["duration"] == 4

    album = await bot.send_media_group(
        42,
        [
            InputMediaPhoto(PNG_2X3, caption="Ảnh 1"),
            InputMediaPhoto(PNG_2X3),
        ],
    )
    assert len(album) == 2
    assert album[0].media_group_id is not None and album[0].media_group_id == album[1].media_group_id
    assert album[0].caption == "Ảnh 1" and album[1].caption is None
    documents = await bot.send_media_group(
        42, [InputMediaDocument(b"a", filename="a.txt"), InputMediaDocument(b"b", filename="b.txt")]
    )
    assert [m.document.file_name for m in documents if m.document] == ["a.txt", "b.txt"]
    assert [s.method for s in fake.sent_to(42)] == ["sendVoice"] + ["sendMediaGroup"] * 4


# -- updates ---------------------------------------------------------------------------------------------------


async def test_update_builders_produce_what_ptb_expects(fake: FakeBotAPI, bot: Bot) -> None:
    start = Update.de_json(fake.enqueue_update(fake.make_message(42, "/start desk_17")), bot)
    assert start.effective_user is not None and start.effective_user.id == 42
    assert start.effective_user.language_code == "vi" and not start.effective_user.is_bot
    assert start.effective_chat is not None and start.effective_chat.type == "private"
    assert start.message is not None
    assert start.message.parse_entities(["bot_command"]) == {start.message.entities[0]: "/start"}

    contact = Update.de_json(fake.enqueue_update(fake.make_contact(42, "+84912345678", "An", 42)), bot)
    assert contact.message is not None and contact.message.contact is not None
    assert contact.message.contact.phone_number == "+84912345678" and contact.message.contact.user_id == 42

    location = Update.de_json(fake.enqueue_update(fake.make_location(42, 21.386, 103.023)), bot)
    assert location.message is not None and location.message.location is not None
    assert location.message.location.latitude == pytest.approx(21.386)

    document = Update.de_json(fake.enqueue_update(fake.make_document(42, file_name="đơn.pdf")), bot)
    assert document.message is not None and document.message.document is not None
    assert document.message.document.mime_type == "application/pdf"

    voice = Update.de_json(fake.enqueue_update(fake.make_voice(42)), bot)
    assert voice.message is not None and voice.message.voice is not None

    ids = [u.update_id for u in await bot.get_updates(timeout=0)]
    assert ids == sorted(ids) and len(ids) == 5
    message_ids = [m["message_id"] for m in fake.chat_messages(42)]
    assert message_ids == [1, 2, 3, 4, 5]


async def test_get_updates_long_polling(fake: FakeBotAPI, bot: Bot) -> None:
    first = fake.enqueue_update(fake.make_message(42, "một"))
    fake.enqueue_update(fake.make_message(42, "hai"))

    started = time.monotonic()
    updates = await bot.get_updates(timeout=10)
    assert time.monotonic() - started < 1, "queued updates are returned at once"
    assert [u.message.text for u in updates if u.message] == ["một", "hai"]

    limited = await bot.get_updates(offset=first["update_id"] + 1, timeout=0, limit=5)
    assert [u.message.text for u in limited if u.message] == ["hai"]
    assert len(fake.pending_updates) == 1, "the offset confirmed the first update"

    started = time.monotonic()
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 3, "an empty long poll waits for its timeout"

    async def later(mark: int) -> None:
        await fake.wait_for("getUpdates", after=mark, answered=False)
        await asyncio.sleep(0.1)
        fake.enqueue_update(fake.make_message(42, "ba"))

    started = time.monotonic()
    task = asyncio.create_task(later(len(fake.calls)))
    woken = await bot.get_updates(timeout=10)
    await task
    assert [u.message.text for u in woken if u.message] == ["ba"]
    assert time.monotonic() - started < 3, "a waiting long poll returns as soon as an update arrives"


async def test_a_second_poller_terminates_the_first(fake: FakeBotAPI, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await fake.wait_for("getUpdates", answered=False)
    second = asyncio.create_task(bot.get_updates(timeout=0))
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await first
    assert await second == ()


async def test_set_my_commands_per_language(fake: FakeBotAPI, bot: Bot) -> None:
    vi = [BotCommand("start", "Bắt đầu"), BotCommand("trangthai", "Tra cứu phản ánh")]
    en = [BotCommand("start", "Start"), BotCommand("status", "Track a report")]
    assert await bot.set_my_commands(vi)
    assert await bot.set_my_commands(vi, language_code="vi")
    assert await bot.set_my_commands(en, language_code="en")
    assert await bot.set_my_commands(en[:1], scope=BotCommandScopeAllPrivateChats(), language_code="en")

    assert await bot.get_my_commands(language_code="en") == tuple(en)
    assert await bot.get_my_commands(language_code="vi") == tuple(vi)
    assert await bot.get_my_commands() == tuple(vi)
    assert await bot.get_my_commands(language_code="fr") == ()
    assert fake.commands_for("en") == [c.to_dict() for c in en]
    assert fake.commands_for("en", scope="all_private_chats") == [en[0].to_dict()]
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Trạng-thái", "x")])


async def test_webhook_push_update_reaches_our_handler(fake: FakeBotAPI, bot: Bot) -> None:
    received: list[dict[str, Any]] = []

    async def webhook(request: web.Request) -> web.Response:
        if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != "s3cret-Token_1":
            return web.Response(status=403)
        received.append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/telegram/webhook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        fake.enqueue_update(fake.make_message(42, "cũ"))
        url = f"http://127.0.0.1:{port}/telegram/webhook"
        assert await bot.set_webhook(
            url, secret_token="s3cret-Token_1", allowed_updates=["message", "callback_query"], drop_pending_updates=True
        )
        info = await bot.get_webhook_info()
        assert info.url == url and info.pending_update_count == 0
        assert info.allowed_updates == ("message", "callback_query")

        status = await fake.push_update(fake.make_message(42, "/start"))
        assert status == 200
        assert received[0]["message"]["text"] == "/start" and "update_id" in received[0]
        assert Update.de_json(received[0], bot).message is not None

        with pytest.raises(Conflict, match="can't use getUpdates method while webhook is active"):
            await bot.get_updates()

        await bot.set_webhook(url, secret_token="other")
        assert await fake.push_update(fake.make_message(42, "x")) == 403
        info = await bot.get_webhook_info()
        assert info.last_error_message is not None and "403" in info.last_error_message

        assert await bot.delete_webhook()
        assert fake.webhook_url is None
        assert await bot.get_updates(timeout=0) == ()
        with pytest.raises(RuntimeError, match="no webhook"):
            await fake.push_update(fake.make_message(42, "y"))
    finally:
        await runner.cleanup()


async def test_set_webhook_terminates_a_waiting_long_poll(fake: FakeBotAPI, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await fake.wait_for("getUpdates", answered=False)
    async with make_bot(fake) as other:
        await other.set_webhook("https://example.vn/telegram/webhook")
    with pytest.raises(Conflict, match="terminated by setWebhook request"):
        await poll


# -- faults ----------------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_flood_control_becomes_retry_after(fake: FakeBotAPI, bot: Bot) -> None:
    fake.fail_next("sendMessage", status=429, retry_after=7)
    with pytest.raises(RetryAfter, match=r"Retry in (7 seconds|0:00:07)") as caught:
        await bot.send_message(42, "x")
    retry_after = caught.value.retry_after  # seconds, or a timedelta once PTB_TIMEDELTA is on
    assert getattr(retry_after, "total_seconds", lambda: retry_after)() == 7
    response = fake.calls_of("sendMessage")[0].response
    assert response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    assert (await bot.send_message(42, "y")).text == "y"
    assert fake.sent_to(42) == ["y"]


async def test_bad_gateway_twice_then_success(fake: FakeBotAPI, bot: Bot) -> None:
    fake.fail_next("sendMessage", status=502, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(42, "x")
    assert (await bot.send_message(42, "x")).message_id == 1
    assert [c.status for c in fake.calls_of("sendMessage")] == [502, 502, 200]


async def test_fail_next_any_method(fake: FakeBotAPI, bot: Bot) -> None:
    fake.fail_next("*", status=500)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.get_me()
    assert (await bot.get_me()).id == 123456789


async def test_blocked_chat_is_forbidden(fake: FakeBotAPI, bot: Bot) -> None:
    fake.block_chat(42)
    fake.block_chat(-555)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(42, "x")
    with pytest.raises(Forbidden, match="bot was kicked from the group chat"):
        await bot.send_document(-555, b"x", filename="x.txt")
    assert (await bot.send_message(43, "ok")).text == "ok"
    fake.unblock_chat(42)
    assert (await bot.send_message(42, "ok")).text == "ok"


async def test_wrong_and_malformed_tokens_are_invalid(fake: FakeBotAPI) -> None:
    wrong = "987654321:WRONG-token_abcdefghijklmnopqrstuvw"
    async with AiohttpRequest() as request:
        # A Bot whose initialize() failed is not "initialized", so Bot.shutdown() would not close the requests:
        # this test owns them.
        with pytest.raises(InvalidToken, match="was rejected by the server"):
            await Bot(wrong, base_url=f"{fake.url}/bot", request=request, get_updates_request=request).initialize()
        assert fake.calls_of("getMe")[-1].response == {"ok": False, "error_code": 401, "description": "Unauthorized"}

        with pytest.raises(InvalidToken, match="Unauthorized"):
            await Bot(wrong, base_url=f"{fake.url}/bot", request=request).send_message(42, "x")
        assert fake.sent_to(42) == []

        with pytest.raises(InvalidToken, match="Not Found"):
            await Bot("not-a-token", base_url=f"{fake.url}/bot", request=request).get_me()
        assert fake.calls_of("getMe")[-1].status == 404


async def test_unknown_methods_and_raw_http(fake: FakeBotAPI, bot: Bot) -> None:
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("noSuchMethod")

    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.url}/bot{TOKEN}/SENDMESSAGE", json={"chat_id": "42", "text": "json"}) as r:
            body = await r.json()
        assert r.status == 200 and body["ok"] and body["result"]["text"] == "json"
        async with session.post(
            f"{fake.url}/bot{TOKEN}/sendMessage",
            data={"chat_id": "42", "text": "form", "reply_markup": json.dumps(keyboard("a").to_dict())},
        ) as r:
            body = await r.json()
        assert body["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "a"
        async with session.get(f"{fake.url}/bot{TOKEN}/getMe") as r:
            assert (await r.json())["result"]["is_bot"] is True
        async with session.get(f"{fake.url}/bot{TOKEN}/nope") as r:
            assert r.status == 404
            assert await r.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with session.post(f"{fake.url}/bot{TOKEN}/sendMessage", data={"text": "no chat"}) as r:
            assert (await r.json())["description"] == "Bad Request: chat_id is empty"
    assert [c.method for c in fake.calls_of("sendMessage")] == ["sendMessage"] * 3


async def test_custom_handler(fake: FakeBotAPI, bot: Bot) -> None:
    def handler(params: dict[str, Any]) -> Any:
        if params.get("fail"):
            raise BotAPIError(400, "Bad Request: custom failure")
        return {"echo": params.get("value")}

    fake.set_handler("customMethod", handler)
    assert await bot.do_api_request("customMethod", api_kwargs={"value": "x"}) == {"echo": "x"}
    with pytest.raises(BadRequest, match="Custom failure"):
        await bot.do_api_request("customMethod", api_kwargs={"fail": True})


# -- recording, rate check, delay ------------------------------------------------------------------------------


async def test_wait_for_predicate_and_after(fake: FakeBotAPI, bot: Bot) -> None:
    await bot.send_message(42, "một")
    assert (await fake.wait_for("sendMessage")).params["text"] == "một"

    mark = len(fake.calls)
    task = asyncio.create_task(fake.wait_for("sendMessage", after=mark))
    await asyncio.sleep(0.05)
    assert not task.done()
    await bot.send_message(42, "hai")
    assert (await task).params["text"] == "hai"

    call = await fake.wait_for("sendMessage", lambda c: c.params["text"] == "một", timeout=0.1)
    assert call.ok and call.result["text"] == "một"
    with pytest.raises(TimeoutError):
        await fake.wait_for("sendPhoto", timeout=0.1)


async def test_rate_check_records_bursts(fake: FakeBotAPI, bot: Bot) -> None:
    await asyncio.gather(*(bot.send_message(42, f"{i}") for i in range(3)))
    await asyncio.gather(*(bot.send_message(1000 + i, "x") for i in range(35)))
    kinds = {(v.kind, v.chat_id) for v in fake.rate_violations}
    assert ("chat", 42) in kinds
    assert any(kind == "global" for kind, _ in kinds)
    assert fake.max_sends_per_second(42) == 3
    assert fake.max_sends_per_second() == 38


async def test_delay_slows_every_answer(fake: FakeBotAPI, bot: Bot) -> None:
    fake.delay = 0.3
    started = time.monotonic()
    await bot.send_message(42, "x")
    assert time.monotonic() - started >= 0.3


# -- other clients and modes -----------------------------------------------------------------------------------


async def test_the_fake_works_with_ptbs_default_httpx_transport(fake: FakeBotAPI) -> None:
    bot = Bot(TOKEN, base_url=f"{fake.url}/bot", base_file_url=f"{fake.url}/file/bot")
    assert isinstance(bot.request, HTTPXRequest)
    async with bot:
        assert (await bot.get_me()).username == "pakn_test_bot"
        message = await bot.send_message(42, "httpx", reply_markup=keyboard("a"))
        assert message.reply_markup == keyboard("a")
        document = await bot.send_document(42, b"data", filename="d.txt")
        assert document.document is not None
        file = await bot.get_file(document.document.file_id)
        assert bytes(await file.download_as_bytearray()) == b"data"
        fake.enqueue_update(fake.make_message(42, "hi"))
        assert [u.message.text for u in await bot.get_updates(timeout=1) if u.message] == ["hi"]
        with pytest.raises(BadRequest, match="Message is too long"):
            await bot.send_message(42, "x" * 5000)


async def test_application_polling_end_to_end(fake: FakeBotAPI) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(f"Chào! {' '.join(context.args or [])}")

    application = (
        Application.builder()
        .token(TOKEN)
        .base_url(f"{fake.url}/bot")
        .base_file_url(f"{fake.url}/file/bot")
        .request(AiohttpRequest())
        .get_updates_request(AiohttpRequest())
        .build()
    )
    application.add_handler(CommandHandler("start", start))
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0.0, timeout=1)
        fake.enqueue_update(fake.make_message(42, "/start desk_17"))
        call = await fake.wait_for("sendMessage", lambda c: c.params["chat_id"] == 42)
        assert call.params["text"] == "Chào! desk_17"
        await application.updater.stop()
        await application.stop()
    assert fake.sent_to(42) == ["Chào! desk_17"]
    assert fake.pending_updates == [], "the updater confirmed the update on shutdown"


async def test_standalone_process_serves_get_me() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.telegram_api",
        "--port",
        "0",
        "--delay-ms",
        "5",
        "--token",
        TOKEN,
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode().strip()
        assert line.startswith("ready http://127.0.0.1:"), line
        url = line.split(" ", 1)[1]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/bot{TOKEN}/getMe") as response:
                body = await response.json()
            assert body["ok"] and body["result"]["id"] == 123456789
            async with session.get(f"{url}/bot1:wrong/getMe") as response:
                assert response.status == 401
        async with Bot(TOKEN, base_url=f"{url}/bot", request=AiohttpRequest()) as bot:
            assert (await bot.send_message(42, "bench")).text == "bench"
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), timeout=10) in (0, -15)


def test_standalone_help_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.fakes.telegram_api", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "--delay-ms" in result.stdout
