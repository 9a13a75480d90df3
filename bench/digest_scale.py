"""Digest at scale: seed N items with bulk inserts, then time the weekly digest of every unit at once.

    .venv/bin/python bench/digest_scale.py                                  # 1,000,000 items, SQLite in a temp dir
    .venv/bin/python bench/digest_scale.py --items 100000 --database-url postgresql://postgres@127.0.0.1/test

The data look like a province after three years: items over 45 communes and the provincial departments (about
60 units, communes busier than departments), the five item types in realistic proportions, most items answered
and closed, a few per cent late, a small backlog of items nobody handled, extensions, transfers, ratings and
desk ratings — with their clocks computed on Vietnam's working-day calendar and the audit events the digest
reads (the hash chain is not valid: `pakn audit verify` fails on a benchmark database). Rows are generated in
batches and written with ``executemany`` (SQLite) or ``COPY`` (PostgreSQL), never through the ORM; the schema
comes from the real migrations, indexes included. The week timed is 2026-W10, the data ending on the Monday
morning the digest is due.

On PostgreSQL everything goes into the schema ``--schema`` (default ``pakn_bench``), dropped and recreated
first and dropped at the end unless ``--keep``. The printed figures are what docs/PERFORMANCE.md records.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Table, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.sql.schema import ScalarElementColumnDefault  # noqa: E402

from bot.calendar import WorkingCalendar  # noqa: E402
from bot.context import Context  # noqa: E402
from bot.digest import IsoWeek, compute_province_digest  # noqa: E402
from bot.privacy import Keys, Vault  # noqa: E402
from bot.units import sync_units  # noqa: E402
from config import Province, Settings, load_province  # noqa: E402
from config.settings import BUNDLED_PROVINCE_DIR, normalise_database_url  # noqa: E402
from models import create_engine, make_session_factory  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.tables import AuditEvent, Clock, Desk, DeskRating, Item  # noqa: E402

WEEK = IsoWeek(2026, 10)
YEARS = 3
BATCH = 20_000
TYPES = (("phan_anh", 45), ("kien_nghi", 25), ("gop_y", 15), ("khieu_nai", 10), ("to_cao", 5))
RATINGS = ((1, 8), (2, 10), (3, 20), (4, 32), (5, 30))
DESK_SCORES = ((1, 15), (2, 25), (3, 60))


@dataclass
class BenchResult:
    backend: str
    items: int
    database: str = ""
    clocks: int = 0
    events: int = 0
    desk_ratings: int = 0
    seed_seconds: float = 0.0
    digest_seconds: list[float] = field(default_factory=list)
    render_seconds: float | None = None
    received: int = 0
    overdue: int = 0
    units: int = 0


class Calendar:
    """O(1) working-day arithmetic over the benchmark's range, from the real WorkingCalendar."""

    def __init__(self, calendar: WorkingCalendar, first: date, last: date) -> None:
        self.first = first
        self.number: list[int] = []  # working days up to and including first + i
        self.working: list[date] = []
        count = 0
        day = first
        while day <= last:
            if calendar.is_working_day(day):
                count += 1
                self.working.append(day)
            self.number.append(count)
            day += timedelta(days=1)
        self.working_set = set(self.working)

    def n(self, day: date) -> int:
        return self.number[(day - self.first).days]

    def add_working(self, day: date, days: int) -> date:
        return self.working[self.n(day) + days - 1]

    def next_working(self, day: date) -> date:
        while day not in self.working_set:
            day += timedelta(days=1)
        return day

    def add(self, day: date, days: int, unit: str) -> date:
        return self.add_working(day, days) if unit == "working" else self.next_working(day + timedelta(days=days))


class Writer:
    """Bulk rows into one backend; values are converted the way SQLAlchemy stores them."""

    def __init__(self, backend: str, connection: Any, schema: str | None) -> None:
        self.backend = backend
        self.connection = connection
        self.schema = schema

    def dt(self, moment: datetime | None) -> Any:
        if moment is None or self.backend != "sqlite":
            return moment
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def day(self, value: date | None) -> Any:
        return value.isoformat() if value is not None and self.backend == "sqlite" else value

    def flag(self, value: bool) -> Any:
        return int(value) if self.backend == "sqlite" else value

    @staticmethod
    def columns(table: Table, rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Every column of the table: given values, else the column's scalar default, else NULL."""
        names = [column.name for column in table.columns]
        defaults = {}
        for column in table.columns:
            default = column.default
            if isinstance(default, ScalarElementColumnDefault):
                defaults[column.name] = default.arg
            elif column.nullable or column.name in rows[0]:
                defaults[column.name] = None
            else:
                raise ValueError(f"bench: no value for {table.name}.{column.name} (NOT NULL, no scalar default)")
        return names, [tuple(row.get(name, defaults[name]) for name in names) for row in rows]

    async def write(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        names, records = self.columns(table, rows)
        if self.backend == "sqlite":
            marks = ", ".join("?" for _ in names)
            self.connection.executemany(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})", records)
        else:
            await self.connection.copy_records_to_table(
                table.name, records=records, columns=names, schema_name=self.schema
            )


def _weighted(rng: random.Random, choices: Sequence[tuple[Any, int]]) -> Iterator[Any]:
    values = [value for value, _ in choices]
    weights = [weight for _, weight in choices]
    while True:
        yield from rng.choices(values, weights, k=4096)


async def seed(
    province: Province, calendar: WorkingCalendar, writer: Writer, items: int, rng: random.Random
) -> tuple[int, int, int]:
    """Generate and write ``items`` items with their clocks and audit events, desks and desk ratings."""
    zone = province.timezone
    end = datetime.combine(WEEK.next_monday, datetime.min.time(), tzinfo=zone).replace(hour=7, minute=30)
    start = end - timedelta(days=365 * YEARS)
    span = (end - start).total_seconds()
    cal = Calendar(calendar, start.date() - timedelta(days=2), end.date() + timedelta(days=400))
    communes = list(province.communes.values())
    provincial = [u.code for u in province.units.values() if u.commune_code is None]
    unit_choices = [((c.unit_code, c.code), 3) for c in communes] + [((code, None), 4) for code in provincial]
    units = _weighted(rng, unit_choices)
    types = _weighted(rng, TYPES)
    ratings = _weighted(rng, RATINGS)
    categories = list(province.categories)
    all_units = [u for u in province.units]

    def at(day: date, hour: float) -> datetime:
        return datetime.combine(day, datetime.min.time(), tzinfo=zone) + timedelta(hours=hour)

    item_rows: list[dict[str, Any]] = []
    clock_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    clock_id = event_id = 0
    total_clocks = total_events = 0
    fake_hash = "0" * 64

    def event(item_id: int, action: str, moment: datetime, data: dict[str, Any]) -> None:
        nonlocal event_id
        event_id += 1
        event_rows.append(
            {
                "id": event_id,
                "item_id": item_id,
                "action": action,
                "actor": "bench",
                "data": json.dumps(data),
                "public": writer.flag(True),
                "created_at": writer.dt(moment),
                "seq": event_id,  # sealed already: a sealer has nothing to do
                "prev_hash": fake_hash,
                "hash": fake_hash,
            }
        )

    def clock(item_id: int, kind: str, start_day: date, due: date, days: int, unit: str, **extra: Any) -> None:
        nonlocal clock_id
        clock_id += 1
        clock_rows.append(
            {
                "id": clock_id,
                "item_id": item_id,
                "kind": kind,
                "start_date": writer.day(start_day),
                "due_date": writer.day(due),
                "days": days,
                "day_unit": unit,
                "basis": "bench",
                "extensions": extra.get("extensions", 0),
                "paused_days": 0,
                "met_at": writer.dt(extra.get("met_at")),
                "next_due_at": None,
                "escalated": writer.flag(False),
            }
        )

    async def flush() -> None:
        nonlocal total_clocks, total_events
        await writer.write(Item.__table__, item_rows)  # type: ignore[arg-type]
        await writer.write(Clock.__table__, clock_rows)  # type: ignore[arg-type]
        await writer.write(AuditEvent.__table__, event_rows)  # type: ignore[arg-type]
        total_clocks += len(clock_rows)
        total_events += len(event_rows)
        item_rows.clear()
        clock_rows.clear()
        event_rows.clear()

    for item_id in range(1, items + 1):
        unit_code, commune_code = next(units)
        type_code = next(types)
        rule = province.item_types[type_code]
        received = start + timedelta(seconds=rng.random() * span)
        if received.astimezone(zone).weekday() >= 5 and rng.random() < 0.7:  # fewer on weekends
            received -= timedelta(days=2)
        local_day = received.astimezone(zone).date()
        accept_due = cal.add(local_day, rule.accept.days, rule.accept.unit)
        status = "submitted"
        accepted_at = answered_at = closed_at = None
        rating = None
        paused = False
        abandoned = rng.random() < 0.005  # nobody ever handled it: the overdue backlog
        rejected = rng.random() < 0.03
        if not abandoned:
            lag = rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 6, 8, 10, 12, 14))  # about 1 in 6 accepted late
            candidate = at(cal.add_working(local_day, lag), 8 + rng.random() * 9)
            if candidate < end:
                accepted_at = candidate
                status = "rejected" if rejected else "accepted"
                if rejected:
                    closed_at = candidate
        if accepted_at is not None and not rejected:
            if rule.resolve is None:
                answered_at = accepted_at
            else:
                lag = rng.choice((1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 15, 18, 22))
                candidate = at(cal.add_working(accepted_at.astimezone(zone).date(), lag), 8 + rng.random() * 9)
                answered_at = candidate if candidate < end else None
            if answered_at is not None:
                status = "answered"
                if rng.random() < 0.45:
                    rated = answered_at + timedelta(hours=1 + rng.random() * 72)
                    if rated < end:
                        rating = next(ratings)
                        event(item_id, "rate", rated, {"rating": rating})
                        if rating >= 3:
                            status, closed_at = "closed", rated
        if status in ("submitted", "accepted") and not abandoned and rng.random() < 0.05:
            status, paused = "needs_info", True
        transfer = rng.random() < 0.02
        event(item_id, "submit", received, {"type": type_code, "unit": unit_code})
        if transfer:
            source = rng.choice(all_units)
            moved = received + timedelta(hours=1 + rng.random() * 40)
            if source != unit_code and moved < end:
                event(item_id, "transfer", moved, {"from": source, "to": unit_code, "reason": "bench"})
        if accepted_at is not None:
            event(item_id, "reject" if rejected else "accept", accepted_at, {"unit": unit_code})
        if answered_at is not None:
            event(item_id, "answer", answered_at, {"unit": unit_code})
        first_stop = accepted_at
        clock(item_id, "accept", local_day, accept_due, rule.accept.days, rule.accept.unit, met_at=first_stop)
        if rule.resolve is not None:
            origin = accepted_at.astimezone(zone).date() if accepted_at else accept_due
            due = cal.add(origin, rule.resolve.days, rule.resolve.unit)
            extensions = 0
            if accepted_at is not None and rule.extension is not None and not rejected and rng.random() < 0.04:
                extended_at = accepted_at + timedelta(days=3 + rng.random() * 10)
                if extended_at < end and (answered_at is None or extended_at < answered_at):
                    due = cal.add(due, rule.extension.days, rule.extension.unit)
                    extensions = 1
                    event(item_id, "extend", extended_at, {"resolve_by": due.isoformat()})
            met = answered_at or (closed_at if rejected else None)
            clock(
                item_id, "resolve", origin, due, rule.resolve.days, rule.resolve.unit, met_at=met, extensions=extensions
            )
        item_rows.append(
            {
                "id": item_id,
                "receipt_code": f"BN-{item_id:010d}",
                "type": type_code,
                "category": rng.choice(categories),
                "commune_code": commune_code,
                "unit_code": unit_code,
                "status": status,
                "channel": "telegram",
                "anonymous": writer.flag(type_code not in ("khieu_nai", "to_cao")),
                "complex": writer.flag(False),
                "remote": writer.flag(False),
                "multi_place": writer.flag(False),
                "paused": writer.flag(paused),
                "received_at": writer.dt(received),
                "accepted_at": writer.dt(accepted_at),
                "answered_at": writer.dt(answered_at),
                "closed_at": writer.dt(closed_at),
                "rating": rating,
                "reopen_count": 0,
                "version": 1,
            }
        )
        if len(item_rows) >= BATCH:
            await flush()
    await flush()

    desks = [
        {
            "code": f"D{index:03d}",
            "unit_code": code,
            "name": f"Bộ phận một cửa {index}",
            "active": writer.flag(True),
            "created_at": writer.dt(start),
        }
        for index, code in enumerate(all_units)
    ]
    await writer.write(Desk.__table__, desks)  # type: ignore[arg-type]
    scores = _weighted(rng, DESK_SCORES)
    desk_ratings = items // 4
    rows = []
    days = (end.date() - start.date()).days
    for rating_id in range(1, desk_ratings + 1):
        rows.append(
            {
                "id": rating_id,
                "desk_code": rng.choice(desks)["code"],
                "day": writer.day(start.date() + timedelta(days=rng.randrange(days))),
                "score": next(scores),
                "comment": "",
                "client_hash": f"{rng.getrandbits(64):016x}",
                "created_at": writer.dt(start),
            }
        )
        if len(rows) >= BATCH:
            await writer.write(DeskRating.__table__, rows)  # type: ignore[arg-type]
            rows.clear()
    await writer.write(DeskRating.__table__, rows)  # type: ignore[arg-type]
    return total_clocks, total_events, desk_ratings


async def run(
    items: int = 1_000_000,
    database_url: str | None = None,
    *,
    schema: str = "pakn_bench",
    repeat: int = 3,
    render: bool = False,
    keep: bool = False,
    rng_seed: int = 20260309,
) -> BenchResult:
    """Seed a fresh database and time the all-units digest of ``WEEK``; see the module docstring."""
    province = load_province(BUNDLED_PROVINCE_DIR)
    calendar = WorkingCalendar(province.calendar)
    temporary = None
    if database_url is None:
        temporary = Path(tempfile.mkdtemp(prefix="pakn-digest-bench-"))
        database_url = f"sqlite+aiosqlite:///{temporary / 'bench.db'}"
    url = normalise_database_url(database_url)
    backend = make_url(url).get_backend_name()
    result = BenchResult(backend=backend, items=items, database=make_url(url).render_as_string(hide_password=True))
    pg_schema = schema if backend == "postgresql" else None
    if pg_schema:
        admin = create_engine(url)
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{pg_schema}" CASCADE'))
            await connection.execute(text(f'CREATE SCHEMA "{pg_schema}"'))
        await admin.dispose()
    engine = create_engine(url, schema=pg_schema)
    try:
        await upgrade(engine)
        sessions = make_session_factory(engine)
        async with sessions.begin() as session:
            await sync_units(session, province)
        began = time.perf_counter()
        rng = random.Random(rng_seed)
        if backend == "sqlite":
            import sqlite3

            path = make_url(url).database
            assert path is not None
            database = sqlite3.connect(path, isolation_level=None)
            database.execute("PRAGMA synchronous=OFF")
            database.execute("BEGIN")
            counts = await seed(province, calendar, Writer("sqlite", database, None), items, rng)
            database.execute("COMMIT")
            database.execute("ANALYZE")
            database.close()
        else:
            import asyncpg

            raw = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
            connection = await asyncpg.connect(raw, server_settings={"search_path": pg_schema or "public"})
            try:
                async with connection.transaction():
                    counts = await seed(province, calendar, Writer("postgresql", connection, pg_schema), items, rng)
                await connection.execute("VACUUM ANALYZE")  # what autovacuum does to a settled database
            finally:
                await connection.close()
        result.clocks, result.events, result.desk_ratings = counts
        result.seed_seconds = time.perf_counter() - began

        keys = Keys.from_master(bytes(32))
        ctx = Context(
            settings=Settings(),
            province=province,
            calendar=calendar,
            keys=keys,
            vault=Vault(keys),
            engine=engine,
            sessions=sessions,
        )
        for _ in range(repeat):
            began = time.perf_counter()
            async with sessions() as session:
                digest = await compute_province_digest(ctx, session, WEEK)
            result.digest_seconds.append(time.perf_counter() - began)
        result.received, result.overdue = digest.total.received, digest.total.overdue_count
        result.units = len(digest.units)
        if render:
            result.render_seconds = await _render_everything(ctx, digest)
    finally:
        await engine.dispose()
        if pg_schema and not keep:
            admin = create_engine(url)
            async with admin.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA IF EXISTS "{pg_schema}" CASCADE'))
            await admin.dispose()
        if temporary is not None and not keep:
            shutil.rmtree(temporary, ignore_errors=True)
    return result


async def _render_everything(ctx: Context, province: Any) -> float:
    """What the Monday job adds: every unit's message, chart and workbook, and the province's."""
    from bot.digest import PROVINCE
    from bot.digest_render import Details, load_all_details, render_digest

    began = time.perf_counter()
    async with ctx.sessions() as session:
        everything = await load_all_details(ctx, session, WEEK)
    for key, digest in [*province.units.items(), (PROVINCE, province.total)]:
        details = everything.get(key, Details([], []))
        await render_digest(ctx, digest, "vi", details, province=province if key == PROVINCE else None)
    return time.perf_counter() - began


def describe(result: BenchResult) -> str:
    digest = result.digest_seconds
    lines = [
        f"database:       {result.database}",
        f"machine:        {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"rows:           {result.items:,} items, {result.clocks:,} clocks, {result.events:,} audit events, "
        f"{result.desk_ratings:,} desk ratings",
        f"seed:           {result.seed_seconds:.1f} s",
        f"week:           {WEEK.label}: {result.received:,} items received, {result.overdue:,} open overdue, "
        f"{result.units} units",
        f"digest, all units (aggregate queries): first {digest[0]:.2f} s"
        + (f", best {min(digest):.2f} s, median {statistics.median(digest):.2f} s of {len(digest)}" if digest else ""),
    ]
    if result.render_seconds is not None:
        lines.append(f"render, all units + province (messages, PNG, XLSX): {result.render_seconds:.1f} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=1_000_000, help="how many items to seed (default 1,000,000)")
    parser.add_argument("--database-url", help="SQLite or PostgreSQL URL (default: an SQLite file in a temp dir)")
    parser.add_argument("--schema", default="pakn_bench", help="PostgreSQL schema to use (dropped and recreated)")
    parser.add_argument("--repeat", type=int, default=3, help="time the digest this many times (default 3)")
    parser.add_argument("--render", action="store_true", help="also time rendering every unit's message and files")
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    args = parser.parse_args(argv)
    if args.items < 1 or args.repeat < 1:
        parser.error("--items and --repeat must be at least 1")
    result = asyncio.run(
        run(
            args.items,
            args.database_url,
            schema=args.schema,
            repeat=args.repeat,
            render=args.render,
            keep=args.keep,
        )
    )
    print(describe(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
