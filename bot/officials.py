"""Officials: one-time invites, who may do what, group bindings.

An invite is a random token shown once (as a deep link and a QR code); only its keyed hash is stored, so a
copy of the database cannot be used to join. Opening it binds a Telegram account to a role in a unit.
Every button an official presses is authorised here against the official's role and unit and the item's
state, whatever the button's data says.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import bindparam, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot import audit
from bot.context import Context
from bot.errors import DomainError, NotAllowed, ValidationError
from bot.privacy import lookup_hash
from models.tables import DialogState, Invite, Item, Official, UnitChat

INVITE_PREFIX = "inv_"
OFFICIAL_CHANNEL = "tg-official"
CITIZEN_CHANNEL = "telegram"  # the conversations' channel of a private Telegram chat (keyed by the user's id)
GROUP_CHANNEL = "tg-group"


class Role(StrEnum):
    OFFICER = "officer"
    HEAD = "head"
    COORDINATOR = "coordinator"
    OPERATOR = "operator"


# What each role may do to an item of its own unit (coordinators: of any unit).
PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.OFFICER: frozenset({"accept", "answer", "request_info", "transfer", "extend", "reject", "history"}),
    Role.HEAD: frozenset({"accept", "answer", "request_info", "transfer", "extend", "reject", "history"}),
    Role.COORDINATOR: frozenset(
        {"accept", "answer", "request_info", "transfer", "extend", "reject", "history", "reveal"}
    ),
    Role.OPERATOR: frozenset({"history"}),
}


def token_hash(ctx: Context, token: str) -> str:
    """What is stored of an invite token (the token itself is shown once): to find its invite."""
    return hmac.new(ctx.keys.signing, f"invite:{token}".encode(), hashlib.sha256).hexdigest()


async def create_invite(
    ctx: Context, session: AsyncSession, *, unit_code: str, role: str, valid_for: timedelta, actor: str = "cli"
) -> str:
    """A fresh invite token (``inv_…``, 47 characters: fits a /start payload). Shown once, stored hashed."""
    if unit_code not in ctx.province.units:
        raise ValidationError("error.unknown_unit", value=unit_code)
    if role not in {r.value for r in Role}:
        raise ValidationError("error.unknown_role", value=role)
    if role == Role.COORDINATOR and not ctx.province.units[unit_code].coordinator:
        raise ValidationError("error.coordinator_unit", unit=ctx.province.coordinator.code)
    if not timedelta(0) < valid_for <= timedelta(days=365):  # as parse_duration allows; no date overflow
        raise ValidationError("error.invalid")
    token = INVITE_PREFIX + secrets.token_urlsafe(32)
    now = ctx.now()
    session.add(
        Invite(
            token_hash=token_hash(ctx, token),
            unit_code=unit_code,
            role=role,
            created_at=now,
            expires_at=now + valid_for,
        )
    )
    await audit.append(session, action="invite", actor=actor, now=now, data={"unit": unit_code, "role": role})
    return token


async def accept_invite(
    ctx: Context, session: AsyncSession, token: str, *, telegram_user_id: int, display_name: str, locale: str
) -> Official:
    """Bind the account to the invite's role and unit; a used, expired or forged invite is refused.

    The account's citizen conversation in its private chat (a draft it may have started) is deleted: from now on
    that chat is an official's, and a citizen's dialog state kept in any process's memory is thereby stale.
    """
    invite = (
        await session.execute(select(Invite).where(Invite.token_hash == token_hash(ctx, token)).with_for_update())
    ).scalar_one_or_none()
    now = ctx.now()
    if invite is None:
        raise DomainError("invite.invalid")
    if invite.used_at is not None:
        raise DomainError("invite.used")
    if invite.expires_at <= now:
        raise DomainError("invite.expired")
    key = lookup_hash(ctx.keys, OFFICIAL_CHANNEL, telegram_user_id)
    existing = (
        (await session.execute(select(Official).where(Official.lookup_hash == key, Official.active.is_(True))))
        .scalars()
        .all()
    )
    for previous in existing:  # one active binding per account: a new invite replaces the old role
        previous.active = False
        previous.revoked_at = now
    official = Official(
        lookup_hash=key,
        enc_channel_id=ctx.vault.encrypt(str(telegram_user_id), "official.channel_id"),
        display_name=display_name[:200],
        role=invite.role,
        unit_code=invite.unit_code,
        locale=locale if locale in ("vi", "en") else "vi",
        created_at=now,
    )
    session.add(official)
    await session.execute(
        delete(DialogState).where(
            DialogState.channel == CITIZEN_CHANNEL,
            DialogState.chat_hash == lookup_hash(ctx.keys, CITIZEN_CHANNEL, telegram_user_id),
        )
    )
    await session.flush()
    invite.used_at = now
    invite.used_by = official.id
    await audit.append(
        session,
        action="official_joined",
        actor=f"official:{official.id}",
        now=now,
        data={"unit": invite.unit_code, "role": invite.role},
    )
    return official


# "Is the user whose key is bound to ``o_key`` an active official?", as a clause to put in another statement.
ACTIVE_OFFICIAL = exists().where(Official.lookup_hash == bindparam("o_key"), Official.active.is_(True))
_ACTIVE_OFFICIAL = select(ACTIVE_OFFICIAL)


def official_key(ctx: Context, telegram_user_id: int) -> str:
    """The value for ``ACTIVE_OFFICIAL``'s ``o_key``."""
    return lookup_hash(ctx.keys, OFFICIAL_CHANNEL, telegram_user_id)


async def is_official(ctx: Context, connection: AsyncConnection, telegram_user_id: int) -> bool:
    """Whether a Telegram user is an active official: one prepared Core statement, for the citizen hot path."""
    return bool(await connection.scalar(_ACTIVE_OFFICIAL, {"o_key": official_key(ctx, telegram_user_id)}))


async def official_for_user(ctx: Context, session: AsyncSession, telegram_user_id: int) -> Official | None:
    key = lookup_hash(ctx.keys, OFFICIAL_CHANNEL, telegram_user_id)
    return (
        (await session.execute(select(Official).where(Official.lookup_hash == key, Official.active.is_(True))))
        .scalars()
        .first()
    )


async def revoke(ctx: Context, session: AsyncSession, official_id: int, *, actor: str) -> Official:
    official = await session.get(Official, official_id)
    if official is None or not official.active:
        raise DomainError("error.not_found")
    official.active = False
    official.revoked_at = ctx.now()
    await audit.append(
        session,
        action="official_revoked",
        actor=actor,
        now=ctx.now(),
        data={"official": official.id, "unit": official.unit_code},
    )
    return official


def authorise(official: Official, item: Item, action: str) -> None:
    """Raise NotAllowed unless this official may take ``action`` on ``item``, whatever the button said."""
    role = Role(official.role)
    if not official.active or action not in PERMISSIONS[role]:
        raise NotAllowed()
    if role is Role.COORDINATOR:
        return
    if item.unit_code != official.unit_code:
        raise NotAllowed()


async def unit_officials(session: AsyncSession, unit_code: str, roles: tuple[str, ...]) -> list[Official]:
    return list(
        (
            await session.execute(
                select(Official)
                .where(Official.unit_code == unit_code, Official.active.is_(True), Official.role.in_(roles))
                .order_by(Official.id)
            )
        ).scalars()
    )


async def request_group_binding(
    ctx: Context, session: AsyncSession, official: Official, *, chat_id: int, title: str
) -> UnitChat:
    """``/bind`` in a group: recorded inactive until the unit head confirms it in private."""
    if official.role not in (Role.HEAD, Role.COORDINATOR):
        raise NotAllowed()
    key = lookup_hash(ctx.keys, GROUP_CHANNEL, chat_id)
    existing = (
        (
            await session.execute(
                select(UnitChat).where(UnitChat.lookup_hash == key, UnitChat.unit_code == official.unit_code)
            )
        )
        .scalars()
        .first()
    )
    if existing is not None:
        return existing
    chat = UnitChat(
        unit_code=official.unit_code,
        lookup_hash=key,
        enc_chat_id=ctx.vault.encrypt(str(chat_id), "group.chat_id"),
        title=title[:200],
        bound_by=official.id,
        active=False,
        created_at=ctx.now(),
    )
    session.add(chat)
    await session.flush()
    return chat


async def confirm_group_binding(ctx: Context, session: AsyncSession, official: Official, unit_chat_id: int) -> UnitChat:
    chat = await session.get(UnitChat, unit_chat_id)
    if chat is None or chat.unit_code != official.unit_code or official.role not in (Role.HEAD, Role.COORDINATOR):
        raise NotAllowed()
    if chat.active:
        raise DomainError("bind.already")
    chat.active = True
    await audit.append(
        session,
        action="group_bound",
        actor=f"official:{official.id}",
        now=ctx.now(),
        data={"unit": chat.unit_code, "group": chat.id},
    )
    return chat


async def group_for_chat(ctx: Context, session: AsyncSession, chat_id: int) -> UnitChat | None:
    key = lookup_hash(ctx.keys, GROUP_CHANNEL, chat_id)
    return (
        (await session.execute(select(UnitChat).where(UnitChat.lookup_hash == key, UnitChat.active.is_(True))))
        .scalars()
        .first()
    )


def parse_duration(text: str, *, longest: timedelta = timedelta(days=365)) -> timedelta:
    """``7d``, ``12h``, ``30m`` → timedelta (for ``pakn invite --expires``), at most ``longest`` (an invite is
    valid for a year at most)."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    number = text[:-1]
    if len(text) < 2 or text[-1] not in units or not (number.isascii() and number.isdigit()) or int(number) == 0:
        raise ValueError(f"expected a duration like 7d, 12h or 30m, got {text!r}")
    duration = timedelta(**{units[text[-1]]: int(number)}) if len(number) <= 9 else None  # no OverflowError
    if duration is None or duration > longest:
        raise ValueError(f"{text!r} is too long: at most {longest.days} days")
    return duration
