"""Public tracking: the status and public timeline of an item, no enumeration, rate-limited, nothing personal."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from bot import tickets
from bot.context import Context
from bot.intake import Draft, submit_item
from bot.receipts import code_from_payload
from bot.tracking import TRACK_LIMIT, PublicStatus, TimelineEntry, public_status, track
from models.tables import AuditEvent
from tests.conftest import TestClock

SECRET = "Nhà ông Lò Văn Bình ở bản Nà Nhạn lấn chiếm đường đi chung, số 0912 345 678."


async def _file(ctx: Context, type_: str = "phan_anh") -> str:
    draft = Draft(type=type_, category="dat_dai", commune_code="3325", description=SECRET)
    async with ctx.sessions.begin() as session:
        return (await submit_item(ctx, session, draft, channel="web", channel_id="w1")).item.receipt_code


async def _act(ctx: Context, code: str, action: str) -> None:
    async with ctx.sessions.begin() as session:
        item = await tickets.item_by_receipt(session, code)
        assert item is not None
        locked = await tickets.lock_item(session, item.id)
        if action == "accept":
            await tickets.accept_item(ctx, session, locked, actor="official:1")
        else:
            await tickets.answer_item(ctx, session, locked, actor="official:1", text="Xã đã xử lý xong.")


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


async def test_each_look_up_shows_its_own_items_clocks_and_events(ctx: Context, clock: TestClock) -> None:
    """Items at different stages side by side: each view matches that item's own rows, read through the ORM."""
    suggestion = await _file(ctx, "gop_y")  # an accept clock only
    accepted, answered, untouched = await _file(ctx), await _file(ctx), await _file(ctx)
    clock.advance(days=1)
    await _act(ctx, accepted, "accept")
    await _act(ctx, answered, "accept")
    clock.advance(days=3)
    await _act(ctx, answered, "answer")
    views: dict[str, PublicStatus] = {}
    async with ctx.sessions() as session:
        for code in (suggestion, accepted, answered, untouched):
            item = await tickets.item_by_receipt(session, code)
            assert item is not None
            clocks = await tickets.clocks_of(session, item.id)
            events = await session.execute(
                select(AuditEvent.action, AuditEvent.created_at)
                .where(AuditEvent.item_id == item.id, AuditEvent.public.is_(True))
                .order_by(AuditEvent.id)
            )
            accept, resolve = clocks.get("accept"), clocks.get("resolve")
            expected = PublicStatus(
                receipt_code=code,
                type=item.type,
                status=item.status,
                unit_code=item.unit_code,
                received_at=item.received_at,
                accept_due=accept.due_date if accept else None,
                accept_met=bool(accept and accept.met_at),
                resolve_due=resolve.due_date if resolve else None,
                resolve_met=bool(resolve and resolve.met_at),
                timeline=tuple(TimelineEntry(action, at) for action, at in events),
            )
            view = await public_status(ctx, session, code)
            assert view == expected, code
            views[code] = view
    assert views[suggestion].resolve_due is None and views[accepted].resolve_due is not None
    met = {code: (view.accept_met, view.resolve_met) for code, view in views.items()}
    assert met == {
        suggestion: (False, False),
        accepted: (True, False),
        answered: (True, True),
        untouched: (False, False),
    }
    assert [entry.action for entry in views[answered].timeline] == ["submit", "accept", "answer"]
    assert [entry.action for entry in views[untouched].timeline] == ["submit"]


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
