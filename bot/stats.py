"""Public statistics per unit over the last 12 weeks: received, on time, working days to answer, satisfaction.

Everything is counted by aggregate SQL (``GROUP BY`` in the database); Python only folds days into weeks and
turns calendar days into working days, which needs the province's calendar. Nothing personal is read:
only units, dates, statuses and scores.

Definitions (also printed on the page):

* received: items received in the week (counted at the unit that holds them now).
* on time: of the items whose answer deadline has passed or that were answered, those answered by the
  deadline, extensions included. The answer deadline is the resolve clock, or the accept clock for types
  that have none (a suggestion is answered when accepted).
* working days to answer: from the day of receipt to the day of the answer, on the working-day calendar.
* satisfaction: items rated 3 or more out of 5 by the citizen; desk ratings of 3 ("happy") out of 3.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Date, Table, and_, case, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from bot.context import Context
from bot.i18n import gettext
from models.db import read_only_session
from models.tables import Clock, Desk, DeskRating, Item

WEEKS = 12
REPORT_TTL = timedelta(minutes=5)  # how old the public figures may be (the page says so)
SATISFIED_ITEM_RATING = 3
HAPPY_DESK_SCORE = 3

# Core tables: the report reads thousands of aggregate rows, which need no ORM loading.
_ITEMS: Table = Item.__table__  # type: ignore[assignment]
_CLOCKS: Table = Clock.__table__  # type: ignore[assignment]
_DESKS: Table = Desk.__table__  # type: ignore[assignment]
_RATINGS: Table = DeskRating.__table__  # type: ignore[assignment]


@dataclass
class Figures:
    """The counts of one unit over one period; rates are derived, so sums of periods stay exact."""

    received: int = 0
    decided: int = 0
    on_time: int = 0
    answered: int = 0
    answer_working_days: int = 0
    item_ratings: int = 0
    item_satisfied: int = 0
    desk_scores: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0, 3: 0})

    def add(self, other: Figures) -> None:
        self.received += other.received
        self.decided += other.decided
        self.on_time += other.on_time
        self.answered += other.answered
        self.answer_working_days += other.answer_working_days
        self.item_ratings += other.item_ratings
        self.item_satisfied += other.item_satisfied
        for score, count in other.desk_scores.items():
            self.desk_scores[score] = self.desk_scores.get(score, 0) + count

    @property
    def desk_ratings(self) -> int:
        return sum(self.desk_scores.values())

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.decided if self.decided else None

    @property
    def average_working_days(self) -> float | None:
        return self.answer_working_days / self.answered if self.answered else None

    @property
    def item_satisfaction(self) -> float | None:
        return self.item_satisfied / self.item_ratings if self.item_ratings else None

    @property
    def desk_satisfaction(self) -> float | None:
        ratings = self.desk_ratings
        return self.desk_scores.get(HAPPY_DESK_SCORE, 0) / ratings if ratings else None

    @property
    def empty(self) -> bool:
        return not (self.received or self.desk_ratings or self.decided)


@dataclass
class UnitStats:
    unit_code: str
    weeks: list[Figures]
    total: Figures = field(default_factory=Figures)


@dataclass
class Report:
    first_day: date
    today: date
    week_starts: list[date]
    units: dict[str, UnitStats]
    total: UnitStats

    def active_units(self) -> list[UnitStats]:
        """Units with anything to show, busiest first."""
        active = [unit for unit in self.units.values() if not unit.total.empty]
        return sorted(active, key=lambda unit: (-unit.total.received, -unit.total.desk_ratings, unit.unit_code))


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def window(today: date, weeks: int = WEEKS) -> list[date]:
    """The Mondays of the last ``weeks`` weeks, the current (partial) week last."""
    last = monday(today)
    return [last - timedelta(weeks=weeks - 1 - index) for index in range(weeks)]


def local_day(ctx: Context, dialect: str, column: Any) -> ColumnElement[date]:
    """The calendar day of a UTC timestamp column in the province's time zone, computed by the database.

    PostgreSQL converts with the zone's rules; SQLite (no zone database) shifts by the zone's current
    offset, which is exact for zones without daylight saving such as Asia/Ho_Chi_Minh.
    """
    if dialect == "postgresql":
        return type_coerce(func.timezone(ctx.province.timezone.key, column), Date).cast(Date)
    offset = ctx.province.timezone.utcoffset(ctx.now().replace(tzinfo=None)) or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    return type_coerce(func.date(column, f"{minutes:+d} minutes"), Date)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


async def unit_report(ctx: Context, session: AsyncSession, *, weeks: int = WEEKS) -> Report:
    """The figures of every unit, week by week, over the last ``weeks`` weeks up to today."""
    today = ctx.local_date()
    week_starts = window(today, weeks)
    first_day = week_starts[0]
    since = datetime.combine(first_day, time(0), tzinfo=ctx.province.timezone)
    dialect = session.get_bind().dialect.name

    def blank() -> UnitStats:
        return UnitStats("", [Figures() for _ in week_starts])

    units: dict[str, UnitStats] = {}

    def figures(unit_code: str, day: date) -> Figures:
        if unit_code not in units:
            units[unit_code] = blank()
            units[unit_code].unit_code = unit_code
        index = (monday(day) - first_day).days // 7
        return units[unit_code].weeks[max(0, min(index, len(week_starts) - 1))]

    # The answer deadline is the resolve clock when the item has one, else the accept clock. Only columns of
    # ix_clocks_item_kind_due_met are read (its ``kind``, not its id, tells whether the item has a resolve
    # clock), so that each join is an index-only look-up by (item_id, kind), not a read of the clocks table.
    accept = _CLOCKS.alias("accept_clock")
    resolve = _CLOCKS.alias("resolve_clock")
    due = func.coalesce(resolve.c.due_date, accept.c.due_date)
    met = case((resolve.c.kind.is_not(None), resolve.c.met_at), else_=accept.c.met_at)
    received_day = local_day(ctx, dialect, _ITEMS.c.received_at).label("received_day")
    answered_day = local_day(ctx, dialect, _ITEMS.c.answered_at).label("answered_day")
    on_time = and_(met.is_not(None), local_day(ctx, dialect, met) <= due)
    decided = (met.is_not(None)) | (due < today)
    one, zero = 1, 0
    items_query = (
        select(
            _ITEMS.c.unit_code,
            received_day,
            answered_day,
            func.count(_ITEMS.c.id),
            func.sum(case((decided, one), else_=zero)),
            func.sum(case((on_time, one), else_=zero)),
            func.sum(case((_ITEMS.c.rating.is_not(None), one), else_=zero)),
            func.sum(case((_ITEMS.c.rating >= SATISFIED_ITEM_RATING, one), else_=zero)),
        )
        .select_from(_ITEMS)
        .outerjoin(accept, and_(accept.c.item_id == _ITEMS.c.id, accept.c.kind == "accept"))
        .outerjoin(resolve, and_(resolve.c.item_id == _ITEMS.c.id, resolve.c.kind == "resolve"))
        .where(_ITEMS.c.received_at >= since)
        # The days before the unit: grouped by the unit first, SQLite reads every item in ix_items_unit_status
        # order (at 1,000,000 items) instead of the 12 weeks' range of ix_items_received_at.
        .group_by(received_day, answered_day, _ITEMS.c.unit_code)
    )
    # Working days per pair of days, counted once: the calendar walks day by day, and the rows (one per unit
    # and pair of days) repeat the same pairs across units.
    working_days: dict[tuple[date, date], int] = {}
    for unit_code, r_day, a_day, count, n_decided, n_on_time, n_rated, n_satisfied in await session.execute(
        items_query
    ):
        received = _as_date(r_day)
        week = figures(unit_code, received)
        week.received += int(count)
        week.decided += int(n_decided or 0)
        week.on_time += int(n_on_time or 0)
        week.item_ratings += int(n_rated or 0)
        week.item_satisfied += int(n_satisfied or 0)
        if a_day is not None:
            week.answered += int(count)
            answered = _as_date(a_day)
            days = working_days.get((received, answered))
            if days is None:
                days = working_days[received, answered] = max(0, ctx.calendar.working_days_between(received, answered))
            week.answer_working_days += days * int(count)

    desks_query = (
        select(_DESKS.c.unit_code, _RATINGS.c.day, _RATINGS.c.score, func.count(_RATINGS.c.id))
        .select_from(_RATINGS)
        .join(_DESKS, _DESKS.c.code == _RATINGS.c.desk_code)
        .where(_RATINGS.c.day >= first_day, _RATINGS.c.day <= today)
        .group_by(_DESKS.c.unit_code, _RATINGS.c.day, _RATINGS.c.score)
    )
    for unit_code, day, score, count in await session.execute(desks_query):
        week = figures(unit_code, _as_date(day))
        week.desk_scores[int(score)] = week.desk_scores.get(int(score), 0) + int(count)

    total = blank()
    total.unit_code = "*"
    for unit in units.values():
        for index, week in enumerate(unit.weeks):
            unit.total.add(week)
            total.weeks[index].add(week)
        total.total.add(unit.total)
    return Report(first_day=first_day, today=today, week_starts=week_starts, units=units, total=total)


CSV_COLUMNS = (
    "unit_code",
    "unit_name",
    "week_start",
    "items_received",
    "answer_due_or_answered",
    "answered_on_time",
    "on_time_rate",
    "answered",
    "avg_working_days_to_answer",
    "item_ratings",
    "item_ratings_satisfied",
    "item_satisfaction",
    "desk_ratings",
    "desk_unhappy",
    "desk_neutral",
    "desk_happy",
    "desk_satisfaction",
)


def _ratio(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def csv_rows(ctx: Context, report: Report, unit_codes: list[str], locale: str = "vi") -> list[list[str]]:
    """One row per unit and week (plain numbers, dots for decimals: for spreadsheets and scripts).

    ``*`` stands for the whole province."""
    rows: list[list[str]] = [list(CSV_COLUMNS)]
    for code in unit_codes:
        stats = report.total if code == "*" else report.units.get(code)
        if stats is None:
            continue
        unit = ctx.province.units.get(code)
        name = unit.name(locale) if unit else (gettext(locale, "stats.all_units") if code == "*" else code)
        for start, week in zip(report.week_starts, stats.weeks, strict=True):
            rows.append(
                [
                    code,
                    name,
                    start.isoformat(),
                    str(week.received),
                    str(week.decided),
                    str(week.on_time),
                    _ratio(week.on_time_rate),
                    str(week.answered),
                    _ratio(week.average_working_days, 1),
                    str(week.item_ratings),
                    str(week.item_satisfied),
                    _ratio(week.item_satisfaction),
                    str(week.desk_ratings),
                    str(week.desk_scores.get(1, 0)),
                    str(week.desk_scores.get(2, 0)),
                    str(week.desk_scores.get(3, 0)),
                    _ratio(week.desk_satisfaction),
                ]
            )
    return rows


class ReportCache:
    """The public figures, computed at most once per ``ttl`` however many people ask.

    At a province's size the report takes about a second (docs/PERFORMANCE.md: 0.4–1.4 s at 1,000,000 items, by VM),
    read on a connection of its own (``models.db.read_only_session``: on SQLite, not the one every chat's write
    needs): the pages show figures up to ``ttl`` old instead of computing them per request, and requests that
    come while they are computed share that computation (a request given up does not cancel it). A failed
    computation is not kept: the next request tries again.
    """

    def __init__(self, ctx: Context, ttl: timedelta = REPORT_TTL) -> None:
        self.ctx = ctx
        self.ttl = ttl
        self._latest: tuple[Report, datetime] | None = None
        self._pending: asyncio.Future[tuple[Report, datetime]] | None = None

    async def get(self) -> tuple[Report, datetime]:
        """The report and when it was computed."""
        latest, now = self._latest, self.ctx.now()
        if latest is not None and now - latest[1] < self.ttl and latest[0].today == self.ctx.local_date(now):
            return latest
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._compute())
        pending = self._pending
        try:
            return await asyncio.shield(pending)
        finally:
            if pending.done() and self._pending is pending:
                self._pending = None

    async def _compute(self) -> tuple[Report, datetime]:
        async with read_only_session(self.ctx.engine) as session:
            report = await unit_report(self.ctx, session)
        self._latest = (report, self.ctx.now())
        return self._latest
