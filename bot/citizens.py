"""The identity vault: find or create a citizen by a keyed hash of the channel id, store identity encrypted."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Table, func
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.context import Context
from bot.privacy import lookup_hash
from models.db import Prepared, upsert_insert
from models.tables import Citizen

_CITIZENS: Table = Citizen.__table__  # type: ignore[assignment]


@functools.cache
def _upsert(dialect: str, columns: tuple[str, ...]) -> Prepared:
    """``INSERT … ON CONFLICT (lookup_hash) DO UPDATE … RETURNING id`` for a dialect and the ``columns`` an
    existing citizen takes too; built once each (the values come as parameters)."""
    statement = upsert_insert(dialect)(_CITIZENS)
    # Setting the channel to itself when there is nothing else to set: DO UPDATE, unlike DO NOTHING, returns the row.
    changes: dict[str, Any] = {
        name: func.coalesce(statement.excluded[name], _CITIZENS.c[name]) for name in columns
    } or {"channel": statement.excluded.channel}
    upsert = statement.on_conflict_do_update(index_elements=[_CITIZENS.c.lookup_hash], set_=changes)
    return Prepared(upsert.returning(_CITIZENS.c.id))


async def _upsert_citizen(
    ctx: Context, connection: AsyncConnection, channel: str, channel_id: str, values: dict[str, Any]
) -> int:
    """The id of the citizen behind a chat, created on first contact with ``values``, which an existing citizen
    takes too (a None leaves a column as it was). One statement, ``INSERT … ON CONFLICT DO UPDATE … RETURNING``,
    whether the citizen is new or not; two first messages at once still make one citizen."""
    parameters = {
        "channel": channel,
        "lookup_hash": lookup_hash(ctx.keys, channel, channel_id),
        "enc_channel_id": ctx.vault.encrypt(str(channel_id), "citizen.channel_id"),
        **values,
    }
    statement = _upsert(connection.dialect.name, tuple(sorted(values)))
    return int((await statement.execute(connection, parameters)).scalar())


async def citizen_id_for_chat(ctx: Context, session: AsyncSession, channel: str, channel_id: str) -> int:
    """The id of the citizen behind a chat, created on first contact."""
    return await _upsert_citizen(ctx, await session.connection(), channel, channel_id, {})


async def citizen_filing(
    ctx: Context,
    connection: AsyncConnection,
    channel: str,
    channel_id: str,
    *,
    locale: str,
    name: str | None = None,
    phone: str | None = None,
) -> int:
    """The id of the citizen filing from a chat, created on first contact; remembers the language they file in
    (their messages follow it) and the name and phone they gave, encrypted."""
    values: dict[str, Any] = {"locale": locale}
    if name is not None:
        values["enc_name"] = ctx.vault.encrypt(name, "citizen.name")
    if phone is not None:
        values["enc_phone"] = ctx.vault.encrypt(phone, "citizen.phone")
    return await _upsert_citizen(ctx, connection, channel, channel_id, values)
