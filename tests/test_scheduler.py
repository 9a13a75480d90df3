"""Reminders, overdue alerts and escalation on a controlled clock, across Tết and a weekend; exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from bot import officials, scheduler
from bot.context import Context
from bot.intake import Draft, submit_item
from bot.tickets import accept_item, lock_item
from models.tables import AuditEvent, Clock, Official, Outbox
from tests.conftest import TestClock, second_process


async def _official(ctx: Context, unit: str, role: str, user_id: int) -> Official:
    async with ctx.sessions.begin() as session:
        token = await officials.create_invite(ctx, session, unit_code=unit, role=role, valid_for=timedelta(days=1))
        return await officials.accept_invite(
            ctx, session, token, telegram_user_id=user_id, display_name="x", locale="vi"
        )


async def _texts(ctx: Context, official: Official) -> list[str]:
    async with ctx.sessions() as session:
        rows = (
            await session.execute(
                select(Outbox)
                .where(Outbox.recipient_kind == "official", Outbox.recipient_id == official.id)
                .order_by(Outbox.id)
            )
        ).scalars()
        return [row.payload["text"] for row in rows if "📋" not in row.payload["text"]]


async def test_alarms_ring_on_working_days_across_tet(ctx: Context, clock: TestClock) -> None:
    officer = await _official(ctx, "ubnd_xa_muong_phang", "officer", 1)
    head = await _official(ctx, "ubnd_xa_muong_phang", "head", 2)
    inspector = await _official(ctx, "thanh_tra", "head", 3)
    clock.set_local(2026, 2, 3, 10)  # Tuesday 03/02/2026
    draft = Draft(
        type="phan_anh",
        category="dat_dai",
        commune_code="3325",
        description="Mương thủy lợi bản Nà Nhạn bị bồi lấp, nước không về ruộng được.",
    )
    async with ctx.sessions.begin() as session:
        result = await submit_item(ctx, session, draft, channel="web", channel_id="s")
    # Ten working days after Tue 03/02, skipping the weekend and Tết (16–20/02): accept by Tue 24/02.
    assert result.accept.due.isoformat() == "2026-02-24"
    # Two working days before 24/02 is Friday 13/02 (Mon 23/02 is one; Tết and the weekend do not count).
    clock.set_local(2026, 2, 13, 7, 59)
    assert await scheduler.tick(ctx) == 0
    clock.set_local(2026, 2, 13, 8, 0)
    assert await scheduler.tick(ctx) == 1
    assert await scheduler.tick(ctx) == 0, "a reminder goes out once"
    assert "còn 2 ngày làm việc" in (await _texts(ctx, officer))[-1]
    clock.set_local(2026, 2, 24, 8, 1)  # the due day: reminder 0
    await scheduler.tick(ctx)
    assert "còn 0 ngày làm việc" in (await _texts(ctx, officer))[-1]
    clock.set_local(2026, 2, 25, 8, 1)  # the next working day: overdue, to the unit and its head
    await scheduler.tick(ctx)
    assert "đã quá hạn thụ lý" in (await _texts(ctx, officer))[-1]
    assert "Trưởng đơn vị lưu ý" in (await _texts(ctx, head))[-1]
    assert await _texts(ctx, inspector) == []
    clock.set_local(2026, 2, 27, 8, 1)  # two working days overdue: escalate to the inspectorate's head
    await scheduler.tick(ctx)
    escalation = await _texts(ctx, inspector)
    assert len(escalation) == 1 and "quá hạn thụ lý 3 ngày làm việc" in escalation[0]
    async with ctx.sessions() as session:
        actions = [e.action for e in (await session.execute(select(AuditEvent).order_by(AuditEvent.id))).scalars()]
        accept_clock = (await session.execute(select(Clock).where(Clock.kind == "accept"))).scalar_one()
    assert [a for a in actions if a in ("reminder", "overdue", "escalation")] == [
        "reminder",
        "reminder",
        "overdue",
        "escalation",
    ]
    assert accept_clock.next_due_at is None and accept_clock.escalated


async def test_an_accepted_item_stops_its_accept_alarms(ctx: Context, clock: TestClock) -> None:
    officer = await _official(ctx, "ubnd_xa_muong_phang", "officer", 1)
    clock.set_local(2026, 3, 6, 16)  # Friday
    draft = Draft(
        type="gop_y",
        category="dat_dai",
        commune_code="3325",
        description="Đề nghị xã công khai quy hoạch sử dụng đất tại nhà văn hóa các bản.",
    )
    async with ctx.sessions.begin() as session:
        item = (await submit_item(ctx, session, draft, channel="web", channel_id="s")).item
        await accept_item(ctx, session, await lock_item(session, item.id), actor="official:1")
    clock.set_local(2026, 4, 30, 9)
    assert await scheduler.tick(ctx) == 0
    assert not any("⏰" in text or "⚠️" in text for text in await _texts(ctx, officer))


async def test_after_a_long_stop_only_the_most_serious_alarm_is_sent(ctx: Context, clock: TestClock) -> None:
    officer = await _official(ctx, "ubnd_xa_muong_phang", "officer", 1)
    clock.set_local(2026, 2, 3, 10)
    draft = Draft(
        type="kien_nghi",
        category="dat_dai",
        commune_code="3325",
        description="Đề nghị làm rõ ranh giới đất giữa hai bản Nà Nhạn và Pá Khoang.",
    )
    async with ctx.sessions.begin() as session:
        await submit_item(ctx, session, draft, channel="web", channel_id="s")
    clock.set_local(2026, 2, 25, 9)  # the server was down from before the first reminder until after the deadline
    await scheduler.tick(ctx)
    texts = await _texts(ctx, officer)
    assert len(texts) == 1 and "đã quá hạn thụ lý" in texts[0]


async def test_two_processes_ring_each_alarm_once(ctx: Context, clock: TestClock) -> None:
    officer = await _official(ctx, "ubnd_xa_muong_phang", "officer", 1)
    clock.set_local(2026, 2, 3, 10)
    async with ctx.sessions.begin() as session:
        for index in range(30):
            draft = Draft(
                type="phan_anh",
                category="dat_dai",
                commune_code="3325",
                description=f"Phản ánh số {index}: đường vào bản Nà Nhạn bị sạt lở sau mưa lớn.",
            )
            await submit_item(ctx, session, draft, channel="web", channel_id=f"s{index}")
    clock.set_local(2026, 2, 13, 8, 30)
    other = second_process(ctx)
    engine = other.engine
    try:
        results = await asyncio.gather(*(scheduler.tick(process, limit=7) for process in (ctx, other) * 4))
    finally:
        await engine.dispose()
    assert sum(results) <= 30
    while await scheduler.tick(ctx):
        pass
    reminders = [t for t in await _texts(ctx, officer) if "⏰" in t]
    assert len(reminders) == 30


async def test_the_sqlite_lease_has_one_holder(ctx: Context, clock: TestClock) -> None:
    assert await scheduler.acquire_lease(ctx, "scheduler", "a")
    assert not await scheduler.acquire_lease(ctx, "scheduler", "b")
    assert await scheduler.acquire_lease(ctx, "scheduler", "a"), "the holder renews"
    clock.advance(seconds=61)
    assert await scheduler.acquire_lease(ctx, "scheduler", "b"), "an expired lease is taken over"
