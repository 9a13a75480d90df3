"""The identity vault: find or create a citizen by a keyed hash of the channel id, store identity encrypted."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import Context
from bot.privacy import lookup_hash
from models.tables import Citizen


async def citizen_for_chat(ctx: Context, session: AsyncSession, channel: str, channel_id: str) -> Citizen:
    """The citizen behind a chat, created on first contact; safe against two first messages at once."""
    key = lookup_hash(ctx.keys, channel, channel_id)
    query = select(Citizen).where(Citizen.lookup_hash == key)
    citizen = (await session.execute(query)).scalar_one_or_none()
    if citizen is not None:
        return citizen
    # INSERT … ON CONFLICT DO NOTHING: a first message racing another one from the same chat inserts nothing,
    # without the savepoint an ORM insert would need to survive the unique violation.
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(Citizen)
        .values(
            channel=channel, lookup_hash=key, enc_channel_id=ctx.vault.encrypt(str(channel_id), "citizen.channel_id")
        )
        .on_conflict_do_nothing(index_elements=[Citizen.lookup_hash])
    )
    return (await session.execute(query)).scalar_one()


def set_identity(ctx: Context, citizen: Citizen, *, name: str | None, phone: str | None) -> None:
    if name is not None:
        citizen.enc_name = ctx.vault.encrypt(name, "citizen.name")
    if phone is not None:
        citizen.enc_phone = ctx.vault.encrypt(phone, "citizen.phone")


def channel_id_of(ctx: Context, citizen: Citizen) -> str:
    """Decrypt the chat id, for the outbox dispatcher only."""
    return ctx.vault.decrypt(citizen.enc_channel_id, "citizen.channel_id")
