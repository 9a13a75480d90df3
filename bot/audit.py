"""Tamper-evident audit trail: every action on an item is an append-only, hash-chained event.

An audited write only inserts its event, in its own transaction, with no place in the chain yet. A sealer then
chains the committed events in the order of their ids (:func:`seal`; ``pakn serve`` runs one every second,
:class:`Sealer`): each event gets the next place (``seq``), the previous event's hash and its own hash, which
covers its fields, its place and the previous hash; the head row holds the tip. Sealing locks the head row
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite transactions start with ``BEGIN IMMEDIATE``), so one sealer at
a time extends the chain and it never forks, while the writes that append events never wait for each other:
before, each of them held that lock until its commit, and under load filings queued behind it.

``verify`` walks the sealed chain and detects an edited row (hash mismatch), a deleted row (gap or broken link),
a row inserted by hand with a place in the chain (broken link) and a deleted tail (head mismatch). As before,
the chain cannot stop someone with write access to the database from adding events at its end (now simply by
inserting them unsealed); an event is also unprotected between its commit and its seal: about a second while
``pakn serve`` runs, until the next ``pakn serve`` or ``pakn audit verify`` for one a command wrote meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from models.db import Prepared, begin, upsert_insert
from models.tables import AuditEvent, AuditHead, utcnow

log = logging.getLogger(__name__)

GENESIS = "0" * 64
HEAD_ID = 1


def event_hash(
    prev_hash: str,
    seq: int,
    item_id: int | None,
    action: str,
    actor: str,
    data: dict[str, Any],
    public: bool,
    created_at: datetime,
) -> str:
    canonical = json.dumps(
        [prev_hash, seq, item_id, action, actor, data, public, created_at.isoformat(timespec="microseconds")],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


_EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]
_HEAD: Table = AuditHead.__table__  # type: ignore[assignment]
_INSERT_EVENT = Prepared(_EVENTS.insert())
_SELECT_HEAD = select(_HEAD.c.last_seq, _HEAD.c.last_hash).where(_HEAD.c.id == HEAD_ID).with_for_update()
_MOVE_HEAD = _HEAD.update().where(_HEAD.c.id == HEAD_ID)
_UNSEALED = _EVENTS.c.seq.is_(None)
_SELECT_UNSEALED = (
    select(
        _EVENTS.c.id,
        _EVENTS.c.item_id,
        _EVENTS.c.action,
        _EVENTS.c.actor,
        _EVENTS.c.data,
        _EVENTS.c.public,
        _EVENTS.c.created_at,
    )
    .where(_UNSEALED)
    .order_by(_EVENTS.c.id)
    .limit(bindparam("batch"))
)
_ANY_UNSEALED = select(_EVENTS.c.id).where(_UNSEALED).limit(1)
_SEAL_EVENT = (
    _EVENTS.update()
    .where(_EVENTS.c.id == bindparam("event_id"))
    .values(seq=bindparam("new_seq"), prev_hash=bindparam("new_prev_hash"), hash=bindparam("new_hash"))
)


async def append(
    session: AsyncSession,
    *,
    action: str,
    actor: str,
    item_id: int | None = None,
    data: dict[str, Any] | None = None,
    public: bool = False,
    now: datetime | None = None,
) -> None:
    """Append one event in the caller's transaction (it is sealed into the chain after the commit). ``data``
    must never hold identity data.

    The session's pending changes are written first, so the event follows what it records; the event itself is
    one Core ``INSERT`` (no unit of work, no lock)."""
    await session.flush()
    connection = await session.connection()
    await _INSERT_EVENT.execute(
        connection,
        {
            "item_id": item_id,
            "action": action,
            "actor": actor,
            "data": dict(data or {}),
            "public": public,
            "created_at": now or utcnow(),
        },
    )


async def _locked_head(connection: AsyncConnection) -> tuple[int, str]:
    """The chain's tip, locked until the transaction ends; created by the very first seal."""
    head = (await connection.execute(_SELECT_HEAD)).first()
    if head is None:
        genesis = upsert_insert(connection.dialect.name)(_HEAD).values(id=HEAD_ID, last_seq=0, last_hash=GENESIS)
        await connection.execute(genesis.on_conflict_do_nothing())
        head = (await connection.execute(_SELECT_HEAD)).one()
    return head.last_seq, head.last_hash


async def seal(engine: AsyncEngine, batch: int = 1000) -> int:
    """Chain every committed event that has no place yet, in the order of their ids; the number sealed.

    One transaction per ``batch`` events, holding the head's lock: sealers in several processes take turns and
    the second finds nothing left. An event whose transaction commits after a later one was sealed gets the
    next place when it is seen, so places follow the order of sealing, not of ids."""
    sealed = 0
    while True:
        async with begin(engine) as connection:
            if (await connection.execute(_ANY_UNSEALED)).first() is None:
                return sealed
            last_seq, last_hash = await _locked_head(connection)
            # Read after the lock, which may have waited for another sealer: what it sealed is seen as sealed.
            rows = (await connection.execute(_SELECT_UNSEALED, {"batch": batch})).all()
            places = []
            for row in rows:
                last_seq += 1
                digest = event_hash(
                    last_hash, last_seq, row.item_id, row.action, row.actor, row.data, row.public, row.created_at
                )
                places.append({"event_id": row.id, "new_seq": last_seq, "new_prev_hash": last_hash, "new_hash": digest})
                last_hash = digest
            if places:
                await connection.execute(_SEAL_EVENT, places)
                await connection.execute(_MOVE_HEAD, {"last_seq": last_seq, "last_hash": last_hash})
        sealed += len(rows)
        if len(rows) < batch:
            return sealed


class Sealer:
    """Seals the events appended in any process, every ``idle`` seconds (``pakn serve`` runs one)."""

    def __init__(self, engine: AsyncEngine, idle: float = 1.0) -> None:
        self.engine = engine
        self.idle = idle

    async def run_forever(self) -> None:
        while True:
            try:
                await seal(self.engine)
            except Exception:
                log.exception("sealing audit events failed; retrying")
            await asyncio.sleep(self.idle)

    async def stop(self, task: asyncio.Task[None]) -> None:
        """Cancel the loop and seal what the last requests appended, so that a clean stop leaves nothing open."""
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await seal(self.engine)


async def count_unsealed(session: AsyncSession) -> int:
    """The events committed but not sealed into the chain yet."""
    return int((await session.execute(select(func.count()).select_from(_EVENTS).where(_UNSEALED))).scalar_one())


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    bad_place: int | None = None  # the first place in the chain that is wrong
    problem: str = ""
    unsealed: int = 0  # events committed but not sealed yet (``seal`` chains them)
    bad_row_id: int | None = None  # the id of the event at ``bad_place``, when there is one


# The chain in order of places; the events not sealed yet after them, by id.
CHAIN_ORDER = (_EVENTS.c.seq.is_(None), _EVENTS.c.seq, _EVENTS.c.id)


async def verify(session: AsyncSession, batch: int = 5000) -> VerifyResult:
    """Walk the sealed chain from its first place; report the first event that breaks it.

    On PostgreSQL a fresh session reads one snapshot (``REPEATABLE READ``): a sealer at work in ``pakn serve``
    meanwhile would otherwise move the head past the events already walked. (On SQLite the session's
    ``BEGIN IMMEDIATE`` keeps sealers out.)"""
    if session.bind is not None and session.bind.dialect.name == "postgresql" and not session.in_transaction():
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    expected_prev = GENESIS
    expected_seq = 1
    checked = 0
    while True:
        rows = (
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.seq >= expected_seq).order_by(AuditEvent.seq).limit(batch)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for event in rows:
            if event.seq != expected_seq:
                return VerifyResult(
                    False, checked, expected_seq, f"event {expected_seq} is missing (next is {event.seq})"
                )
            if event.prev_hash != expected_prev:
                return VerifyResult(
                    False, checked, event.seq, "link to the previous event is broken", bad_row_id=event.id
                )
            recomputed = event_hash(
                expected_prev,
                expected_seq,
                event.item_id,
                event.action,
                event.actor,
                event.data,
                event.public,
                event.created_at,
            )
            if recomputed != event.hash:
                return VerifyResult(
                    False, checked, event.seq, "contents do not match the recorded hash", bad_row_id=event.id
                )
            expected_prev = recomputed
            expected_seq += 1
            checked += 1
        session.expunge_all()
    head = (await session.execute(select(AuditHead).where(AuditHead.id == HEAD_ID))).scalar_one_or_none()
    head_seq, head_hash = (head.last_seq, head.last_hash) if head else (0, GENESIS)
    if head_seq != checked or head_hash != expected_prev:
        bad = checked + 1 if head_seq > checked else head_seq
        return VerifyResult(False, checked, bad, f"chain head says {head_seq} events, found {checked}")
    return VerifyResult(True, checked, unsealed=await count_unsealed(session))
