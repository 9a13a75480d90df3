"""Deadline reminders, overdue alerts and escalation, found through the indexed ``clocks.next_due_at``.

Each tick takes the clocks whose next alarm time has come (``SELECT … FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so several ``pakn serve`` processes share the work; on SQLite one process holds a lease and the
writes are serialised anyway), queues the messages, records the alarm in the audit trail and moves
``next_due_at`` to the following alarm — all in one transaction, so every reminder goes out exactly once.
After a long stop only the most serious alarm that came due is sent, not a burst of stale reminders.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.cards import notify_unit
from bot.clocks import Alarm, alarms, next_alarm
from bot.context import Context
from bot.i18n import Localized, Msg, format_day
from bot.lifecycle import OPEN_STATUSES
from bot.officials import Role, unit_officials
from bot.outbox import enqueue
from bot.routing import supervisor_of
from models.tables import Clock, Item, JobLease

log = logging.getLogger(__name__)

LEASE_TTL = timedelta(seconds=60)
SEVERITY = {"reminder": 0, "overdue": 1, "escalation": 2}


async def acquire_lease(ctx: Context, name: str, holder: str, ttl: timedelta = LEASE_TTL) -> bool:
    """Hold the named lease for ``ttl`` (renewing it if we already hold it); False if another process does."""
    now = ctx.now()
    async with ctx.sessions.begin() as session:
        result = await session.execute(
            update(JobLease)
            .where(JobLease.name == name, (JobLease.holder == holder) | (JobLease.expires_at < now))
            .values(holder=holder, expires_at=now + ttl)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            return True
        try:
            async with session.begin_nested():
                session.add(JobLease(name=name, holder=holder, expires_at=now + ttl))
        except IntegrityError:
            return False
    return True


def _due_alarm(ctx: Context, clock: Clock, now: datetime) -> Alarm | None:
    fired = [
        a
        for a in alarms(ctx.province, ctx.calendar, clock.due_date)
        if clock.next_due_at is not None and clock.next_due_at <= a.at <= now
    ]
    return max(fired, key=lambda a: (SEVERITY[a.kind], a.at)) if fired else None


async def _heads(session: AsyncSession, unit_code: str) -> list[tuple[int, str]]:
    heads = await unit_officials(session, unit_code, (Role.HEAD.value,))
    return [(h.id, h.locale) for h in heads]


async def _ring(ctx: Context, session: AsyncSession, item: Item, clock: Clock, alarm: Alarm) -> None:
    unit = ctx.province.units[item.unit_code]
    params = {
        "code": item.receipt_code,
        "clock": Msg(f"clock.{clock.kind}"),
        "date": format_day("vi", clock.due_date),
        "unit": Localized(unit.name_vi, unit.name_en),
    }
    if alarm.kind == "reminder":
        await notify_unit(ctx, session, item, Msg("alarm.reminder", {**params, "days": alarm.offset}))
        return
    if alarm.kind == "overdue":
        await notify_unit(ctx, session, item, Msg("alarm.overdue", params))
        for official_id, locale in await _heads(session, item.unit_code):
            enqueue(
                ctx,
                session,
                channel="telegram",
                recipient_kind="official",
                recipient_id=official_id,
                payload={"text": Msg("alarm.overdue_head", params).render(locale, html.escape), "buttons": []},
            )
        return
    overdue_days = ctx.calendar.working_days_between(clock.due_date, ctx.local_date())
    supervisor = supervisor_of(ctx.province, item.unit_code)
    clock.escalated = True
    for official_id, locale in await _heads(session, supervisor):
        text = Msg("alarm.escalation", {**params, "days": overdue_days}).render(locale, html.escape)
        enqueue(
            ctx,
            session,
            channel="telegram",
            recipient_kind="official",
            recipient_id=official_id,
            payload={"text": text, "buttons": []},
        )


async def tick(ctx: Context, *, limit: int = 200) -> int:
    """Ring every alarm that has come due; returns how many clocks were handled."""
    now = ctx.now()
    async with ctx.sessions.begin() as session:
        clocks = (
            (
                await session.execute(
                    select(Clock)
                    .where(Clock.next_due_at <= now)
                    .order_by(Clock.next_due_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        for clock in clocks:
            item = await session.get(Item, clock.item_id)
            if item is None or clock.met_at is not None or item.paused or item.status not in OPEN_STATUSES:
                clock.next_due_at = None
                continue
            alarm = _due_alarm(ctx, clock, now)
            if alarm is not None:
                await _ring(ctx, session, item, clock, alarm)
                await audit.append(
                    session,
                    action=alarm.kind,
                    actor="system",
                    item_id=item.id,
                    now=now,
                    data={"clock": clock.kind, "due": clock.due_date.isoformat(), "unit": item.unit_code},
                )
            following = next_alarm(ctx.province, ctx.calendar, clock.due_date, now)
            clock.next_due_at = following.at if following else None
    return len(clocks)


async def run_forever(
    ctx: Context,
    *,
    jobs: list[Callable[[Context], Awaitable[object]]],
    wake: Callable[[], None] | None = None,
    interval: float = 30.0,
) -> None:
    """Every ``interval`` seconds: ring due alarms and run the other periodic jobs (the weekly digest)."""
    holder = f"{socket.gethostname()}:{id(ctx):x}"
    sqlite = ctx.engine.url.get_backend_name() == "sqlite"
    while True:
        try:
            if not sqlite or await acquire_lease(ctx, "scheduler", holder):
                while await tick(ctx) > 0:
                    pass
                for job in jobs:
                    await job(ctx)
                if wake is not None:
                    wake()
        except Exception:
            log.exception("scheduler tick failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.sleep(interval)
