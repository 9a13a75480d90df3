"""Actions on an item after intake, one function each (like Zulip's ``zerver/actions``).

Every function expects to run inside the caller's transaction and locks the item row first
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite transactions are already exclusive), then checks the
lifecycle, changes the item and its clocks, and appends the audit event. Authorisation of *who* may act is
the caller's job (``bot.officials``); these functions enforce *what* may happen.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.cards import edit_card, notify_unit, post_card, refresh_cards
from bot.clocks import next_alarm
from bot.context import Context
from bot.deadlines import Deadline, accept_deadline, extend_deadline, resolve_deadline, resume_after_pause
from bot.errors import NotFound, ValidationError
from bot.i18n import Localized, Msg, format_day
from bot.intake import MAX_ATTACHMENTS, MAX_DESCRIPTION, new_clock
from bot.lifecycle import Status, check_transition
from bot.notify import notify_citizen
from bot.outbox import tell_coordinators
from bot.privacy import mask_attachments, mask_text, normalise_text, pseudonym_tag
from bot.routing import supervisor_of
from models.tables import AuditEvent, Clock, Item, ItemCard, ItemMessage, Pause, RoutingDecision

MAX_REASON = 1000


async def lock_item(session: AsyncSession, item_id: int) -> Item:
    item = (
        await session.execute(
            select(Item).where(Item.id == item_id).with_for_update().execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if item is None:
        raise NotFound("error.not_found")
    return item


async def item_by_receipt(session: AsyncSession, receipt_code: str) -> Item | None:
    return (await session.execute(select(Item).where(Item.receipt_code == receipt_code))).scalar_one_or_none()


async def clocks_of(session: AsyncSession, item_id: int) -> dict[str, Clock]:
    rows = (await session.execute(select(Clock).where(Clock.item_id == item_id))).scalars().all()
    return {clock.kind: clock for clock in rows}


def _deadline_of(clock: Clock) -> Deadline:
    return Deadline(
        kind=clock.kind,  # type: ignore[arg-type]
        start=clock.start_date,
        due=clock.due_date,
        days=clock.days,
        unit=clock.day_unit,  # type: ignore[arg-type]
        basis=clock.basis,
        rule=clock.kind,
        paused=clock.paused_days,
    )


def _set_due(ctx: Context, clock: Clock, deadline: Deadline) -> None:
    clock.start_date = deadline.start
    clock.due_date = deadline.due
    clock.days = deadline.days
    clock.day_unit = deadline.unit
    clock.basis = deadline.basis
    clock.paused_days = deadline.paused
    alarm = next_alarm(ctx.province, ctx.calendar, deadline.due, ctx.now())
    clock.next_due_at = alarm.at if alarm else None


def _stop(clock: Clock | None, ctx: Context) -> None:
    if clock is not None and clock.met_at is None:
        clock.met_at = ctx.now()
        clock.next_due_at = None


def _reason(text: str, *, limit: int = MAX_REASON) -> str:
    text = normalise_text(text)
    if not text:
        raise ValidationError("error.reason_required")
    if len(text) > limit:
        raise ValidationError("error.description_too_long", max=limit)
    return text


def _contribution(text: str, attachments: Sequence[dict[str, Any]], *, empty_key: str) -> str:
    """Words and files added to an item's thread (by the citizen or the unit): not empty, within limits."""
    text = normalise_text(text)
    if not text and not attachments:
        raise ValidationError(empty_key)
    if len(text) > MAX_DESCRIPTION:
        raise ValidationError("error.description_too_long", max=MAX_DESCRIPTION)
    if len(attachments) > MAX_ATTACHMENTS:
        raise ValidationError("error.too_many_attachments", max=MAX_ATTACHMENTS)
    return text


def _message(
    ctx: Context,
    item: Item,
    *,
    author: str,
    kind: str,
    text: str,
    attachments: Sequence[dict[str, Any]] = (),
    official_id: int | None = None,
) -> ItemMessage:
    """A thread message; citizen text and files are masked for officials, an official's kept as written."""
    citizen = author == "citizen"
    masked = mask_text(text) if citizen else text
    return ItemMessage(
        item_id=item.id,
        author=author,
        kind=kind,
        official_id=official_id,
        unit_code=item.unit_code,
        text_masked=masked,
        enc_text=ctx.vault.encrypt(text, "message.text") if citizen else None,
        attachments=mask_attachments(ctx.vault, attachments) if citizen else list(attachments),
        created_at=ctx.now(),
    )


async def accept_item(ctx: Context, session: AsyncSession, item: Item, *, actor: str) -> None:
    """Thụ lý: stop the accept clock and start the resolve clock from today. An item accepted before and then
    transferred keeps the resolve clock it has, extensions included: the citizen's wait does not restart."""
    item.status = check_transition(item.status, "accept") or item.status
    item.accepted_at = ctx.now()
    clocks = await clocks_of(session, item.id)
    accept = clocks.get("accept")
    accepted_before = accept is not None and accept.met_at is not None  # by the unit that transferred it
    _stop(accept, ctx)
    resolve: Deadline | None
    if accepted_before and "resolve" in clocks:
        resolve = _deadline_of(clocks["resolve"])
    else:
        resolve = resolve_deadline(
            ctx.province, ctx.calendar, item.type, ctx.local_date(), remote=item.remote, complex=item.complex
        )
        if resolve is not None and "resolve" in clocks:
            _set_due(ctx, clocks["resolve"], resolve)
    await audit.append(
        session,
        action="accept",
        actor=actor,
        item_id=item.id,
        public=True,
        now=ctx.now(),
        data={"unit": item.unit_code, "resolve_by": resolve.due.isoformat() if resolve else None},
    )
    await refresh_cards(ctx, session, item)
    await notify_citizen(
        ctx,
        session,
        item,
        Msg(
            "notify.accepted",
            {
                "code": item.receipt_code,
                "unit": _unit(ctx, item.unit_code),
                "resolve": Msg("notify.resolve_by", {"date": format_day("vi", resolve.due)}) if resolve else "",
            },
        ),
    )


async def request_info(
    ctx: Context, session: AsyncSession, item: Item, *, actor: str, question: str, official_id: int | None = None
) -> None:
    """Ask the citizen for more; the clocks stand still until they answer (the pause is recorded)."""
    question = _reason(question, limit=MAX_DESCRIPTION)
    before = item.status
    item.status = check_transition(item.status, "request_info") or item.status
    item.paused = True
    for clock in (await clocks_of(session, item.id)).values():
        if clock.met_at is None:
            clock.next_due_at = None
    session.add(Pause(item_id=item.id, started_on=ctx.local_date(), reason=question))
    session.add(_message(ctx, item, author="official", kind="question", text=question, official_id=official_id))
    await audit.append(
        session,
        action="request_info",
        actor=actor,
        item_id=item.id,
        public=True,
        now=ctx.now(),
        data={"from": Status(before).value},
    )
    await refresh_cards(ctx, session, item)
    await notify_citizen(
        ctx,
        session,
        item,
        Msg(
            "notify.request_info", {"code": item.receipt_code, "unit": _unit(ctx, item.unit_code), "question": question}
        ),
        actions=("add",),
    )


async def add_info(
    ctx: Context,
    session: AsyncSession,
    item: Item,
    *,
    text: str,
    attachments: Sequence[dict[str, Any]] = (),
    actor: str = "citizen",
) -> None:
    """The citizen adds information; if the item was waiting for it, the clocks resume, shifted by the pause."""
    check_transition(item.status, "add_info")
    text = _contribution(text, attachments, empty_key="error.reason_required")
    resumed = False
    if item.status == Status.NEEDS_INFO:
        today = ctx.local_date()
        pause = (
            (
                await session.execute(
                    select(Pause).where(Pause.item_id == item.id, Pause.ended_on.is_(None)).order_by(Pause.id.desc())
                )
            )
            .scalars()
            .first()
        )
        for clock in (await clocks_of(session, item.id)).values():
            if clock.met_at is None:
                started = pause.started_on if pause else today
                _set_due(ctx, clock, resume_after_pause(ctx.calendar, _deadline_of(clock), started, today))
        if pause is not None:
            pause.ended_on = today
        item.paused = False
        item.status = await _status_before_pause(session, item)
        resumed = True
    session.add(_message(ctx, item, author="citizen", kind="addition", text=text, attachments=attachments))
    await audit.append(
        session,
        action="add_info",
        actor=actor,
        item_id=item.id,
        public=True,
        now=ctx.now(),
        data={"resumed": resumed, "attachments": len(attachments)},
    )
    await refresh_cards(ctx, session, item)
    await notify_unit(
        ctx,
        session,
        item,
        Msg(
            "notify.unit_addition",
            {"code": item.receipt_code, "pseudonym": _pseudonym(ctx, item), "text": mask_text(text)},
        ),
        attachments=mask_attachments(ctx.vault, attachments),
    )


async def answer_item(
    ctx: Context,
    session: AsyncSession,
    item: Item,
    *,
    actor: str,
    text: str,
    attachments: Sequence[dict[str, Any]] = (),
    official_id: int | None = None,
) -> ItemMessage:
    """The unit's answer. Answering an item not yet accepted accepts it too."""
    text = _contribution(text, attachments, empty_key="error.answer_empty")
    item.status = check_transition(item.status, "answer") or item.status
    now = ctx.now()
    item.accepted_at = item.accepted_at or now
    item.answered_at = now
    for clock in (await clocks_of(session, item.id)).values():
        _stop(clock, ctx)
    message = _message(
        ctx, item, author="official", kind="answer", text=text, attachments=attachments, official_id=official_id
    )
    session.add(message)
    await audit.append(
        session, action="answer", actor=actor, item_id=item.id, public=True, now=now, data={"unit": item.unit_code}
    )
    await refresh_cards(ctx, session, item)
    await notify_citizen(
        ctx,
        session,
        item,
        Msg("notify.answer", {"code": item.receipt_code, "unit": _unit(ctx, item.unit_code), "answer": text}),
        actions=("rate",),
        attachments=list(attachments),
    )
    return message


async def transfer_item(
    ctx: Context, session: AsyncSession, item: Item, *, actor: str, to_unit: str, reason: str
) -> int:
    """Move the item to the competent unit; its clocks keep running (the citizen's wait does not restart). The new
    unit must accept it (the item is "submitted" there); an acceptance by the first unit stays met on its clock.
    Returns the copies of the card the new unit gets: 0 when nobody there uses PAKN yet (its first official will
    get it, see ``bot.cards.post_waiting_cards``)."""
    reason = _reason(reason)
    if to_unit not in ctx.province.units:
        raise ValidationError("error.unknown_unit", value=to_unit)
    if to_unit == item.unit_code:
        raise ValidationError("error.same_unit")
    if item.about_unit_code is not None and to_unit == item.about_unit_code:
        raise ValidationError("error.conflict_of_interest")
    item.status = check_transition(item.status, "transfer") or item.status
    from_unit = item.unit_code
    item.unit_code = to_unit
    item.accepted_at = None  # the new unit has not accepted it (the first acceptance stays on its clock)
    session.add(
        RoutingDecision(item_id=item.id, unit_code=to_unit, rule_id="transfer", reason=reason, created_at=ctx.now())
    )
    await audit.append(
        session,
        action="transfer",
        actor=actor,
        item_id=item.id,
        public=True,
        now=ctx.now(),
        data={"from": from_unit, "to": to_unit, "reason": reason},
    )
    reached = await _move_cards(ctx, session, item, from_unit)
    await notify_citizen(
        ctx, session, item, Msg("notify.transferred", {"code": item.receipt_code, "unit": _unit(ctx, to_unit)})
    )
    return reached


async def extend_item(ctx: Context, session: AsyncSession, item: Item, *, actor: str, reason: str) -> Deadline:
    """Gia hạn: push the resolve-by date within the type's limit; each extension is recorded."""
    reason = _reason(reason)
    check_transition(item.status, "extend")
    clock = (await clocks_of(session, item.id)).get("resolve")
    if clock is None:
        raise ValidationError("error.no_extension")
    extended = extend_deadline(ctx.province, ctx.calendar, item.type, _deadline_of(clock), clock.extensions)
    clock.due_date = extended.due
    clock.extensions += 1
    alarm = next_alarm(ctx.province, ctx.calendar, extended.due, ctx.now())
    clock.next_due_at = alarm.at if alarm else None
    await audit.append(
        session,
        action="extend",
        actor=actor,
        item_id=item.id,
        public=True,
        now=ctx.now(),
        data={"resolve_by": extended.due.isoformat(), "rule": extended.rule, "reason": reason, "basis": extended.basis},
    )
    await refresh_cards(ctx, session, item)
    await notify_citizen(
        ctx,
        session,
        item,
        Msg(
            "notify.extended",
            {
                "code": item.receipt_code,
                "date": format_day("vi", extended.due),
                "reason": reason,
                "basis": extended.basis,
            },
        ),
    )
    return extended


async def reject_item(
    ctx: Context, session: AsyncSession, item: Item, *, actor: str, guidance: str, official_id: int | None = None
) -> None:
    """Không thuộc thẩm quyền: close with guidance telling the citizen where to go instead."""
    guidance = _reason(guidance, limit=MAX_DESCRIPTION)
    item.status = check_transition(item.status, "reject") or item.status
    item.closed_at = ctx.now()
    for clock in (await clocks_of(session, item.id)).values():
        _stop(clock, ctx)
    session.add(_message(ctx, item, author="official", kind="rejection", text=guidance, official_id=official_id))
    await audit.append(session, action="reject", actor=actor, item_id=item.id, public=True, now=ctx.now())
    await refresh_cards(ctx, session, item)
    await notify_citizen(
        ctx,
        session,
        item,
        Msg("notify.rejected", {"code": item.receipt_code, "unit": _unit(ctx, item.unit_code), "guidance": guidance}),
    )


async def rate_item(ctx: Context, session: AsyncSession, item: Item, *, rating: int, actor: str = "citizen") -> None:
    """The citizen rates the answer 1–5; a satisfied rating (3 or more) closes the item."""
    if not isinstance(rating, int) or not 1 <= rating <= 5:
        raise ValidationError("error.invalid_rating")
    check_transition(item.status, "rate")
    item.rating = rating
    if rating >= 3 and item.status == Status.ANSWERED:
        item.status = Status.CLOSED
        item.closed_at = ctx.now()
    await audit.append(
        session, action="rate", actor=actor, item_id=item.id, public=True, now=ctx.now(), data={"rating": rating}
    )
    await notify_unit(ctx, session, item, Msg("notify.unit_rated", {"code": item.receipt_code, "rating": rating}))


async def reopen_item(ctx: Context, session: AsyncSession, item: Item, *, reason: str, actor: str = "citizen") -> str:
    """An unsatisfied citizen reopens the item; it goes to the supervising unit with fresh clocks."""
    reason = _reason(reason, limit=MAX_DESCRIPTION)
    item.status = check_transition(item.status, "reopen") or item.status
    supervisor = supervisor_of(ctx.province, item.unit_code)
    from_unit = item.unit_code
    item.unit_code = supervisor
    item.reopen_count += 1
    item.closed_at = None
    item.accepted_at = None
    session.add(
        RoutingDecision(item_id=item.id, unit_code=supervisor, rule_id="reopen", reason=reason, created_at=ctx.now())
    )
    session.add(_message(ctx, item, author="citizen", kind="reopen", text=reason))
    clocks = await clocks_of(session, item.id)
    today = ctx.local_date()
    accept = accept_deadline(ctx.province, ctx.calendar, item.type, today, multi_place=item.multi_place)
    resolve = resolve_deadline(
        ctx.province, ctx.calendar, item.type, accept.due, remote=item.remote, complex=item.complex
    )
    for deadline in (accept, resolve):
        if deadline is None:
            continue
        clock = clocks.get(deadline.kind)
        if clock is None:
            session.add(new_clock(ctx, item.id, deadline))
        else:
            clock.met_at = None
            clock.extensions = 0
            clock.escalated = False
            _set_due(ctx, clock, deadline)
    await audit.append(
        session,
        action="reopen",
        actor=actor,
        item_id=item.id,
        public=True,
        now=ctx.now(),
        data={"from": from_unit, "to": supervisor},
    )
    if not await _move_cards(ctx, session, item, from_unit):
        await _tell_coordinators_nobody_has_it(ctx, session, item)
    return supervisor


async def close_item(ctx: Context, session: AsyncSession, item: Item, *, actor: str) -> None:
    item.status = check_transition(item.status, "close") or item.status
    item.closed_at = ctx.now()
    await audit.append(session, action="close", actor=actor, item_id=item.id, public=True, now=ctx.now())
    await refresh_cards(ctx, session, item)


def _unit(ctx: Context, code: str) -> Localized:
    unit = ctx.province.units[code]
    return Localized(unit.name_vi, unit.name_en)


def _pseudonym(ctx: Context, item: Item) -> Msg:
    return Msg("pseudonym", {"tag": pseudonym_tag(ctx.keys, item.id)})


async def _tell_coordinators_nobody_has_it(ctx: Context, session: AsyncSession, item: Item) -> None:
    """A reopened item went to a supervising unit where nobody uses PAKN yet: the coordinators are told, so that
    someone lets the unit know (its first official will get the card on joining)."""
    text = Msg("notify.nobody_at_unit", {"code": item.receipt_code, "unit": _unit(ctx, item.unit_code)})
    await tell_coordinators(ctx, session, text, item.id)


async def _status_before_pause(session: AsyncSession, item: Item) -> Status:
    """Where an item waiting for the citizen goes back to: the status it had when the question was asked (a
    reopened item stays reopened), as its request_info event recorded; for older events, by its acceptance."""
    asked = await session.scalar(
        select(AuditEvent.data)
        .where(AuditEvent.item_id == item.id, AuditEvent.action == "request_info")
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    before = (asked or {}).get("from")
    if before in (Status.SUBMITTED, Status.ACCEPTED, Status.REOPENED):
        return Status(before)
    return Status.ACCEPTED if item.accepted_at else Status.SUBMITTED


async def _move_cards(ctx: Context, session: AsyncSession, item: Item, from_unit: str) -> int:
    """The old unit's copies say where the item went and lose their buttons; the new unit gets the card (the
    copies queued are returned)."""
    old = (await session.execute(select(ItemCard).where(ItemCard.item_id == item.id))).scalars().all()
    for card in old:
        if card.message_id is not None:
            text = Msg("card.moved", {"code": item.receipt_code, "unit": _unit(ctx, item.unit_code)})
            edit_card(ctx, session, card, {"text": text.render("vi", html.escape), "buttons": []})
        await session.delete(card)
    return await post_card(ctx, session, item.id, item.unit_code)
