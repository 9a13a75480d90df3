"""``pakn desk add|list|disable|enable`` and ``pakn qr``: one-stop desks and their printable QR posters.

Examples::

    pakn desk add --unit ubnd_xa_muong_phang --name "Bộ phận một cửa"
    pakn desk list
    pakn qr --desk ubnd-xa-muong-phang-1 --paper A5 --format pdf,png --out posters/
    pakn qr --all --target telegram --out posters/
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tqdm import tqdm

from bot.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_USAGE, print_table, with_context
from bot.context import Context
from bot.desks import add_desk, list_desks, set_desk_active
from bot.errors import DomainError
from models.tables import Desk
from qr.codes import TARGETS, Target, TargetError, make_symbol, target_url
from qr.payload import sign_desk
from qr.poster import FORMATS, PAPERS, Format, desk_poster_text, layout, write_poster


def _formats(value: str) -> list[Format]:
    chosen: list[Format] = []
    for part in filter(None, (p.strip().lower() for p in value.split(","))):
        if part not in FORMATS:
            raise argparse.ArgumentTypeError(
                f"unknown format {part!r}: use a comma-separated list of {','.join(FORMATS)}"
            )
        if part not in chosen:
            chosen.append(part)  # type: ignore[arg-type]
    if not chosen:
        raise argparse.ArgumentTypeError("no format given")
    return chosen


def _paper(value: str) -> str:
    paper = value.upper()
    if paper not in PAPERS:
        raise argparse.ArgumentTypeError(f"unknown paper {value!r}: use {' or '.join(PAPERS)}")
    return paper


def register(commands: Any) -> None:
    desk = commands.add_parser("desk", help="one-stop desks and their QR codes", description="One-stop desks.")
    desk_commands = desk.add_subparsers(dest="desk_command", metavar="ACTION", required=True)

    add = desk_commands.add_parser("add", help="add a desk to a unit", description="Add a one-stop desk to a unit.")
    add.add_argument("--unit", required=True, help="the unit's code (see `pakn units list`)")
    add.add_argument("--name", required=True, help='the desk\'s name as shown to citizens, e.g. "Bộ phận một cửa"')
    add.add_argument("--commune", help="commune code of the desk's place (default: the unit's commune)")
    add.add_argument("--code", help="the desk's code: a-z, 0-9 and '-', at most 32 (default: from the unit)")
    add.set_defaults(handler=lambda args: _run(_desk_add, args))

    listing = desk_commands.add_parser("list", help="list desks", description="List desks with their codes.")
    listing.add_argument("--unit", help="only this unit's desks")
    listing.add_argument("--active", action="store_true", help="only desks that are in service")
    listing.set_defaults(handler=lambda args: _run(_desk_list, args))

    for action, text in (
        ("disable", "take a desk out of service: its QR codes stop working at once"),
        ("enable", "put a disabled desk back in service"),
    ):
        parser = desk_commands.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        parser.add_argument("code", help="the desk's code (see `pakn desk list`)")
        parser.set_defaults(handler=lambda args, active=action == "enable": _run(_desk_set_active, args, active))

    qr = commands.add_parser(
        "qr",
        help="print-ready QR posters for desks",
        description="Write a print-ready poster (unit, desk, QR code, instructions, hotline) per desk.",
    )
    which = qr.add_mutually_exclusive_group(required=True)
    which.add_argument("--desk", action="append", metavar="CODE", help="a desk's code (repeat for several)")
    which.add_argument("--all", action="store_true", help="every desk in service")
    qr.add_argument(
        "--target",
        choices=TARGETS,
        default="landing",
        help="landing: the desk's web page (default); telegram: straight into the bot",
    )
    qr.add_argument(
        "--format",
        type=_formats,
        default=["pdf"],
        dest="formats",
        metavar="FORMATS",
        help="comma-separated: pdf (vector, for print), svg (vector), png (300 dpi); default pdf",
    )
    qr.add_argument("--paper", type=_paper, default="A4", help="A4 (default) or A5")
    qr.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write the posters in")
    qr.set_defaults(handler=lambda args: _run(_qr, args))


def _run(action: Any, args: argparse.Namespace, *extra: Any) -> int:
    return asyncio.run(with_context(lambda ctx: action(ctx, args, *extra)))


def _error(message: str) -> None:
    print(f"pakn: {message}", file=sys.stderr)


async def _desk_add(ctx: Context, args: argparse.Namespace) -> int:
    try:
        async with ctx.sessions.begin() as session:
            desk = await add_desk(
                ctx, session, unit_code=args.unit, name=args.name, commune_code=args.commune, code=args.code
            )
    except DomainError as exc:
        _error(exc.en)
        return EXIT_USAGE
    unit = ctx.province.units[desk.unit_code]
    payload = sign_desk(ctx.keys, desk.code)
    print(f"added desk {desk.code}: {desk.name} — {unit.name_vi}")
    print(f"payload:  {payload}")
    print(f"landing:  {target_url(ctx.settings, payload, 'landing')}")
    if ctx.settings.telegram_bot_username:
        print(f"telegram: {target_url(ctx.settings, payload, 'telegram')}")
    print(f"poster:   pakn qr --desk {desk.code} --paper A5 --out posters/")
    return EXIT_OK


async def _desk_list(ctx: Context, args: argparse.Namespace) -> int:
    if args.unit and args.unit not in ctx.province.units:
        _error(f"unknown unit {args.unit!r} (see `pakn units list`)")
        return EXIT_USAGE
    async with ctx.sessions() as session:
        desks = await list_desks(session, unit_code=args.unit, active_only=args.active)
    rows = [
        (desk.code, desk.unit_code, desk.commune_code or "-", "yes" if desk.active else "DISABLED", desk.name)
        for desk in desks
    ]
    print_table(rows, ("code", "unit", "commune", "active", "name"))
    print(f"\n{len(rows)} desks")
    return EXIT_OK


async def _desk_set_active(ctx: Context, args: argparse.Namespace, active: bool) -> int:
    try:
        async with ctx.sessions.begin() as session:
            desk = await set_desk_active(ctx, session, args.code, active)
    except DomainError as exc:
        _error(f"{exc.en} (see `pakn desk list`)")
        return EXIT_USAGE
    state = "in service" if active else "disabled: its QR codes are refused from now on"
    print(f"desk {desk.code} ({desk.name}) {state}")
    return EXIT_OK


def _unreachable_warning(public_url: str) -> str | None:
    """Posters are printed once and hang for years: warn when their address cannot work from a phone."""
    host = urlsplit(public_url).hostname or ""
    try:
        local = ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_private
    except ValueError:
        local = host in ("localhost", "") or host.endswith(".local")
    if local:
        return f"PAKN_PUBLIC_URL is {public_url}: phones outside this network cannot open it"
    if not public_url.startswith("https://"):
        return f"PAKN_PUBLIC_URL is {public_url}: use https:// for a printed poster"
    return None


async def _qr(ctx: Context, args: argparse.Namespace) -> int:
    target: Target = args.target
    async with ctx.sessions() as session:
        if args.all:
            desks = list(await list_desks(session, active_only=True))
            if not desks:
                _error("no desk in service: add one with `pakn desk add`")
                return EXIT_FAILED
        else:
            desks = []
            for code in dict.fromkeys(args.desk):
                desk = await session.get(Desk, code)
                if desk is None:
                    _error(f"unknown desk {code!r} (see `pakn desk list`)")
                    return EXIT_USAGE
                if not desk.active:
                    _error(f"desk {code!r} is disabled: its QR code would be refused; `pakn desk enable {code}` first")
                    return EXIT_FAILED
                desks.append(desk)
    try:
        target_url(ctx.settings, sign_desk(ctx.keys, desks[0].code), target)
    except TargetError as exc:
        _error(str(exc))
        return EXIT_CONFIG
    if target == "landing" and (warning := _unreachable_warning(ctx.settings.public_url)):
        print(f"pakn: warning: {warning}", file=sys.stderr)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _error(f"cannot create {args.out}: {exc.strerror}")
        return EXIT_FAILED
    province = ctx.province
    written: list[Path] = []
    with tqdm(desks, desc="posters", unit="desk", file=sys.stderr, disable=len(desks) < 2) as progress:
        for desk in progress:
            url = target_url(ctx.settings, sign_desk(ctx.keys, desk.code), target)
            text = desk_poster_text(
                province_name=province.name_vi,
                unit_name=province.units[desk.unit_code].name_vi,
                desk_name=desk.name,
                url=url,
                telegram=target == "telegram",
                hotline_phone=province.hotline_phone,
                hotline_email=province.hotline_email,
            )
            try:
                page = layout(text, make_symbol(url), args.paper)
                written += write_poster(page, args.formats, args.out, f"{desk.code}-{target}-{args.paper.lower()}")
            except (OSError, ValueError) as exc:
                _error(f"desk {desk.code}: {exc}")
                return EXIT_FAILED
    for path in written:
        print(path)
    print(f"wrote {len(written)} files for {len(desks)} desks ({args.paper}, {target}) in {args.out}")
    return EXIT_OK
