"""Fixed-window rate limits kept in the database, so every ``pakn serve`` process counts the same hits.

A limit is "at most ``count`` hits per ``window``" for one key (a scope and a hashed client). Windows are
aligned to the Unix epoch, so all processes agree on where a window starts without talking to each other.
One hit is one ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` statement: atomic on PostgreSQL and SQLite,
with no read-modify-write race between processes.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, delete
from sqlalchemy.ext.asyncio import AsyncSession

from bot.privacy import Keys
from models.db import upsert_insert
from models.tables import Throttle

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Rows older than this are deleted now and then by ``hit`` (no limit here uses a longer window).
_KEEP = timedelta(days=2)
_PURGE_ONE_IN = 200


@dataclass(frozen=True)
class Limit:
    count: int
    window: timedelta

    def __post_init__(self) -> None:
        if self.count < 1 or self.window <= timedelta(0) or self.window > _KEEP:
            raise ValueError(f"bad limit {self!r}: count ≥ 1 and 0 < window ≤ {_KEEP}")


def window_start(now: datetime, window: timedelta) -> datetime:
    """The start of the fixed window holding ``now``."""
    elapsed = (now - _EPOCH) // window
    return _EPOCH + elapsed * window


async def hit(
    session: AsyncSession, scope: str, client: str, limit: Limit, *, now: datetime, start: datetime | None = None
) -> bool:
    """Count one hit for ``client`` in ``scope``; True while the window's count is within the limit.

    ``start`` overrides the epoch-aligned window start (a "per local day" limit passes local midnight).
    Runs in the caller's transaction and holds the counter's row lock until it ends, which also serialises
    concurrent requests of one client. Commit even when the answer is False, so refusals count too.
    """
    key = f"{scope}:{client}"
    if len(key) > 96:
        raise ValueError(f"throttle key too long: {len(key)} characters")
    if start is None:
        start = window_start(now, limit.window)
    insert_row = upsert_insert(session.get_bind().dialect.name)(Throttle).values(key=key, window_start=start, count=1)
    same_window = Throttle.window_start >= insert_row.excluded.window_start
    statement = insert_row.on_conflict_do_update(
        index_elements=[Throttle.key],
        set_={
            "count": case((same_window, Throttle.count + 1), else_=1),
            "window_start": case((same_window, Throttle.window_start), else_=insert_row.excluded.window_start),
        },
    ).returning(Throttle.count)
    count = (await session.execute(statement)).scalar_one()
    if secrets.randbelow(_PURGE_ONE_IN) == 0:
        await purge(session, now=now)
    return int(count) <= limit.count


async def purge(session: AsyncSession, *, now: datetime) -> int:
    """Delete counters whose window ended long ago; they can no longer refuse anything."""
    result = await session.execute(delete(Throttle).where(Throttle.window_start < now - _KEEP))
    return int(getattr(result, "rowcount", 0) or 0)


def client_hash(keys: Keys, address: str | None) -> str:
    """A keyed hash of the client's network address: counted without being stored.

    IPv6 clients are counted by their /64 network, since one subscriber usually holds a whole /64 and
    could otherwise rotate addresses to escape every limit.
    """
    text = address or "unknown"
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, ipaddress.IPv6Address):
        text = str(parsed.ipv4_mapped or ipaddress.ip_network(f"{parsed}/64", strict=False))
    return hmac.new(keys.lookup, f"client-ip|{text}".encode(), hashlib.sha256).hexdigest()[:40]
