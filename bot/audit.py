"""Tamper-evident audit trail: every action on an item is an append-only, hash-chained event.

Each event's hash covers its own fields and the previous event's hash; a head row holds the tip of the
chain. Appends lock the head row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite transactions already
start with ``BEGIN IMMEDIATE``), so ids are consecutive and the chain never forks. ``verify`` then
detects an edited row (hash mismatch), a deleted row (gap or broken link), a row inserted by hand
(broken link or a head that does not match) and a deleted tail (head mismatch).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from models.db import upsert_insert
from models.tables import AuditEvent, AuditHead, utcnow

GENESIS = "0" * 64
HEAD_ID = 1


def event_hash(
    prev_hash: str,
    event_id: int,
    item_id: int | None,
    action: str,
    actor: str,
    data: dict[str, Any],
    public: bool,
    created_at: datetime,
) -> str:
    canonical = json.dumps(
        [prev_hash, event_id, item_id, action, actor, data, public, created_at.isoformat(timespec="microseconds")],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


_EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]
_HEAD: Table = AuditHead.__table__  # type: ignore[assignment]
_SELECT_HEAD = select(_HEAD.c.last_event_id, _HEAD.c.last_hash).where(_HEAD.c.id == HEAD_ID).with_for_update()
_MOVE_HEAD = _HEAD.update().where(_HEAD.c.id == HEAD_ID)


async def _locked_head(connection: AsyncConnection) -> tuple[int, str]:
    """The chain's tip, locked until the transaction ends; created on the very first append."""
    head = (await connection.execute(_SELECT_HEAD)).first()
    if head is None:
        genesis = upsert_insert(connection.dialect.name)(_HEAD).values(id=HEAD_ID, last_event_id=0, last_hash=GENESIS)
        await connection.execute(genesis.on_conflict_do_nothing())
        head = (await connection.execute(_SELECT_HEAD)).one()
    return head.last_event_id, head.last_hash


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
    """Append one event in the caller's transaction. ``data`` must never hold identity data.

    The session's pending changes are written first, so the event follows what it records; the event itself
    is written with Core statements (three per event, no unit of work)."""
    await session.flush()
    connection = await session.connection()
    last_event_id, last_hash = await _locked_head(connection)
    created_at = now or utcnow()
    payload = dict(data or {})
    event_id = last_event_id + 1
    digest = event_hash(last_hash, event_id, item_id, action, actor, payload, public, created_at)
    await connection.execute(
        _EVENTS.insert(),
        {
            "id": event_id,
            "item_id": item_id,
            "action": action,
            "actor": actor,
            "data": payload,
            "public": public,
            "created_at": created_at,
            "prev_hash": last_hash,
            "hash": digest,
        },
    )
    await connection.execute(_MOVE_HEAD, {"last_event_id": event_id, "last_hash": digest})


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    bad_event_id: int | None = None
    problem: str = ""


async def verify(session: AsyncSession, batch: int = 5000) -> VerifyResult:
    """Walk the chain from the first event; report the first event that breaks it."""
    expected_prev = GENESIS
    expected_id = 1
    checked = 0
    last_id = 0
    while True:
        rows = (
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for event in rows:
            if event.id != expected_id:
                return VerifyResult(False, checked, expected_id, f"event {expected_id} is missing (next is {event.id})")
            if event.prev_hash != expected_prev:
                return VerifyResult(False, checked, event.id, "link to the previous event is broken")
            recomputed = event_hash(
                event.prev_hash,
                event.id,
                event.item_id,
                event.action,
                event.actor,
                event.data,
                event.public,
                event.created_at,
            )
            if recomputed != event.hash:
                return VerifyResult(False, checked, event.id, "contents do not match the recorded hash")
            expected_prev = event.hash
            expected_id += 1
            checked += 1
            last_id = event.id
        session.expunge_all()
    head = (await session.execute(select(AuditHead).where(AuditHead.id == HEAD_ID))).scalar_one_or_none()
    head_id, head_hash = (head.last_event_id, head.last_hash) if head else (0, GENESIS)
    if head_id != checked or head_hash != expected_prev:
        bad = checked + 1 if head_id > checked else head_id
        return VerifyResult(False, checked, bad, f"chain head says {head_id} events, found {checked}")
    return VerifyResult(True, checked)
