"""Desk ratings: one per device per desk per day, a cap per network, comments masked, days in local time."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from sqlalchemy import select

from bot.context import Context
from bot.desks import add_desk
from bot.errors import ValidationError
from bot.ratings import NETWORK_DESK_LIMIT, RatingStatus, comment_on_rating, rate_desk
from models.tables import Desk, DeskRating
from tests.conftest import TestClock


async def _desk(ctx: Context, name: str = "Bộ phận một cửa") -> Desk:
    async with ctx.sessions.begin() as session:
        return await add_desk(ctx, session, unit_code="ubnd_xa_muong_phang", name=name)


async def _rate(ctx: Context, desk: Desk, score: int, device: str, network: str | None = "net-1", comment: str = ""):
    async with ctx.sessions.begin() as session:
        return await rate_desk(ctx, session, desk, score=score, device=device, network=network, comment=comment)


async def _ratings(ctx: Context) -> list[DeskRating]:
    async with ctx.sessions() as session:
        return list((await session.execute(select(DeskRating).order_by(DeskRating.id))).scalars())


async def test_one_device_counts_once_per_desk_per_day(ctx: Context, clock: TestClock) -> None:
    desk = await _desk(ctx)
    other = await _desk(ctx, "Quầy 2")
    outcomes = [(await _rate(ctx, desk, score, "device-a")).status for score in (3, 3, 3, 1, 2)]
    assert outcomes == [RatingStatus.RECORDED] + [RatingStatus.UPDATED] * 4
    assert (await _rate(ctx, other, 3, "device-a")).status == RatingStatus.RECORDED  # another desk
    rows = await _ratings(ctx)
    assert [(r.desk_code, r.score) for r in rows] == [(desk.code, 2), (other.code, 3)]  # the last choice stands
    assert rows[0].day == date(2026, 2, 12)
    clock.set_local(2026, 2, 13, 7, 30)
    assert (await _rate(ctx, desk, 1, "device-a")).status == RatingStatus.RECORDED  # a new day
    assert len(await _ratings(ctx)) == 3


async def test_ballot_stuffing_from_one_network_is_capped(ctx: Context) -> None:
    desk = await _desk(ctx)
    statuses = [(await _rate(ctx, desk, 3, f"fresh-cookie-{n}")).status for n in range(NETWORK_DESK_LIMIT.count + 15)]
    assert statuses.count(RatingStatus.RECORDED) == NETWORK_DESK_LIMIT.count
    assert statuses[NETWORK_DESK_LIMIT.count :] == [RatingStatus.LIMITED] * 15
    assert (await _rate(ctx, desk, 3, "someone-else", network="net-2")).status == RatingStatus.RECORDED
    assert len(await _ratings(ctx)) == NETWORK_DESK_LIMIT.count + 1


async def test_simultaneous_ratings_from_one_device_make_one_row(ctx: Context) -> None:
    desk = await _desk(ctx)
    results = await asyncio.gather(*[_rate(ctx, desk, 1 + n % 3, "double-tap") for n in range(6)])
    assert sorted(r.status for r in results).count(RatingStatus.RECORDED) == 1
    assert len(await _ratings(ctx)) == 1


async def test_the_day_is_the_provinces_day(ctx: Context, clock: TestClock) -> None:
    desk = await _desk(ctx)
    clock.set_local(2026, 2, 12, 23, 50)
    await _rate(ctx, desk, 3, "d1")
    clock.set_local(2026, 2, 13, 0, 10)  # 17:10 UTC the same UTC day, but the next local day
    assert (await _rate(ctx, desk, 2, "d1")).status == RatingStatus.RECORDED
    assert [r.day for r in await _ratings(ctx)] == [date(2026, 2, 12), date(2026, 2, 13)]


async def test_comments_are_masked_and_attached_to_todays_rating(ctx: Context) -> None:
    desk = await _desk(ctx)
    async with ctx.sessions.begin() as session:
        assert not await comment_on_rating(ctx, session, desk, device="d1", comment="Phục vụ tốt")
    await _rate(ctx, desk, 3, "d1", comment="Chị cán bộ rất nhiệt tình, số em 0912 345 678")
    async with ctx.sessions.begin() as session:
        assert await comment_on_rating(ctx, session, desk, device="d1", comment="Gọi em: 0987.654.321 nhé")
    (row,) = await _ratings(ctx)
    assert row.comment == "Gọi em: [số điện thoại] nhé"
    with pytest.raises(ValidationError):
        async with ctx.sessions.begin() as session:
            await comment_on_rating(ctx, session, desk, device="d1", comment="   ")
    with pytest.raises(ValidationError):
        await _rate(ctx, desk, 4, "d2")
    with pytest.raises(ValidationError):
        await _rate(ctx, desk, 3, "d2", comment="x" * 1001)


async def test_rating_from_a_chat_twice_the_same_day_counts_once(ctx: Context) -> None:
    from bot.conversation import Conversations
    from bot.dialog import Event
    from qr.payload import sign_desk

    desk = await _desk(ctx)
    conversations = Conversations(ctx)
    await conversations.handle(
        "telegram", "77", Event(kind="command", command="start", args=sign_desk(ctx.keys, desk.code))
    )
    for score in ("3", "1"):
        await conversations.handle("telegram", "77", Event(kind="button", payload="menu:rate"))
        thanks = await conversations.handle("telegram", "77", Event(kind="button", payload=f"desk:{score}"))
        assert "Cảm ơn bạn đã đánh giá" in str(thanks.replies)
    rows = await _ratings(ctx)
    assert [(r.desk_code, r.score) for r in rows] == [(desk.code, 1)]
