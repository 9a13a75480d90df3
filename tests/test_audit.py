"""The audit trail is a hash chain: any edited, deleted or hand-inserted row is found and named."""

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import audit


async def _append_events(sessions: async_sessionmaker[AsyncSession], count: int) -> None:
    for index in range(count):
        async with sessions.begin() as session:
            await audit.append(session, action="note", actor="test", data={"n": index, "text": "Mường Phăng"})


async def _verify(sessions: async_sessionmaker[AsyncSession]) -> audit.VerifyResult:
    async with sessions() as session:
        return await audit.verify(session)


async def test_an_untouched_chain_verifies(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _append_events(sessions, 5)
    result = await _verify(sessions)
    assert result.ok and result.checked == 5


async def test_an_edited_row_is_named(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _append_events(sessions, 5)
    async with sessions.begin() as session:
        await session.execute(text("UPDATE audit_events SET actor = 'someone else' WHERE id = 3"))
    result = await _verify(sessions)
    assert not result.ok and result.bad_event_id == 3


async def test_a_deleted_row_is_named(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _append_events(sessions, 5)
    async with sessions.begin() as session:
        await session.execute(text("DELETE FROM audit_events WHERE id = 2"))
    result = await _verify(sessions)
    assert not result.ok and result.bad_event_id == 2


async def test_deleting_the_newest_rows_is_found(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _append_events(sessions, 5)
    async with sessions.begin() as session:
        await session.execute(text("DELETE FROM audit_events WHERE id >= 4"))
    result = await _verify(sessions)
    assert not result.ok and result.bad_event_id == 4


async def test_a_row_inserted_by_hand_is_found(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _append_events(sessions, 3)
    async with sessions() as session:
        last_hash = (await session.execute(text("SELECT hash FROM audit_events WHERE id = 3"))).scalar_one()
    async with sessions.begin() as session:
        await session.execute(
            text(
                "INSERT INTO audit_events (id, action, actor, data, public, created_at, prev_hash, hash) "
                "VALUES (4, 'note', 'forger', '{}', false, CURRENT_TIMESTAMP, :prev, :hash)"
            ),
            {"prev": last_hash, "hash": "f" * 64},
        )
    result = await _verify(sessions)
    assert not result.ok and result.bad_event_id == 4


async def test_concurrent_appends_keep_one_unbroken_chain(sessions: async_sessionmaker[AsyncSession]) -> None:
    async def writer(worker: int) -> None:
        for index in range(5):
            async with sessions.begin() as session:
                await audit.append(session, action="note", actor=f"w{worker}", data={"n": index})

    await asyncio.gather(*(writer(worker) for worker in range(4)))
    result = await _verify(sessions)
    assert result.ok and result.checked == 20


async def test_a_rolled_back_transaction_leaves_no_event(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _append_events(sessions, 2)
    try:
        async with sessions.begin() as session:
            await audit.append(session, action="note", actor="test")
            raise RuntimeError("crash before commit")
    except RuntimeError:
        pass
    await _append_events(sessions, 1)
    result = await _verify(sessions)
    assert result.ok and result.checked == 3
