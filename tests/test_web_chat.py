"""A citizen files and tracks items in the browser chat (HTTP level; the browser test drives the page)."""

import asyncio
import re
import unicodedata

from yarl import URL

from bot.context import Context
from bot.receipts import normalise_receipt_code
from tests.chat import WebChat
from tests.reports import fill_in_report, to_conduct_question

DESCRIPTION = "Đoạn đường từ bản Noong Bua vào tổ dân phố 5 bị sụt lún, xe máy đi qua rất nguy hiểm."


async def file_land_report(chat: WebChat, commune: str = "thanh xuong") -> str:
    await fill_in_report(chat, commune=commune, description=DESCRIPTION)
    return await chat.press("ẩn danh")


async def test_an_anonymous_report_is_filed_and_tracked_in_vietnamese(web_url: str) -> None:
    async with WebChat(web_url) as chat:
        text = await chat.open()
        assert "Cán bộ xử lý không biết bạn là ai" in text
        assert "📝 Gửi phản ánh, kiến nghị" in chat.labels
        await chat.press("Gửi phản ánh")
        assert "Khiếu nại" in chat.text and "phải ghi rõ họ tên" in chat.text
        await chat.press("Phản ánh")
        await chat.press("Đất đai")
        text = await chat.say("thanh xuong")
        assert "“Xã Thanh Xương” nay thuộc Phường Mường Thanh" in text
        await chat.press("Bỏ qua")
        await chat.press("Không")
        await chat.say("Đường hỏng.")
        text = await chat.press("Xong")
        assert "Nội dung quá ngắn: cần ít nhất 20 ký tự." in text
        await chat.say(DESCRIPTION)
        await chat.press("Xong")
        summary = await chat.press("ẩn danh")
        assert "Loại: Phản ánh" in summary and "Địa bàn: Phường Mường Thanh" in summary
        assert "Người gửi: ẩn danh" in summary
        receipt = await chat.press("Gửi")
    assert "Đã gửi thành công." in receipt
    assert "Đơn vị tiếp nhận: UBND Phường Mường Thanh" in receipt
    assert "Thời hạn thụ lý: 10 ngày làm việc — đến hết ngày 05/03/2026" in receipt
    assert "Thời hạn giải quyết: 15 ngày làm việc — đến hết ngày 26/03/2026" in receipt
    code = re.search(r"DB-[0-9A-Z]{4}-[0-9A-Z]{4}", receipt)
    assert code is not None
    async with WebChat(web_url) as chat:
        await chat.open()
        tracked = await chat.command("track", code.group(0).lower().replace("-", " "))
    assert "Trạng thái: Đã tiếp nhận, chờ thụ lý" in tracked
    assert "Hạn thụ lý: hết ngày 05/03/2026" in tracked
    assert "Bổ sung thông tin" not in " ".join(chat.labels), "a stranger must not act on the item"


async def test_an_identified_complaint_in_english(web_url: str) -> None:
    async with WebChat(web_url) as chat:
        await chat.open(lang="en")
        assert "Send a report or petition" in " ".join(chat.labels)
        await chat.press("Send a report")
        await chat.press("Complaint")
        await chat.press("Land")
        await chat.say("Mường Phăng")
        await chat.press("Skip")
        await chat.press("No")
        await chat.say(DESCRIPTION)
        await chat.press("Done")
        text = chat.text
        assert "must carry the sender's name and phone number" in text
        await chat.press("Give my name")
        text = await chat.say("091-234-5")
        assert "The phone number is not valid." in text
        await chat.say("0912 345 678")
        await chat.say("Lò Văn Bình")
        text = chat.text
        assert "Consent to keep your personal data" in text and "5 years" in text
        summary = await chat.press("I agree")
        assert "Sender: Lò Văn Bình · +84912345678" in summary
        receipt = await chat.press("Send")
        # Received Thursday 12/02/2026: 10 days → Sunday 22/02 → Monday 23/02; resolve 30 days from then.
        assert "To be accepted within: 10 days — until the end of 23/02/2026" in receipt
        assert "To be settled within: 30 days — until the end of 25/03/2026" in receipt
        assert "Receiving unit: People's Committee of Mường Phăng Commune" in receipt


async def test_an_anonymous_denunciation_goes_on_as_a_report(web_url: str) -> None:
    async with WebChat(web_url) as chat:
        await chat.open()
        await chat.press("Gửi phản ánh")
        await chat.press("Tố cáo")
        await chat.press("Thái độ")
        await chat.say("Tìa Dình")
        await chat.press("Bỏ qua")
        await chat.press("Có")
        await chat.press("UBND Xã Tìa Dình")
        await chat.say("Cán bộ một cửa xã yêu cầu nộp thêm tiền ngoài quy định khi làm giấy tờ.")
        await chat.press("Xong")
        assert "Luật Tố cáo 2018, Điều 25" in chat.text
        text = await chat.press("phản ánh ẩn danh")
        assert "Loại: Phản ánh" in text and "Về thái độ, cách làm việc của: UBND Xã Tìa Dình" in text
        receipt = await chat.press("Gửi")
    assert "Đơn vị tiếp nhận: Thanh tra tỉnh" in receipt


async def test_a_draft_survives_a_restart_of_the_server(ctx: Context, web_url: str) -> None:
    from aiohttp.test_utils import TestServer

    from bot.conversation import Conversations
    from handlers.http import create_web_app

    async with WebChat(web_url) as chat:
        await chat.open()
        await chat.press("Gửi phản ánh")
        await chat.press("Kiến nghị")
        cookie = chat.session.cookie_jar.filter_cookies(URL(web_url))["pakn_chat"].value
        second = TestServer(create_web_app(ctx, Conversations(ctx)), host="127.0.0.1")
        await second.start_server()
        try:
            async with WebChat(str(second.make_url("")).rstrip("/")) as again:
                again.session.cookie_jar.update_cookies({"pakn_chat": cookie})
                text = await again.post({"kind": "command", "command": "resume"})
        finally:
            await second.close()
    assert "Tiếp tục từ chỗ bạn đang làm dở" in text and "Việc này thuộc lĩnh vực nào?" in text


async def test_unexpected_input_re_prompts_with_the_steps_buttons(web_url: str) -> None:
    async with WebChat(web_url) as chat:
        await chat.open()
        await chat.press("Gửi phản ánh")
        text = await chat.say("🙂🙂🙂")
        assert "Xin lỗi, tôi chưa hiểu" in text and "Phản ánh" in chat.labels
        text = await chat.post({"kind": "button", "payload": "type:nonsense"})
        assert "Xin lỗi, tôi chưa hiểu" in text
        await chat.press("Phản ánh")
        await chat.press("Môi trường")
        nfd = unicodedata.normalize("NFD", "Mường Phăng")
        text = await chat.say(nfd)
        assert "Đã chọn: Xã Mường Phăng." in text
        text = await chat.command("cancel")
        assert "Đã hủy." in text


async def test_bad_requests_get_proper_statuses(web_url: str) -> None:
    async with WebChat(web_url) as chat:
        await chat.post({"kind": "text", "text": "xin chào"}, expect=403)
        await chat.open()
        async with chat.session.post(
            f"{web_url}/chat/api/event", data=b"{not json", headers={"Content-Type": "application/json"}
        ) as response:
            assert response.status == 400
        async with chat.session.post(
            f"{web_url}/chat/api/event", data=b"text=hi", headers={"Content-Type": "application/x-www-form-urlencoded"}
        ) as response:
            assert response.status == 415
        big = {"kind": "text", "text": "a" * 70_000}
        async with chat.session.post(f"{web_url}/chat/api/event", json=big) as response:
            assert response.status == 413
        await chat.post({"kind": "button", "payload": "x" * 65}, expect=400)
        await chat.post({"kind": "sticker"}, expect=400)
        await chat.post({"kind": "text", "text": "a" * 8001}, expect=400)
        text = await chat.say("a" * 5000)
        assert "Xin lỗi, tôi chưa hiểu" in text
        await chat.post({"kind": "command", "command": 5}, expect=400)


async def test_a_command_the_chat_does_not_have_gets_the_dialogs_answer(web_url: str) -> None:
    """Typed "/abc", or a message that merely starts with a slash: the page used to show "check your
    connection" (the server refused the command with a 400) and lose the text; Telegram answers it."""
    async with WebChat(web_url) as chat:
        await chat.open()
        for command, args in (("abc", ""), ("", "đường hỏng ở bản Co Mận"), ("whoami", "x" * 100), ("x/" * 60, "")):
            text = await chat.command(command, args)
            assert "Lệnh này không có. Các lệnh: /start, /track" in text, (command, text)
        assert "Cán bộ xử lý không biết bạn là ai" in await chat.command("START@pakn_bot")
        tracked = await chat.command("track", "mã của tôi là " + "DB-XXXX " * 20)
        assert "Lệnh này không có" not in tracked and tracked.strip()


async def test_concurrent_messages_from_one_chat_are_serialised(web_url: str) -> None:
    async with WebChat(web_url) as chat:
        await chat.open()
        await to_conduct_question(chat)
        await chat.press("Không")
        parts = [f"Phần {index}: đất bị lấn chiếm ở bản Nà Nhạn." for index in range(6)]
        await asyncio.gather(*(chat.say(part) for part in parts))
        await chat.press("Xong")
        summary = await chat.press("ẩn danh")
    assert all(part in summary for part in parts)


async def test_a_desk_qr_code_prefills_the_chat_and_a_forged_one_is_refused_politely(
    ctx: Context, web_url: str
) -> None:
    from sqlalchemy import select

    from models.tables import Desk, DeskRating
    from qr.payload import sign_desk

    async with ctx.sessions.begin() as session:
        session.add(
            Desk(
                code="mp-mot-cua",
                unit_code="ubnd_xa_muong_phang",
                commune_code="3325",
                name="Bộ phận một cửa UBND xã Mường Phăng",
            )
        )
    payload = sign_desk(ctx.keys, "mp-mot-cua")
    async with WebChat(web_url) as chat:
        text = await chat.open(desk=payload[:-1] + ("A" if payload[-1] != "A" else "B"))
        assert "Mã QR này không hợp lệ" in text and "⭐ Đánh giá phục vụ" not in chat.labels
        text = await chat.open(desk=payload)
        assert "Bạn đang ở Bộ phận một cửa UBND xã Mường Phăng — UBND Xã Mường Phăng" in text
        await chat.press("Đánh giá phục vụ")
        thanks = await chat.press("Hài lòng")
        assert "Cảm ơn bạn đã đánh giá!" in thanks
        await chat.press("Gửi phản ánh")
        await chat.press("Góp ý")
        text = await chat.press("Thủ tục hành chính")
        assert "Bạn có thể gửi vị trí" in text, "the commune comes from the desk"
    async with ctx.sessions() as session:
        ratings = (await session.execute(select(DeskRating))).scalars().all()
    assert [(r.desk_code, r.score) for r in ratings] == [("mp-mot-cua", 3)]


async def test_each_type_that_needs_a_name_cites_its_own_law_and_a_valid_example_code(web_url: str) -> None:
    """A complaint used to be told the Law on Denunciations applied too (and the reverse); the track prompt's
    example code failed its own check."""
    async with WebChat(web_url) as chat:
        await chat.open()
        await to_conduct_question(chat, kind="Khiếu nại")
        await chat.press("Không")
        await chat.say("Quyết định thu hồi đất số 15 của xã không đúng diện tích thực tế của gia đình tôi.")
        await chat.press("Xong")
        assert "Khiếu nại phải ghi rõ họ tên" in chat.text and "(Luật Khiếu nại 2011, Điều 8)" in chat.text
        assert "Luật Tố cáo" not in chat.text
        prompt = await chat.command("track")
        example = re.search(r"DB-[0-9A-Z]{4}-[0-9A-Z]{4}", prompt)
        assert example is not None and normalise_receipt_code(example.group(0), "DB") == example.group(0)
        assert "Không tìm thấy" in await chat.say(example.group(0))


async def test_the_web_chat_offers_no_files_it_cannot_take(web_url: str) -> None:
    """The page has a text box only: its prompts used to ask for photos and files, and an attachments step
    waited for what could never come."""
    async with WebChat(web_url) as chat:
        await chat.open()
        await to_conduct_question(chat)
        asked = await chat.press("Không")
        assert "Hãy mô tả sự việc" in asked and "ảnh" not in asked and "tệp" not in asked
        await chat.say(DESCRIPTION)
        identity = await chat.press("Xong")
        assert "ẩn danh" in " ".join(chat.labels) and "tệp" not in identity.lower()
        summary = await chat.press("ẩn danh")
        assert "Tệp đính kèm" not in summary
        edit = await chat.press("Sửa")
        assert "Tệp" not in " ".join(chat.labels) and edit


async def test_yes_by_mistake_at_the_conduct_question_can_be_taken_back(web_url: str) -> None:
    """ "Is it about an agency's conduct?" — a "Yes" tapped by mistake offered only agencies: the way out was to
    cancel the whole draft or to send it to an agency's supervisor."""
    async with WebChat(web_url) as chat:
        await chat.open()
        await to_conduct_question(chat)
        await chat.press("Có")
        assert "Quay lại" in " ".join(chat.labels)
        await chat.press("Quay lại")
        asked = await chat.press("Không")
        assert "Hãy mô tả sự việc" in asked
        await chat.say(DESCRIPTION)
        await chat.press("Xong")
        summary = await chat.press("ẩn danh")
        assert "Về thái độ" not in summary
