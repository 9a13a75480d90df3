"""What officials do in chat: join by invite, act on item cards, answer through the bot, bind groups,
reveal an identity (coordinators only, with a reason), record hotline calls (operators).

Entry points take plain values (a Telegram user id, the button's data, the text typed) and return the
replies to send, so the Telegram adapter stays thin. Every button is authorised again here against the
official's role and unit and the item's current state: a tampered button changes nothing and a second press
of the same button finds the work done. An action that needs words (an answer, a question, a reason) leaves
a pending step in the official's private conversation; the words are taken from the next message there.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit, tickets
from bot.cards import post_waiting_cards
from bot.context import Context
from bot.errors import DomainError, IllegalTransition, NotAllowed, NotFound
from bot.i18n import Localized, Msg, format_moment, render
from bot.lifecycle import check_transition
from bot.officials import (
    OFFICIAL_CHANNEL,
    Role,
    accept_invite,
    authorise,
    confirm_group_binding,
    group_for_chat,
    official_for_user,
    request_group_binding,
    unit_officials,
)
from bot.outbox import enqueue
from bot.privacy import lookup_hash, normalise_text, pseudonym_tag
from bot.receipts import normalise_receipt_code
from models.tables import AuditEvent, Citizen, DialogState, Item, ItemMessage, Official

TEXT_ACTIONS = ("answer", "request_info", "extend", "reject")
IMMEDIATE_ACTIONS = ("accept", "history", "transfer")
MIN_REVEAL_REASON = 10
UNITS_PER_PAGE = 8


@dataclass
class DeskReply:
    """Replies for the official's private chat, for the chat the update came from, and a button toast."""

    private: list[dict[str, Any]] = field(default_factory=list)
    here: list[dict[str, Any]] = field(default_factory=list)
    toast: str | None = None


def _payload(text: str, buttons: list[list[tuple[str, str]]] | None = None) -> dict[str, Any]:
    return {
        "text": text,
        "buttons": [[{"label": label, "payload": data} for label, data in row] for row in buttons or []],
    }


class OfficialDesk:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # ----------------------------------------------------------------- state

    async def _state(self, session: AsyncSession, user_id: int) -> tuple[DialogState | None, dict[str, Any]]:
        key = lookup_hash(self.ctx.keys, OFFICIAL_CHANNEL, user_id)
        row = (
            await session.execute(
                select(DialogState)
                .where(DialogState.channel == OFFICIAL_CHANNEL, DialogState.chat_hash == key)
                .with_for_update()
            )
        ).scalar_one_or_none()
        state = json.loads(self.ctx.vault.decrypt(row.enc_state, "dialog.state")) if row else {}
        return row, state

    def _save(self, session: AsyncSession, user_id: int, row: DialogState | None, state: dict[str, Any]) -> None:
        sealed = self.ctx.vault.encrypt(json.dumps(state, ensure_ascii=False), "dialog.state")
        if row is None:
            key = lookup_hash(self.ctx.keys, OFFICIAL_CHANNEL, user_id)
            session.add(
                DialogState(channel=OFFICIAL_CHANNEL, chat_hash=key, enc_state=sealed, updated_at=self.ctx.now())
            )
        else:
            row.enc_state = sealed
            row.updated_at = self.ctx.now()

    async def operator(self, user_id: int) -> Official | None:
        async with self.ctx.sessions() as session:
            official = await official_for_user(self.ctx, session, user_id)
        return official if official is not None and official.role == Role.OPERATOR else None

    async def hotline_active(self, user_id: int) -> Official | None:
        """The operator, when their private chat is recording a call on a caller's behalf."""
        async with self.ctx.sessions() as session:
            official = await official_for_user(self.ctx, session, user_id)
            if official is None or official.role != Role.OPERATOR:
                return None
            key = lookup_hash(self.ctx.keys, OFFICIAL_CHANNEL, user_id)
            row = await session.scalar(
                select(DialogState).where(DialogState.channel == OFFICIAL_CHANNEL, DialogState.chat_hash == key)
            )
            state = json.loads(self.ctx.vault.decrypt(row.enc_state, "dialog.state")) if row else {}
        return official if state.get("hotline") else None

    async def set_hotline(self, user_id: int, active: bool) -> None:
        async with self.ctx.sessions.begin() as session:
            row, state = await self._state(session, user_id)
            state["hotline"] = active
            state.pop("pending", None)
            self._save(session, user_id, row, state)

    # ----------------------------------------------------------------- invites and commands

    async def start_invite(self, user_id: int, display_name: str, locale: str | None, token: str) -> DeskReply:
        loc = locale if locale in ("vi", "en") else "vi"
        try:
            async with self.ctx.sessions.begin() as session:
                official = await accept_invite(
                    self.ctx, session, token, telegram_user_id=user_id, display_name=display_name, locale=loc
                )
                unit = self.ctx.province.units[official.unit_code]
                text = Msg("official.welcome", {"role": Msg(f"role.{official.role}"), "unit": unit.name(loc)})
                waiting = await post_waiting_cards(self.ctx, session, official)
        except DomainError as error:
            return DeskReply(private=[_payload(html.escape(error.message(loc)))])
        replies = [_payload(text.render(loc, html.escape))]
        if waiting:
            replies.append(_payload(Msg("official.waiting_cards", {"count": waiting}).render(loc, html.escape)))
        return DeskReply(private=replies)

    async def command(
        self, user_id: int, command: str, args: str, *, chat_id: int, private: bool, chat_title: str = ""
    ) -> DeskReply | None:
        """Officials' commands; None when this is not an official's command (the citizen flow takes it)."""
        async with self.ctx.sessions.begin() as session:
            official = await official_for_user(self.ctx, session, user_id)
            if not private:
                return await self._group_command(session, official, command, chat_id, chat_title)
            if official is None:
                return None
            loc = official.locale
            unit = self.ctx.province.units[official.unit_code]
            if command == "whoami":
                text = Msg("official.whoami", {"role": Msg(f"role.{official.role}"), "unit": unit.name(loc)})
                return DeskReply(private=[_payload(text.render(loc, html.escape))])
            if command == "leave":
                official.active = False
                official.revoked_at = self.ctx.now()
                await audit.append(
                    session,
                    action="official_left",
                    actor=f"official:{official.id}",
                    now=self.ctx.now(),
                    data={"unit": official.unit_code},
                )
                return DeskReply(private=[_payload(Msg("official.left").render(loc))])
            if command in ("cancel", "start"):
                row, state = await self._state(session, user_id)
                state.pop("pending", None)
                self._save(session, user_id, row, state)
                return DeskReply(private=[_payload(Msg("official.ready").render(loc))])
            if command == "reveal":
                return await self._begin_reveal(session, official, user_id, args)
            if command == "history":
                code = normalise_receipt_code(args, self.ctx.province.receipt_prefix)
                item = await tickets.item_by_receipt(session, code) if code else None
                if item is None:
                    return DeskReply(private=[_payload(Msg("track.not_found").render(loc))])
                try:
                    authorise(official, item, "history")
                except NotAllowed as error:
                    return DeskReply(private=[_payload(error.message(loc))])
                return DeskReply(private=[await self._history(session, item, loc)])
            if command == "help":
                return DeskReply(private=[_payload(Msg("official.help").render(loc))])
        return None

    async def _group_command(
        self, session: AsyncSession, official: Official | None, command: str, chat_id: int, title: str
    ) -> DeskReply | None:
        bound = await group_for_chat(self.ctx, session, chat_id)
        if command == "bind":
            if official is None or official.role not in (Role.HEAD, Role.COORDINATOR):
                return DeskReply(here=[_payload(Msg("bind.heads_only").render("vi"))])
            pending = await request_group_binding(self.ctx, session, official, chat_id=chat_id, title=title)
            unit = self.ctx.province.units[official.unit_code].name(official.locale)
            ask = Msg("bind.confirm", {"title": title or "?", "unit": unit}).render(official.locale, html.escape)
            return DeskReply(
                here=[_payload(Msg("bind.requested").render("vi"))],
                private=[_payload(ask, [[(Msg("bind.yes").render(official.locale), f"bind:{pending.id}")]])],
            )
        if bound is None:
            return DeskReply(here=[_payload(Msg("group.unbound").render("vi"))])
        return None

    # ----------------------------------------------------------------- buttons

    async def press(self, user_id: int, data: str) -> DeskReply | None:
        """An officials' button (``it:``, ``tu:``, ``tp:``, ``ok:``, ``bind:``); None for any other button."""
        prefix = data.split(":", 1)[0]
        if prefix not in ("it", "tu", "tp", "ok", "bind"):
            return None
        async with self.ctx.sessions.begin() as session:
            official = await official_for_user(self.ctx, session, user_id)
            if official is None:
                return DeskReply(toast=Msg("error.not_allowed").render("vi"))
            loc = official.locale
            try:
                if prefix == "bind":
                    chat = await confirm_group_binding(self.ctx, session, official, int(data.split(":")[1]))
                    return DeskReply(
                        private=[_payload(Msg("bind.done", {"title": chat.title}).render(loc, html.escape))]
                    )
                row, state = await self._state(session, user_id)
                reply = await self._press(session, official, row, state, data)
                self._save(session, user_id, row, state)
                return reply
            except (ValueError, IndexError, NotFound):  # malformed or forged: no hint whether the item exists
                return DeskReply(toast=Msg("error.not_allowed").render(loc))
            except IllegalTransition:
                return DeskReply(toast=Msg("official.already_done").render(loc))
            except DomainError as error:
                return DeskReply(toast=error.message(loc)[:190])

    async def _item(self, session: AsyncSession, item_id: int) -> Item:
        return await tickets.lock_item(session, item_id)

    async def _press(
        self, session: AsyncSession, official: Official, row: DialogState | None, state: dict[str, Any], data: str
    ) -> DeskReply:
        loc = official.locale
        parts = data.split(":")
        actor = f"official:{official.id}"
        if parts[0] == "ok":
            return await self._confirm(session, official, state, parts[1])
        item = await self._item(session, int(parts[1]))
        if parts[0] == "tp":
            authorise(official, item, "transfer")
            return DeskReply(private=[self._unit_picker(item, loc, int(parts[2]))])
        if parts[0] == "tu":
            authorise(official, item, "transfer")
            check_transition(item.status, "transfer")
            if parts[2] not in self.ctx.province.units or parts[2] == item.unit_code:
                raise NotAllowed()
            state["pending"] = {"action": "transfer", "item": item.id, "to": parts[2]}
            unit = self.ctx.province.units[parts[2]].name(loc)
            text = Msg("official.ask_reason_transfer", {"code": item.receipt_code, "unit": unit})
            return DeskReply(private=[self._with_cancel(text.render(loc, html.escape), loc)])
        action = parts[2]
        authorise(official, item, action)
        if action == "history":
            return DeskReply(private=[await self._history(session, item, loc)], toast=None)
        if action == "accept":
            await tickets.accept_item(self.ctx, session, item, actor=actor)
            return DeskReply(toast=Msg("official.accepted", {"code": item.receipt_code}).render(loc))
        if action == "transfer":
            check_transition(item.status, "transfer")
            return DeskReply(private=[self._unit_picker(item, loc, 0)])
        if action not in TEXT_ACTIONS:
            raise NotAllowed()
        check_transition(item.status, action)
        if action == "extend":
            rule = self.ctx.province.item_types[item.type].extension
            resolve = (await tickets.clocks_of(session, item.id)).get("resolve")
            if rule is None or resolve is None:
                raise DomainError("error.no_extension")
            if resolve.extensions >= rule.max:
                raise DomainError("error.extension_limit", max=rule.max)
        state["pending"] = {"action": action, "item": item.id}
        prompt = Msg(f"official.ask_{action}", {"code": item.receipt_code}).render(loc, html.escape)
        if action in ("answer", "request_info") and item.channel == "web":  # the web chat shows text only
            prompt += "\n" + Msg("official.citizen_text_only").render(loc)
        return DeskReply(
            private=[self._with_cancel(prompt, loc)],
            toast=Msg("official.see_private").render(loc),
        )

    def _with_cancel(self, text: str, loc: str) -> dict[str, Any]:
        return _payload(text, [[(Msg("summary.cancel").render(loc), "ok:cancel")]])

    def _unit_picker(self, item: Item, loc: str, page: int) -> dict[str, Any]:
        units = [
            u for u in self.ctx.province.units.values() if u.code != item.unit_code and u.code != item.about_unit_code
        ]
        pages = max(1, -(-len(units) // UNITS_PER_PAGE))
        page = min(max(page, 0), pages - 1)
        chunk = units[page * UNITS_PER_PAGE : (page + 1) * UNITS_PER_PAGE]
        rows = [[(u.name(loc), f"tu:{item.id}:{u.code}")] for u in chunk]
        nav = []
        if page > 0:
            nav.append(("«", f"tp:{item.id}:{page - 1}"))
        if page < pages - 1:
            nav.append(("»", f"tp:{item.id}:{page + 1}"))
        if nav:
            rows.append(nav)
        rows.append([(Msg("summary.cancel").render(loc), "ok:cancel")])
        text = Msg("official.pick_unit", {"code": item.receipt_code, "page": page + 1, "pages": pages})
        return _payload(text.render(loc, html.escape), rows)

    async def _confirm(self, session: AsyncSession, official: Official, state: dict[str, Any], what: str) -> DeskReply:
        loc = official.locale
        pending = state.pop("pending", None)
        if what == "cancel" or pending is None:
            return DeskReply(private=[_payload(Msg("official.cancelled").render(loc))])
        if what != "send" or pending.get("action") != "answer" or "text" not in pending:
            return DeskReply(toast=Msg("official.already_done").render(loc))
        item = await self._item(session, int(pending["item"]))
        authorise(official, item, "answer")
        await tickets.answer_item(
            self.ctx,
            session,
            item,
            actor=f"official:{official.id}",
            text=pending["text"],
            attachments=pending.get("attachments", []),
            official_id=official.id,
        )
        return DeskReply(private=[_payload(Msg("official.answer_sent", {"code": item.receipt_code}).render(loc))])

    # ----------------------------------------------------------------- words for a pending action

    async def message(self, user_id: int, text: str, attachment: dict[str, Any] | None = None) -> DeskReply | None:
        """The next private message of an official with a pending action; None when nothing is pending."""
        async with self.ctx.sessions.begin() as session:
            official = await official_for_user(self.ctx, session, user_id)
            if official is None:
                return None
            row, state = await self._state(session, user_id)
            pending = state.get("pending")
            loc = official.locale
            if not pending:
                return DeskReply(private=[_payload(Msg("official.help").render(loc))])
            text = normalise_text(text)
            try:
                reply = await self._fulfil(session, official, state, pending, text, attachment)
            except IllegalTransition:
                state.pop("pending", None)
                reply = DeskReply(private=[_payload(Msg("official.already_done").render(loc))])
            except DomainError as error:
                reply = DeskReply(private=[self._with_cancel(html.escape(error.message(loc)), loc)])
            self._save(session, user_id, row, state)
            return reply

    async def _fulfil(
        self,
        session: AsyncSession,
        official: Official,
        state: dict[str, Any],
        pending: dict[str, Any],
        text: str,
        attachment: dict[str, Any] | None,
    ) -> DeskReply:
        loc = official.locale
        action = pending["action"]
        actor = f"official:{official.id}"
        if action == "reveal":
            return await self._reveal(session, official, state, pending, text)
        item = await self._item(session, int(pending["item"]))
        authorise(official, item, "transfer" if action == "transfer" else action)
        if action == "answer":
            if attachment is not None:
                pending.setdefault("attachments", []).append(attachment)
            if len(text) > 4000:
                raise DomainError("error.description_too_long", max=4000)
            if text:
                pending["text"] = text
            if not pending.get("text") and not pending.get("attachments"):
                raise DomainError("error.answer_empty")
            pending.setdefault("text", "")
            preview = Msg(
                "official.answer_preview",
                {"code": item.receipt_code, "text": pending["text"], "files": len(pending.get("attachments", []))},
            )
            buttons = [[(Msg("summary.send").render(loc), "ok:send"), (Msg("summary.cancel").render(loc), "ok:cancel")]]
            return DeskReply(private=[_payload(preview.render(loc, html.escape), buttons)])
        if not text:
            raise DomainError("error.reason_required")
        if action == "request_info":
            await tickets.request_info(self.ctx, session, item, actor=actor, question=text, official_id=official.id)
        elif action == "extend":
            extended = await tickets.extend_item(self.ctx, session, item, actor=actor, reason=text)
            state.pop("pending", None)
            done = Msg("official.extended", {"code": item.receipt_code, "date": extended.due.strftime("%d/%m/%Y")})
            return DeskReply(private=[_payload(done.render(loc, html.escape))])
        elif action == "reject":
            await tickets.reject_item(self.ctx, session, item, actor=actor, guidance=text, official_id=official.id)
        elif action == "transfer":
            reached = await tickets.transfer_item(
                self.ctx, session, item, actor=actor, to_unit=pending["to"], reason=text
            )
            if not reached:  # nobody there uses PAKN yet: the officer should tell the unit
                unit = self.ctx.province.units[pending["to"]].name(loc)
                done = Msg("official.transferred_to_nobody", {"code": item.receipt_code, "unit": unit})
                state.pop("pending", None)
                return DeskReply(private=[_payload(done.render(loc, html.escape))])
        state.pop("pending", None)
        return DeskReply(
            private=[_payload(Msg(f"official.done_{action}", {"code": item.receipt_code}).render(loc, html.escape))]
        )

    # ----------------------------------------------------------------- history and reveal

    async def _history(self, session: AsyncSession, item: Item, loc: str) -> dict[str, Any]:
        events = (
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.item_id == item.id).order_by(*audit.CHAIN_ORDER)
                )
            )
            .scalars()
            .all()
        )
        messages = (
            (await session.execute(select(ItemMessage).where(ItemMessage.item_id == item.id).order_by(ItemMessage.id)))
            .scalars()
            .all()
        )
        lines = [Msg("official.history_title", {"code": item.receipt_code}).render(loc, html.escape)]
        for event in events:
            who = Msg(
                "history.actor.citizen"
                if event.actor == "citizen"
                else "history.actor.official"
                if event.actor.startswith("official:")
                else "history.actor.system"
            )
            lines.append(
                Msg(
                    "track.timeline_entry",
                    {"at": format_moment(loc, event.created_at), "action": Msg(f"event.{event.action}")},
                ).render(loc)
                + f" — {who.render(loc)}"
            )
        tag = Msg("pseudonym", {"tag": pseudonym_tag(self.ctx.keys, item.id)})
        for message in messages:
            author = tag if message.author == "citizen" else Localized(*self._unit_names(message.unit_code))
            lines.append(
                f"\n<b>{html.escape(render(author, loc))}</b> ({format_moment(loc, message.created_at)}):\n"
                f"{html.escape(message.text_masked)}"
            )
        return _payload("\n".join(lines))

    def _unit_names(self, code: str | None) -> tuple[str, str]:
        unit = self.ctx.province.units.get(code or "")
        return (unit.name_vi, unit.name_en) if unit else ("", "")

    async def _begin_reveal(self, session: AsyncSession, official: Official, user_id: int, args: str) -> DeskReply:
        loc = official.locale
        if official.role != Role.COORDINATOR:
            await audit.append(
                session,
                action="reveal_refused",
                actor=f"official:{official.id}",
                now=self.ctx.now(),
                data={"code": args[:20]},
            )
            return DeskReply(private=[_payload(Msg("error.not_allowed").render(loc))])
        code = normalise_receipt_code(args, self.ctx.province.receipt_prefix)
        item = await tickets.item_by_receipt(session, code) if code else None
        if item is None:
            return DeskReply(private=[_payload(Msg("track.not_found").render(loc))])
        row, state = await self._state(
            session, int(self.ctx.vault.decrypt(official.enc_channel_id, "official.channel_id"))
        )
        state["pending"] = {"action": "reveal", "item": item.id}
        self._save(session, int(self.ctx.vault.decrypt(official.enc_channel_id, "official.channel_id")), row, state)
        text = Msg("official.ask_reveal", {"code": item.receipt_code, "min": MIN_REVEAL_REASON})
        return DeskReply(private=[self._with_cancel(text.render(loc, html.escape), loc)])

    async def _reveal(
        self, session: AsyncSession, official: Official, state: dict[str, Any], pending: dict[str, Any], reason: str
    ) -> DeskReply:
        loc = official.locale
        if official.role != Role.COORDINATOR:
            raise NotAllowed()
        if len(reason) < MIN_REVEAL_REASON:
            raise DomainError("official.reveal_reason_short", min=MIN_REVEAL_REASON)
        item = await session.get(Item, int(pending["item"]))
        if item is None:
            raise DomainError("error.not_found")
        citizen = await session.get(Citizen, item.citizen_id) if item.citizen_id else None
        name = self.ctx.vault.decrypt(citizen.enc_name, "citizen.name") if citizen and citizen.enc_name else None
        phone = self.ctx.vault.decrypt(citizen.enc_phone, "citizen.phone") if citizen and citizen.enc_phone else None
        await audit.append(
            session,
            action="reveal",
            actor=f"official:{official.id}",
            item_id=item.id,
            now=self.ctx.now(),
            data={"reason": reason},
        )
        for head in await unit_officials(session, item.unit_code, (Role.HEAD.value,)):
            told = Msg("official.reveal_notice", {"code": item.receipt_code, "reason": reason})
            enqueue(
                self.ctx,
                session,
                channel="telegram",
                recipient_kind="official",
                recipient_id=head.id,
                payload={"text": told.render(head.locale, html.escape), "buttons": []},
            )
        state.pop("pending", None)
        result = Msg(
            "official.revealed",
            {
                "code": item.receipt_code,
                "name": name or Msg("official.not_given"),
                "phone": phone or Msg("official.not_given"),
            },
        )
        return DeskReply(private=[_payload(result.render(loc, html.escape))])
