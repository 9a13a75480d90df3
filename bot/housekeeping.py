"""Forgetting on time: identity past its retention period and abandoned drafts.

The citizen is told before consenting how long their name and phone are kept (``scheduler.toml``
``retention.identity_days`` after the item is settled); this job keeps that promise. Audit events never
hold identity, so the trail stays whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, exists, or_, select, update

from bot import audit
from bot.context import Context
from models.tables import Citizen, DialogState, Item

ABANDONED_DRAFT = timedelta(days=30)


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
