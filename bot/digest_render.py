"""The digest as a head receives it: a Telegram HTML message, a 12-week PNG chart and an XLSX file.

Text comes from the Babel catalogs (``digest.*``, ``chart.*``, ``xlsx.*``) and numbers and dates are formatted
with Babel for the recipient's locale (``4,2`` and ``09/03/2026`` in Vietnamese). The message is built from
blocks — a heading, a line, one overdue item — and split only between blocks, so that every part is valid
HTML that fits Telegram's 4,096-character limit. The chart is drawn with matplotlib's object API on the Agg
canvas (no pyplot global state, so it can be drawn in a worker thread). Nothing here reads personal data: a
digest carries receipt codes, types, statuses and counts.
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from babel.dates import format_date
from babel.numbers import format_decimal, format_percent
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import Context
from bot.digest import (
    PROVINCE,
    Digest,
    IsoWeek,
    ItemRow,
    Mean,
    OnTime,
    OverdueItem,
    ProvinceDigest,
    Satisfaction,
    overdue_items,
    week_items,
)
from bot.i18n import format_day, gettext, normalise_locale

MESSAGE_LIMIT = 4096
_CONTINUATION_RESERVE = 400
PNG_MIME = "image/png"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Document:
    filename: str
    mime: str
    data: bytes
    caption: str

    def payload(self) -> dict[str, str]:
        """The outbox form (``payload["documents"]``), which the Telegram sender uploads after the text."""
        return {
            "filename": self.filename,
            "mime": self.mime,
            "data_b64": base64.b64encode(self.data).decode("ascii"),
            "caption": self.caption,
        }


@dataclass(frozen=True)
class RenderedDigest:
    """What one recipient locale gets: the message parts in order, then the files (none for an empty week)."""

    key: str
    week: IsoWeek
    locale: str
    messages: list[str]
    documents: list[Document]

    def payloads(self) -> list[dict[str, Any]]:
        """One outbox payload per message part; the files ride on the last part."""
        result: list[dict[str, Any]] = []
        for index, text in enumerate(self.messages):
            payload: dict[str, Any] = {
                "text": text,
                "buttons": [],
                "digest": {"unit": self.key, "week": self.week.label, "part": index + 1, "parts": len(self.messages)},
            }
            if index == len(self.messages) - 1 and self.documents:
                payload["documents"] = [document.payload() for document in self.documents]
            result.append(payload)
        return result


# --- formatting -------------------------------------------------------------------------------------------


def number(locale: str, value: float) -> str:
    """At most one decimal: ``2,5`` (vi), ``2.5`` (en), ``1.234`` (vi thousands)."""
    return format_decimal(value, format="#,##0.#", locale=normalise_locale(locale))


def percent(locale: str, rate: float) -> str:
    return format_percent(rate, format="#,##0.#%", locale=normalise_locale(locale))


def signed(locale: str, delta: float) -> str:
    """``+0,3``, ``−0,3`` (a real minus sign) or ``±0``."""
    if round(delta, 1) == 0:
        return "±0"
    return ("+" if delta > 0 else "−") + number(locale, abs(delta))


def unit_name(ctx: Context, code: str, locale: str) -> str:
    if code == PROVINCE:
        return gettext(
            locale, "digest.province", province=ctx.province.name_en if locale == "en" else ctx.province.name_vi
        )
    unit = ctx.province.units.get(code)
    return unit.name(locale) if unit else code


def type_name(ctx: Context, code: str, locale: str) -> str:
    rule = ctx.province.item_types.get(code)
    return rule.name(locale) if rule else code


def category_name(ctx: Context, code: str, locale: str) -> str:
    category = ctx.province.categories.get(code)
    return category.name(locale) if category else code


def status_name(status: str, locale: str) -> str:
    return gettext(locale, f"status.{status}")


def week_title(week: IsoWeek, locale: str) -> str:
    return gettext(locale, "digest.week_name", number=week.week, year=week.year)


def _e(text: str) -> str:
    return html.escape(text, quote=False)


# --- the message ------------------------------------------------------------------------------------------


def utf16_length(text: str) -> int:
    """Telegram measures messages in UTF-16 code units; the HTML source is an upper bound of the visible text."""
    return len(text.encode("utf-16-le")) // 2


def split_blocks(blocks: Sequence[str], *, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Pack blocks (joined by newlines) into parts within ``limit``, breaking only between blocks.

    A block longer than a whole part (never produced by the digest, but kept safe) is broken at its lines.
    """
    pieces: list[str] = []
    for block in blocks:
        if utf16_length(block) <= limit:
            pieces.append(block)
        else:
            pieces.extend(line[: limit // 2] for line in block.split("\n"))
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        extra = utf16_length(piece) + (1 if current else 0)
        if current and size + extra > limit:
            parts.append("\n".join(current).strip("\n"))
            current, size = [], 0
            extra = utf16_length(piece)
        current.append(piece)
        size += extra
    if current:
        parts.append("\n".join(current).strip("\n"))
    return [part for part in parts if part] or [""]


def _paginate(blocks: Sequence[str], heading: str, locale: str) -> list[str]:
    """Split, and start every part after the first with the heading and "part i/n"."""
    parts = split_blocks(blocks, limit=MESSAGE_LIMIT - _CONTINUATION_RESERVE)
    if len(parts) == 1:
        return parts
    return [
        part
        if index == 0
        else gettext(locale, "digest.continued", title=heading, part=index + 1, parts=len(parts)) + "\n\n" + part
        for index, part in enumerate(parts)
    ]


def _rate(locale: str, figures: OnTime) -> str:
    if not figures.total:
        return gettext(locale, "digest.rate_none")
    return gettext(
        locale,
        "digest.rate",
        on_time=figures.on_time,
        total=figures.total,
        percent=percent(locale, figures.rate or 0),
    )


def _mean_days(locale: str, key: str, mean: Mean) -> str:
    if mean.value is None:
        return gettext(locale, f"{key}_none")
    return gettext(locale, key, days=number(locale, mean.value))


def _score(locale: str, ratings: Satisfaction, scale: int) -> str:
    if ratings.week.value is None:
        return gettext(locale, "digest.no_ratings")
    text = gettext(
        locale, "digest.score", average=number(locale, ratings.week.value), scale=scale, count=ratings.week.count
    )
    comparisons = []
    if ratings.vs_previous is not None:
        comparisons.append(gettext(locale, "digest.vs_previous", delta=signed(locale, ratings.vs_previous)))
    if ratings.vs_four_weeks is not None:
        comparisons.append(gettext(locale, "digest.vs_average", delta=signed(locale, ratings.vs_four_weeks)))
    return text + ("; " + "; ".join(comparisons) if comparisons else "")


def _header(ctx: Context, digest: Digest, locale: str, late_due: date | None) -> list[str]:
    week = digest.week
    lines = [
        gettext(locale, "digest.title", week=week_title(week, locale)),
        f"<b>{_e(unit_name(ctx, digest.unit_code, locale))}</b>",
        gettext(
            locale,
            "digest.period",
            start=format_day(locale, week.monday),
            end=format_day(locale, week.sunday),
            label=week.label,
        ),
    ]
    if late_due is not None:
        lines.append(gettext(locale, "digest.late", day=format_day(locale, late_due)))
    return ["\n".join(lines)]


def _counts(ctx: Context, counts: dict[str, int], locale: str, namer: Any, order: Sequence[str]) -> str:
    """``Phản ánh 2 · Góp ý 1``: largest first, ties in the configured order."""
    position = {key: index for index, key in enumerate(order)}
    keys = sorted((k for k in counts if counts[k]), key=lambda k: (-counts[k], position.get(k, len(position)), k))
    return " · ".join(f"{_e(namer(ctx, key, locale))} {number(locale, counts[key])}" for key in keys)


def _body(ctx: Context, digest: Digest, locale: str, *, with_unit: bool) -> list[str]:
    """Every section but the header: each list line is its own block, so parts break between items."""
    blocks: list[str] = [""]
    blocks.append(gettext(locale, "digest.received", count=number(locale, digest.received)))
    if digest.received:
        blocks.append(
            gettext(
                locale,
                "digest.by_type",
                list=_counts(ctx, digest.by_type, locale, type_name, list(ctx.province.item_types)),
            )
        )
        blocks.append(
            gettext(
                locale,
                "digest.by_category",
                list=_counts(ctx, digest.by_category, locale, category_name, list(ctx.province.categories)),
            )
        )
    if digest.transferred_in or digest.transferred_out:
        blocks.append(
            gettext(locale, "digest.transfers", incoming=digest.transferred_in, outgoing=digest.transferred_out)
        )
    blocks.append("")
    blocks.append(
        gettext(
            locale,
            "digest.answered",
            count=number(locale, digest.answered),
            on_time=number(locale, digest.answered_on_time),
        )
    )
    blocks.append(gettext(locale, "digest.on_time_accept", value=_rate(locale, digest.accept)))
    blocks.append(gettext(locale, "digest.on_time_resolve", value=_rate(locale, digest.resolve)))
    blocks.append(_mean_days(locale, "digest.avg_response", digest.to_response))
    blocks.append(_mean_days(locale, "digest.avg_answer", digest.to_answer))
    blocks.append(gettext(locale, "digest.extensions", count=number(locale, digest.extensions)))
    blocks.append("")
    if digest.overdue_count:
        blocks.append(gettext(locale, "digest.overdue", count=number(locale, digest.overdue_count)))
        for rank, item in enumerate(digest.overdue, 1):
            blocks.append(_overdue_line(ctx, item, rank, locale, with_unit=with_unit))
        if digest.overdue_count > len(digest.overdue):
            blocks.append(
                gettext(locale, "digest.overdue_more", count=number(locale, digest.overdue_count - len(digest.overdue)))
            )
    else:
        blocks.append(gettext(locale, "digest.overdue_none"))
    blocks.append("")
    blocks.append(gettext(locale, "digest.satisfaction"))
    blocks.append(gettext(locale, "digest.item_rating", value=_score(locale, digest.item_rating, 5)))
    blocks.append(gettext(locale, "digest.desk_rating", value=_score(locale, digest.desk_rating, 3)))
    return blocks


def _overdue_line(ctx: Context, item: OverdueItem, rank: int, locale: str, *, with_unit: bool) -> str:
    line = gettext(
        locale,
        "digest.overdue_line",
        rank=rank,
        code=_e(item.receipt_code),
        type=_e(type_name(ctx, item.type, locale)),
        days=number(locale, item.days_overdue),
        status=_e(status_name(item.status, locale)),
    )
    if with_unit:
        line += f" · {_e(unit_name(ctx, item.unit_code, locale))}"
    return line


def _footer(digest: Digest, locale: str, *, files: bool) -> list[str]:
    blocks = [
        "",
        gettext(
            locale,
            "digest.footnote",
            end=format_day(locale, digest.week.sunday),
            as_of=format_day(locale, digest.as_of),
        ),
    ]
    if files:
        blocks.append(gettext(locale, "digest.files"))
    return blocks


def render_message(ctx: Context, digest: Digest, locale: str, *, late_due: date | None = None) -> list[str]:
    """A unit's digest as Telegram HTML parts (one part unless the unit has a great deal to report)."""
    locale = normalise_locale(locale)
    header = _header(ctx, digest, locale, late_due)
    if digest.is_empty:
        return _paginate([*header, "", gettext(locale, "digest.empty")], "", locale)
    blocks = [*header, *_body(ctx, digest, locale, with_unit=False)]
    if digest.desks:
        blocks += ["", gettext(locale, "digest.desks")]
        for desk in digest.desks:
            blocks.append(
                gettext(
                    locale,
                    "digest.desk_line",
                    name=_e(desk.name),
                    value=_score(locale, desk.ratings, 3),
                    happy=desk.happy,
                    neutral=desk.neutral,
                    unhappy=desk.unhappy,
                )
            )
    blocks += _footer(digest, locale, files=True)
    return _paginate(blocks, _heading(ctx, digest, locale), locale)


def _heading(ctx: Context, digest: Digest, locale: str) -> str:
    return f"{_e(unit_name(ctx, digest.unit_code, locale))} — {_e(week_title(digest.week, locale))}"


def render_province_message(
    ctx: Context, province: ProvinceDigest, locale: str, *, late_due: date | None = None
) -> list[str]:
    """The coordinators' digest: the province's totals, its oldest overdue items, every unit ranked."""
    locale = normalise_locale(locale)
    total = province.total
    blocks = [*_header(ctx, total, locale, late_due), *_body(ctx, total, locale, with_unit=True)]
    blocks += ["", gettext(locale, "digest.ranking")]
    idle: list[str] = []
    for entry in province.ranking:
        name = _e(unit_name(ctx, entry.unit_code, locale))
        if entry.rank is not None:
            blocks.append(
                gettext(
                    locale,
                    "digest.rank_line",
                    rank=entry.rank,
                    unit=name,
                    value=_rate(locale, entry.on_time),
                    overdue=number(locale, entry.overdue_count),
                )
            )
        elif entry.overdue_count:
            blocks.append(
                gettext(locale, "digest.rank_idle_overdue", unit=name, overdue=number(locale, entry.overdue_count))
            )
        else:
            idle.append(name)
    if idle:
        blocks.append(gettext(locale, "digest.rank_idle", count=len(idle), units=", ".join(idle)))
    blocks += _footer(total, locale, files=True)
    return _paginate(blocks, _heading(ctx, total, locale), locale)


# --- the chart --------------------------------------------------------------------------------------------


def render_chart(ctx: Context, digest: Digest, locale: str) -> bytes:
    """PNG, 1000×500 px: received and answered-on-time bars, and the overdue backlog as a line, per week."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    locale = normalise_locale(locale)
    points = digest.history
    labels = [format_date(point.week.monday, "dd/MM", locale=locale) for point in points]
    positions = list(range(len(points)))
    figure = Figure(figsize=(10, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.38
    axes.bar(
        [p - width / 2 for p in positions],
        [point.received for point in points],
        width,
        label=gettext(locale, "chart.received"),
        color="#4C78A8",
    )
    axes.bar(
        [p + width / 2 for p in positions],
        [point.answered_on_time for point in points],
        width,
        label=gettext(locale, "chart.answered_on_time"),
        color="#54A24B",
    )
    axes.plot(
        positions,
        [point.overdue for point in points],
        color="#E45756",
        marker="o",
        linewidth=2,
        label=gettext(locale, "chart.overdue"),
    )
    axes.set_xticks(positions, labels)
    axes.set_xlabel(gettext(locale, "chart.week"))
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    highest = max((max(p.received, p.answered_on_time, p.overdue) for p in points), default=0)
    axes.set_ylim(0, highest * 1.25 + 1)  # room for the legend above the bars
    axes.grid(axis="y", alpha=0.3)
    axes.set_title(
        gettext(locale, "chart.title", unit=unit_name(ctx, digest.unit_code, locale), week=digest.week.label)
    )
    axes.legend(loc="upper left")
    figure.subplots_adjust(left=0.06, right=0.98, top=0.91, bottom=0.12)  # fixed: tight_layout costs 40%
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


# --- the workbook -----------------------------------------------------------------------------------------


def _local(ctx: Context, moment: datetime | None) -> datetime | None:
    """Excel has no time zones: the province's wall-clock time, naive, to the minute (as the column shows)."""
    if moment is None:
        return None
    return moment.astimezone(ctx.province.timezone).replace(tzinfo=None, second=0, microsecond=0)


def render_xlsx(
    ctx: Context, digest: Digest, locale: str, rows: Sequence[ItemRow], overdue: Sequence[OverdueItem]
) -> bytes:
    """Summary, every item received or answered in the week, every item open and overdue, and the desks.

    Streamed with openpyxl's write-only mode: the province's workbook has thousands of rows.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    locale = normalise_locale(locale)

    def t(key: str) -> str:
        return gettext(locale, key)

    workbook = Workbook(write_only=True)
    bold = Font(bold=True)

    def sheet(
        title: str,
        headers: Sequence[str],
        data: Sequence[Sequence[Any]],
        formats: dict[int, str],
        widths: dict[int, int] | None = None,
    ) -> None:
        ws = workbook.create_sheet(title[:31])
        for index, header in enumerate(headers, 1):
            width = (widths or {}).get(index) or max(12, min(40, len(header) + 4))
            ws.column_dimensions[get_column_letter(index)].width = width
        ws.freeze_panes = "A2"
        if data:
            ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{len(data) + 1}"
        header_cells = []
        for header in headers:
            cell = WriteOnlyCell(ws, value=header)
            cell.font = bold
            header_cells.append(cell)
        ws.append(header_cells)
        for row in data:
            values: list[Any] = []
            for index, value in enumerate(row, 1):
                if index in formats and isinstance(value, date):  # datetime is a date too
                    cell = WriteOnlyCell(ws, value=value)
                    cell.number_format = formats[index]
                    values.append(cell)
                else:
                    values.append(value)
            ws.append(values)

    summary: list[tuple[str, Any]] = [
        (t("xlsx.col.unit"), unit_name(ctx, digest.unit_code, locale)),
        (t("xlsx.sum.week"), digest.week.label),
        (t("xlsx.sum.from"), digest.week.monday),
        (t("xlsx.sum.to"), digest.week.sunday),
        (t("xlsx.sum.received"), digest.received),
        (t("xlsx.sum.answered"), digest.answered),
        (t("xlsx.sum.answered_on_time"), digest.answered_on_time),
        (t("xlsx.sum.accept_on_time"), digest.accept.on_time),
        (t("xlsx.sum.accept_due"), digest.accept.total),
        (t("xlsx.sum.resolve_on_time"), digest.resolve.on_time),
        (t("xlsx.sum.resolve_due"), digest.resolve.total),
        (t("xlsx.sum.avg_response"), _rounded(digest.to_response.value)),
        (t("xlsx.sum.avg_answer"), _rounded(digest.to_answer.value)),
        (t("xlsx.sum.extensions"), digest.extensions),
        (t("xlsx.sum.transferred_in"), digest.transferred_in),
        (t("xlsx.sum.transferred_out"), digest.transferred_out),
        (t("xlsx.sum.overdue"), digest.overdue_count),
        (t("xlsx.sum.item_rating"), _rounded(digest.item_rating.week.value)),
        (t("xlsx.sum.item_ratings"), digest.item_rating.week.count),
        (t("xlsx.sum.desk_rating"), _rounded(digest.desk_rating.week.value)),
        (t("xlsx.sum.desk_ratings"), digest.desk_rating.week.count),
    ]
    sheet(
        t("xlsx.sheet_summary"),
        [t("xlsx.col.figure"), t("xlsx.col.value")],
        summary,
        {2: "DD/MM/YYYY"},
        {1: 48, 2: 40},
    )
    date_time, day = "DD/MM/YYYY HH:MM", "DD/MM/YYYY"
    communes = ctx.province.communes
    sheet(
        t("xlsx.sheet_week"),
        [
            t("xlsx.col.receipt"),
            t("xlsx.col.unit"),
            t("xlsx.col.type"),
            t("xlsx.col.category"),
            t("xlsx.col.commune"),
            t("xlsx.col.status"),
            t("xlsx.col.received"),
            t("xlsx.col.accept_due"),
            t("xlsx.col.accepted"),
            t("xlsx.col.resolve_due"),
            t("xlsx.col.answered"),
            t("xlsx.col.extensions"),
            t("xlsx.col.rating"),
        ],
        [
            (
                row.receipt_code,
                unit_name(ctx, row.unit_code, locale),
                type_name(ctx, row.type, locale),
                category_name(ctx, row.category, locale),
                communes[row.commune_code].name if row.commune_code in communes else "",
                status_name(row.status, locale),
                _local(ctx, row.received_at),
                row.accept_due,
                _local(ctx, row.accepted_at),
                row.resolve_due,
                _local(ctx, row.answered_at),
                row.extensions,
                row.rating,
            )
            for row in rows
        ],
        {7: date_time, 8: day, 9: date_time, 10: day, 11: date_time},
    )
    sheet(
        t("xlsx.sheet_overdue"),
        [
            t("xlsx.col.receipt"),
            t("xlsx.col.unit"),
            t("xlsx.col.type"),
            t("xlsx.col.category"),
            t("xlsx.col.status"),
            t("xlsx.col.received"),
            t("xlsx.col.due"),
            t("xlsx.col.days_overdue"),
        ],
        [
            (
                item.receipt_code,
                unit_name(ctx, item.unit_code, locale),
                type_name(ctx, item.type, locale),
                category_name(ctx, item.category, locale),
                status_name(item.status, locale),
                _local(ctx, item.received_at),
                item.due_date,
                item.days_overdue,
            )
            for item in overdue
        ],
        {6: date_time, 7: day},
    )
    if digest.desks:
        sheet(
            t("xlsx.sheet_desks"),
            [
                t("xlsx.col.desk"),
                t("xlsx.col.ratings"),
                t("xlsx.col.average"),
                t("xlsx.col.happy"),
                t("xlsx.col.neutral"),
                t("xlsx.col.unhappy"),
                t("xlsx.col.previous"),
                t("xlsx.col.four_weeks"),
            ],
            [
                (
                    desk.name,
                    desk.ratings.week.count,
                    _rounded(desk.ratings.week.value),
                    desk.happy,
                    desk.neutral,
                    desk.unhappy,
                    _rounded(desk.ratings.previous.value),
                    _rounded(desk.ratings.four_weeks.value),
                )
                for desk in digest.desks
            ],
            {},
            {1: 40},
        )
    workbook.properties.creator = "PAKN"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# --- putting it together ----------------------------------------------------------------------------------


def file_stem(key: str, week: IsoWeek) -> str:
    return f"pakn-{'province' if key == PROVINCE else key}-{week.label}"


@dataclass(frozen=True)
class Details:
    """The rows behind a digest, for its workbook: loaded once, drawn in every recipient locale."""

    items: list[ItemRow]
    overdue: list[OverdueItem]


async def load_details(ctx: Context, session: AsyncSession, digest: Digest) -> Details:
    unit_code = None if digest.unit_code == PROVINCE else digest.unit_code
    if digest.is_empty:
        return Details([], [])
    return Details(
        await week_items(ctx, session, digest.week, unit_code),
        await overdue_items(ctx, session, digest.week, unit_code),
    )


async def load_all_details(ctx: Context, session: AsyncSession, week: IsoWeek) -> dict[str, Details]:
    """Every unit's rows (and the province's, under ``PROVINCE``) from two queries, for a run over many units."""
    items = await week_items(ctx, session, week, None)
    overdue = await overdue_items(ctx, session, week, None)
    result: dict[str, Details] = {PROVINCE: Details(items, overdue)}
    for row in items:
        result.setdefault(row.unit_code, Details([], [])).items.append(row)
    for item in overdue:
        result.setdefault(item.unit_code, Details([], [])).overdue.append(item)
    return result


async def render_digest(
    ctx: Context,
    digest: Digest,
    locale: str,
    details: Details,
    *,
    province: ProvinceDigest | None = None,
    late_due: date | None = None,
) -> RenderedDigest:
    """Message parts and files for one recipient locale (no files for an empty week).

    The chart and the workbook are drawn in worker threads, so a Monday morning of digests does not stall the
    bots; no database session is held meanwhile (on SQLite an open session holds the write lock).
    """
    locale = normalise_locale(locale)
    key = digest.unit_code
    if province is not None:
        messages = render_province_message(ctx, province, locale, late_due=late_due)
    else:
        messages = render_message(ctx, digest, locale, late_due=late_due)
    if digest.is_empty:
        return RenderedDigest(key, digest.week, locale, messages, [])
    chart, workbook = await asyncio.gather(
        asyncio.to_thread(render_chart, ctx, digest, locale),
        asyncio.to_thread(render_xlsx, ctx, digest, locale, details.items, details.overdue),
    )
    name = unit_name(ctx, key, locale)
    stem = file_stem(key, digest.week)
    documents = [
        Document(f"{stem}.png", PNG_MIME, chart, gettext(locale, "digest.caption_chart", unit=name)),
        Document(
            f"{stem}.xlsx",
            XLSX_MIME,
            workbook,
            gettext(locale, "digest.caption_xlsx", unit=name, week=digest.week.label),
        ),
    ]
    return RenderedDigest(key, digest.week, locale, messages, documents)


def preview_page(rendered: RenderedDigest, title: str) -> str:
    """A standalone page showing the message parts as Telegram shows them, and links to the files."""
    parts = "\n".join(f'<div class="msg">{message}</div>' for message in rendered.messages)
    files = []
    for document in rendered.documents:
        if document.mime == PNG_MIME:
            files.append(f'<p><img src="{html.escape(document.filename)}" alt="{html.escape(document.caption)}"></p>')
        else:
            files.append(
                f'<p class="file">📎 <a href="{html.escape(document.filename)}">{html.escape(document.filename)}</a>'
                f" — {html.escape(document.caption)}</p>"
            )
    return f"""<!doctype html>
<html lang="{rendered.locale}">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #dfe7ef; max-width: 60rem; margin: 2rem auto; }}
.msg {{ background: #fff; border-radius: 12px; padding: 1rem 1.25rem; margin: 0 0 1rem; white-space: pre-wrap;
        line-height: 1.45; box-shadow: 0 1px 2px rgba(0, 0, 0, .15); max-width: 40rem; }}
img {{ max-width: 100%; background: #fff; border-radius: 12px; }}
.file {{ background: #fff; border-radius: 12px; padding: .75rem 1.25rem; max-width: 40rem; }}
</style>
</head>
<body>
{parts}
{chr(10).join(files)}
</body>
</html>
"""
