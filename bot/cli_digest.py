"""``pakn digest``: preview the weekly digest exactly as heads get it, or send it now.

    pakn digest --unit ubnd_xa_muong_phang --week 2026-W10 --preview out/
    pakn digest --all --send

``--preview DIR`` writes, per unit, ``pakn-<unit>-<week>.html`` (the Telegram message as it will look), the
``.png`` chart and the ``.xlsx`` workbook; with ``--all`` also the province-wide digest (``pakn-province-…``)
that coordinators get. An empty week gets only the short message, as heads do. ``--send`` claims and queues the
digests like the scheduler does: a digest already sent for that week is not sent again. The default week is
the previous ISO week.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from bot.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, with_context
from bot.context import Context
from bot.digest import PROVINCE, Digest, IsoWeek, ProvinceDigest, compute_digests, compute_province_digest
from bot.digest_jobs import SendReport, active_recipients, already_sent, send_week
from bot.digest_render import (
    Details,
    file_stem,
    load_all_details,
    load_details,
    preview_page,
    render_digest,
    unit_name,
    week_title,
)
from bot.i18n import LOCALES


def _week(value: str) -> IsoWeek:
    try:
        return IsoWeek.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "digest",
        help="preview or send the weekly digest to unit heads",
        description="Preview (HTML, PNG chart, XLSX) or send the weekly digest of one unit or of every unit.",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--unit", metavar="CODE", help="one unit (see `pakn units list`)")
    target.add_argument("--all", action="store_true", help="every unit, and the province-wide digest for coordinators")
    parser.add_argument("--week", type=_week, metavar="YYYY-Www", help="ISO week, e.g. 2026-W47 (default: last week)")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--preview", metavar="DIR", type=Path, help="write the HTML, PNG and XLSX to DIR")
    action.add_argument("--send", action="store_true", help="queue the digests for the heads now (once per week)")
    parser.add_argument("--locale", choices=LOCALES, default="vi", help="language of the preview (default vi)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(with_context(lambda ctx: _run(ctx, args)))


def _error(message: str) -> None:
    print(f"pakn: {message}", file=sys.stderr)


async def _run(ctx: Context, args: argparse.Namespace) -> int:
    if args.unit is not None and args.unit not in ctx.province.units:
        _error(f"unknown unit {args.unit!r} (see `pakn units list`)")
        return EXIT_USAGE
    current = IsoWeek.of(ctx.local_date())
    week: IsoWeek = args.week or current.shift(-1)
    if week > current:
        _error(f"week {week.label} has not started yet")
        return EXIT_USAGE
    if args.send:
        if week.end(ctx.province.timezone) > ctx.now():
            _error(f"week {week.label} has not ended yet; only a finished week can be sent")
            return EXIT_USAGE
        return await _send(ctx, week, args.unit)
    return await _preview(ctx, week, args.unit, args.preview, args.locale)


async def _preview(ctx: Context, week: IsoWeek, unit: str | None, directory: Path, locale: str) -> int:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _error(f"cannot create {directory}: {exc.strerror or exc}")
        return EXIT_FAILED
    province: ProvinceDigest | None = None
    async with ctx.sessions() as session:
        if unit is None:
            province = await compute_province_digest(ctx, session, week)
            digests: dict[str, Digest] = {**province.units, PROVINCE: province.total}
        else:
            digests = await compute_digests(ctx, session, week, [unit])
    written = 0
    shared = None
    if unit is None:
        async with ctx.sessions() as session:
            shared = await load_all_details(ctx, session, week)
    for key, digest in digests.items():
        if shared is not None:
            details = shared.get(key, Details([], []))
        else:
            async with ctx.sessions() as session:
                details = await load_details(ctx, session, digest)
        rendered = await render_digest(ctx, digest, locale, details, province=province if key == PROVINCE else None)
        stem = file_stem(key, week)
        title = f"{unit_name(ctx, key, locale)} — {week_title(week, locale)}"
        try:
            (directory / f"{stem}.html").write_text(preview_page(rendered, title), encoding="utf-8")
            for document in rendered.documents:
                (directory / document.filename).write_bytes(document.data)
        except OSError as exc:
            _error(f"cannot write to {directory}: {exc.strerror or exc}")
            return EXIT_FAILED
        files = [f"{stem}.html", *(document.filename for document in rendered.documents)]
        note = " (no items this week: the short message only)" if digest.is_empty else ""
        print(f"{key}: {', '.join(str(directory / name) for name in files)}{note}")
        written += 1
    print(f"{written} digest(s) for {week.label} written to {directory}")
    return EXIT_OK


async def _send(ctx: Context, week: IsoWeek, unit: str | None) -> int:
    recipients = await active_recipients(ctx)
    keys = [unit] if unit is not None else [*ctx.province.units, PROVINCE]
    without = [key for key in keys if not recipients.get(key)]
    done = await already_sent(ctx, [week])
    targets = {key: recipients[key] for key in keys if recipients.get(key) and (key, week.label) not in done}
    skipped = [key for key in keys if (key, week.label) in done]
    report = await send_week(ctx, week, targets, now=ctx.now()) if targets else SendReport()
    skipped += report.already_sent
    if unit is not None:
        if report.claimed:
            count = len(recipients[unit])
            print(f"{unit}: digest for {week.label} queued for {count} head(s)")
            return EXIT_OK
        if skipped:
            print(f"{unit}: digest for {week.label} was already sent; not sent again")
            return EXIT_OK
        if report.failed:
            _error(f"{unit}: digest for {week.label} could not be rendered (see the log)")
            return EXIT_FAILED
        _error(f"{unit} has no active head; nothing sent (invite one with `pakn invite`)")
        return EXIT_FAILED
    people = sum(len(recipients[key]) for key in report.claimed)
    print(
        f"{week.label}: {len(report.claimed)} digest(s) queued for {people} recipient(s); "
        f"{len(skipped)} already sent; {len(without)} without an active head or coordinator"
        + (f"; {len(report.failed)} failed: {', '.join(report.failed)}" if report.failed else "")
    )
    return EXIT_FAILED if report.failed else EXIT_OK
