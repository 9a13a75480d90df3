"""Public tracking by receipt code: an item's status and public timeline, for anyone who holds the code.

Nothing personal is ever shown: no text, no name, no pseudonym, only what the unit did and when. A
malformed code and an unknown code get the same answer, so the page tells nothing about which codes
exist, and look-ups are rate-limited per (hashed) client so that codes cannot be enumerated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Table, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.audit import CHAIN_ORDER
from bot.context import Context
from bot.i18n import gettext
from bot.receipts import normalise_receipt_code
from bot.throttle import Limit, hit
from models.tables import AuditEvent, Clock, Item

TRACK_LIMIT = Limit(20, timedelta(minutes=10))
MAX_CODE_INPUT = 64
TIMELINE_LIMIT = 100

_ITEMS: Table = Item.__table__  # type: ignore[assignment]
_CLOCKS: Table = Clock.__table__  # type: ignore[assignment]
_EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]
_ACCEPT = _CLOCKS.alias("accept_clock")
_RESOLVE = _CLOCKS.alias("resolve_clock")
# An item and its two clocks in one statement (each clock at most one row: unique on item_id, kind), only the
# columns shown; Core rows, no ORM entities to build.
_ITEM_BY_CODE = (
    select(
        _ITEMS.c.id,
        _ITEMS.c.receipt_code,
        _ITEMS.c.type,
        _ITEMS.c.status,
        _ITEMS.c.unit_code,
        _ITEMS.c.citizen_id,
        _ITEMS.c.rating,
        _ITEMS.c.received_at,
        _ACCEPT.c.due_date.label("accept_due"),
        _ACCEPT.c.met_at.label("accept_met_at"),
        _RESOLVE.c.due_date.label("resolve_due"),
        _RESOLVE.c.met_at.label("resolve_met_at"),
    )
    .outerjoin(_ACCEPT, and_(_ACCEPT.c.item_id == _ITEMS.c.id, _ACCEPT.c.kind == "accept"))
    .outerjoin(_RESOLVE, and_(_RESOLVE.c.item_id == _ITEMS.c.id, _RESOLVE.c.kind == "resolve"))
    .where(_ITEMS.c.receipt_code == bindparam("code"))
)
_PUBLIC_TIMELINE = (
    select(_EVENTS.c.action, _EVENTS.c.created_at)
    .where(_EVENTS.c.item_id == bindparam("item_id"), _EVENTS.c.public.is_(True))
    .order_by(*CHAIN_ORDER)
    .limit(TIMELINE_LIMIT)
)


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
class TrackedItem:
    """What a look-up by receipt code needs of an item and its clocks (None: the item has no such clock).

    ``citizen_id`` and ``rating`` are for the chat's /track (is this the filer's item?); the public view shows
    neither."""

    id: int
    receipt_code: str
    type: str
    status: str
    unit_code: str
    citizen_id: int | None
    rating: int | None
    received_at: datetime
    accept_due: date | None
    accept_met_at: datetime | None
    resolve_due: date | None
    resolve_met_at: datetime | None


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
    item = await tracked_item(session, code)
    if item is None:
        return None
    events = await public_timeline(session, item.id)
    return PublicStatus(
        receipt_code=item.receipt_code,
        type=item.type,
        status=item.status,
        unit_code=item.unit_code,
        received_at=item.received_at,
        accept_due=item.accept_due,
        accept_met=item.accept_met_at is not None,
        resolve_due=item.resolve_due,
        resolve_met=item.resolve_met_at is not None,
        timeline=tuple(TimelineEntry(action, at) for action, at in events),
    )


async def tracked_item(session: AsyncSession, code: str) -> TrackedItem | None:
    """The item whose receipt code is ``code`` (already normalised) with its clocks' deadlines, in one round trip."""
    row = (await session.execute(_ITEM_BY_CODE, {"code": code})).one_or_none()
    return None if row is None else TrackedItem(**row._mapping)


async def public_timeline(session: AsyncSession, item_id: int) -> list[tuple[str, datetime]]:
    """(action, when) of the item's public audit events, oldest first, at most ``TIMELINE_LIMIT``."""
    return [(action, at) for action, at in await session.execute(_PUBLIC_TIMELINE, {"item_id": item_id})]


async def track(ctx: Context, session: AsyncSession, raw_code: str, client: str) -> Tracked:
    """One rate-limited look-up by ``client`` (a keyed hash of the address); commit even when limited."""
    if not await hit(session, "track", client[:40], TRACK_LIMIT, now=ctx.now()):
        return Tracked(limited=True)
    return Tracked(limited=False, status=await public_status(ctx, session, raw_code))
