"""Rate limits shared by every process: exact counts under concurrency, fixed windows, hashed clients."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bot.context import Context
from bot.privacy import Keys
from bot.throttle import Limit, client_hash, hit, purge, window_start
from models.tables import Throttle
from tests.conftest import TestClock

LIMIT = Limit(3, timedelta(minutes=10))


async def _hit(ctx: Context, client: str = "c1", limit: Limit = LIMIT) -> bool:
    async with ctx.sessions.begin() as session:
        return await hit(session, "test", client, limit, now=ctx.now())


async def test_a_client_is_refused_past_the_limit_until_the_window_ends(ctx: Context, clock: TestClock) -> None:
    clock.set_local(2026, 2, 12, 9, 0)  # 02:00 UTC
    assert [await _hit(ctx) for _ in range(5)] == [True, True, True, False, False]
    assert await _hit(ctx, "c2")  # another client has its own count
    clock.advance(minutes=9)
    assert not await _hit(ctx)  # same window (02:00–02:10)
    clock.advance(minutes=1, seconds=5)
    assert [await _hit(ctx) for _ in range(4)] == [True, True, True, False]


def test_windows_are_aligned_so_every_process_agrees() -> None:
    moment = datetime(2026, 2, 12, 2, 7, 59, tzinfo=UTC)
    assert window_start(moment, timedelta(minutes=10)) == datetime(2026, 2, 12, 2, 0, tzinfo=UTC)
    assert window_start(moment, timedelta(days=1)) == datetime(2026, 2, 12, tzinfo=UTC)


async def test_concurrent_hits_are_counted_exactly(ctx: Context) -> None:
    limit = Limit(5, timedelta(minutes=10))
    results = await asyncio.gather(*[_hit(ctx, "busy", limit) for _ in range(12)])
    assert sum(results) == 5
    async with ctx.sessions() as session:
        count = await session.scalar(select(Throttle.count).where(Throttle.key == "test:busy"))
    assert count == 12  # refusals count too


async def test_old_counters_are_purged(ctx: Context, clock: TestClock) -> None:
    await _hit(ctx, "old")
    clock.advance(days=3)
    await _hit(ctx, "new")
    async with ctx.sessions.begin() as session:
        assert await purge(session, now=ctx.now()) <= 1  # ``hit`` itself purges now and then
    async with ctx.sessions() as session:
        keys = (await session.execute(select(Throttle.key))).scalars().all()
        assert await session.scalar(select(func.count()).select_from(Throttle)) == 1
    assert keys == ["test:new"]


def test_client_hashes_hide_the_address_and_group_ipv6_networks() -> None:
    keys = Keys.from_master(bytes(range(32)))
    a = client_hash(keys, "203.0.113.7")
    assert len(a) == 40 and "203" not in a
    assert a != client_hash(keys, "203.0.113.8")
    assert a != client_hash(Keys.from_master(bytes(32)), "203.0.113.7")  # keyed: no rainbow table
    assert client_hash(keys, "2001:db8:1:2::1") == client_hash(keys, "2001:db8:1:2:ffff::9")
    assert client_hash(keys, "2001:db8:1:2::1") != client_hash(keys, "2001:db8:1:3::1")
    assert client_hash(keys, "::ffff:203.0.113.7") == a
