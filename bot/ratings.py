"""Desk ratings: a citizen rates how a one-stop desk served them (1 unhappy, 2 so-so, 3 happy).

Ballot stuffing is capped twice:

* per device: one rating per desk per day. The device is a random cookie on the web (or the chat on
  Telegram); a second rating from it the same day changes the first instead of adding one.
* per network: at most ``NETWORK_DESK_LIMIT`` ratings of one desk per day from one network address, so
  clearing cookies does not help. The limit is generous because citizens on mobile data share addresses.

Only keyed hashes of the device and of the address are stored or counted, never the values themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import Context
from bot.errors import ValidationError
from bot.privacy import mask_text, normalise_text
from bot.throttle import Limit, hit
from models.tables import Desk, DeskRating

SCORES = (1, 2, 3)
MAX_COMMENT = 1000
NETWORK_DESK_LIMIT = Limit(20, timedelta(days=1))
_DEVICE_LOCK = Limit(1, timedelta(days=1))


class RatingStatus(StrEnum):
    RECORDED = "recorded"
    UPDATED = "updated"
    LIMITED = "limited"


@dataclass(frozen=True)
class RatingResult:
    status: RatingStatus
    score: int | None = None


def _comment(text: str) -> str:
    """Normalised and masked: comments reach the unit's officials, who must not learn phone numbers."""
    text = normalise_text(text)
    if len(text) > MAX_COMMENT:
        raise ValidationError("error.description_too_long", max=MAX_COMMENT)
    return mask_text(text)


def _local_midnight(ctx: Context) -> datetime:
    return datetime.combine(ctx.local_date(), time(0), tzinfo=ctx.province.timezone)


async def _todays_rating(ctx: Context, session: AsyncSession, desk_code: str, device: str) -> DeskRating | None:
    query = (
        select(DeskRating)
        .where(DeskRating.desk_code == desk_code, DeskRating.day == ctx.local_date(), DeskRating.client_hash == device)
        .order_by(DeskRating.id)
        .limit(1)
        .with_for_update()
    )
    return (await session.execute(query)).scalar_one_or_none()


async def rate_desk(
    ctx: Context,
    session: AsyncSession,
    desk: Desk,
    *,
    score: int,
    device: str,
    network: str | None = None,
    comment: str = "",
) -> RatingResult:
    """Record (or change) today's rating of ``desk`` from ``device``; in the caller's transaction.

    ``device`` and ``network`` are keyed hashes (``bot.privacy.lookup_hash``, ``bot.throttle.client_hash``).
    A refusal (``LIMITED``) still counts against the network: commit the transaction either way.
    """
    if score not in SCORES:
        raise ValidationError("desk.error.bad_score")
    if not desk.active:
        raise ValidationError("error.unknown_desk")
    text = _comment(comment)
    # Holding this counter's row lock serialises two simultaneous first ratings from one device.
    await hit(session, f"rd:{desk.code}", device[:40], _DEVICE_LOCK, now=ctx.now(), start=_local_midnight(ctx))
    existing = await _todays_rating(ctx, session, desk.code, device)
    if existing is not None:
        existing.score = score
        if text:
            existing.comment = text
        return RatingResult(RatingStatus.UPDATED, score)
    if network is not None and not await hit(
        session, f"rn:{desk.code}", network[:40], NETWORK_DESK_LIMIT, now=ctx.now(), start=_local_midnight(ctx)
    ):
        return RatingResult(RatingStatus.LIMITED)
    session.add(
        DeskRating(
            desk_code=desk.code,
            day=ctx.local_date(),
            score=score,
            comment=text,
            client_hash=device,
            created_at=ctx.now(),
        )
    )
    await session.flush()
    return RatingResult(RatingStatus.RECORDED, score)


async def todays_score(ctx: Context, session: AsyncSession, desk_code: str, device: str) -> int | None:
    """The score this device gave the desk today, if any (the thank-you page shows it)."""
    query = select(DeskRating.score).where(
        DeskRating.desk_code == desk_code, DeskRating.day == ctx.local_date(), DeskRating.client_hash == device
    )
    return await session.scalar(query.limit(1))


async def comment_on_rating(ctx: Context, session: AsyncSession, desk: Desk, *, device: str, comment: str) -> bool:
    """Add a comment to today's rating from this device; False when there is no such rating to comment on."""
    text = _comment(comment)
    if not text:
        raise ValidationError("desk.error.comment_empty")
    existing = await _todays_rating(ctx, session, desk.code, device)
    if existing is None:
        return False
    existing.comment = text
    return True
