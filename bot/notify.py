"""Messages to the citizen about their item, relayed by the bot: the citizen sees only the unit's name.

Queued in the transaction of the change that caused them. Items recorded by a hotline operator are
relayed to that operator instead, to call the citizen back.
"""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import Context
from bot.i18n import Msg
from bot.outbox import enqueue
from models.tables import Citizen, Item

HOTLINE = "hotline"


def citizen_buttons(item: Item, locale: str, *actions: str) -> list[list[dict[str, str]]]:
    """Buttons that act on one item from any point of the citizen's conversation (``rt:``, ``ad:``, ``ro:``)."""
    code = item.receipt_code
    rows: list[list[dict[str, str]]] = []
    if "rate" in actions:
        rows.append([{"label": str(n), "payload": f"rt:{code}:{n}"} for n in range(1, 6)])
    if "add" in actions:
        rows.append([{"label": Msg("track.add").render(locale), "payload": f"ad:{code}"}])
    if "reopen" in actions:
        rows.append([{"label": Msg("track.reopen").render(locale), "payload": f"ro:{code}"}])
    return rows


async def notify_citizen(
    ctx: Context,
    session: AsyncSession,
    item: Item,
    message: Msg,
    *,
    actions: tuple[str, ...] = (),
    attachments: list[dict[str, Any]] | None = None,
) -> None:
    if item.citizen_id is None:
        return
    citizen = await session.get(Citizen, item.citizen_id)
    if citizen is None:
        return
    if item.channel == HOTLINE and item.recorded_by is not None:
        phone = ctx.vault.decrypt(citizen.enc_phone, "citizen.phone") if citizen.enc_phone else "?"
        text = Msg("hotline.call_back", {"code": item.receipt_code, "phone": phone, "message": message})
        enqueue(
            ctx,
            session,
            channel="telegram",
            recipient_kind="official",
            recipient_id=item.recorded_by,
            payload={"text": text.render("vi", html.escape), "buttons": [], "item_id": item.id},
        )
        return
    locale = citizen.locale
    enqueue(
        ctx,
        session,
        channel=item.channel,
        recipient_kind="citizen",
        recipient_id=citizen.id,
        payload={
            "text": message.render(locale, html.escape),
            "buttons": citizen_buttons(item, locale, *actions),
            "attachments": list(attachments or []),
            "item_id": item.id,
        },
    )
