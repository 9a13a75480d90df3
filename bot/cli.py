"""The ``pakn`` command line: ``pakn serve``, ``pakn db upgrade``, ``pakn units list`` …

Each sub-command prints one clear line and exits non-zero on a problem, never a traceback:
exit 0 success, 1 a failed check or a domain error, 2 bad usage, 3 configuration or start-up problem.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from bot import audit
from bot.app import StartupError, build_context, database_error, event_loop_factory, prepare_database, serve
from bot.context import Context
from bot.deadlines import accept_deadline, resolve_deadline
from bot.errors import DomainError
from bot.i18n import format_deadline
from bot.lifecycle import OPEN_STATUSES, Status
from bot.privacy import SecretKeyError
from config import ConfigError, load_province, load_settings
from config.province import ITEM_TYPES
from models.migrate import upgrade
from models.tables import Clock, Item

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3

# The days `pakn deadlines preview` accepts: the calendar's arithmetic stays far from date.max.
FIRST_YEAR, LAST_YEAR = 2000, 2100

# Sub-commands kept in their own modules. Each module has ``register(commands)``, which adds its parsers and
# sets ``handler`` (``args -> int``) with ``parser.set_defaults(handler=...)``.
EXTENSIONS: tuple[str, ...] = ("bot.cli_officials", "bot.cli_desks", "bot.cli_digest")


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pakn", description="PAKN citizen-feedback service")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser(
        "serve",
        help="run the HTTP server and the bots",
        description="Run the service (migrates an SQLite database by itself).",
    )

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="migrate the database to the latest schema")

    units = commands.add_parser("units", help="receiving units").add_subparsers(dest="units_command", required=True)
    units.add_parser("list", help="list units with their supervisor")

    items = commands.add_parser("items", help="items").add_subparsers(dest="items_command", required=True)
    items_list = items.add_parser("list", help="list items (newest first)")
    items_list.add_argument("--unit", help="only this unit's items")
    items_list.add_argument("--status", choices=[s.value for s in Status], help="only items in this status")
    items_list.add_argument("--overdue", action="store_true", help="only open items past a deadline")
    items_list.add_argument("--limit", type=int, default=100, help="at most this many rows (default 100)")

    deadlines = commands.add_parser("deadlines", help="legal deadlines").add_subparsers(
        dest="deadlines_command", required=True
    )
    preview = deadlines.add_parser(
        "preview",
        help="compute accept-by and resolve-by for an item",
        description="Without --accepted, resolve-by counts from the accept-by date.",
    )
    preview.add_argument("--type", required=True, choices=ITEM_TYPES, dest="type_code")
    preview.add_argument("--received", required=True, type=_date, help="day of receipt, YYYY-MM-DD")
    preview.add_argument("--accepted", type=_date, help="day of acceptance (thụ lý), YYYY-MM-DD")
    preview.add_argument("--commune", help="commune code (a remote commune has longer clocks)")
    preview.add_argument("--complex", action="store_true", help="the matter is complex")
    preview.add_argument("--multi-place", action="store_true", help="the matter spans several places")

    audit_parser = commands.add_parser("audit", help="audit trail").add_subparsers(dest="audit_command", required=True)
    audit_parser.add_parser("verify", help="check the hash chain; exit 1 naming the first bad event")
    for name in EXTENSIONS:
        importlib.import_module(name).register(commands)
    return parser


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    cells = [list(map(str, headers))] + [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


def cmd_units_list() -> int:
    province = load_province(load_settings().province_dir)
    rows = []
    for unit in province.units.values():
        role = "coordinator" if unit.coordinator else ("commune" if unit.commune_code else "province")
        rows.append((unit.code, unit.name_vi, role, unit.supervisor or "-"))
    print_table(rows, ("code", "name", "level", "supervisor"))
    print(f"\n{len(province.units)} units, {len(province.communes)} communes and wards")
    return EXIT_OK


def cmd_deadlines_preview(args: argparse.Namespace) -> int:
    settings = load_settings()
    province = load_province(settings.province_dir)
    from bot.calendar import WorkingCalendar

    calendar = WorkingCalendar(province.calendar)
    for option, day in (("--received", args.received), ("--accepted", args.accepted)):
        if day is not None and not FIRST_YEAR <= day.year <= LAST_YEAR:
            print(f"pakn: {option} {day.isoformat()} is outside the years {FIRST_YEAR}-{LAST_YEAR}", file=sys.stderr)
            return EXIT_USAGE
    if args.accepted is not None and args.accepted < args.received:
        print(
            f"pakn: --accepted {args.accepted.isoformat()} is before --received {args.received.isoformat()}: "
            "an item is accepted on or after the day it is received",
            file=sys.stderr,
        )
        return EXIT_USAGE
    remote = False
    if args.commune is not None:
        commune = province.communes.get(args.commune)
        if commune is None:
            print(f"pakn: unknown commune code {args.commune!r} (see `pakn units list`)", file=sys.stderr)
            return EXIT_USAGE
        remote = commune.remote
    accept = accept_deadline(province, calendar, args.type_code, args.received, multi_place=args.multi_place)
    resolve_from = args.accepted or accept.due
    resolve = resolve_deadline(province, calendar, args.type_code, resolve_from, remote=remote, complex=args.complex)
    rule = province.item_types[args.type_code]
    print(f"type:        {args.type_code} ({rule.name_vi})")
    print(f"received:    {args.received.isoformat()}")
    print(f"accept-by:   {accept.due.isoformat()}  {format_deadline('vi', accept.days, accept.unit, accept.due)}")
    print(f"             rule {accept.rule}; {accept.basis}")
    if resolve is None:
        print("resolve-by:  - (no resolve clock: the answer is due when accepted)")
    else:
        origin = "accepted" if args.accepted else "counted from accept-by"
        print(
            f"resolve-by:  {resolve.due.isoformat()}  {format_deadline('vi', resolve.days, resolve.unit, resolve.due)}"
        )
        print(f"             rule {resolve.rule}; {resolve.basis} ({origin} {resolve_from.isoformat()})")
    for day in (accept.due, *((resolve.due,) if resolve else ())):
        if calendar.day_off_reason(day) is not None:
            print(f"warning: {day} is not a working day", file=sys.stderr)
    return EXIT_OK


async def with_context(action: Any, *, migrate: bool = False, prepare: bool = True) -> int:
    """Run ``action(ctx)`` against the configured database (migrating an SQLite one, like ``serve``).

    A database that cannot be reached or used, before or while the action runs, raises StartupError (exit 3)
    with one line. ``prepare=False`` (``pakn db upgrade``): only check that the database answers."""
    ctx = await build_context(load_settings())
    try:
        if prepare:  # maps the database's failures to one line itself
            await prepare_database(ctx, migrate=migrate or ctx.engine.url.get_backend_name() == "sqlite")
        else:
            try:
                async with ctx.engine.connect() as connection:
                    await connection.execute(text("select 1"))
            except (TimeoutError, OSError, SQLAlchemyError) as exc:
                raise database_error(ctx, exc) from None
        try:
            return int(await action(ctx))
        except (TimeoutError, ConnectionError, SQLAlchemyError) as exc:  # the database failed meanwhile
            raise database_error(ctx, exc) from None
    finally:
        await ctx.engine.dispose()


async def _db_upgrade(ctx: Context) -> int:
    await upgrade(ctx.engine)
    print(f"database {ctx.engine.url.render_as_string(hide_password=True)} is up to date")
    return EXIT_OK


async def _items_list(ctx: Context, args: argparse.Namespace) -> int:
    query = select(Item).order_by(Item.id.desc()).limit(args.limit)
    if args.unit:
        if args.unit not in ctx.province.units:
            print(f"pakn: unknown unit {args.unit!r} (see `pakn units list`)", file=sys.stderr)
            return EXIT_USAGE
        query = query.where(Item.unit_code == args.unit)
    if args.status:
        query = query.where(Item.status == args.status)
    if args.overdue:
        today = ctx.local_date()
        overdue = select(Clock.item_id).where(Clock.met_at.is_(None), Clock.due_date < today)
        query = query.where(Item.status.in_([s.value for s in OPEN_STATUSES]), Item.id.in_(overdue))
    async with ctx.sessions() as session:
        items = (await session.execute(query)).scalars().all()
        due = {}
        if items:
            clocks = await session.execute(select(Clock).where(Clock.item_id.in_([i.id for i in items])))
            for clock in clocks.scalars():
                due[(clock.item_id, clock.kind)] = clock.due_date
    rows = [
        (
            item.receipt_code,
            item.type,
            item.category,
            item.unit_code,
            item.status,
            item.received_at.astimezone(ctx.province.timezone).strftime("%Y-%m-%d %H:%M"),
            due.get((item.id, "accept")),
            due.get((item.id, "resolve")) or "-",
        )
        for item in items
    ]
    print_table(rows, ("receipt", "type", "category", "unit", "status", "received", "accept-by", "resolve-by"))
    print(f"\n{len(rows)} items")
    return EXIT_OK


async def _audit_verify(ctx: Context) -> int:
    """Seal the events written since the last seal (the service does so every second; a command run without it
    leaves its events unsealed), then walk the chain."""
    sealed = await audit.seal(ctx.engine)
    async with ctx.sessions() as session:
        result = await audit.verify(session)
    if result.ok:
        print(f"audit chain intact: {result.checked} events verified ({sealed} sealed just now)")
        return EXIT_OK
    print(
        f"audit chain BROKEN at event {result.bad_place}"
        + (f" (row id {result.bad_row_id})" if result.bad_row_id is not None else "")
        + f": {result.problem} "
        f"({result.checked} events verified before it)",
        file=sys.stderr,
    )
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "handler", None) is not None:
            return int(args.handler(args))
        if args.command == "serve":
            try:
                with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                    runner.run(serve(load_settings()))
            except KeyboardInterrupt:  # Ctrl-C before the service was up
                return EXIT_OK
            return EXIT_OK
        if args.command == "units":
            return cmd_units_list()
        if args.command == "deadlines":
            return cmd_deadlines_preview(args)
        if args.command == "db":
            return asyncio.run(with_context(_db_upgrade, prepare=False))
        if args.command == "items":
            return asyncio.run(with_context(lambda ctx: _items_list(ctx, args)))
        if args.command == "audit":
            return asyncio.run(with_context(_audit_verify))
    except ConfigError as exc:
        print(f"pakn: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SecretKeyError as exc:
        print(f"pakn: secret key error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StartupError as exc:
        print(f"pakn: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except DomainError as exc:
        print(f"pakn: {exc.en}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_USAGE
