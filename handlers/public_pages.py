"""Public pages anyone may open: ``/track`` (an item by its receipt code) and ``/stats`` (+ ``/stats.csv``).

``/track`` answers a malformed code and an unknown code with the same page and the same status, and
limits look-ups per hashed client (HTTP 429 with a Vietnamese page past the limit). ``/stats`` shows
counts per unit over the last 12 weeks; nothing on either page can identify a citizen.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.context import Context
from bot.i18n import format_day, format_moment, format_number, gettext
from bot.receipts import example_code
from bot.stats import REPORT_TTL, Figures, ReportCache, UnitStats, csv_rows
from bot.tracking import TRACK_LIMIT, PublicStatus, event_label, track
from handlers.charts import weekly_chart
from handlers.http import CONTEXT
from handlers.pages import FormError, locale_of, message_page, network_hash, page, read_form

MAX_TRACK_FORM = 2048


def _status_view(ctx: Context, locale: str, status: PublicStatus) -> dict[str, Any]:
    unit = ctx.province.units.get(status.unit_code)
    rule = ctx.province.item_types.get(status.type)

    def due(day: Any, met: bool) -> str:
        if day is None:
            return ""
        text = format_day(locale, day)
        return gettext(locale, "track.due_met", date=text) if met else text

    return {
        "code": status.receipt_code,
        "type": rule.name(locale) if rule else status.type,
        "status": gettext(locale, f"status.{status.status}"),
        "status_code": status.status,
        "unit": unit.name(locale) if unit else status.unit_code,
        "received": format_day(locale, ctx.local_date(status.received_at)),
        "accept_due": due(status.accept_due, status.accept_met),
        "resolve_due": due(status.resolve_due, status.resolve_met),
        "timeline": [(format_moment(locale, entry.at), event_label(locale, entry.action)) for entry in status.timeline],
    }


async def track_form(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    return page(
        request, "track.html", code="", result=None, not_found=False, example=example_code(ctx.province.receipt_prefix)
    )


async def track_lookup(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    try:
        form = await read_form(request, MAX_TRACK_FORM)
    except FormError as exc:
        return message_page(request, exc.status, exc.kind)
    locale = locale_of(request, form)
    raw = form.get("code", "").strip()
    async with ctx.sessions.begin() as session:
        tracked = await track(ctx, session, raw, network_hash(request))
    if tracked.limited:
        minutes = int(TRACK_LIMIT.window.total_seconds() // 60)
        response = message_page(request, 429, "too_many", locale=locale, minutes=minutes)
        response.headers["Retry-After"] = str(int(TRACK_LIMIT.window.total_seconds()))
        return response
    result = _status_view(ctx, locale, tracked.status) if tracked.status else None
    return page(
        request,
        "track.html",
        status=200 if result else 404,
        locale=locale,
        code=result["code"] if result else raw[:64],
        result=result,
        not_found=result is None,
        example=example_code(ctx.province.receipt_prefix),
    )


def _percent(locale: str, value: float | None) -> str:
    return "—" if value is None else f"{format_number(locale, round(value * 100))} %"


def _row(ctx: Context, locale: str, code: str, name: str, figures: Figures) -> dict[str, Any]:
    days = figures.average_working_days
    return {
        "code": code,
        "name": name,
        "received": format_number(locale, figures.received),
        "on_time": gettext(
            locale,
            "stats.share",
            percent=_percent(locale, figures.on_time_rate),
            part=figures.on_time,
            whole=figures.decided,
        )
        if figures.decided
        else "—",
        "avg_days": "—" if days is None else format_number(locale, round(days, 1)),
        "item_satisfaction": gettext(
            locale,
            "stats.share",
            percent=_percent(locale, figures.item_satisfaction),
            part=figures.item_satisfied,
            whole=figures.item_ratings,
        )
        if figures.item_ratings
        else "—",
        "desk_satisfaction": gettext(
            locale,
            "stats.share",
            percent=_percent(locale, figures.desk_satisfaction),
            part=figures.desk_scores.get(3, 0),
            whole=figures.desk_ratings,
        )
        if figures.desk_ratings
        else "—",
        "desk_ratings": format_number(locale, figures.desk_ratings),
    }


async def stats_page(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    locale = locale_of(request)
    unit_code = request.query.get("unit", "")
    if unit_code and unit_code not in ctx.province.units:
        return page(request, "stats.html", status=404, locale=locale, unknown_unit=True, **_empty_context())
    report, computed_at = await request.app[REPORTS].get()
    if unit_code:
        unit = ctx.province.units[unit_code]
        stats = report.units.get(unit_code)
        weeks = stats.weeks if stats else [Figures() for _ in report.week_starts]
        total = stats.total if stats else Figures()
        rows = [_row(ctx, locale, unit_code, unit.name(locale), total)]
        heading = unit.name(locale)
    else:
        weeks = report.total.weeks
        total = report.total.total
        rows = [
            _row(ctx, locale, stats.unit_code, _unit_name(ctx, locale, stats.unit_code), stats.total)
            for stats in report.active_units()
        ]
        heading = gettext(locale, "stats.all_units")
    weekly = [
        {**_row(ctx, locale, unit_code, format_day(locale, start), week), "week": format_day(locale, start)}
        for start, week in zip(report.week_starts, weeks, strict=True)
    ]
    return page(
        request,
        "stats.html",
        locale=locale,
        unknown_unit=False,
        unit_code=unit_code,
        heading=heading,
        period=gettext(
            locale, "stats.period", start=format_day(locale, report.first_day), end=format_day(locale, report.today)
        ),
        as_of=gettext(
            locale,
            "stats.as_of",
            moment=format_moment(locale, computed_at),
            minutes=int(REPORT_TTL.total_seconds() // 60),
        ),
        total=_row(ctx, locale, "*", gettext(locale, "stats.all_units"), total),
        rows=rows,
        weekly=list(reversed(weekly)),
        chart=weekly_chart(locale, report.week_starts, weeks),
        empty=total.empty,
        csv_url="/stats.csv" + (f"?unit={unit_code}" if unit_code else ""),
    )


def _empty_context() -> dict[str, Any]:
    return {
        "unit_code": "",
        "heading": "",
        "period": "",
        "as_of": "",
        "total": None,
        "rows": [],
        "weekly": [],
        "chart": "",
        "empty": True,
        "csv_url": "/stats.csv",
    }


def _unit_name(ctx: Context, locale: str, code: str) -> str:
    unit = ctx.province.units.get(code)
    return unit.name(locale) if unit else code


async def stats_csv(request: web.Request) -> web.Response:
    """UTF-8 with a byte-order mark, so a spreadsheet opens Vietnamese names correctly."""
    ctx = request.app[CONTEXT]
    locale = locale_of(request)
    unit_code = request.query.get("unit", "")
    if unit_code and unit_code not in ctx.province.units:
        return message_page(request, 404, "bad_request", locale=locale)
    report, _computed_at = await request.app[REPORTS].get()
    codes = [unit_code] if unit_code else ["*", *[stats.unit_code for stats in report.active_units()]]
    if unit_code and unit_code not in report.units:  # a copy: the report is shared
        empty = UnitStats(unit_code, [Figures() for _ in report.week_starts])
        report = dataclasses.replace(report, units={**report.units, unit_code: empty})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(csv_rows(ctx, report, codes, locale))
    name = f"pakn-stats-{unit_code or 'all'}-{report.today.isoformat()}.csv"
    return web.Response(
        body=("\ufeff" + buffer.getvalue()).encode("utf-8"),
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "public, max-age=300",
            "X-Content-Type-Options": "nosniff",
        },
    )


REPORTS = web.AppKey("reports", ReportCache)


@web.middleware
async def page_missing_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """An address with no page behind it (typed by hand from a poster, cut short in a message) gets a page in the
    visitor's language with the way to the chat, tracking and the figures, not aiohttp's bare "404: Not Found".
    Only for a browser asking for a page: an API client, a stylesheet or an image keeps its plain 404."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if request.method not in ("GET", "HEAD") or "text/html" not in request.headers.get("Accept", ""):
            raise
        return message_page(request, 404, "missing")


def setup(app: web.Application) -> None:
    app.middlewares.append(page_missing_middleware)
    app[REPORTS] = ReportCache(app[CONTEXT])
    app.router.add_get("/track", track_form)
    app.router.add_post("/track", track_lookup)
    app.router.add_get("/stats", stats_page)
    app.router.add_get("/stats.csv", stats_csv)
