"""Forgetting on time: identity past its retention period and abandoned drafts. And SQLite's statistics kept.

The citizen is told before consenting how long their name and phone are kept (``scheduler.toml``
``retention.identity_days`` after the item is settled); this job keeps that promise. Audit events never
hold identity, so the trail stays whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, or_, select, update

from bot import audit
from bot.context import Context
from models.db import keep_sqlite_statistics
from models.tables import Citizen, DialogState, Item

ABANDONED_DRAFT = timedelta(days=30)
# How often SQLite's query statistics are looked at (SQLite's advice: every few hours).
STATISTICS_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class Purged:
    identities: int
    drafts: int


async def run_housekeeping(ctx: Context) -> Purged:
    now = ctx.now()
    cutoff = now - timedelta(days=ctx.province.scheduler.identity_retention_days)
    async with ctx.sessions.begin() as session:
        still_needed = exists().where(
            Item.citizen_id == Citizen.id, or_(Item.closed_at.is_(None), Item.closed_at > cutoff)
        )
        has_items = exists().where(Item.citizen_id == Citizen.id)
        expired = select(Citizen.id).where(
            or_(Citizen.enc_name.is_not(None), Citizen.enc_phone.is_not(None)), has_items, ~still_needed
        )
        ids = list((await session.execute(expired)).scalars())
        if ids:
            await session.execute(update(Citizen).where(Citizen.id.in_(ids)).values(enc_name=None, enc_phone=None))
            await audit.append(
                session,
                action="identity_purged",
                actor="system",
                now=now,
                data={"citizens": len(ids), "retention_days": ctx.province.scheduler.identity_retention_days},
            )
        drafts = await session.execute(delete(DialogState).where(DialogState.updated_at < now - ABANDONED_DRAFT))
    return Purged(len(ids), drafts.rowcount or 0)  # type: ignore[attr-defined]


class SqliteStatistics:
    """A periodic job: :func:`models.db.keep_sqlite_statistics` once every :data:`STATISTICS_EVERY`, counted
    from the first call (a connection that has run no queries yet gives ``PRAGMA optimize`` nothing to go by)."""

    def __init__(self) -> None:
        self._last: datetime | None = None

    async def __call__(self, ctx: Context) -> bool:
        """Whether it looked at the statistics this time."""
        if ctx.engine.dialect.name != "sqlite":
            return False
        now = ctx.now()
        if self._last is None:
            self._last = now
        if now - self._last < STATISTICS_EVERY:
            return False
        self._last = now
        await keep_sqlite_statistics(ctx.engine)
        return True
