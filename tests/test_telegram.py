"""The Telegram channel end to end: python-telegram-bot against the fake Bot API over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer, unused_port
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from bot.context import Context
from bot.conversation import Conversations
from bot.outbox import Dispatcher
from handlers.http import create_web_app
from handlers.telegram import TelegramChannel, split_text
from models.tables import Outbox
from tests.fakes.telegram_api import FakeBotAPI
from tests.reports import fill_in_report
from tests.telegram_user import TelegramUser, plain

TOKEN = "123456:TEST-token"
SECRET = "s3cret-webhook-token"
DESCRIPTION = "Bãi rác tự phát cạnh suối Nậm Rốm bốc mùi, nước thải chảy ra suối nhiều ngày nay."


@dataclasses.dataclass
class Running:
    fake: FakeBotAPI
    url: str
    channel: TelegramChannel


async def _run(ctx: Context, mode: str) -> AsyncIterator[Running]:
    async with FakeBotAPI(token=TOKEN) as fake:
        port = unused_port()
        settings = dataclasses.replace(
            ctx.settings,
            telegram_token=TOKEN,
            telegram_api_url=fake.url,
            telegram_mode=mode,
            telegram_webhook_secret=SECRET,
            public_url=f"http://127.0.0.1:{port}",
            telegram_max_rate=0,
        )
        ctx = dataclasses.replace(ctx, settings=settings)
        conversations = Conversations(ctx)
        app = create_web_app(ctx, conversations)
        channel = TelegramChannel(ctx, conversations)
        channel.setup(app)
        dispatcher = Dispatcher(ctx, {"telegram": channel.sender})
        conversations.outbox = dispatcher
        server = TestServer(app, host="127.0.0.1", port=port)
        await server.start_server()
        task = asyncio.create_task(dispatcher.run_forever(idle=0.2))
        await channel.start()
        try:
            yield Running(fake, f"http://127.0.0.1:{port}", channel)
        finally:
            await channel.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # done before the database goes away
                await task
            await server.close()


@pytest.fixture
async def polling(ctx: Context) -> AsyncIterator[Running]:
    async for running in _run(ctx, "polling"):
        yield running


@pytest.fixture
async def webhook(ctx: Context) -> AsyncIterator[Running]:
    async for running in _run(ctx, "webhook"):
        yield running


async def _file_report(user: TelegramUser) -> str:
    await user.say("/start")
    await fill_in_report(user, category="Môi trường", commune="Thanh Minh", description=DESCRIPTION)
    await user.press("ẩn danh")
    return await user.press("Gửi")


async def test_a_citizen_files_and_tracks_a_report_by_polling(polling: Running) -> None:
    user = TelegramUser(polling.fake, 5001)
    text = await user.say("/start")
    assert "Xin chào!" in text and "📝 Gửi phản ánh, kiến nghị" in user.labels
    await user.press("Gửi phản ánh")
    await user.press("Phản ánh")
    await user.press("Môi trường")
    text = await user.say("Thanh Minh")
    assert "“Xã Thanh Minh” nay thuộc Phường Điện Biên Phủ" in text
    await user.press("Bỏ qua")
    await user.press("Không")
    await user.say(DESCRIPTION)
    await user.press("Xong")
    photo = polling.fake.make_photo(user.chat_id, user=user.chat_id)
    await user._deliver(photo)
    assert "Đã nhận tệp thứ 1." in user.text
    await user.press("Xong")
    summary = await user.press("ẩn danh")
    assert "Tệp đính kèm: 1" in summary
    receipt = await user.press("Gửi")
    assert "Đơn vị tiếp nhận: UBND Phường Điện Biên Phủ" in receipt
    code = re.search(r"DB-[0-9A-Z]{4}-[0-9A-Z]{4}", receipt)
    assert code is not None
    tracked = await user.say(f"/track {code.group(0)}")
    assert "Trạng thái: Đã tiếp nhận, chờ thụ lý" in tracked
    assert "Bổ sung thông tin" in " ".join(user.labels)
    commands = {c["command"] for c in polling.fake.commands_for("")}
    assert commands == {"start", "track", "cancel", "help", "lang"}
    assert polling.fake.commands_for("en")[0]["description"] == "Start, back to the main menu"


async def test_an_identified_complaint_with_the_share_contact_button(polling: Running) -> None:
    user = TelegramUser(polling.fake, 5002, language="en")
    text = await user.say("/start")
    assert "Hello!" in text
    await user.press("Send a report")
    await user.press("Complaint")
    await user.press("Land")
    await user.say("muong phang")
    await user.press("Skip")
    await user.press("No")
    await user.say(DESCRIPTION)
    await user.press("Done")
    await user.press("Skip")
    await user.press("Give my name")
    keyboard = polling.fake.reply_keyboard(user.chat_id)
    assert keyboard is not None and keyboard["keyboard"][0][0]["request_contact"] is True
    text = await user.share_contact("+84 912 345 678", "Bình", "Lò Văn", own=False)
    assert "Please share your own phone number." in text
    text = await user.share_contact("84912345678", "Lò Văn", "Bình")
    assert "Name: Lò Văn Bình" in text
    await user.press("Keep this name")
    await user.press("I agree")
    receipt = await user.press("Send")
    assert "Receipt code:" in receipt and "People's Committee of Mường Phăng Commune" in receipt
    for call in polling.fake.calls:
        assert len(str(call.params.get("callback_data", ""))) <= 64


async def test_webhook_mode_registers_with_a_secret_and_checks_it(webhook: Running) -> None:
    fake = webhook.fake
    registered = fake.calls_of("setWebhook")[-1].params
    assert registered["url"] == f"{webhook.url}/telegram/webhook" and registered["secret_token"] == SECRET
    user = TelegramUser(fake, 5003, webhook=True)
    receipt = await _file_report(user)
    assert "Đã gửi thành công." in receipt
    update = fake.make_message(user.chat_id, "/help", user=user.chat_id)
    update["update_id"] = 777
    async with aiohttp.ClientSession() as http:
        target = f"{webhook.url}/telegram/webhook"
        async with http.post(target, json=update) as response:
            assert response.status == 403
        async with http.post(target, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}) as r:
            assert r.status == 403
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
        async with http.post(target, data=b"{oops", headers=headers) as response:
            assert response.status == 400
        async with http.post(target, data=b"x" * (1024 * 1024 + 10), headers=headers) as response:
            assert response.status == 413
        before = len(fake.sent_to(user.chat_id))
        for _ in range(3):  # Telegram redelivers an update it thinks was lost
            async with http.post(target, json=update, headers=headers) as response:
                assert response.status == 200
                await fake.perform_webhook_reply(response.content_type, await response.read())
        await fake.wait_for(
            "sendMessage", lambda call: "Hướng dẫn" in str(call.params.get("text")), after=len(fake.calls) - 10
        )
        await asyncio.sleep(0.5)
    help_messages = [m for m in fake.sent_to(user.chat_id)[before:] if "Hướng dẫn" in m.text]
    assert len(help_messages) == 1


async def test_the_last_message_of_an_answer_rides_the_webhook_response(webhook: Running) -> None:
    """Telegram performs a method named in the webhook's response: a dialog step is one message (the greeting and
    the menu together), which costs no request of ours; the receipt (durable) never goes that way."""
    fake = webhook.fake
    chat = 5011
    update = fake.make_message(chat, "/start", user=chat)
    update["update_id"] = 90_001
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{webhook.url}/telegram/webhook", json=update, headers=headers) as response,
    ):
        assert response.status == 200 and response.content_type == "application/json"
        answer = await response.json()
    assert answer["method"] == "sendMessage" and answer["chat_id"] == chat and answer["parse_mode"] == "HTML"
    labels = [button["text"] for row in answer["reply_markup"]["inline_keyboard"] for button in row]
    assert "📝 Gửi phản ánh, kiến nghị" in labels
    assert answer["text"].startswith("Xin chào!") and answer["text"].endswith("\n\nBạn muốn làm gì?")
    assert fake.sent_to(chat) == []  # nothing went by the API
    call = await fake.perform_webhook_reply("application/json", json.dumps(answer).encode())
    assert call is not None and call.status == 200
    assert [message.text for message in fake.sent_to(chat)] == [plain(answer["text"])]

    user = TelegramUser(fake, 5012, webhook=True)
    mark = len(fake.calls)
    await _file_report(user)
    calls = [c for c in fake.calls[mark:] if c.method == "sendMessage" and c.params.get("chat_id") == user.chat_id]
    riding = [c for c in calls if c.headers.get("X-Webhook-Reply")]
    assert len(riding) == 11 and len(calls) == 12  # every step but the filing was answered in the response
    receipt = calls[-1]
    assert not receipt.headers.get("X-Webhook-Reply")  # it came through the outbox, by the API
    assert "Đã gửi thành công." in receipt.params["text"] and receipt.params["text"].endswith("Bạn muốn làm gì?")
    assert receipt.params["reply_markup"]["inline_keyboard"], "the menu's buttons are on the receipt"
    async with webhook.channel.ctx.sessions() as session:
        rows = (await session.execute(select(Outbox.status).where(Outbox.recipient_kind == "citizen"))).all()
    assert [row.status for row in rows] == ["sent"]


async def test_a_receipt_that_fails_is_sent_again_by_the_dispatcher(webhook: Running) -> None:
    """The receipt (with the menu in it) never rides the webhook's answer, whose delivery nobody learns: when
    Telegram refuses it, the outbox's dispatcher sends it again."""
    fake = webhook.fake
    user = TelegramUser(fake, 5014, webhook=True)
    await user.say("/start")
    await fill_in_report(user, category="Môi trường", commune="Thanh Minh", description=DESCRIPTION)
    await user.press("ẩn danh")
    fake.fail_next("sendMessage", status=502)
    mark = len(fake.calls)
    await user.press("Gửi", expect_message=False)
    for _ in range(200):  # the dispatcher takes it over (handed back at once, woken; its idle round is 0.2 s)
        if fake.sent_to(user.chat_id)[-1:] and "Đã gửi thành công." in fake.sent_to(user.chat_id)[-1].text:
            break
        await asyncio.sleep(0.1)
    calls = [c for c in fake.calls[mark:] if c.method == "sendMessage" and c.params.get("chat_id") == user.chat_id]
    assert [c.status for c in calls] == [502, 200] and not any(c.headers.get("X-Webhook-Reply") for c in calls)
    assert calls[0].params["text"] == calls[1].params["text"] and "Đã gửi thành công." in calls[1].params["text"]


async def test_the_filing_is_answered_once_its_receipt_is_sent_unless_telegram_is_slow(webhook: Running) -> None:
    """Telegram sends a chat's next update once the webhook has answered this one: the filing is answered after
    its receipt has gone, so that the reply to whatever the citizen does next comes after the receipt; when the
    Bot API is slow, the answer waits a moment only (DURABLE_SEND_WAIT, 2 s) and the receipt follows."""
    fake = webhook.fake
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    for chat, delay, sent_before_the_answer in ((5015, 0.5, True), (5016, 3.0, False)):
        user = TelegramUser(fake, chat, webhook=True)
        await user.say("/start")
        await fill_in_report(user, category="Môi trường", commune="Thanh Minh", description=DESCRIPTION)
        await user.press("ẩn danh")
        press = fake.make_callback(chat, "sum:send", user=chat)
        press["update_id"] = 90_200 + chat
        fake.delay = delay  # Telegram answering each Bot API call after this long
        mark = len(fake.calls)

        def is_receipt(call: Any, chat: int = chat) -> bool:
            return call.params.get("chat_id") == chat and "Đã gửi thành công." in call.params.get("text", "")

        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{webhook.url}/telegram/webhook", json=press, headers=headers) as response,
        ):
            assert response.status == 200
            receipt = await fake.wait_for("sendMessage", is_receipt, after=mark, answered=False)
            assert receipt.answered == sent_before_the_answer, f"Bot API answering after {delay} s"
        fake.delay = 0.0
        receipt = await fake.wait_for("sendMessage", is_receipt, after=mark, timeout=10)
        assert receipt.status == 200


async def test_a_button_press_is_answered_without_holding_back_the_reply(webhook: Running) -> None:
    """The button's spinner is stopped by a Bot API call of its own; with Telegram slow to answer that call, the
    reply (the webhook's response) does not wait for it, and the spinner is still stopped."""
    fake = webhook.fake
    chat = 5013
    user = TelegramUser(fake, chat, webhook=True)
    await user.say("/start")
    fake.delay = 3.0  # Telegram answering each Bot API call after three seconds
    press = fake.make_callback(chat, "menu:file", user=chat)
    press["update_id"] = 90_100
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    mark = len(fake.calls)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{webhook.url}/telegram/webhook", json=press, headers=headers) as response,
    ):
        answer = await response.json()
    assert answer["method"] == "sendMessage" and answer["chat_id"] == chat and answer["reply_markup"]["inline_keyboard"]
    answering = await fake.wait_for("answerCallbackQuery", after=mark, answered=False)
    assert not answering.answered, "the reply was ready before Telegram had answered the spinner's call"
    fake.delay = 0.0
    await fake.wait_for("answerCallbackQuery", after=mark, timeout=10)


async def test_group_chats_get_a_one_line_explanation(polling: Running) -> None:
    fake = polling.fake
    fake.add_chat(-100200, type="supergroup", title="Tổ dân phố 5")
    update = fake.make_message(-100200, "/start", user=5004)
    mark = len(fake.calls)
    fake.enqueue_update(update)
    call = await fake.wait_for("sendMessage", lambda c: str(c.params.get("chat_id")) == "-100200", after=mark)
    assert "nhắn riêng" in call.params["text"]


async def test_edited_messages_and_stickers_get_a_clear_answer(polling: Running) -> None:
    fake = polling.fake
    user = TelegramUser(fake, 5005)
    await user.say("/start")
    edited = fake.make_message(user.chat_id, "sửa lại", user=user.chat_id)
    edited = {"edited_message": {**edited["message"], "edit_date": edited["message"]["date"] + 5}}
    text = await user._deliver(edited)
    assert "Tin nhắn đã sửa không được ghi nhận" in text
    # A phone set to English, the bot to Vietnamese: the notice follows the bot, and the key of the step the
    # citizen is at (here the phone step's "share my number") stays.
    english = TelegramUser(fake, 5006, language="en")
    await english.say("/start")
    await english.say("/lang vi")
    await fill_in_report(english, kind="Khiếu nại", commune="Mường Phăng", description=DESCRIPTION)
    await english.press("Ghi họ tên")
    assert fake.reply_keyboard(english.chat_id) is not None
    edited = fake.make_message(english.chat_id, "sửa lại", user=english.chat_id)
    edited = {"edited_message": {**edited["message"], "edit_date": edited["message"]["date"] + 5}}
    text = await english._deliver(edited)
    assert "Tin nhắn đã sửa không được ghi nhận" in text
    keyboard = fake.reply_keyboard(english.chat_id)
    assert keyboard is not None and keyboard["keyboard"][0][0].get("request_contact") is True
    sticker = fake.make_message(user.chat_id, "", user=user.chat_id)
    message: dict[str, Any] = sticker["message"]
    message.pop("text", None)
    message["sticker"] = {
        "file_id": "STK1",
        "file_unique_id": "U1",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
    text = await user._deliver(sticker)
    assert "Xin lỗi, tôi chưa hiểu" in text


def test_long_text_is_split_at_telegrams_limit() -> None:
    text = "\n".join(f"Dòng {i}: " + "ư" * 90 for i in range(120))
    pieces = split_text(text)
    assert all(len(piece) <= 4096 for piece in pieces) and len(pieces) > 1
    assert "\n".join(pieces) == text
    assert split_text("a" * 9000) == ["a" * 4096, "a" * 4096, "a" * 808]


@given(st.text(alphabet="ab &<>\"'ư\n", max_size=400), st.integers(min_value=12, max_value=60))
def test_a_long_line_is_never_cut_inside_an_entity_or_a_tag(raw: str, limit: int) -> None:
    """A citizen's 4,000 characters with "&" in them, escaped for Telegram's HTML, used to be cut inside "&amp;":
    Telegram shows the broken entity at best and refuses the message at worst."""
    text = "<b>Mô tả:</b> " + html.escape(raw)
    pieces = split_text(text, limit)
    assert all(len(piece) <= limit for piece in pieces)
    for piece in pieces:
        bare = re.sub(r"</?b>|&(amp|lt|gt|quot|#x27);", "", piece)
        assert "&" not in bare and "<" not in bare and ">" not in bare, piece
    assert "".join(html.unescape(piece) for piece in pieces).replace("\n", "") == html.unescape(text).replace("\n", "")
