"""Sending the weekly digests: when, to whom, and exactly once.

When. A week's digest is due at the configured weekday and time of the following week (scheduler.toml,
``[digest]``, Monday 07:30 in the province's time zone by default); when that day is not a working day (Tết,
Giỗ Tổ observed on a Monday, 31/8), it is due at the same time on the next working day. ``send_due_digests``
is called periodically by the scheduler and sends whatever is due and not yet sent.

To whom. Each unit's digest goes to every active head (*thủ trưởng*) of the unit; the province-wide digest goes
to every active coordinator. A head receives the digests that fell due while they were head: someone who
joins on Wednesday is not sent a backlog of old weeks.

Catch-up. A week missed while the service was down is sent when it comes back, oldest week first, each
labelled with its week and with the day it was due. Only the last ``CATCH_UP_WEEKS`` weeks are caught up;
older ones are history a head can still ask for with ``pakn digest --week``.

Exactly once. A digest is claimed by inserting its ``digest_runs`` row (unique on unit and week) in the same
transaction that writes its outbox messages. Of two processes racing for one digest, the second's insert fails
on the unique constraint (PostgreSQL makes it wait for the first to commit), so it writes nothing; after a
restart the row is still there. The figures are computed before that short transaction, not inside it: on
SQLite a transaction holds the database's write lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.context import Context
from bot.digest import PROVINCE, Digest, IsoWeek, ProvinceDigest, compute_digests, compute_province_digest, digest_day
from bot.digest_render import Details, RenderedDigest, load_all_details, load_details, render_digest
from bot.outbox import enqueue
from models.db import read_only_session
from models.tables import DigestRun, Official

log = logging.getLogger(__name__)

CATCH_UP_WEEKS = 4
CHANNEL = "telegram"
ROLES = ("head", "coordinator")


@dataclass(frozen=True)
class Recipient:
    official_id: int
    locale: str


@dataclass
class SendReport:
    claimed: list[str] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def send_moment(ctx: Context, week: IsoWeek) -> datetime:
    """When ``week``'s digest is due, as an aware datetime in the province's time zone."""
    return datetime.combine(digest_day(ctx, week), ctx.province.scheduler.digest_time, tzinfo=ctx.province.timezone)


def due_weeks(ctx: Context, now: datetime) -> list[IsoWeek]:
    """The weeks (at most ``CATCH_UP_WEEKS`` back) whose digest is due at ``now``, oldest first."""
    current = IsoWeek.of(ctx.local_date(now))
    weeks = [current.shift(-back) for back in range(CATCH_UP_WEEKS, 0, -1)]
    return [week for week in weeks if send_moment(ctx, week) <= now]


def late_due(ctx: Context, week: IsoWeek, now: datetime) -> date | None:
    """The day the digest was due, when it goes out on a later day (the message says so)."""
    due = digest_day(ctx, week)
    return due if ctx.local_date(now) > due else None


async def active_recipients(ctx: Context, *, joined_by: datetime | None = None) -> dict[str, list[Recipient]]:
    """Active heads per unit code, and active coordinators under ``PROVINCE``.

    With ``joined_by``, only officials who held the role by then (the digest fell due while they were head).
    """
    query = select(Official.id, Official.role, Official.unit_code, Official.locale, Official.created_at).where(
        Official.active.is_(True), Official.role.in_(ROLES)
    )
    async with ctx.sessions() as session:
        rows = (await session.execute(query.order_by(Official.id))).all()
    result: dict[str, list[Recipient]] = {}
    for official_id, role, unit_code, locale, created_at in rows:
        if joined_by is not None and created_at > joined_by:
            continue
        key = PROVINCE if role == "coordinator" else unit_code
        result.setdefault(key, []).append(Recipient(official_id, locale or "vi"))
    return result


async def already_sent(ctx: Context, weeks: Iterable[IsoWeek]) -> set[tuple[str, str]]:
    """(unit or ``PROVINCE``, week label) pairs already claimed: a cheap pre-check; the claim itself decides."""
    labels = [week.label for week in weeks]
    async with ctx.sessions() as session:
        rows = await session.execute(select(DigestRun.unit_code, DigestRun.week).where(DigestRun.week.in_(labels)))
        return {(unit_code, week) for unit_code, week in rows}


async def claim_and_enqueue(
    ctx: Context,
    key: str,
    week: IsoWeek,
    recipients: Iterable[Recipient],
    rendered: Mapping[str, RenderedDigest],
) -> bool:
    """Claim (``key``, ``week``) and write its messages to the outbox in one transaction; False if already claimed."""
    try:
        async with ctx.sessions.begin() as session:
            session.add(DigestRun(unit_code=key, week=week.label, created_at=ctx.now()))
            await session.flush()
            for recipient in recipients:
                for payload in rendered[recipient.locale].payloads():
                    enqueue(
                        ctx,
                        session,
                        channel=CHANNEL,
                        recipient_kind="official",
                        recipient_id=recipient.official_id,
                        payload=payload,
                    )
    except IntegrityError:
        log.info("digest %s %s was already sent by another process", key, week.label)
        return False
    return True


async def send_week(
    ctx: Context, week: IsoWeek, targets: Mapping[str, list[Recipient]], *, now: datetime
) -> SendReport:
    """Compute ``week`` for the targeted units (every unit when coordinators are among them), then claim and
    enqueue each digest. A unit that fails to render is logged and left unclaimed for the next attempt."""
    report = SendReport()
    overdue_label = late_due(ctx, week, now)
    province: ProvinceDigest | None = None
    async with read_only_session(ctx.engine) as session:  # seconds of aggregates: not on the chats' connection
        if PROVINCE in targets:
            province = await compute_province_digest(ctx, session, week)
            digests: dict[str, Digest] = dict(province.units)
        else:
            digests = {}
        missing = [key for key in targets if key != PROVINCE and key not in digests]  # a unit no longer configured
        if missing:
            digests.update(await compute_digests(ctx, session, week, missing))
    shared: dict[str, Details] | None = None
    for key, recipients in targets.items():
        if not recipients:
            continue
        if (key, week.label) in await already_sent(ctx, [week]):
            report.already_sent.append(key)
            continue
        try:
            digest = province.total if key == PROVINCE and province is not None else digests[key]
            if digest.is_empty:
                details = Details([], [])
            elif len(targets) == 1:
                async with read_only_session(ctx.engine) as session:
                    details = await load_details(ctx, session, digest)
            else:  # many units: every unit's rows from two queries, not two per unit
                if shared is None:
                    async with read_only_session(ctx.engine) as session:
                        shared = await load_all_details(ctx, session, week)
                details = shared.get(key, Details([], []))
            rendered = {
                locale: await render_digest(
                    ctx,
                    digest,
                    locale,
                    details,
                    province=province if key == PROVINCE else None,
                    late_due=overdue_label,
                )
                for locale in sorted({recipient.locale for recipient in recipients})
            }
        except Exception:
            log.exception("digest %s %s could not be rendered; will retry", key, week.label)
            report.failed.append(key)
            continue
        if await claim_and_enqueue(ctx, key, week, recipients, rendered):
            log.info("digest %s %s queued for %d recipient(s)", key, week.label, len(recipients))
            report.claimed.append(key)
        else:
            report.already_sent.append(key)
    return report


async def send_due_digests(ctx: Context, now: datetime | None = None) -> int:
    """Send every digest that is due and not yet sent; return how many digests were claimed by this call.

    Cheap when there is nothing to do (two small queries), so the scheduler may call it every minute.
    """
    now = now or ctx.now()
    weeks = due_weeks(ctx, now)
    if not weeks:
        return 0
    done = await already_sent(ctx, weeks)
    claimed = 0
    for week in weeks:
        recipients = await active_recipients(ctx, joined_by=send_moment(ctx, week))
        targets = {key: people for key, people in recipients.items() if (key, week.label) not in done}
        if targets:
            claimed += len((await send_week(ctx, week, targets, now=now)).claimed)
    return claimed
