"""One-stop desks (bộ phận tiếp nhận và trả kết quả): adding, listing, disabling, and reading a QR payload.

A desk belongs to a unit; its QR code carries a signed payload (``qr.payload``). Every entry point that
receives a payload (the landing page, the Telegram ``/start``, the web chat) goes through ``desk_from_payload``
so that a forged, malformed or disabled desk is refused the same way everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.context import Context
from bot.errors import NotFound, ValidationError
from bot.intake import Draft, Submitted, submit_item
from bot.privacy import normalise_text
from models.tables import Desk
from qr.payload import DESK_CODE, verify_desk

MAX_NAME = 200
# What a "problem with this desk's staff" is filed as: a report (phản ánh) in the conduct category, when
# the province has one (the bundled data call it thai_do_can_bo), else its catch-all.
REPORT_TYPE = "phan_anh"
CONDUCT_CATEGORIES = ("thai_do_can_bo", "khac")
_SLUG_RE = re.compile(r"[^a-z0-9]+")


def _default_code_stem(unit_code: str) -> str:
    """``ubnd_xa_muong_phang`` → ``ubnd-xa-muong-phang``, short enough to leave room for ``-NN``."""
    stem = _SLUG_RE.sub("-", unit_code.lower()).strip("-") or "desk"
    return stem[:28].rstrip("-")


async def _free_code(session: AsyncSession, unit_code: str) -> str:
    stem = _default_code_stem(unit_code)
    taken = set((await session.execute(select(Desk.code).where(Desk.code.like(f"{stem}-%")))).scalars().all())
    number = 1
    while f"{stem}-{number}" in taken:
        number += 1
    return f"{stem}-{number}"


async def add_desk(
    ctx: Context,
    session: AsyncSession,
    *,
    unit_code: str,
    name: str,
    commune_code: str | None = None,
    code: str | None = None,
    actor: str = "cli",
) -> Desk:
    """Create a desk of ``unit_code``; without ``code`` one is derived from the unit (``ubnd-xa-…-1``).

    Without ``commune_code`` a commune People's Committee's desk takes its commune, so that items filed
    from it are pre-placed there.
    """
    unit = ctx.province.units.get(unit_code)
    if unit is None:
        raise ValidationError("error.unknown_unit", value=unit_code)
    name = normalise_text(name)
    if not name:
        raise ValidationError("desk.error.name_required")
    if len(name) > MAX_NAME:
        raise ValidationError("error.description_too_long", max=MAX_NAME)
    if commune_code is None:
        commune_code = unit.commune_code
    elif commune_code not in ctx.province.communes:
        raise ValidationError("error.unknown_commune", value=commune_code)
    if code is None:
        code = await _free_code(session, unit_code)
    elif not DESK_CODE.match(code):
        raise ValidationError("desk.error.bad_code", value=code)
    if await session.get(Desk, code) is not None:
        raise ValidationError("desk.error.code_taken", value=code)
    desk = Desk(code=code, unit_code=unit_code, commune_code=commune_code, name=name, active=True, created_at=ctx.now())
    session.add(desk)
    await session.flush()
    await audit.append(
        session, action="desk_add", actor=actor, now=ctx.now(), data={"desk": code, "unit": unit_code, "name": name}
    )
    return desk


async def set_desk_active(ctx: Context, session: AsyncSession, code: str, active: bool, *, actor: str = "cli") -> Desk:
    """Disable a desk (its QR codes stop working at once, everywhere) or enable it again."""
    desk = await session.get(Desk, code, with_for_update=True)
    if desk is None:
        raise NotFound("desk.error.unknown", value=code)
    if desk.active != active:
        desk.active = active
        await audit.append(
            session, action="desk_enable" if active else "desk_disable", actor=actor, now=ctx.now(), data={"desk": code}
        )
    return desk


async def list_desks(
    session: AsyncSession, *, unit_code: str | None = None, active_only: bool = False
) -> Sequence[Desk]:
    query = select(Desk).order_by(Desk.unit_code, Desk.code)
    if unit_code is not None:
        query = query.where(Desk.unit_code == unit_code)
    if active_only:
        query = query.where(Desk.active.is_(True))
    return (await session.execute(query)).scalars().all()


async def desk_from_payload(ctx: Context, session: AsyncSession, payload: str) -> Desk | None:
    """The active desk a genuine payload names; None for a forged, truncated, malformed or disabled one."""
    code = verify_desk(ctx.keys, payload)
    if code is None:
        return None
    desk = await session.get(Desk, code)
    if desk is None or not desk.active:
        return None
    return desk


def conduct_category(ctx: Context) -> str:
    for code in CONDUCT_CATEGORIES:
        if code in ctx.province.categories:
            return code
    return next(iter(ctx.province.categories))


async def report_desk_staff(
    ctx: Context, session: AsyncSession, desk: Desk, *, description: str, channel: str, channel_id: str
) -> Submitted:
    """File an anonymous report about the conduct of the desk's staff.

    It is an item *about* the desk's unit, so routing sends it to that unit's supervisor, never to the
    unit itself (DESIGN.md, "Protecting the citizen" 4). In the caller's transaction.
    """
    if not desk.active:
        raise ValidationError("error.unknown_desk")
    draft = Draft(
        type=REPORT_TYPE,
        category=conduct_category(ctx),
        description=description,
        commune_code=desk.commune_code,
        about_unit_code=desk.unit_code,
        desk_code=desk.code,
        anonymous=True,
    )
    return await submit_item(ctx, session, draft, channel=channel, channel_id=channel_id)
