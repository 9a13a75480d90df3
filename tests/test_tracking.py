"""Public tracking: the status and public timeline of an item, no enumeration, rate-limited, nothing personal."""

from __future__ import annotations

import dataclasses

from bot import tickets
from bot.context import Context
from bot.intake import Draft, submit_item
from bot.receipts import code_from_payload
from bot.tracking import TRACK_LIMIT, public_status, track
from tests.conftest import TestClock

SECRET = "Nhà ông Lò Văn Bình ở bản Nà Nhạn lấn chiếm đường đi chung, số 0912 345 678."


async def _file(ctx: Context) -> str:
    draft = Draft(type="phan_anh", category="dat_dai", commune_code="3325", description=SECRET)
    async with ctx.sessions.begin() as session:
        return (await submit_item(ctx, session, draft, channel="web", channel_id="w1")).item.receipt_code


async def test_the_public_view_shows_progress_and_nothing_personal(ctx: Context, clock: TestClock) -> None:
    code = await _file(ctx)
    clock.advance(days=1)
    async with ctx.sessions.begin() as session:
        item = await tickets.item_by_receipt(session, code)
        assert item is not None
        await tickets.accept_item(ctx, session, await tickets.lock_item(session, item.id), actor="official:1")
    async with ctx.sessions() as session:
        status = await public_status(ctx, session, code.lower().replace("-", " "))  # typed loosely
    assert status is not None
    assert (status.receipt_code, status.status, status.unit_code) == (code, "accepted", "ubnd_xa_muong_phang")
    assert [entry.action for entry in status.timeline] == ["submit", "accept"]
    assert status.accept_met and not status.resolve_met and status.resolve_due is not None
    shown = repr(dataclasses.asdict(status))
    for private in ("Lò Văn Bình", "0912", "Nà Nhạn", "w1", "official:1"):
        assert private not in shown


async def test_unknown_and_malformed_codes_look_the_same(ctx: Context) -> None:
    real = await _file(ctx)
    unknown = code_from_payload("DB", "7K3M9QX")  # well-formed, passes its check, never issued
    assert unknown != real
    async with ctx.sessions() as session:
        for raw in (unknown, "DB-7K3M-9QX5", "hello", "", "x" * 10_000, "'; drop table items; --"):
            assert await public_status(ctx, session, raw) is None, raw


async def test_lookups_are_rate_limited_per_client(ctx: Context, clock: TestClock) -> None:
    code = await _file(ctx)
    results = []
    for _ in range(TRACK_LIMIT.count + 2):
        async with ctx.sessions.begin() as session:
            results.append(await track(ctx, session, code, "client-a"))
    assert all(not r.limited and r.status is not None for r in results[: TRACK_LIMIT.count])
    assert all(r.limited and r.status is None for r in results[TRACK_LIMIT.count :])
    async with ctx.sessions.begin() as session:
        assert not (await track(ctx, session, code, "client-b")).limited
    clock.advance(seconds=TRACK_LIMIT.window.total_seconds())
    async with ctx.sessions.begin() as session:
        assert not (await track(ctx, session, code, "client-a")).limited
