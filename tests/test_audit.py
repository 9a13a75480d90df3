"""The audit trail is a hash chain: any edited, deleted or hand-inserted row is found and named. Events are
sealed into the chain after their commit, so audited writes never wait for each other."""

import asyncio
from datetime import UTC, datetime

import aiohttp
import pytest
from sqlalchemy import JSON, Boolean, column, select, table, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import audit
from models.db import create_engine
from models.migrate import downgrade, upgrade
from models.tables import AuditEvent, UTCDateTime

# audit_events as migration 0003 left it: an event's place in the chain was its id.
OLD_EVENTS = table(
    "audit_events",
    column("id"),
    column("action"),
    column("actor"),
    column("data", JSON),
    column("public", Boolean),
    column("created_at", UTCDateTime(timezone=True)),
    column("prev_hash"),
    column("hash"),
)
POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


async def _append_events(sessions: async_sessionmaker[AsyncSession], count: int) -> None:
    for index in range(count):
        async with sessions.begin() as session:
            await audit.append(session, action="note", actor="test", data={"n": index, "text": "Mường Phăng"})


async def _verify(sessions: async_sessionmaker[AsyncSession]) -> audit.VerifyResult:
    async with sessions() as session:
        return await audit.verify(session)


async def _places(sessions: async_sessionmaker[AsyncSession]) -> dict[int, int | None]:
    """Event id → its place in the chain (None: not sealed)."""
    async with sessions() as session:
        return {row.id: row.seq for row in await session.execute(select(AuditEvent.id, AuditEvent.seq))}


async def test_an_untouched_chain_verifies_once_sealed(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _append_events(sessions, 5)
    waiting = await _verify(sessions)
    assert waiting.ok and waiting.checked == 0 and waiting.unsealed == 5
    assert await audit.seal(engine) == 5
    result = await _verify(sessions)
    assert result.ok and result.checked == 5 and result.unsealed == 0
    assert await audit.seal(engine) == 0, "nothing is sealed twice"
    await _append_events(sessions, 2)
    assert await audit.seal(engine) == 2
    assert (await _verify(sessions)).checked == 7, "the chain goes on from its head"


async def test_sealing_in_small_batches_makes_the_same_chain(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _append_events(sessions, 7)
    assert await audit.seal(engine, batch=3) == 7
    result = await _verify(sessions)
    assert result.ok and result.checked == 7
    assert await _places(sessions) == {index: index for index in range(1, 8)}


async def test_an_edited_row_is_named(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
    await _append_events(sessions, 5)
    await audit.seal(engine)
    async with sessions.begin() as session:
        await session.execute(text("UPDATE audit_events SET actor = 'someone else' WHERE id = 3"))
    result = await _verify(sessions)
    assert not result.ok and result.bad_place == 3 and "contents" in result.problem


async def test_a_deleted_row_is_named(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
    await _append_events(sessions, 5)
    await audit.seal(engine)
    async with sessions.begin() as session:
        await session.execute(text("DELETE FROM audit_events WHERE id = 2"))
    result = await _verify(sessions)
    assert not result.ok and result.bad_place == 2


async def test_deleting_the_newest_rows_is_found(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _append_events(sessions, 5)
    await audit.seal(engine)
    async with sessions.begin() as session:
        await session.execute(text("DELETE FROM audit_events WHERE id >= 4"))
    result = await _verify(sessions)
    assert not result.ok and result.bad_place == 4


async def test_a_row_inserted_by_hand_into_the_chain_is_found(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _append_events(sessions, 3)
    await audit.seal(engine)
    async with sessions() as session:
        last_hash = (await session.execute(text("SELECT hash FROM audit_events WHERE seq = 3"))).scalar_one()
    async with sessions.begin() as session:
        await session.execute(
            text(
                "INSERT INTO audit_events (action, actor, data, public, created_at, seq, prev_hash, hash) "
                "VALUES ('note', 'forger', '{}', false, CURRENT_TIMESTAMP, 4, :prev, :hash)"
            ),
            {"prev": last_hash, "hash": "f" * 64},
        )
    result = await _verify(sessions)
    assert not result.ok and result.bad_place == 4


async def test_concurrent_appends_and_two_sealers_keep_one_unbroken_chain(
    ctx_engine_pair: tuple[AsyncEngine, AsyncEngine], sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Four writers append while the sealers of two processes seal: every event gets exactly one place."""
    first, second = ctx_engine_pair
    writing = True

    async def writer(worker: int) -> None:
        for index in range(10):
            async with sessions.begin() as session:
                await audit.append(session, action="note", actor=f"w{worker}", data={"n": index})

    async def sealer(engine: AsyncEngine) -> int:
        sealed = 0
        while writing:
            sealed += await audit.seal(engine, batch=4)
            await asyncio.sleep(0)
        return sealed

    sealers = [asyncio.ensure_future(sealer(engine)) for engine in (first, second)]
    await asyncio.gather(*(writer(worker) for worker in range(4)))
    writing = False
    sealed = sum(await asyncio.gather(*sealers)) + await audit.seal(first)
    assert sealed == 40
    result = await _verify(sessions)
    assert result.ok and result.checked == 40 and result.unsealed == 0
    assert sorted(seq for seq in (await _places(sessions)).values() if seq is not None) == list(range(1, 41))


@pytest.fixture
async def ctx_engine_pair(engine: AsyncEngine) -> tuple[AsyncEngine, AsyncEngine]:
    """The test's engine and a second one on the same database, as another ``pakn serve`` has."""
    schema = engine.dialect.default_schema_name if engine.url.get_backend_name() == "postgresql" else None
    other = create_engine(engine.url.render_as_string(hide_password=False), schema=schema)
    yield engine, other
    await other.dispose()


async def test_a_rolled_back_transaction_leaves_no_event(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _append_events(sessions, 2)
    try:
        async with sessions.begin() as session:
            await audit.append(session, action="note", actor="test")
            raise RuntimeError("crash before commit")
    except RuntimeError:
        pass
    await _append_events(sessions, 1)
    await audit.seal(engine)
    result = await _verify(sessions)
    assert result.ok and result.checked == 3


@POSTGRESQL_ONLY
async def test_an_audited_write_does_not_wait_for_another_ones_commit(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Before sealing after commit, each audited write held the chain's head until it committed, so under load
    filings queued behind each other; now a write commits while another is still open, and the one that commits
    last is sealed after it."""
    slow = sessions()
    await slow.begin()
    await audit.append(slow, action="note", actor="slow")
    await asyncio.wait_for(_append_events(sessions, 1), timeout=10)
    assert await audit.seal(engine) == 1
    await slow.commit()
    await slow.close()
    assert await audit.seal(engine) == 1
    places = await _places(sessions)
    assert places == {1: 2, 2: 1}, "each event has the place of its seal, not of its id"
    result = await _verify(sessions)
    assert result.ok and result.checked == 2


@POSTGRESQL_ONLY
async def test_verify_is_not_fooled_by_a_sealer_at_work(
    ctx_engine_pair: tuple[AsyncEngine, AsyncEngine], sessions: async_sessionmaker[AsyncSession]
) -> None:
    """`pakn audit verify` while `pakn serve` seals: the head moving on during the walk is no broken chain."""
    first, second = ctx_engine_pair
    await _append_events(sessions, 20)
    await audit.seal(first)
    busy = True
    seals = 0

    async def keep_sealing() -> None:
        nonlocal seals
        while busy:
            await _append_events(sessions, 1)
            seals += await audit.seal(second, batch=1)

    sealing = asyncio.ensure_future(keep_sealing())
    results: list[audit.VerifyResult] = []
    try:
        # At least 40 walks, the last one begun after the sealer had moved the head a few times (on a loaded
        # machine 40 walks can end before its first seal).
        while len(results) < 5000:
            sealed_before = seals
            results.append(await _verify(sessions))
            if len(results) >= 40 and sealed_before >= 3:
                break
    finally:
        busy = False
        await sealing
    assert all(result.ok for result in results), [result.problem for result in results if not result.ok]
    assert results[-1].checked > 20, "the sealer was at work meanwhile"


async def test_a_chain_written_before_sealing_existed_goes_on_after_the_migration(
    database_url: tuple[str, str | None],
) -> None:
    """Migration 0004: events chained by their ids (the old scheme) keep verifying, new ones continue them; a
    downgrade refuses unsealed events and turns places back into ids."""
    url, schema = database_url
    engine = create_engine(url, schema=schema)
    try:
        await upgrade(engine, "0003")
        prev = audit.GENESIS
        async with engine.begin() as connection:
            for event_id in (1, 2, 3):
                created_at = datetime(2026, 3, event_id, 2, 0, tzinfo=UTC)
                digest = audit.event_hash(prev, event_id, None, "note", "old", {"n": event_id}, False, created_at)
                await connection.execute(
                    OLD_EVENTS.insert().values(
                        id=event_id,
                        action="note",
                        actor="old",
                        data={"n": event_id},
                        public=False,
                        created_at=created_at,
                        prev_hash=prev,
                        hash=digest,
                    )
                )
                prev = digest
            await connection.execute(
                text("INSERT INTO audit_head (id, last_event_id, last_hash) VALUES (1, 3, :hash)"), {"hash": prev}
            )
        await upgrade(engine)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        assert (await _verify(sessions)).checked == 3
        async with sessions() as session:  # on PostgreSQL this burns an id: the places no longer follow the ids
            await audit.append(session, action="note", actor="test")
            await session.rollback()
        await _append_events(sessions, 2)  # on PostgreSQL: ids from a sequence that has caught up with 3
        assert await audit.seal(engine) == 2
        result = await _verify(sessions)
        assert result.ok and result.checked == 5
        assert sorted(seq for seq in (await _places(sessions)).values() if seq) == [1, 2, 3, 4, 5]
        await _append_events(sessions, 1)
        with pytest.raises(RuntimeError, match="1 audit events are not sealed yet"):
            await downgrade(engine, "0003")
        await audit.seal(engine)
        await downgrade(engine, "0003")
        async with engine.connect() as connection:
            ids = (await connection.execute(text("SELECT id FROM audit_events ORDER BY id"))).scalars().all()
            head = (await connection.execute(text("SELECT last_event_id FROM audit_head"))).scalar_one()
        assert ids == [1, 2, 3, 4, 5, 6] and head == 6, "back to ids as places"
    finally:
        await engine.dispose()


async def test_metrics_count_the_events_waiting_for_their_seal(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], web_url: str
) -> None:
    """An operator can alert on a sealer that has stopped: /metrics says how many events wait for their seal."""

    async def unsealed() -> str:
        async with aiohttp.ClientSession() as http, http.get(f"{web_url}/metrics") as response:
            assert response.status == 200
            text = await response.text()
        return next(line for line in text.splitlines() if line.startswith("pakn_audit_unsealed "))

    await _append_events(sessions, 3)
    assert await unsealed() == "pakn_audit_unsealed 3.0"
    await audit.seal(engine)
    assert await unsealed() == "pakn_audit_unsealed 0.0"
