"""``pakn invite`` and ``pakn officials list|revoke``: bringing officials in and out."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import segno
from sqlalchemy import select

from bot import officials
from bot.context import Context
from bot.officials import Role
from models.tables import Invite, Official


def register(commands: Any) -> None:
    invite = commands.add_parser(
        "invite",
        help="create a one-time invite link (and its QR code) for an official",
        description="Prints https://t.me/<bot>?start=inv_… and writes its QR code as PNG. The link works once.",
    )
    invite.add_argument("--unit", required=True, help="unit code (see `pakn units list`)")
    invite.add_argument("--role", required=True, choices=[r.value for r in Role])
    invite.add_argument("--expires", default="7d", help="validity, e.g. 7d, 12h, 30m (default 7d)")
    invite.add_argument("--out", type=Path, default=Path("."), help="folder for the QR code PNG (default: here)")
    invite.set_defaults(handler=_invite)

    group = commands.add_parser("officials", help="registered officials").add_subparsers(
        dest="officials_command", required=True
    )
    listing = group.add_parser("list", help="list officials (no personal data: names only as they gave them)")
    listing.add_argument("--unit", help="only this unit")
    listing.add_argument("--all", action="store_true", help="include revoked officials")
    listing.set_defaults(handler=_list)
    revoke = group.add_parser("revoke", help="remove an official's role at once")
    revoke.add_argument("official_id", type=int)
    revoke.set_defaults(handler=_revoke)


class _NotWritten(Exception):
    """The QR code could not be written (already said): roll the invite back."""


def _bot_username(ctx: Context) -> str:
    return ctx.settings.telegram_bot_username or "<bot>"


def _unknown_unit(code: str) -> int:
    from bot.cli import EXIT_USAGE

    print(f"pakn: unknown unit {code!r} (see `pakn units list`)", file=sys.stderr)
    return EXIT_USAGE


def _write_qr_code(link: str, png: Path) -> None:
    """The link's QR code as a new PNG file: an existing file (another invite's code) is never overwritten."""
    with png.open("xb") as file:
        try:
            segno.make(link, error="m").save(file, kind="png", scale=8, border=4)
        except BaseException:  # a disk that filled up: no half-written code left behind (the file is ours)
            file.close()
            png.unlink(missing_ok=True)
            raise


def _invite(args: argparse.Namespace) -> int:
    """Nothing is stored unless the QR code was written: the folder is made first, the PNG is written before the
    invite is committed (and removed again if the commit fails). Each invite has its own file, named by its id."""
    from bot.cli import EXIT_USAGE, with_context

    try:
        valid_for = officials.parse_duration(args.expires)
    except ValueError as exc:
        print(f"pakn: --expires: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"pakn: --out: cannot create the folder {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE

    async def run(ctx: Context) -> int:
        if args.unit not in ctx.province.units:
            return _unknown_unit(args.unit)
        png: Path | None = None
        try:
            async with ctx.sessions.begin() as session:
                token = await officials.create_invite(
                    ctx, session, unit_code=args.unit, role=args.role, valid_for=valid_for
                )
                invite_id = await session.scalar(
                    select(Invite.id).where(Invite.token_hash == officials.token_hash(ctx, token))
                )
                link = f"https://t.me/{_bot_username(ctx)}?start={token}"
                target = out / f"invite-{args.unit}-{args.role}-{invite_id}.png"
                try:
                    _write_qr_code(link, target)
                except OSError as exc:
                    print(f"pakn: --out: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
                    raise _NotWritten() from None
                png = target
        except _NotWritten:  # the transaction was rolled back: no invite, no audit event
            return EXIT_USAGE
        except BaseException:
            if png is not None:
                png.unlink(missing_ok=True)
            raise
        unit = ctx.province.units[args.unit]
        print(f"Invite {invite_id} for {args.role} of {unit.name_vi} ({args.unit}), valid {args.expires}, works once:")
        print(link)
        print(f"QR code: {png}")
        if not ctx.settings.telegram_bot_username:
            print("note: set PAKN_TELEGRAM_BOT_USERNAME to print the bot's real name in the link", file=sys.stderr)
        return 0

    return asyncio.run(with_context(run))


def _list(args: argparse.Namespace) -> int:
    from bot.cli import print_table, with_context

    async def run(ctx: Context) -> int:
        query = select(Official).order_by(Official.unit_code, Official.id)
        if args.unit:
            if args.unit not in ctx.province.units:
                return _unknown_unit(args.unit)
            query = query.where(Official.unit_code == args.unit)
        if not args.all:
            query = query.where(Official.active.is_(True))
        async with ctx.sessions() as session:
            rows = (await session.execute(query)).scalars().all()
        print_table(
            [
                (
                    o.id,
                    o.unit_code,
                    o.role,
                    o.display_name,
                    o.created_at.astimezone(ctx.province.timezone).strftime("%Y-%m-%d"),
                    "active" if o.active else "revoked",
                )
                for o in rows
            ],
            ("id", "unit", "role", "name", "joined", "state"),
        )
        print(f"\n{len(rows)} officials")
        return 0

    return asyncio.run(with_context(run))


def _revoke(args: argparse.Namespace) -> int:
    from bot.cli import EXIT_FAILED, with_context

    async def run(ctx: Context) -> int:
        async with ctx.sessions.begin() as session:
            official = await session.get(Official, args.official_id)
            if official is None:
                print(
                    f"pakn: no official with id {args.official_id} (see `pakn officials list --all`)", file=sys.stderr
                )
                return EXIT_FAILED
            if not official.active:
                when = (
                    f" on {official.revoked_at.astimezone(ctx.province.timezone):%Y-%m-%d}"
                    if official.revoked_at
                    else ""
                )
                print(
                    f"pakn: official {official.id} ({official.role} of {official.unit_code}) was already revoked{when}",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            official = await officials.revoke(ctx, session, args.official_id, actor="cli")
        print(f"official {official.id} ({official.role} of {official.unit_code}) revoked")
        return 0

    return asyncio.run(with_context(run))
