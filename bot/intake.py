"""Intake: validate a citizen's draft and create the item with everything that belongs to it.

The item, its first message, its routing decision, its clocks and its first audit event are written in the
caller's transaction, so a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot import audit
from bot.cards import post_card
from bot.citizens import citizen_filing
from bot.clocks import next_alarm
from bot.context import Context
from bot.deadlines import Deadline, accept_deadline, resolve_deadline
from bot.errors import DomainError, ValidationError
from bot.i18n import Localized
from bot.lifecycle import Status
from bot.privacy import mask_attachments, mask_text, normalise_phone, normalise_text, pseudonym_tag
from bot.receipts import new_receipt_code
from bot.routing import RouteDecision, route
from models.db import Prepared, upsert_insert
from models.tables import Clock, Desk, Item, ItemMessage, RoutingDecision

MIN_DESCRIPTION = 20
MAX_DESCRIPTION = 4000
MAX_ATTACHMENTS = 10
MAX_NAME = 100

_ITEMS: Table = Item.__table__  # type: ignore[assignment]
_MESSAGES: Table = ItemMessage.__table__  # type: ignore[assignment]
_DECISIONS: Table = RoutingDecision.__table__  # type: ignore[assignment]
_CLOCKS: Table = Clock.__table__  # type: ignore[assignment]
# A taken receipt code inserts nothing (and returns no id): the unique index decides, in the same statement.
_INSERT_ITEM = {
    dialect: Prepared(
        upsert_insert(dialect)(_ITEMS).on_conflict_do_nothing(index_elements=["receipt_code"]).returning(_ITEMS.c.id)
    )
    for dialect in ("sqlite", "postgresql")
}
_INSERT_MESSAGE = Prepared(_MESSAGES.insert())
_INSERT_DECISION = Prepared(_DECISIONS.insert())
_INSERT_CLOCKS = Prepared(_CLOCKS.insert())


@dataclass
class Draft:
    """What the citizen's dialog collected; plain data so it can live in the dialog state."""

    type: str
    category: str
    description: str
    commune_code: str | None = None
    about_unit_code: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    anonymous: bool = True
    name: str | None = None
    phone: str | None = None
    consent: bool = False
    latitude: float | None = None
    longitude: float | None = None
    desk_code: str | None = None
    multi_place: bool = False
    complex: bool = False


@dataclass(frozen=True)
class Filed:
    """The new item's keys; load the ``Item`` (``session.get(Item, id)``) for anything else."""

    id: int
    receipt_code: str
    unit_code: str
    citizen_id: int


@dataclass(frozen=True)
class Submitted:
    item: Filed
    decision: RouteDecision
    accept: Deadline
    resolve: Deadline | None
    pseudonym: str


def validate_description(text: str) -> str:
    text = normalise_text(text)
    if len(text) < MIN_DESCRIPTION:
        raise ValidationError("error.description_too_short", min=MIN_DESCRIPTION)
    if len(text) > MAX_DESCRIPTION:
        raise ValidationError("error.description_too_long", max=MAX_DESCRIPTION)
    return text


def validate_name(name: str) -> str:
    name = normalise_text(name)
    if not 2 <= len(name) <= MAX_NAME or not any(ch.isalpha() for ch in name):
        raise ValidationError("error.invalid_name")
    return name


def validate_draft(ctx: Context, draft: Draft) -> Draft:
    """Check every field against the province's data; return a normalised copy."""
    province = ctx.province
    rule = province.item_types.get(draft.type)
    if rule is None:
        raise ValidationError("error.unknown_type", value=draft.type)
    if draft.category not in province.categories:
        raise ValidationError("error.unknown_category", value=draft.category)
    if draft.commune_code is not None and draft.commune_code not in province.communes:
        raise ValidationError("error.unknown_commune", value=draft.commune_code)
    if draft.about_unit_code is not None and draft.about_unit_code not in province.units:
        raise ValidationError("error.unknown_unit", value=draft.about_unit_code)
    if len(draft.attachments) > MAX_ATTACHMENTS:
        raise ValidationError("error.too_many_attachments", max=MAX_ATTACHMENTS)
    description = validate_description(draft.description)
    name = phone = None
    if rule.identity_required and draft.anonymous:
        kind = Localized(vi=rule.name_vi, en=rule.name_en)
        raise ValidationError("error.identity_required", type=kind, basis=rule.identity_basis or "")
    if not draft.anonymous:
        if not draft.name or not draft.phone:
            raise ValidationError("error.name_and_phone")
        name = validate_name(draft.name)
        phone = normalise_phone(draft.phone)
        if not draft.consent:
            raise ValidationError("error.consent_required")
    return Draft(
        type=draft.type,
        category=draft.category,
        description=description,
        commune_code=draft.commune_code,
        about_unit_code=draft.about_unit_code,
        attachments=list(draft.attachments),
        anonymous=draft.anonymous,
        name=name,
        phone=phone,
        consent=draft.consent,
        latitude=draft.latitude,
        longitude=draft.longitude,
        desk_code=draft.desk_code,
        multi_place=draft.multi_place,
        complex=draft.complex,
    )


def receipt_codes(prefix: str) -> Iterator[str]:
    while True:
        yield new_receipt_code(prefix)


async def insert_item(connection: AsyncConnection, values: dict[str, Any], codes: Iterator[str]) -> tuple[int, str]:
    """Insert an item under the first of ``codes`` that no item has yet: its id and that code."""
    insert = _INSERT_ITEM[connection.dialect.name]
    for code in codes:
        item_id = (await insert.execute(connection, {**values, "receipt_code": code})).scalar()
        if item_id is not None:
            return item_id, code
    raise ValueError("no receipt code left to try")


def clock_values(ctx: Context, item_id: int, deadline: Deadline, *, alarm_after: Any = None) -> dict[str, Any]:
    """A new clock's columns: the deadline, and when its first reminder is due."""
    alarm = next_alarm(ctx.province, ctx.calendar, deadline.due, alarm_after or ctx.now())
    return {
        "item_id": item_id,
        "kind": deadline.kind,
        "start_date": deadline.start,
        "due_date": deadline.due,
        "days": deadline.days,
        "day_unit": deadline.unit,
        "basis": deadline.basis,
        "extensions": 0,
        "paused_days": 0,
        "met_at": None,
        "next_due_at": alarm.at if alarm else None,
        "escalated": False,
    }


def new_clock(ctx: Context, item_id: int, deadline: Deadline, *, alarm_after: Any = None) -> Clock:
    return Clock(**clock_values(ctx, item_id, deadline, alarm_after=alarm_after))


@contextlib.contextmanager
def _no_refusal_from_here() -> Iterator[None]:
    """Around a filing's writes: a refusal there would leave half an item behind, so it becomes an error that rolls
    the caller's whole transaction back instead of an answer the conversation would commit."""
    try:
        yield
    except DomainError as error:
        raise RuntimeError(f"a filing was refused after its first write ({error.key})") from error


async def submit_item(
    ctx: Context,
    session: AsyncSession,
    draft: Draft,
    *,
    channel: str,
    channel_id: str,
    actor: str = "citizen",
    locale: str = "vi",
    recorded_by: int | None = None,
    codes: Iterator[str] | None = None,
) -> Submitted:
    """Create the item from a citizen's draft, in the caller's transaction.

    The rows are written with prepared Core statements on the session's connection (``models.db.Prepared``):
    filing is the costliest update a citizen sends, and the ORM's unit of work, then SQLAlchemy's execution of each
    statement, cost more than the statements themselves. Every refusal (a
    ``bot.errors.DomainError``) comes before the first write, so a refused filing leaves nothing behind without a
    savepoint; one raised later becomes a RuntimeError, which rolls the caller's whole transaction back.
    ``codes``: the receipt codes to try, in order (default: random ones)."""
    draft = validate_draft(ctx, draft)
    province = ctx.province
    now = ctx.now()
    desk_unit = None
    if draft.desk_code is not None:
        desk = await session.get(Desk, draft.desk_code)
        if desk is None or not desk.active:
            raise ValidationError("error.unknown_desk")
        desk_unit = desk.unit_code
    decision = route(
        province,
        type_code=draft.type,
        category=draft.category,
        commune_code=draft.commune_code,
        about_unit_code=draft.about_unit_code,
        desk_unit_code=desk_unit,
    )
    remote = draft.commune_code is not None and province.communes[draft.commune_code].remote
    received = ctx.local_date(now)
    accept = accept_deadline(province, ctx.calendar, draft.type, received, multi_place=draft.multi_place)
    resolve = resolve_deadline(province, ctx.calendar, draft.type, accept.due, remote=remote, complex=draft.complex)
    with _no_refusal_from_here():
        connection = await session.connection()
        citizen_id = await citizen_filing(
            ctx,
            connection,
            channel,
            channel_id,
            locale=locale,
            name=None if draft.anonymous else draft.name,
            phone=None if draft.anonymous else draft.phone,
        )
        item_id, receipt_code = await insert_item(
            connection,
            {
                "type": draft.type,
                "category": draft.category,
                "commune_code": draft.commune_code,
                "unit_code": decision.unit_code,
                "status": Status.SUBMITTED,
                "citizen_id": citizen_id,
                "channel": channel,
                "desk_code": draft.desk_code,
                "recorded_by": recorded_by,
                "anonymous": draft.anonymous,
                "about_unit_code": draft.about_unit_code,
                "complex": draft.complex,
                "remote": remote,
                "multi_place": draft.multi_place,
                "latitude": draft.latitude,
                "longitude": draft.longitude,
                "received_at": now,
            },
            codes or receipt_codes(province.receipt_prefix),
        )
        await _INSERT_MESSAGE.execute(
            connection,
            {
                "item_id": item_id,
                "author": "citizen",
                "kind": "description",
                "text_masked": mask_text(draft.description),
                "enc_text": ctx.vault.encrypt(draft.description, "message.text"),
                "attachments": mask_attachments(ctx.vault, draft.attachments),
                "created_at": now,
            },
        )
        await _INSERT_DECISION.execute(
            connection,
            {
                "item_id": item_id,
                "unit_code": decision.unit_code,
                "rule_id": decision.rule_id,
                "reason": decision.reason,
                "created_at": now,
            },
        )
        clocks = [clock_values(ctx, item_id, deadline) for deadline in (accept, resolve) if deadline is not None]
        await _INSERT_CLOCKS.execute(connection, clocks)
        await post_card(ctx, session, item_id, decision.unit_code)
        await audit.append(
            session,
            action="submit",
            actor=actor,
            item_id=item_id,
            public=True,
            now=now,
            data={
                "type": draft.type,
                "category": draft.category,
                "commune": draft.commune_code,
                "unit": decision.unit_code,
                "rule": decision.rule_id,
                "anonymous": draft.anonymous,
                "channel": channel,
            },
        )
        filed = Filed(item_id, receipt_code, decision.unit_code, citizen_id)
        return Submitted(filed, decision, accept, resolve, pseudonym_tag(ctx.keys, item_id))
