"""Identity is forgotten when its retention period ends; nothing else is. SQLite keeps its query statistics."""

from __future__ import annotations

from sqlalchemy import select, text

from bot import audit
from bot.context import Context
from bot.housekeeping import STATISTICS_EVERY, SqliteStatistics, run_housekeeping
from bot.intake import Draft, submit_item
from bot.tickets import answer_item, lock_item, rate_item
from bot.tracking import public_status
from models.tables import Citizen
from tests.conftest import TestClock


async def test_identity_is_purged_after_the_retention_period(ctx: Context, clock: TestClock) -> None:
    draft = Draft(
        type="khieu_nai",
        category="dat_dai",
        commune_code="3325",
        anonymous=False,
        consent=True,
        name="Lò Văn Bình",
        phone="0912345678",
        description="Quyết định thu hồi đất số 15 của xã không đúng diện tích thực tế.",
    )
    async with ctx.sessions.begin() as session:
        settled = (await submit_item(ctx, session, draft, channel="web", channel_id="a")).item
        open_item = (await submit_item(ctx, session, draft, channel="web", channel_id="b")).item
        item = await lock_item(session, settled.id)
        await answer_item(ctx, session, item, actor="official:1", text="Xã đã đo đạc lại và điều chỉnh quyết định.")
        await rate_item(ctx, session, item, rating=4)
    days = ctx.province.scheduler.identity_retention_days
    clock.advance(days=days - 1)
    assert (await run_housekeeping(ctx)).identities == 0
    clock.advance(days=2)
    purged = await run_housekeeping(ctx)
    assert purged.identities == 1
    assert await audit.seal(ctx.engine) > 0
    async with ctx.sessions() as session:
        settled_citizen = await session.get(Citizen, settled.citizen_id)
        open_citizen = await session.get(Citizen, open_item.citizen_id)
        assert settled_citizen is not None and settled_citizen.enc_phone is None and settled_citizen.enc_name is None
        assert open_citizen is not None and open_citizen.enc_phone is not None, "an open item keeps its identity"
        verified = await audit.verify(session)
        assert verified.ok and verified.checked > 0 and verified.unsealed == 0
        assert len((await session.execute(select(Citizen))).scalars().all()) == 2
    assert (await run_housekeeping(ctx)).identities == 0


async def _analysed_tables(ctx: Context) -> set[str]:
    async with ctx.engine.connect() as connection:
        if not (await connection.execute(text("select 1 from sqlite_master where name = 'sqlite_stat1'"))).all():
            return set()
        return set((await connection.execute(text("select tbl from sqlite_stat1"))).scalars())


async def test_sqlite_statistics_are_gathered_for_the_tables_queries_use_once_an_hour(
    ctx: Context, clock: TestClock
) -> None:
    """Without statistics SQLite's planner picks indexes by rule of thumb (the /stats report read every clock's
    row instead of the covering index at a million items); the service gathers them as SQLite advises."""
    draft = Draft(
        type="phan_anh",
        category="moi_truong",
        commune_code="3325",
        anonymous=True,
        description="Bãi rác tự phát cạnh suối, bốc mùi cả xóm.",
    )
    async with ctx.sessions.begin() as session:
        codes = [
            (await submit_item(ctx, session, draft, channel="web", channel_id=str(n))).item.receipt_code
            for n in range(3)
        ]
    job = SqliteStatistics()
    sqlite = ctx.engine.dialect.name == "sqlite"
    async with ctx.sessions() as session:
        assert await public_status(ctx, session, codes[0]) is not None  # a look-up by receipt code: items is used
    assert not await job(ctx), "the first call only starts the hour"
    clock.advance(seconds=STATISTICS_EVERY.total_seconds() - 60)
    assert not await job(ctx)
    if sqlite:
        assert await _analysed_tables(ctx) == set()
    clock.advance(seconds=120)
    assert await job(ctx) is sqlite
    if sqlite:
        assert "items" in await _analysed_tables(ctx)
        assert not await job(ctx), "once an hour, not on every tick"
