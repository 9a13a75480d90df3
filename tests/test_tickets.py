"""The item's life after intake: accept, pause, answer, rate, reopen, transfer, extend, reject."""

import base64
import json
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from bot import audit
from bot.context import Context
from bot.errors import ExtensionLimitReached, IllegalTransition, ValidationError
from bot.intake import Draft, submit_item
from bot.officials import accept_invite, create_invite
from bot.privacy import Vault
from bot.tickets import (
    accept_item,
    add_info,
    answer_item,
    clocks_of,
    extend_item,
    lock_item,
    rate_item,
    reject_item,
    reopen_item,
    request_info,
    transfer_item,
)
from models.tables import Item, ItemMessage, Outbox, Pause
from tests.conftest import TestClock

DESCRIPTION = "Đường liên bản từ Nà Nhạn đi Mường Phăng bị sạt lở, xe máy không đi qua được."


async def _submit(ctx: Context, type_code: str = "phan_anh", **extra: object) -> int:
    draft = Draft(type=type_code, category="dat_dai", commune_code="3325", description=DESCRIPTION, **extra)  # type: ignore[arg-type]
    async with ctx.sessions.begin() as session:
        return (await submit_item(ctx, session, draft, channel="web", channel_id="s1")).item.id


async def test_accepting_starts_the_resolve_clock_from_the_day_of_acceptance(ctx: Context, clock: TestClock) -> None:
    item_id = await _submit(ctx)
    clock.set_local(2026, 2, 23)  # Monday after Tết
    async with ctx.sessions.begin() as session:
        await accept_item(ctx, session, await lock_item(session, item_id), actor="official:1")
    async with ctx.sessions() as session:
        clocks = await clocks_of(session, item_id)
    assert clocks["accept"].met_at is not None and clocks["accept"].next_due_at is None
    # 15 working days after Monday 23/02/2026 → Monday 16/03/2026.
    assert clocks["resolve"].due_date == date(2026, 3, 16)


async def test_waiting_for_the_citizen_pauses_the_clock(ctx: Context, clock: TestClock) -> None:
    item_id = await _submit(ctx)
    clock.set_local(2026, 2, 23)
    async with ctx.sessions.begin() as session:
        item = await lock_item(session, item_id)
        await accept_item(ctx, session, item, actor="official:1")
        await request_info(ctx, session, item, actor="official:1", question="Xin gửi ảnh chụp đoạn đường sạt lở.")
    clock.set_local(2026, 2, 26)  # three working days later
    async with ctx.sessions.begin() as session:
        item = await lock_item(session, item_id)
        assert item.status == "needs_info" and item.paused
        await add_info(ctx, session, item, text="Ảnh đã gửi kèm.", attachments=[{"kind": "photo", "file_id": "F1"}])
        assert item.status == "accepted" and not item.paused
    async with ctx.sessions() as session:
        clocks = await clocks_of(session, item_id)
        pause = (await session.execute(select(Pause))).scalar_one()
    assert clocks["resolve"].due_date == date(2026, 3, 19)  # 16/03 + the 3 working days paused
    assert (pause.started_on, pause.ended_on) == (date(2026, 2, 23), date(2026, 2, 26))


async def test_an_unsatisfied_citizen_reopens_and_the_supervisor_gets_it(ctx: Context) -> None:
    item_id = await _submit(ctx)
    async with ctx.sessions.begin() as session:
        item = await lock_item(session, item_id)
        await answer_item(ctx, session, item, actor="official:1", text="Xã đã cử cán bộ kiểm tra và sửa đường.")
        await rate_item(ctx, session, item, rating=2)
        assert item.status == "answered"
        supervisor = await reopen_item(ctx, session, item, reason="Đường vẫn chưa được sửa.")
    assert supervisor == "thanh_tra"
    assert await audit.seal(ctx.engine) == 4
    async with ctx.sessions() as session:
        item = await session.get(Item, item_id)
        clocks = await clocks_of(session, item_id)
        assert item is not None and (item.status, item.unit_code, item.reopen_count) == ("reopened", "thanh_tra", 1)
        assert clocks["accept"].met_at is None and clocks["accept"].start_date == date(2026, 2, 12)
        assert (await audit.verify(session)).checked == 4


async def test_a_satisfied_rating_closes_the_item(ctx: Context) -> None:
    item_id = await _submit(ctx)
    async with ctx.sessions.begin() as session:
        item = await lock_item(session, item_id)
        await answer_item(ctx, session, item, actor="official:1", text="Đã xử lý xong.")
        await rate_item(ctx, session, item, rating=5)
        assert item.status == "closed" and item.rating == 5


async def test_illegal_transitions_are_refused_in_both_languages(ctx: Context) -> None:
    item_id = await _submit(ctx)
    async with ctx.sessions.begin() as session:
        item = await lock_item(session, item_id)
        with pytest.raises(IllegalTransition) as caught:
            await rate_item(ctx, session, item, rating=4)
    assert caught.value.vi == "Không thể đánh giá khi phản ánh đang ở trạng thái “Đã tiếp nhận, chờ thụ lý”."
    assert caught.value.en == "Cannot rate while the item is “Received, awaiting acceptance”."


async def test_a_denunciation_can_be_extended_twice_and_no_more(ctx: Context) -> None:
    item_id = await _submit(ctx, "to_cao", anonymous=False, name="Lò Văn A", phone="0912345678", consent=True)
    async with ctx.sessions.begin() as session:
        item = await lock_item(session, item_id)
        await accept_item(ctx, session, item, actor="official:1")  # accepted Thursday 12/02/2026
        first = await extend_item(ctx, session, item, actor="official:1", reason="Vụ việc phức tạp")
        second = await extend_item(ctx, session, item, actor="official:1", reason="Vụ việc đặc biệt phức tạp")
        with pytest.raises(ExtensionLimitReached):
            await extend_item(ctx, session, item, actor="official:1", reason="Thêm lần nữa")
    # 30 days → Sat 14/03 → Mon 16/03; +30 → Wed 15/04; +30 → Fri 15/05/2026.
    assert (first.due, second.due) == (date(2026, 4, 15), date(2026, 5, 15))


async def test_transfer_and_reject(ctx: Context) -> None:
    item_id = await _submit(ctx)
    async with ctx.sessions.begin() as session:
        item = await lock_item(session, item_id)
        with pytest.raises(ValidationError):
            await transfer_item(ctx, session, item, actor="official:1", to_unit="so_nn_mt", reason="  ")
        await transfer_item(ctx, session, item, actor="official:1", to_unit="so_nn_mt", reason="Đất rừng do Sở quản lý")
        assert item.unit_code == "so_nn_mt" and item.status == "submitted"
        await reject_item(ctx, session, item, actor="official:2", guidance="Đề nghị liên hệ Tòa án nhân dân khu vực.")
        assert item.status == "rejected"


async def test_a_citizens_captions_and_file_names_reach_officials_masked(ctx: Context) -> None:
    """A caption is typed like any message and a file name can carry an ID number: an anonymous citizen's
    "photo I took, call 0912345678" must not reach the unit in clear, at filing or with added information."""
    async with ctx.sessions.begin() as session:
        token = await create_invite(
            ctx, session, unit_code="ubnd_xa_muong_phang", role="officer", valid_for=timedelta(days=1)
        )
        await accept_invite(ctx, session, token, telegram_user_id=7001, display_name="Cán bộ A", locale="vi")
    files = [
        {"kind": "photo", "file_id": "F1", "caption": "Ảnh do tôi chụp - Lò Văn Pọm, gọi 0912345678"},
        {"kind": "document", "file_id": "F2", "name": "CCCD_011223344556.pdf", "caption": ""},
        {"kind": "photo", "file_id": "F3", "caption": "Bãi rác sáng 27/11"},
    ]
    item_id = await _submit(ctx, anonymous=True, attachments=files)
    async with ctx.sessions.begin() as session:
        item = await lock_item(session, item_id)
        await accept_item(ctx, session, item, actor="official:1")
        await request_info(ctx, session, item, actor="official:1", question="Xin gửi thêm ảnh chụp gần hơn.")
        await add_info(ctx, session, item, text="Ảnh gần hơn.", attachments=[{**files[0], "file_id": "F4"}])
    async with ctx.sessions() as session:
        stored = [m.attachments for m in (await session.execute(select(ItemMessage))).scalars()]
        sent = [row.payload for row in (await session.execute(select(Outbox))).scalars()]
    shown = json.dumps([stored, [payload.get("attachments") for payload in sent]], ensure_ascii=False)
    assert "0912345678" not in shown and "011223344556" not in shown
    assert "Ảnh do tôi chụp - Lò Văn Pọm, gọi [số điện thoại]" in shown and "CCCD_[số giấy tờ].pdf" in shown
    assert "Bãi rác sáng 27/11" in shown, "what identifies no one is kept as typed"
    card = next(payload for payload in sent if payload.get("attachments") and "F1" in json.dumps(payload))
    assert [a["file_id"] for a in card["attachments"]] == ["F1", "F2", "F3"]
    assert any("F4" in json.dumps(payload.get("attachments")) for payload in sent), "the addition's photo went too"
    sealed = next(a for a in stored[0] if a["file_id"] == "F1")["sealed"]
    original = Vault(ctx.keys).decrypt(base64.b64decode(sealed), "attachment.original")
    assert json.loads(original) == {"caption": files[0]["caption"]}, "the original is kept sealed, as the text is"


async def test_an_accepted_item_transferred_waits_for_the_new_units_acceptance_on_the_same_clocks(
    ctx: Context, clock: TestClock
) -> None:
    """Accepted by the wrong unit, extended, then transferred: the new unit must accept it (asking the citizen
    for more information must not make it "accepted" by itself); the first acceptance stays on its clock (no
    alarm rings again for it), and accepting it does not restart the resolve clock nor forget the extension."""
    item_id = await _submit(ctx)
    clock.set_local(2026, 2, 23)
    async with ctx.sessions.begin() as session:
        item = await lock_item(session, item_id)
        await accept_item(ctx, session, item, actor="official:1")
        await extend_item(ctx, session, item, actor="official:1", reason="Cần đo đạc lại hiện trường.")
    async with ctx.sessions() as session:
        before = await clocks_of(session, item_id)
        accepted_on, resolve_due = before["accept"].met_at, before["resolve"].due_date
    clock.set_local(2026, 3, 20)
    async with ctx.sessions.begin() as session:
        item = await lock_item(session, item_id)
        await transfer_item(ctx, session, item, actor="official:1", to_unit="so_nn_mt", reason="Đất rừng do Sở quản lý")
        await request_info(ctx, session, item, actor="official:2", question="Xin cho biết số thửa đất.")
        await add_info(ctx, session, item, text="Thửa số 112, tờ bản đồ số 7.")
        assert item.status == "submitted", "the new unit has not accepted it"
    async with ctx.sessions() as session:
        moved = await clocks_of(session, item_id)
    assert moved["accept"].met_at == accepted_on and moved["accept"].next_due_at is None
    clock.set_local(2026, 3, 24)
    async with ctx.sessions.begin() as session:
        item = await lock_item(session, item_id)
        await accept_item(ctx, session, item, actor="official:2")
        assert item.status == "accepted"
    async with ctx.sessions() as session:
        after = await clocks_of(session, item_id)
    assert after["accept"].met_at == accepted_on
    assert (after["resolve"].due_date, after["resolve"].extensions) == (resolve_due, 1)


async def test_a_reopened_item_stays_reopened_after_the_citizen_answers_a_question(ctx: Context) -> None:
    """Reopened at the supervisor, who asks the citizen for more: the answer used to turn the item "submitted",
    which also took away the supervisor's extension."""
    item_id = await _submit(ctx)
    async with ctx.sessions.begin() as session:
        item = await lock_item(session, item_id)
        await answer_item(ctx, session, item, actor="official:1", text="Xã đã cử cán bộ kiểm tra và sửa đường.")
        await rate_item(ctx, session, item, rating=1)
        await reopen_item(ctx, session, item, reason="Đường vẫn chưa được sửa sau hai tuần.")
        await request_info(ctx, session, item, actor="official:3", question="Đoạn nào còn hỏng?")
        await add_info(ctx, session, item, text="Đoạn qua bản Nà Nhạn, dài khoảng 200 m.")
        assert item.status == "reopened"
        await extend_item(ctx, session, item, actor="official:3", reason="Cần khảo sát lại toàn tuyến.")


async def test_coordinators_hear_of_a_reopened_item_sent_to_a_unit_with_nobody(ctx: Context) -> None:
    """Reopened, the item goes to the supervising unit; where nobody uses PAKN yet it would wait unseen."""
    async with ctx.sessions.begin() as session:
        token = await create_invite(
            ctx, session, unit_code="thanh_tra", role="coordinator", valid_for=timedelta(days=1)
        )
        await accept_invite(ctx, session, token, telegram_user_id=7101, display_name="Điều phối", locale="vi")
    item_id = await _submit(ctx, about_unit_code="ubnd_xa_muong_phang")  # about a commune: the inspectorate's
    async with ctx.sessions.begin() as session:
        item = await lock_item(session, item_id)
        assert item.unit_code == "thanh_tra"
        await answer_item(ctx, session, item, actor="official:1", text="Thanh tra đã làm việc với xã.")
        await rate_item(ctx, session, item, rating=1)
        supervisor = await reopen_item(ctx, session, item, reason="Xã vẫn thu tiền ngoài quy định.")
    assert supervisor == "vp_ubnd"
    async with ctx.sessions() as session:
        texts = [row.payload["text"] for row in (await session.execute(select(Outbox))).scalars()]
    assert any("chưa có cán bộ nào dùng PAKN" in text and "Văn phòng" in text for text in texts), texts
