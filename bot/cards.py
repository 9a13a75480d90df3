"""The item card officials act on: what it says, which buttons it carries, and where it goes.

A card names the citizen only by a per-item pseudonym and shows the text with phone numbers, ID numbers
and e-mail addresses masked. It goes to the unit's bound groups, or to each officer and head of the unit
when no group is bound; every copy is remembered (``item_cards``) so the card is edited in place when the
item changes. Buttons carry ``it:<item id>:<action>``; the server re-checks everything when one is pressed.
"""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import Table, bindparam, exists, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import Context
from bot.i18n import Msg, format_day
from bot.lifecycle import OPEN_STATUSES, Status
from bot.officials import Role
from bot.outbox import enqueue
from bot.privacy import pseudonym_tag
from models.db import Prepared
from models.tables import Clock, Item, ItemCard, ItemMessage, Official, UnitChat

CARD_ROLES = (Role.OFFICER.value, Role.HEAD.value, Role.COORDINATOR.value)
_GROUPS: Table = UnitChat.__table__  # type: ignore[assignment]
_OFFICIALS: Table = Official.__table__  # type: ignore[assignment]
_ACTIVE_GROUP = (_GROUPS.c.unit_code == bindparam("unit_code"), _GROUPS.c.active.is_(True))
# Where a unit's cards and notices go, in one statement: its bound groups, else each officer, head and coordinator.
_CARD_TARGETS = Prepared(
    union_all(
        select(literal("group").label("kind"), _GROUPS.c.id, literal("vi").label("locale")).where(*_ACTIVE_GROUP),
        select(literal("official").label("kind"), _OFFICIALS.c.id, _OFFICIALS.c.locale).where(
            _OFFICIALS.c.unit_code == bindparam("unit_code"),
            _OFFICIALS.c.active.is_(True),
            _OFFICIALS.c.role.in_(CARD_ROLES),
            ~exists().where(*_ACTIVE_GROUP),
        ),
    ).order_by("kind", "id")
)


def _days_left(ctx: Context, due: Any) -> Msg:
    today = ctx.local_date()
    left = ctx.calendar.working_days_between(today, due)
    if left >= 0:
        return Msg("card.days_left", {"date": format_day("vi", due), "days": left})
    return Msg("card.overdue", {"date": format_day("vi", due), "days": -left})


def _buttons(ctx: Context, item: Item, clocks: dict[str, Clock]) -> list[list[tuple[str, str]]]:
    """(catalog key, callback data) rows for the item's current state."""
    data = f"it:{item.id}:"
    rows: list[list[tuple[str, str]]] = []
    status = item.status
    if status in (Status.SUBMITTED, Status.REOPENED):
        rows.append([("card.button.accept", data + "accept"), ("card.button.answer", data + "answer")])
        rows.append([("card.button.request_info", data + "request_info"), ("card.button.transfer", data + "transfer")])
        rows.append([("card.button.reject", data + "reject"), ("card.button.history", data + "history")])
    elif status == Status.ACCEPTED:
        rows.append([("card.button.answer", data + "answer"), ("card.button.request_info", data + "request_info")])
        second = [("card.button.transfer", data + "transfer")]
        rule = ctx.province.item_types[item.type].extension
        resolve = clocks.get("resolve")
        if rule is not None and resolve is not None and resolve.extensions < rule.max:
            second.append(("card.button.extend", data + "extend"))
        rows.append(second)
        rows.append([("card.button.history", data + "history")])
    else:
        rows.append([("card.button.history", data + "history")])
    return rows


async def card_payload(ctx: Context, session: AsyncSession, item: Item, locale: str = "vi") -> dict[str, Any]:
    """The card as an outbox payload (rendered in ``locale``; user text HTML-escaped)."""
    clocks = {c.kind: c for c in (await session.execute(select(Clock).where(Clock.item_id == item.id))).scalars()}
    description = await session.scalar(
        select(ItemMessage).where(ItemMessage.item_id == item.id, ItemMessage.kind == "description")
    )
    province = ctx.province
    rule = province.item_types[item.type]
    category = province.categories[item.category]
    commune = province.communes.get(item.commune_code or "")
    lines = [
        Msg("card.title", {"code": item.receipt_code, "type": rule.name(locale), "category": category.name(locale)}),
        Msg("card.commune", {"value": commune.name if commune else Msg("commune.none")}),
        Msg(
            "card.sender",
            {
                "pseudonym": Msg("pseudonym", {"tag": pseudonym_tag(ctx.keys, item.id)}),
                "identity": Msg("card.anonymous" if item.anonymous else "card.identified"),
            },
        ),
        Msg("card.status", {"status": Msg(f"status.{item.status}")}),
    ]
    if item.status in (Status.SUBMITTED, Status.REOPENED) and "accept" in clocks:
        lines.append(Msg("card.accept_by", {"when": _days_left(ctx, clocks["accept"].due_date)}))
    resolve = clocks.get("resolve")
    if resolve is not None and item.status in (Status.SUBMITTED, Status.ACCEPTED, Status.NEEDS_INFO, Status.REOPENED):
        lines.append(Msg("card.resolve_by", {"when": _days_left(ctx, resolve.due_date)}))
        if resolve.extensions:
            lines.append(Msg("card.extensions", {"count": resolve.extensions}))
    if item.paused:
        lines.append(Msg("card.paused"))
    if item.about_unit_code:
        lines.append(Msg("card.about", {"unit": province.units[item.about_unit_code].name(locale)}))
    if item.latitude is not None and item.longitude is not None:
        lines.append(Msg("card.location", {"lat": f"{item.latitude:.5f}", "lon": f"{item.longitude:.5f}"}))
    attachments = list(description.attachments) if description else []
    lines.append(Msg("card.text", {"text": description.text_masked if description else ""}))
    if attachments:
        lines.append(Msg("card.attachments", {"count": len(attachments)}))
    return {
        "text": "\n".join(line.render(locale, html.escape) for line in lines),
        "buttons": [
            [{"label": Msg(key).render(locale), "payload": data} for key, data in row]
            for row in _buttons(ctx, item, clocks)
        ],
        "attachments": attachments,
        "item_id": item.id,
    }


async def _targets(session: AsyncSession, unit_code: str) -> list[tuple[str, int, str]]:
    """(recipient kind, id, locale) of everyone who gets the unit's cards and notices (``_CARD_TARGETS``)."""
    found = await _CARD_TARGETS.execute(await session.connection(), {"unit_code": unit_code})
    return [(kind, recipient_id, locale) for kind, recipient_id, locale in found.rows]


async def post_card(ctx: Context, session: AsyncSession, item_id: int, unit_code: str) -> int:
    """Send the item's card to ``unit_code`` (see ``_targets``). Returns the copies queued. The item is loaded
    only when the unit has someone to send it to (from the session when it is there already)."""
    targets = await _targets(session, unit_code)
    if not targets:
        return 0
    item = await session.get(Item, item_id)
    assert item is not None
    payloads: dict[str, dict[str, Any]] = {}
    for kind, recipient_id, locale in targets:
        if locale not in payloads:
            payloads[locale] = await card_payload(ctx, session, item, locale)
        enqueue(
            ctx,
            session,
            channel="telegram",
            recipient_kind=kind,
            recipient_id=recipient_id,
            payload={**payloads[locale], "card": True},
        )
    return len(targets)


async def post_waiting_cards(ctx: Context, session: AsyncSession, official: Official) -> int:
    """Send a joining official the cards of their unit's open items that no active official of the unit holds: an
    item routed or transferred to a unit with no one to send it to, or whose only holder has left, would otherwise
    wait unseen, with no buttons to act on it.
    Returns the cards queued (none when the unit's cards go to a group, or the role gets no cards)."""
    if official.role not in CARD_ROLES:
        return 0
    group = await session.scalar(select(UnitChat.id).where(UnitChat.unit_code == official.unit_code, UnitChat.active))
    if group is not None:
        return 0
    held_by_an_official = exists().where(
        ItemCard.item_id == Item.id,
        ItemCard.recipient_kind == "official",
        Official.id == ItemCard.recipient_id,
        Official.unit_code == official.unit_code,
        Official.active.is_(True),
    )
    waiting = select(Item).where(
        Item.unit_code == official.unit_code,
        Item.status.in_([status.value for status in OPEN_STATUSES]),
        ~held_by_an_official,  # never received, or only by officials since revoked or gone
    )
    items = (await session.execute(waiting.order_by(Item.id))).scalars().all()
    for item in items:
        payload = await card_payload(ctx, session, item, official.locale)
        enqueue(
            ctx,
            session,
            channel="telegram",
            recipient_kind="official",
            recipient_id=official.id,
            payload={**payload, "card": True},
        )
    return len(items)


async def refresh_cards(ctx: Context, session: AsyncSession, item: Item) -> None:
    """Edit every posted copy of the card in place (queued, so it happens after commit)."""
    cards = (await session.execute(select(ItemCard).where(ItemCard.item_id == item.id))).scalars().all()
    payloads: dict[str, dict[str, Any]] = {}
    for card in cards:
        if card.message_id is None:
            continue
        locale = "vi"
        if card.recipient_kind == "official":
            official = await session.get(Official, card.recipient_id)
            locale = official.locale if official is not None else "vi"
        if locale not in payloads:
            payloads[locale] = await card_payload(ctx, session, item, locale)
            payloads[locale].pop("attachments", None)
        edit_card(ctx, session, card, payloads[locale])


def edit_card(ctx: Context, session: AsyncSession, card: ItemCard, payload: dict[str, Any]) -> None:
    """Queue an edit of a posted copy of a card (its message) to show ``payload``."""
    enqueue(
        ctx,
        session,
        channel="telegram",
        recipient_kind=card.recipient_kind,
        recipient_id=card.recipient_id,
        payload={**payload, "edit_message_id": card.message_id},
    )


async def notify_unit(
    ctx: Context, session: AsyncSession, item: Item, message: Msg, attachments: list[dict[str, Any]] | None = None
) -> None:
    """A short message about an item to where its cards go (the unit's groups, else its officials)."""
    for kind, recipient_id, locale in await _targets(session, item.unit_code):
        enqueue(
            ctx,
            session,
            channel="telegram",
            recipient_kind=kind,
            recipient_id=recipient_id,
            payload={
                "text": message.render(locale, html.escape),
                "buttons": [],
                "attachments": list(attachments or []),
                "item_id": item.id,
            },
        )
