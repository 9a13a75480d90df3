"""Scale benchmark: a province after three years (1,000,000 items by default) on SQLite and PostgreSQL; times the
scheduler's tick, a /track look-up and the /stats page, and prints the query plans of what they ran.

Seeding is bench/digest_scale.py's (bulk inserts of items over 45 communes and about 60 units in realistic
proportions, their clocks and audit events, desks and desk ratings), with the data ending on the Monday of the
current week, so that /stats (the last 12 weeks up to today) has a full window to count. Then:

1. HTTP, against a real ``pakn serve`` on the seeded database (Telegram off): ``GET /stats``,
   ``POST /track`` (a valid receipt code; the page allows 20 look-ups per client per 10 minutes) and
   ``GET /metrics`` (a Prometheus scrape).
2. In process: the /track service query (``bot.tracking.public_status``) and the chat's ``/track`` path
   (``Conversations._track``) for random items; ``bot.stats.unit_report`` (what /stats computes).
3. The scheduler: every open clock gets the ``next_due_at`` a running service would have given it, then
   ``bot.scheduler.tick`` is timed when nothing is due (what it does every 30 s) and when a morning's alarms
   are due (200 clocks per tick, each ringing a reminder, an overdue alert or an escalation).

Every SQL statement that the timed operations ran is shown with ``EXPLAIN QUERY PLAN`` (SQLite) or ``EXPLAIN``
(PostgreSQL), to show the indexes used. Targets: tick < 20 ms, look-up < 5 ms.

    python bench/scale.py                                  # 1,000,000 items on SQLite
    python bench/scale.py --database-url sqlite --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
    python bench/scale.py --items 20000 --no-http          # quick

A PostgreSQL URL names the server: each run creates a fresh database and drops it afterwards (``--keep``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from sqlalchemy import event, select, text, update
from sqlalchemy.engine import make_url

import bench.digest_scale as digest_scale
from bench.harness import (
    SECRET_KEY,
    ServerProcess,
    base_env,
    create_database,
    display_url,
    drop_database,
    free_port,
    machine,
    wait_until,
    workdir,
)
from bot import scheduler
from bot.audit import HEAD_ID
from bot.calendar import WorkingCalendar
from bot.clocks import next_alarm
from bot.context import Context
from bot.conversation import Conversations
from bot.digest import IsoWeek
from bot.lifecycle import OPEN_STATUSES
from bot.privacy import Vault, load_keys
from bot.receipts import ALPHABET, PAYLOAD_CHARS, code_from_payload
from bot.stats import unit_report
from bot.tracking import public_status
from bot.units import sync_units
from config import Settings, load_province
from config.settings import BUNDLED_PROVINCE_DIR
from models import create_engine, make_session_factory
from models.migrate import upgrade
from models.tables import AuditHead, Clock, Item

PROBES = 200


@dataclass
class Timing:
    runs: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.runs.append(seconds)

    def summary(self) -> dict[str, float | int]:
        ordered = sorted(self.runs)
        if not ordered:
            return {}
        return {
            "n": len(ordered),
            "median_ms": round(statistics.median(ordered) * 1000, 2),
            "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2),
        }


@dataclass
class ScaleResult:
    backend: str
    items: int
    rows: dict[str, int] = field(default_factory=dict)
    seed_seconds: float = 0.0
    timings: dict[str, dict[str, float | int]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    plans: dict[str, list[tuple[str, list[str]]]] = field(default_factory=dict)


_DATA_STATEMENTS = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")


class Recorder:
    """Collects the SQL statements an engine runs while ``on``, with their parameters, to explain them; and counts
    the statements the database ran: on SQLite from SQLite's own trace, which also sees the hot path's statements
    that bypass SQLAlchemy (``models.db.Prepared``). Make it before the engine's first connection."""

    def __init__(self, engine: Any) -> None:
        self.on = False
        self.statements: list[tuple[str, Any]] = []
        self.traced: list[str] | None = [] if engine.dialect.name == "sqlite" else None

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _collect(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
            if self.on:
                self.statements.append((statement, parameters))

        if self.traced is not None:

            @event.listens_for(engine.sync_engine, "connect")
            def _trace(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.driver_connection._conn.set_trace_callback(self._traced)

    def _traced(self, statement: str) -> None:
        if self.on and self.traced is not None and statement.lstrip().upper().startswith(_DATA_STATEMENTS):
            self.traced.append(statement)

    @property
    def ran(self) -> int:
        """The statements reading or writing data that the database ran while ``on``."""
        return len(self.statements) if self.traced is None else len(self.traced)

    def start(self) -> None:
        """Forget what was collected; collect from now on (until ``on`` is cleared)."""
        self.statements = []
        if self.traced is not None:
            self.traced = []
        self.on = True

    async def capture(self, action: Callable[[], Awaitable[Any]]) -> list[tuple[str, Any]]:
        self.start()
        try:
            await action()
        finally:
            self.on = False
        return self.statements


async def explain(ctx: Context, statements: list[tuple[str, Any]]) -> list[tuple[str, list[str]]]:
    """The plan of each distinct SELECT (or SELECT … FOR UPDATE) among ``statements``."""
    backend = ctx.engine.url.get_backend_name()
    seen: set[str] = set()
    plans = []
    async with ctx.engine.connect() as connection:
        for statement, parameters in statements:
            sql = " ".join(statement.split())
            if not sql.upper().startswith("SELECT") or sql in seen:
                continue
            seen.add(sql)
            prefix = "EXPLAIN QUERY PLAN " if backend == "sqlite" else "EXPLAIN "
            rows = (await connection.exec_driver_sql(prefix + statement, parameters)).all()
            lines = [str(row[-1] if backend == "sqlite" else row[0]) for row in rows]
            plans.append((sql if len(sql) <= 400 else sql[:400] + " …", lines))
    return plans


def _last_complete_week(today: date) -> IsoWeek:
    year, week, _ = (today - timedelta(days=7)).isocalendar()
    return IsoWeek(year, week)


async def seed_database(url: str, items: int, rng_seed: int) -> tuple[dict[str, int], float, datetime]:
    """Migrate, mirror the units and bulk-seed ``items`` (bench/digest_scale.py's seeding); the data's end."""
    province = load_province(BUNDLED_PROVINCE_DIR)
    calendar = WorkingCalendar(province.calendar)
    week = _last_complete_week(datetime.now(province.timezone).date())  # the data end this Monday
    end = datetime.combine(week.next_monday, datetime.min.time(), tzinfo=province.timezone).replace(hour=7, minute=30)
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with make_session_factory(engine).begin() as session:
            await sync_units(session, province)
    finally:
        await engine.dispose()
    rng = random.Random(rng_seed)
    began = time.perf_counter()
    backend = make_url(url).get_backend_name()
    original_week, digest_scale.WEEK = digest_scale.WEEK, week  # its seeding ends at WEEK's next Monday
    try:
        counts = await _seed_rows(url, backend, province, calendar, items, rng)
    finally:
        digest_scale.WEEK = original_week
    seconds = time.perf_counter() - began
    rows = {"items": items, "clocks": counts[0], "audit_events": counts[1], "desk_ratings": counts[2]}
    return rows, seconds, end


async def _seed_rows(
    url: str, backend: str, province: Any, calendar: WorkingCalendar, items: int, rng: random.Random
) -> tuple[int, int, int]:
    if backend == "sqlite":
        import sqlite3

        path = make_url(url).database
        assert path is not None
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("BEGIN")
        counts = await digest_scale.seed(
            province, calendar, digest_scale.Writer("sqlite", connection, None), items, rng
        )
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
        connection.close()
    else:
        import asyncpg

        raw = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(raw)
        try:
            async with connection.transaction():
                writer = digest_scale.Writer("postgresql", connection, None)
                counts = await digest_scale.seed(province, calendar, writer, items, rng)
            for table in ("items", "audit_events"):
                await connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
            # What autovacuum does to a settled database (as bench/digest_scale.py): without the visibility map,
            # the planner prices index-only scans as heap reads.
            await connection.execute("VACUUM ANALYZE")
        finally:
            await connection.close()
    return counts


def make_context(url: str, data_dir: Path, now: datetime) -> Context:
    province = load_province(BUNDLED_PROVINCE_DIR)
    keys = load_keys(SECRET_KEY, data_dir / "secret.key")
    engine = create_engine(url)
    return Context(
        settings=Settings(data_dir=data_dir, secret_key=SECRET_KEY),
        province=province,
        calendar=WorkingCalendar(province.calendar),
        keys=keys,
        vault=Vault(keys),
        engine=engine,
        sessions=make_session_factory(engine),
        clock=lambda: now,
    )


async def probe_codes(ctx: Context, count: int, rng: random.Random) -> list[str]:
    """Give ``count`` random items valid receipt codes (the seeded ones are not) and return the codes."""
    async with ctx.sessions.begin() as session:
        top = await session.scalar(select(Item.id).order_by(Item.id.desc()).limit(1))
        ids = rng.sample(range(1, int(top or 0) + 1), min(count, int(top or 0)))
        codes = []
        for item_id in ids:
            payload = "".join(rng.choice(ALPHABET) for _ in range(PAYLOAD_CHARS))
            code = code_from_payload(ctx.province.receipt_prefix, payload)
            await session.execute(update(Item).where(Item.id == item_id).values(receipt_code=code))
            codes.append(code)
    return codes


async def arm_clocks(ctx: Context, last_tick: datetime) -> int:
    """Set each open clock's ``next_due_at`` as a service that ticked at ``last_tick`` would have left it."""
    armed = 0
    async with ctx.sessions.begin() as session:
        rows = (
            await session.execute(
                select(Clock.id, Clock.due_date)
                .join(Item, Item.id == Clock.item_id)
                .where(
                    Clock.met_at.is_(None), Item.status.in_([s.value for s in OPEN_STATUSES]), Item.paused.is_(False)
                )
            )
        ).all()
        updates = []
        for clock_id, due in rows:
            alarm = next_alarm(ctx.province, ctx.calendar, due, last_tick)
            if alarm is not None:
                updates.append({"c_id": clock_id, "next_due_at": alarm.at.astimezone(UTC)})
        if updates:
            from sqlalchemy import bindparam

            table = Clock.__table__
            statement = table.update().where(table.c.id == bindparam("c_id"))  # type: ignore[attr-defined]
            connection = await session.connection()
            for start in range(0, len(updates), 5000):
                await connection.execute(statement, updates[start : start + 5000])
            armed = len(updates)
        top = await session.scalar(text("SELECT max(id) FROM audit_events"))
        session.add(AuditHead(id=HEAD_ID, last_seq=int(top or 0), last_hash="0" * 64))
    return armed


async def timed(timing: Timing, action: Callable[[], Awaitable[Any]]) -> Any:
    began = time.perf_counter()
    result = await action()
    timing.add(time.perf_counter() - began)
    return result


async def http_phase(url: str, directory: Path, codes: list[str], repeat: int, result: ScaleResult) -> None:
    """GET /stats and POST /track on a real ``pakn serve`` (Telegram off) on the seeded database."""
    port = free_port()
    env = base_env()
    env.update(
        PAKN_DATA_DIR=str(directory / "serve"),
        PAKN_DATABASE_URL=url,
        PAKN_SECRET_KEY=SECRET_KEY,
        PAKN_HOST="127.0.0.1",
        PAKN_PORT=str(port),
        PAKN_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    server = ServerProcess("pakn", [sys.executable, "-m", "bot", "serve"], env, directory / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as client:

            async def healthy() -> bool:
                try:
                    async with client.get(f"{base}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(healthy, "/healthz", server, timeout=120)
            stats = Timing()
            for _ in range(repeat):
                began = time.perf_counter()
                async with client.get(f"{base}/stats") as response:
                    body = await response.text()
                    assert response.status == 200, response.status
                stats.add(time.perf_counter() - began)
            result.timings["http GET /stats"] = stats.summary()
            result.notes["stats_page_bytes"] = len(body.encode())
            track = Timing()
            found = 0
            for code in codes[:15]:  # the page allows 20 look-ups per client per 10 minutes
                began = time.perf_counter()
                async with client.post(f"{base}/track", data={"code": code}) as response:
                    await response.read()
                    found += response.status == 200
                track.add(time.perf_counter() - began)
            result.timings["http POST /track"] = track.summary()
            result.notes["http_track_found"] = f"{found}/{len(codes[:15])}"
            scrape = Timing()  # what a Prometheus scrape costs: items and outbox counted by status
            for _ in range(repeat):
                began = time.perf_counter()
                async with client.get(f"{base}/metrics") as response:
                    metrics = await response.text()
                    assert response.status == 200 and "pakn_database_up 1.0" in metrics, response.status
                scrape.add(time.perf_counter() - began)
            result.timings["http GET /metrics"] = scrape.summary()
    finally:
        server.stop()


async def bench_one(database: str, args: argparse.Namespace, root: Path, index: int) -> ScaleResult:
    directory = root / f"run{index}"
    directory.mkdir()
    fresh = ""
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / 'pakn.db'}"
    else:
        url = fresh = await create_database(database, prefix="pakn_scale")
    backend = make_url(url).get_backend_name()
    result = ScaleResult(backend=backend, items=args.items)
    ctx: Context | None = None
    try:
        print(f"[{backend}] seeding {args.items:,} items …", flush=True)
        result.rows, result.seed_seconds, end = await seed_database(url, args.items, args.seed)
        print(f"[{backend}] seeded in {result.seed_seconds:.0f} s: {result.rows}", flush=True)
        now = datetime.now(UTC).replace(microsecond=0)
        rng = random.Random(args.seed)
        ctx = make_context(url, directory, now)
        recorder = Recorder(ctx.engine)
        codes = await probe_codes(ctx, PROBES, rng)
        if not args.no_http:
            await http_phase(url, directory, codes, args.repeat, result)
            print(f"[{backend}] HTTP: {result.timings}", flush=True)

        # /track: the public service query, and the chat's path
        lookups = Timing()
        for code in codes:
            async with ctx.sessions() as session:
                status = await timed(lookups, functools.partial(public_status, ctx, session, code))
                assert status is not None, code
        result.timings["track look-up (bot.tracking.public_status)"] = lookups.summary()
        conversations = Conversations(ctx)
        chat_track = Timing()
        for code in codes:
            async with ctx.sessions() as session:
                info = await timed(
                    chat_track, functools.partial(conversations._track, session, "telegram", "1001", code, "vi")
                )
                assert info is not None, code

        async def track_once() -> None:
            async with ctx.sessions() as session:
                await public_status(ctx, session, codes[0])
                await conversations._track(session, "telegram", "1001", codes[0], "vi")

        result.plans["track"] = await explain(ctx, await recorder.capture(track_once))
        result.timings["chat /track (Conversations._track)"] = chat_track.summary()

        # /stats: what the page computes, in process, with the clock at the real now
        report = Timing()
        for _ in range(args.repeat):

            async def run_report() -> None:
                async with ctx.sessions() as session:
                    await unit_report(ctx, session)

            await timed(report, run_report)

        async def report_once() -> None:
            async with ctx.sessions() as session:
                await unit_report(ctx, session)

        result.plans["stats"] = await explain(ctx, await recorder.capture(report_once))
        result.timings["stats report (bot.stats.unit_report)"] = report.summary()

        # the scheduler: arm the open clocks as of 30 s before the data's end, tick then and at 08:00:30
        ctx.clock = lambda: end
        result.notes["clocks_armed"] = await arm_clocks(ctx, end - timedelta(seconds=30))
        idle = Timing()
        for _ in range(max(20, args.repeat)):
            handled = await timed(idle, lambda: scheduler.tick(ctx))
            assert handled == 0, handled
        result.timings["scheduler tick, nothing due"] = idle.summary()
        result.plans["tick"] = await explain(ctx, await recorder.capture(lambda: scheduler.tick(ctx)))
        morning = end.replace(hour=8, minute=0, second=30)
        ctx.clock = lambda: morning
        busy = Timing()
        rung = 0
        for index in range(args.busy_ticks):
            if index == 0:  # the statements of the first busy tick are explained; the tick itself is timed
                recorder.start()
            try:
                handled = await timed(busy, lambda: scheduler.tick(ctx, limit=200))
            finally:
                recorder.on = False
            if index == 0:
                result.notes["statements_per_busy_tick"] = recorder.ran
                result.notes["of_them_through_sqlalchemy"] = len(recorder.statements)
                result.plans["tick ringing alarms"] = await explain(ctx, recorder.statements)
            rung += handled
            if handled == 0:
                busy.runs.pop()
                break
        result.timings["scheduler tick, 200 alarms due"] = busy.summary()
        result.notes["alarms_rung"] = rung
    finally:
        if ctx is not None:
            await ctx.engine.dispose()
        if fresh and not args.keep:
            await drop_database(fresh)
    return result


def report(result: ScaleResult) -> None:
    print(f"\n== {result.backend}: {result.rows} (seeded in {result.seed_seconds:.0f} s)")
    for name, summary in result.timings.items():
        figures = ", ".join(f"{key} {value}" for key, value in summary.items())
        print(f"  {name:48s} {figures}")
    for name, value in result.notes.items():
        print(f"  {name}: {value}")
    for name, plans in result.plans.items():
        print(f"\n  query plans, {name}:")
        for sql, lines in plans:
            print(f"    {sql}")
            for line in lines:
                print(f"        {line}")


async def run(args: argparse.Namespace) -> list[ScaleResult]:
    results = []
    with workdir(keep=args.keep) as root:
        for index, database in enumerate(args.database_url or ["sqlite"]):
            result = await bench_one(database, args, root, index)
            report(result)
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/scale.py",
        description=__doc__.split("\n\n")[0],
        epilog="Loopback only. Seeding 1,000,000 items takes minutes per database.",
    )
    parser.add_argument("--items", type=int, default=1_000_000, help="items to seed (default 1,000,000)")
    parser.add_argument(
        "--database-url",
        action="append",
        metavar="URL",
        help="'sqlite' (default) or a PostgreSQL server URL (a fresh database per run); repeatable",
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of /stats (default 5)")
    parser.add_argument("--busy-ticks", type=int, default=5, help="ticks timed with alarms due (default 5)")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP measurements (no pakn serve)")
    parser.add_argument("--seed", type=int, default=20260309, help="random seed")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the databases and logs")
    args = parser.parse_args(argv)
    if args.items < PROBES:
        parser.error(f"--items must be at least {PROBES}")
    results = asyncio.run(run(args))
    info = machine()
    print(f"\nmachine: {info['nproc']} × {info['cpu']}, Python {info['python']}, {info['date']}")
    if args.json:
        document = {
            "machine": info,
            "command": " ".join(sys.argv),
            "results": [
                {**result.__dict__, "database": display_url(d)}
                for result, d in zip(results, args.database_url or ["sqlite"], strict=True)
            ],
        }
        Path(args.json).write_text(json.dumps(document, ensure_ascii=False, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
