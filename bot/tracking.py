"""Public tracking by receipt code: an item's status and public timeline, for anyone who holds the code.

Nothing personal is ever shown: no text, no name, no pseudonym, only what the unit did and when. A
malformed code and an unknown code get the same answer, so the page tells nothing about which codes
exist, and look-ups are rate-limited per (hashed) client so that codes cannot be enumerated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import Context
from bot.i18n import gettext
from bot.receipts import normalise_receipt_code
from bot.throttle import Limit, hit
from models.tables import AuditEvent, Clock, Item

TRACK_LIMIT = Limit(20, timedelta(minutes=10))
MAX_CODE_INPUT = 64
TIMELINE_LIMIT = 100


@dataclass(frozen=True)
class TimelineEntry:
    action: str
    at: datetime


@dataclass(frozen=True)
class PublicStatus:
    receipt_code: str
    type: str
    status: str
    unit_code: str
    received_at: datetime
    accept_due: date | None
    accept_met: bool
    resolve_due: date | None
    resolve_met: bool
    timeline: tuple[TimelineEntry, ...]


@dataclass(frozen=True)
class Tracked:
    """``limited``: too many look-ups from this client; else ``status`` is None for "not found"."""

    limited: bool
    status: PublicStatus | None = None


def event_label(locale: str, action: str) -> str:
    """The timeline wording of an audit action; an action without its own words reads as an update."""
    key = f"event.{action}"
    text = gettext(locale, key)
    return gettext(locale, "event.other") if text == key else text


async def public_status(ctx: Context, session: AsyncSession, raw_code: str) -> PublicStatus | None:
    """The public view of the item behind ``raw_code``; None when malformed or unknown (indistinguishable)."""
    if len(raw_code) > MAX_CODE_INPUT:
        return None
    code = normalise_receipt_code(raw_code, ctx.province.receipt_prefix)
    if code is None:
        return None
    item = (await session.execute(select(Item).where(Item.receipt_code == code))).scalar_one_or_none()
    if item is None:
        return None
    clocks = {
        clock.kind: clock for clock in (await session.execute(select(Clock).where(Clock.item_id == item.id))).scalars()
    }
    events = (
        await session.execute(
            select(AuditEvent.action, AuditEvent.created_at)
            .where(AuditEvent.item_id == item.id, AuditEvent.public.is_(True))
            .order_by(AuditEvent.id)
            .limit(TIMELINE_LIMIT)
        )
    ).all()
    accept, resolve = clocks.get("accept"), clocks.get("resolve")
    return PublicStatus(
        receipt_code=item.receipt_code,
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


async def track(ctx: Context, session: AsyncSession, raw_code: str, client: str) -> Tracked:
    """One rate-limited look-up by ``client`` (a keyed hash of the address); commit even when limited."""
    if not await hit(session, "track", client[:40], TRACK_LIMIT, now=ctx.now()):
        return Tracked(limited=True)
    return Tracked(limited=False, status=await public_status(ctx, session, raw_code))
