"""Officials end to end against the fake Bot API: invites, cards, the relay, authorisation, reveal, groups.

The citizen (chat 6001) files a land report in Xã Mường Phăng; the commune's officer (7001) and head (7002)
were invited by the coordinator; the inspectorate's head (7100) and coordinator (7101) supervise.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestServer, unused_port
from sqlalchemy import func, select

from bot import officials
from bot.context import Context
from bot.conversation import Conversations
from bot.intake import Draft, submit_item
from bot.outbox import Dispatcher
from handlers.http import create_web_app
from handlers.telegram import TelegramChannel
from models.tables import AuditEvent, Item, Official, Outbox
from tests.fakes.telegram_api import FakeBotAPI
from tests.reports import fill_in_report
from tests.telegram_user import TelegramUser, plain

TOKEN = "123456:TEST-token"
CITIZEN, OFFICER, HEAD, INSPECTOR_HEAD, COORDINATOR, OTHER_OFFICER = 6001, 7001, 7002, 7100, 7101, 7200
NAME, PHONE = "Lò Thị Mai", "0987 654 321"
DESCRIPTION = "Nhà văn hóa bản Nà Nhạn bị lấn chiếm đất để xây quán, đề nghị xã kiểm tra và xử lý."


@dataclasses.dataclass
class World:
    fake: FakeBotAPI
    ctx: Context

    def user(self, user_id: int) -> TelegramUser:
        return TelegramUser(self.fake, user_id)

    async def invite(self, user_id: int, unit: str, role: str) -> str:
        async with self.ctx.sessions.begin() as session:
            token = await officials.create_invite(
                self.ctx, session, unit_code=unit, role=role, valid_for=timedelta(days=7)
            )
        return await self.user(user_id).say(f"/start {token}")

    def texts_to(self, chat_id: int) -> list[str]:
        return [plain(message.text) for message in self.fake.sent_to(chat_id)]

    async def settle(self) -> None:
        """Wait until the outbox has sent everything queued (card edits arrive through it)."""
        for _ in range(100):
            async with self.ctx.sessions() as session:
                waiting = await session.scalar(
                    select(func.count()).select_from(Outbox).where(Outbox.status.in_(("pending", "sending")))
                )
            if not waiting:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the outbox did not drain")


@pytest.fixture
async def world(ctx: Context) -> AsyncIterator[World]:
    async with FakeBotAPI(token=TOKEN) as fake:
        settings = dataclasses.replace(
            ctx.settings,
            telegram_token=TOKEN,
            telegram_api_url=fake.url,
            telegram_max_rate=0,
            public_url=f"http://127.0.0.1:{unused_port()}",
        )
        ctx = dataclasses.replace(ctx, settings=settings)
        conversations = Conversations(ctx)
        app = create_web_app(ctx, conversations)
        channel = TelegramChannel(ctx, conversations)
        channel.setup(app)
        dispatcher = Dispatcher(ctx, {"telegram": channel.sender})
        conversations.outbox = dispatcher
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        task = asyncio.create_task(dispatcher.run_forever(idle=0.1))
        await channel.start()
        world = World(fake, ctx)
        assert "Chào mừng!" in await world.invite(OFFICER, "ubnd_xa_muong_phang", "officer")
        assert "trưởng đơn vị" in await world.invite(HEAD, "ubnd_xa_muong_phang", "head")
        await world.invite(INSPECTOR_HEAD, "thanh_tra", "head")
        await world.invite(COORDINATOR, "thanh_tra", "coordinator")
        await world.invite(OTHER_OFFICER, "so_y_te", "officer")
        try:
            yield world
        finally:
            await channel.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # done before the database goes away
                await task
            await server.close()


async def file_identified_report(citizen: TelegramUser) -> str:
    await citizen.say("/start")
    await fill_in_report(citizen, commune="Mường Phăng", description=DESCRIPTION + f" Liên hệ {PHONE}.")
    await citizen.press("Ghi họ tên")
    await citizen.share_contact("+84987654321", "Lò Thị", "Mai")
    await citizen.press("Giữ tên này")
    await citizen.press("Tôi đồng ý")
    receipt = await citizen.press("Gửi")
    code = re.search(r"DB-[0-9A-Z]{4}-[0-9A-Z]{4}", receipt)
    assert code is not None, receipt
    return code.group(0)


async def wait_for_text(world: World, chat_id: int, needle: str, timeout: float = 5.0) -> str:
    call = await world.fake.wait_for(
        "*",
        lambda c: str(c.params.get("chat_id")) == str(chat_id) and needle in plain(str(c.params.get("text", ""))),
        timeout=timeout,
    )
    return plain(call.params["text"])


async def last_card(world: World, chat_id: int, code: str) -> TelegramUser:
    """The official, looking at the current state of the item's card in their chat (edits applied)."""
    await world.settle()
    user = world.user(chat_id)
    user.received = [
        m for m in world.fake.chat_messages(chat_id) if code in m.get("text", "") and m.get("reply_markup")
    ]
    return user


async def test_the_whole_relay_and_no_official_ever_sees_who_complained(world: World) -> None:
    citizen = world.user(CITIZEN)
    code = await file_identified_report(citizen)
    card = await wait_for_text(world, OFFICER, code)
    assert "Người dân #" in card and "[số điện thoại]" in card and "Đất đai" in card
    assert "Hạn thụ lý: 05/03/2026" in card
    officer = await last_card(world, OFFICER, code)
    await officer.press("Tiếp nhận", expect_message=False)
    assert any(c.params.get("text") == f"Đã tiếp nhận {code}." for c in world.fake.calls_of("answerCallbackQuery"))
    await wait_for_text(world, CITIZEN, "đã được UBND Xã Mường Phăng thụ lý")
    officer = await last_card(world, OFFICER, code)
    text = await officer.press("Yêu cầu bổ sung")
    assert "Gõ nội dung cần người dân bổ sung" in text
    await officer.say("Xin gửi ảnh chụp phần đất bị lấn chiếm.")
    asked = await wait_for_text(world, CITIZEN, "đề nghị bạn bổ sung")
    assert "Xin gửi ảnh chụp" in asked and "UBND Xã Mường Phăng" in asked
    citizen.received = [m for m in world.fake.sent_to(CITIZEN) if "đề nghị bạn bổ sung" in m.text]
    await citizen.press("Bổ sung thông tin")
    await citizen.say(f"Phần đất khoảng 50 m2 phía sau nhà văn hóa. Gọi {PHONE} nếu cần.")
    addition = await wait_for_text(world, OFFICER, "50 m2")
    assert "50 m2" in addition and "987" not in addition
    officer = await last_card(world, OFFICER, code)
    text = await officer.press("Trả lời")
    assert "Soạn câu trả lời" in text
    preview = await officer.say("Xã đã lập biên bản, yêu cầu tháo dỡ quán trong 15 ngày.")
    assert "sẽ được gửi tới người dân" in preview
    await officer.press("Gửi")
    answer = await wait_for_text(world, CITIZEN, "Trả lời của UBND Xã Mường Phăng")
    assert "tháo dỡ quán" in answer
    citizen.received = [m for m in world.fake.sent_to(CITIZEN) if "Trả lời của" in m.text]
    rated = await citizen.press("2")
    assert "mở lại" in rated
    await citizen.press("Mở lại")
    reopened = await citizen.say("Quán vẫn chưa tháo dỡ sau 15 ngày.")
    assert "chuyển đến Thanh tra tỉnh" in reopened
    supervisor_card = await wait_for_text(world, INSPECTOR_HEAD, code)
    assert "Mở lại" in supervisor_card
    for official in (OFFICER, HEAD, INSPECTOR_HEAD, COORDINATOR, OTHER_OFFICER):
        for message in world.texts_to(official):
            for secret in (NAME, "Lò Thị", "987654321", "987 654 321", "user6001", str(CITIZEN)):
                assert secret not in message, (official, secret, message)


async def test_forged_stale_and_foreign_buttons_change_nothing(world: World) -> None:
    code = await file_identified_report(world.user(CITIZEN))
    await wait_for_text(world, OFFICER, code)
    async with world.ctx.sessions() as session:
        item = (await session.execute(select(Item).where(Item.receipt_code == code))).scalar_one()
    stranger = world.user(OTHER_OFFICER)
    for data in (
        f"it:{item.id}:accept",
        f"it:{item.id}:reveal",
        "it:99999:accept",
        f"it:{item.id}:rm -rf",
        f"tu:{item.id}:so_y_te",
        "it:x:accept",
    ):
        mark = len(world.fake.calls)
        world.fake.enqueue_update(world.fake.make_callback(OTHER_OFFICER, data, user=OTHER_OFFICER))
        call = await world.fake.wait_for("answerCallbackQuery", after=mark)
        assert "không có quyền" in str(call.params.get("text")), data
    assert stranger.fake.sent_to(OTHER_OFFICER)[-1].text.startswith("Chào mừng")
    officer = await last_card(world, OFFICER, code)
    await officer.press("Tiếp nhận", expect_message=False)
    mark = len(world.fake.calls)
    world.fake.enqueue_update(world.fake.make_callback(OFFICER, f"it:{item.id}:accept", user=OFFICER))
    call = await world.fake.wait_for("answerCallbackQuery", after=mark)
    assert "đã được xử lý" in str(call.params.get("text"))
    async with world.ctx.sessions() as session:
        accepts = (await session.execute(select(AuditEvent).where(AuditEvent.action == "accept"))).scalars().all()
    assert len(accepts) == 1


async def test_transfer_extension_limit_and_reject(world: World) -> None:
    code = await file_identified_report(world.user(CITIZEN))
    await wait_for_text(world, OFFICER, code)
    officer = await last_card(world, OFFICER, code)
    await officer.press("Tiếp nhận", expect_message=False)
    officer = await last_card(world, OFFICER, code)
    text = await officer.press("Gia hạn")
    assert "lý do gia hạn" in text
    done = await officer.say("Cần đo đạc lại ranh giới đất.")
    assert "Đã gia hạn" in done
    extended = await wait_for_text(world, CITIZEN, "được gia hạn")
    assert "Cần đo đạc lại" in extended
    async with world.ctx.sessions() as session:
        item = (await session.execute(select(Item).where(Item.receipt_code == code))).scalar_one()
    mark = len(world.fake.calls)
    world.fake.enqueue_update(world.fake.make_callback(OFFICER, f"it:{item.id}:extend", user=OFFICER))
    call = await world.fake.wait_for("answerCallbackQuery", after=mark)
    assert "Đã hết số lần gia hạn cho phép (1 lần)" in str(call.params.get("text"))
    officer = await last_card(world, OFFICER, code)
    picker = await officer.press("Chuyển đơn vị")
    assert "Chọn đơn vị có thẩm quyền" in picker
    while "Sở Nông nghiệp và Môi trường" not in " ".join(officer.labels):
        await officer.press("»")
    await officer.press("Sở Nông nghiệp và Môi trường")
    await officer.say("Đất rừng do Sở quản lý.")
    moved = await wait_for_text(world, CITIZEN, "đã được chuyển đến Sở Nông nghiệp và Môi trường")
    assert code in moved
    await world.settle()  # the card's edit goes to another chat than the notice: either may arrive first
    edits = [c for c in world.fake.calls_of("editMessageText") if "đã được chuyển đến" in str(c.params.get("text"))]
    assert edits, "the old unit's card is edited in place"


async def test_reveal_is_for_coordinators_with_a_reason_and_the_head_is_told(world: World) -> None:
    code = await file_identified_report(world.user(CITIZEN))
    await wait_for_text(world, OFFICER, code)
    refused = await world.user(OFFICER).say(f"/reveal {code}")
    assert "không có quyền" in refused
    coordinator = world.user(COORDINATOR)
    asked = await coordinator.say(f"/reveal {code}")
    assert "Gõ lý do" in asked
    short = await coordinator.say("cần")
    assert "Lý do quá ngắn" in short
    revealed = await coordinator.say("Cơ quan điều tra đề nghị bằng văn bản số 12/CV-CSĐT.")
    assert NAME in revealed and "+84987654321" in revealed
    told = await wait_for_text(world, HEAD, "đã xem danh tính")
    assert "12/CV-CSĐT" in told
    async with world.ctx.sessions() as session:
        actions = [e.action for e in (await session.execute(select(AuditEvent))).scalars()]
    assert "reveal" in actions and "reveal_refused" in actions


async def test_a_bound_group_receives_the_cards(world: World) -> None:
    fake = world.fake
    fake.add_chat(-100777, type="supergroup", title="Tổ xử lý đơn thư xã")
    mark = len(fake.calls)
    fake.enqueue_update(fake.make_message(-100777, "/bind", user=HEAD))
    await fake.wait_for("sendMessage", lambda c: str(c.params.get("chat_id")) == "-100777", after=mark)
    await wait_for_text(world, HEAD, "Xác nhận gắn nhóm")
    head = world.user(HEAD)
    head.received = [m for m in fake.sent_to(HEAD) if "Xác nhận gắn nhóm" in m.text]
    done = await head.press("Xác nhận gắn nhóm")
    assert "Đã gắn nhóm “Tổ xử lý đơn thư xã”" in done
    mark = len(fake.calls)
    fake.enqueue_update(fake.make_message(-100888, "/start", user=CITIZEN))
    unbound = await fake.wait_for("sendMessage", lambda c: str(c.params.get("chat_id")) == "-100888", after=mark)
    assert "chưa được gắn" in unbound.params["text"] or "nhắn riêng" in unbound.params["text"]
    code = await file_identified_report(world.user(CITIZEN))
    card = await wait_for_text(world, -100777, code)
    assert "Người dân #" in card


async def test_a_hotline_operator_records_a_call(world: World) -> None:
    await world.invite(7300, "thanh_tra", "operator")
    operator = world.user(7300)
    text = await operator.say("/new")
    assert "Bạn muốn làm gì?" in text
    await fill_in_report(
        operator,
        kind="Kiến nghị",
        category="Giao thông",
        commune="Na Sang",
        description="Cầu treo bản Huổi Lóng bị hỏng mặt cầu, học sinh đi học nguy hiểm.",
    )
    await operator.press("Ghi họ tên")
    await operator.say("0912 000 111")
    await operator.say("Giàng A Páo")
    await operator.press("Tôi đồng ý")
    receipt = await operator.press("Gửi")
    code = re.search(r"DB-[0-9A-Z]{4}-[0-9A-Z]{4}", receipt)
    assert code is not None and "Sở Xây dựng" in receipt
    assert "Đã kết thúc" in await operator.say("/done")
    async with world.ctx.sessions() as session:
        item = (await session.execute(select(Item).where(Item.receipt_code == code.group(0)))).scalar_one()
        assert item.channel == "hotline" and item.recorded_by is not None


async def test_a_citizen_who_becomes_an_official_gets_the_officials_commands(world: World) -> None:
    """The chat's citizen dialog was this process's last write (no officials' check then): after the invite,
    commands and text are the official's, never the citizen dialog's."""
    person = world.user(7400)
    assert "Xin chào!" in await person.say("/start")
    await person.press("Gửi phản ánh")
    assert "Chào mừng!" in await world.invite(7400, "ubnd_xa_muong_phang", "officer")
    assert "Sẵn sàng." in await person.say("/start")
    assert "Xin chào!" not in await person.say("/help")
    async with world.ctx.sessions() as session:
        filed = await session.scalar(select(func.count()).select_from(Item))
    assert filed == 0


async def test_items_sent_to_a_unit_with_nobody_reach_its_first_official(world: World) -> None:
    """Transferred to a unit where nobody uses PAKN yet, the item had no card anywhere, so no one could accept or
    answer it, even after an official of that unit joined."""
    citizen = world.user(CITIZEN)
    code = await file_identified_report(citizen)
    await wait_for_text(world, OFFICER, code)
    officer = await last_card(world, OFFICER, code)
    await officer.press("Chuyển đơn vị")
    while "Sở Xây dựng" not in " ".join(officer.labels):
        await officer.press("»")
    await officer.press("Sở Xây dựng")
    done = await officer.say("Thuộc thẩm quyền của Sở.")
    assert "Đã chuyển việc" in done and "chưa có cán bộ nào dùng PAKN" in done, "the officer is told"
    await world.settle()
    newcomer = 7300
    welcome = await world.invite(newcomer, "so_xay_dung", "officer")
    assert "Chào mừng!" in welcome
    await world.settle()
    texts = world.texts_to(newcomer)
    assert any("1 việc chưa ai nhận" in text for text in texts), texts
    card = await last_card(world, newcomer, code)
    assert "Tiếp nhận" in " ".join(card.labels)
    await card.press("Tiếp nhận", expect_message=False)
    async with world.ctx.sessions() as session:
        assert (await session.execute(select(Item.status))).scalar_one() == "accepted"
    other = 7301
    await world.invite(other, "so_xay_dung", "officer")
    await world.settle()
    assert not any(code in text for text in world.texts_to(other)), "only what nobody had"
    # Both leave; whoever replaces them gets the open item's card again.
    async with world.ctx.sessions.begin() as session:
        for official in (await session.execute(select(Official).where(Official.unit_code == "so_xay_dung"))).scalars():
            await officials.revoke(world.ctx, session, official.id, actor="cli")
    successor = 7302
    await world.invite(successor, "so_xay_dung", "officer")
    await world.settle()
    assert any(code in text for text in world.texts_to(successor)), "the holders have left"


async def test_an_official_answering_a_web_chat_citizen_is_told_files_will_not_reach_them(world: World) -> None:
    """The web chat shows text only: an answer's files would silently never reach that citizen."""
    draft = Draft(type="phan_anh", category="dat_dai", commune_code="3325", description=DESCRIPTION)
    async with world.ctx.sessions.begin() as session:
        web = (await submit_item(world.ctx, session, draft, channel="web", channel_id="w1")).item.receipt_code
        telegram = (
            await submit_item(world.ctx, session, draft, channel="telegram", channel_id="6101")
        ).item.receipt_code
    await wait_for_text(world, OFFICER, web)
    await wait_for_text(world, OFFICER, telegram)
    officer = await last_card(world, OFFICER, web)
    asked = await officer.press("Trả lời")
    assert "Soạn câu trả lời" in asked and "chỉ đọc được chữ, không nhận được tệp" in asked
    await officer.press("Hủy")
    officer = await last_card(world, OFFICER, telegram)
    asked = await officer.press("Trả lời")
    assert "Soạn câu trả lời" in asked and "không nhận được tệp" not in asked
