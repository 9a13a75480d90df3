"""The conversation runner across processes: each process keeps the states it wrote last, and must still see
what another process (or an invite that turns a citizen into an official) changed meanwhile."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from bot.citizens import citizen_id_for_chat
from bot.context import Context
from bot.conversation import Conversations, Rendered
from bot.desks import add_desk, set_desk_active
from bot.dialog import Event
from bot.intake import Draft, submit_item
from bot.officials import accept_invite, create_invite
from bot.privacy import lookup_hash
from bot.tickets import accept_item, lock_item
from models.tables import AuditEvent, Citizen, DialogState, Item, ItemMessage, Outbox
from qr.payload import sign_desk
from tests.conftest import drop_pooled_connections

DESCRIPTION = "Đường liên bản từ Nà Nhạn đi Mường Phăng bị sạt lở, xe máy không đi qua được."


def _payloads(rendered: Rendered) -> list[str]:
    return [button["payload"] for reply in rendered.replies for row in reply["buttons"] for button in row]


def _start() -> Event:
    return Event(kind="command", command="start", language="vi")


def _press(payload: str) -> Event:
    return Event(kind="button", payload=payload, language="vi")


async def test_two_processes_take_turns_on_one_chat(ctx: Context) -> None:
    first, second = Conversations(ctx), Conversations(ctx)  # two `pakn serve` processes on one database
    chat = "3101"
    assert "menu:file" in _payloads(await first.handle("telegram", chat, _start(), update_id=1))
    types = await second.handle("telegram", chat, _press("menu:file"), update_id=2)
    assert "type:phan_anh" in _payloads(types)
    # The first process last wrote the state before "menu:file": it must not answer from that copy.
    categories = await first.handle("telegram", chat, _press("type:phan_anh"), update_id=3)
    assert any(payload.startswith("cat:") for payload in _payloads(categories))
    # Telegram delivers update 3 again, this time to the other process: recognised, nothing changes.
    again = await second.handle("telegram", chat, _press("type:phan_anh"), update_id=3)
    assert again.duplicate and again.replies == []
    commune = await second.handle("telegram", chat, _press("cat:dat_dai"), update_id=4)
    assert commune.replies and not any(payload.startswith("cat:") for payload in _payloads(commune))


async def test_a_citizen_who_accepts_an_invite_is_an_official_at_once(ctx: Context) -> None:
    conversations = Conversations(ctx)
    user = 3201
    await conversations.handle("telegram", str(user), _start(), update_id=10, unless_official=user)
    draft = await conversations.handle("telegram", str(user), _press("menu:file"), update_id=11, unless_official=user)
    assert not draft.official and "type:phan_anh" in _payloads(draft)
    async with ctx.sessions.begin() as session:
        token = await create_invite(ctx, session, unit_code="thanh_tra", role="officer", valid_for=timedelta(days=1))
    async with ctx.sessions.begin() as session:
        await accept_invite(ctx, session, token, telegram_user_id=user, display_name="Cán bộ Lò Văn A", locale="vi")
    after = await conversations.handle(
        "telegram", str(user), Event(kind="text", text="Xin chào", language="vi"), update_id=12, unless_official=user
    )
    assert after.official and after.replies == []


async def test_two_first_messages_at_once_make_one_citizen(ctx: Context) -> None:
    async def first_contact() -> int:
        async with ctx.sessions.begin() as session:
            return await citizen_id_for_chat(ctx, session, "telegram", "3301")

    first, second = await asyncio.gather(first_contact(), first_contact())
    assert first == second
    async with ctx.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Citizen)) == 1


async def test_many_chats_moving_along_at_once_are_all_saved(ctx: Context) -> None:
    """These steps are written together (whatever arrived meanwhile: one transaction on SQLite, one statement on
    PostgreSQL): every chat's step must still be saved, as another process reading the database sees."""
    conversations = Conversations(ctx)
    chats = [str(3400 + n) for n in range(40)]
    for chat in chats:
        await conversations.handle("telegram", chat, _start(), update_id=1)
    steps = await asyncio.gather(
        *(conversations.handle("telegram", chat, _press("menu:file"), update_id=2) for chat in chats)
    )
    assert all("type:phan_anh" in _payloads(step) for step in steps)
    other = Conversations(ctx)  # nothing cached: reads each state from the database
    for chat in chats:
        categories = await other.handle("telegram", chat, _press("type:phan_anh"), update_id=3)
        assert any(payload.startswith("cat:") for payload in _payloads(categories)), chat
    # Two presses of the same chat at once: one moves the dialog along, the other is handled after it.
    both = await asyncio.gather(
        conversations.handle("telegram", chats[0], _press("cat:dat_dai"), update_id=4),
        conversations.handle("telegram", chats[0], _press("cat:dat_dai"), update_id=5),
    )
    assert all(rendered.replies for rendered in both)
    again = await other.handle("telegram", chats[0], _press("cat:dat_dai"), update_id=4)
    assert again.duplicate


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_an_update_survives_the_database_dropping_its_connections(ctx: Context) -> None:
    """PostgreSQL restarted, or a proxy cut idle connections: the pooled connections are dead, and the first
    update to use one is handled again on a new connection instead of failing (there is no ping on checkout).
    (SQLite's connections are in-process: nothing to drop.)"""
    assert ctx.engine.dialect.name == "postgresql"
    conversations = Conversations(ctx)
    chat = "3501"
    await conversations.handle("telegram", chat, _start(), update_id=1)
    await drop_pooled_connections(ctx.engine)
    # A process that has not cached this chat: the update takes the general path, the one a citizen's first
    # message takes. (A cached chat's step goes to the state writer, whose failed batch is handled again anyway.)
    types = await Conversations(ctx).handle("telegram", chat, _press("menu:file"), update_id=2)
    assert "type:phan_anh" in _payloads(types)
    categories = await Conversations(ctx).handle("telegram", chat, _press("type:phan_anh"), update_id=3)
    assert any(payload.startswith("cat:") for payload in _payloads(categories))


async def test_a_deleted_chats_row_number_given_to_another_chat_is_not_written_over(ctx: Context) -> None:
    """A chat's state row deleted (an invite accepted, housekeeping) while this process keeps a copy of it, and its
    number given to a new chat's row (SQLite reuses the highest row number): the old chat's next update must not
    write over the new chat's state, whose number and version it matches."""
    conversations = Conversations(ctx)
    first, second = "3501", "3502"
    await conversations.handle("telegram", first, _start(), update_id=1)
    first_hash = lookup_hash(ctx.keys, "telegram", first)
    async with ctx.sessions.begin() as session:
        (first_row,) = (await session.execute(select(DialogState.id).where(DialogState.chat_hash == first_hash))).one()
        await session.execute(delete(DialogState).where(DialogState.id == first_row))
    await conversations.handle("telegram", second, _start(), update_id=1)
    second_hash = lookup_hash(ctx.keys, "telegram", second)
    async with ctx.sessions() as session:
        second_row = (await session.execute(select(DialogState.id).where(DialogState.chat_hash == second_hash))).one()
    if ctx.engine.dialect.name == "sqlite":
        assert second_row.id == first_row  # the case under test: the same row number, the same version (1)

    types = await conversations.handle("telegram", first, _press("menu:file"), update_id=2)
    assert "type:phan_anh" in _payloads(types)  # the first chat goes on, from a state of its own
    async with ctx.sessions() as session:
        rows = dict((await session.execute(select(DialogState.chat_hash, DialogState.version))).all())
    assert rows[second_hash] == 1, "the second chat's state was written over"
    menu = await conversations.handle("telegram", second, _press("menu:file"), update_id=2)
    assert "type:phan_anh" in _payloads(menu)


async def test_a_refused_filing_leaves_nothing_behind(ctx: Context) -> None:
    """The desk a citizen started from is closed while they write: sending is refused with a message, they are
    back at the summary, and nothing of the item was written (a filing refuses before it writes, so it runs
    without a savepoint); once the desk is open again, the same draft is filed."""
    async with ctx.sessions.begin() as session:
        desk = await add_desk(ctx, session, unit_code="ubnd_xa_muong_phang", name="Bộ phận một cửa")
    conversations = Conversations(ctx)
    chat = "3601"
    start = Event(kind="command", command="start", args=sign_desk(ctx.keys, desk.code), language="vi")
    rendered = await conversations.handle("telegram", chat, start, update_id=1)
    steps = [
        _press("menu:file"),
        _press("type:phan_anh"),
        _press("cat:dat_dai"),
        Event(kind="text", text="Bỏ qua", language="vi"),
        _press("cond:n"),
        Event(kind="text", text="Đường vào bản bị sạt lở sau mưa lớn, xe máy không đi qua được.", language="vi"),
        _press("desc:done"),
        _press("att:done"),
        _press("id:anon"),
    ]
    for update_id, event in enumerate(steps, start=2):
        rendered = await conversations.handle("telegram", chat, event, update_id=update_id)
    assert "sum:send" in _payloads(rendered)

    async def counts() -> list[int]:
        async with ctx.sessions() as session:
            tables = (Item, ItemMessage, Citizen, Outbox)
            found = [await session.scalar(select(func.count()).select_from(table)) or 0 for table in tables]
            events = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "submit")
            return [*found, await session.scalar(events) or 0]

    before = await counts()
    async with ctx.sessions.begin() as session:
        await set_desk_active(ctx, session, desk.code, False)
    refused = await conversations.handle("telegram", chat, _press("sum:send"), update_id=20)
    assert "ngừng hoạt động" in refused.replies[0]["text"] and "sum:send" in _payloads(refused)
    assert await counts() == before, "a refused filing wrote something"
    async with ctx.sessions.begin() as session:
        await set_desk_active(ctx, session, desk.code, True)
    filed = await conversations.handle("telegram", chat, _press("sum:send"), update_id=21)
    assert filed.queued
    async with ctx.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Item)) == before[0] + 1


async def test_a_citizen_who_switches_language_is_told_later_news_in_the_new_one(ctx: Context) -> None:
    """Filed in English, then /lang vi: the bot speaks Vietnamese from then on, and so must the notices that
    reach the citizen later (an item accepted, an answer), which used to keep the language of the filing."""
    conversations = Conversations(ctx)
    draft = Draft(type="phan_anh", category="dat_dai", commune_code="3325", description=DESCRIPTION)
    async with ctx.sessions.begin() as session:
        item_id = (await submit_item(ctx, session, draft, channel="telegram", channel_id="3601", locale="en")).item.id
    switched = await conversations.handle(
        "telegram", "3601", Event(kind="command", command="lang", args="vi", language="en"), update_id=1
    )
    assert switched.locale == "vi" and switched.replies
    async with ctx.sessions.begin() as session:
        await accept_item(ctx, session, await lock_item(session, item_id), actor="official:1")
    async with ctx.sessions() as session:
        notices = [row.payload["text"] for row in (await session.execute(select(Outbox))).scalars()]
    assert any("đã được" in text and "thụ lý" in text for text in notices), notices
    assert not any("was accepted" in text for text in notices)
