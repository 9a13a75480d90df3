"""The weekly digest's figures, computed in the database for one unit or for every unit at once.

A digest describes one ISO week (Monday 00:00 to Monday 00:00 in the province's time zone) as it stood when
the week ended, so that a digest sent late, or previewed months later, shows the same week. Every figure is an
aggregate query (GROUP BY the unit, with conditional aggregates for the variants); Python only sums the per-unit
rows into the province's totals. Working days are counted in SQL by joining a small calendar table
(a ``VALUES`` list of days with their running working-day number) built from ``WorkingCalendar``.

Definitions (the head reads them in one line each, so they must be simple and never count a thing twice):

* An item belongs to the unit that holds it now (``items.unit_code``). Its clocks keep running across a
  transfer, so the unit that received it by transfer answers for them. Transfers of the week are listed
  separately (from the audit trail), in and out.
* Received: items whose ``received_at`` falls in the week.
* Answered: items whose ``answered_at`` falls in the week; "on time" when none of its clocks was met late.
* On-time rate, separately for the accept clock (thụ lý) and the resolve clock (giải quyết): each deadline
  counts once, in the week it was settled: on time in the week it was met (met on or before its due day), late
  in the week it was missed (the day after its due day falls in the week). Clocks of an item waiting for the
  citizen are not missed while it waits.
* Open overdue at the end of the week: items with a clock due before the Monday after the week and not met
  by then (items waiting for the citizen now are left out). Days overdue are working days from the due day
  to the day the digest is due (the Monday, or the next working day).
* Extensions granted: ``extend`` events of the week. Response times: working days from receipt to acceptance
  (first response) and to the answer, for the items accepted or answered in the week.
* Satisfaction: the citizens' ratings of answers given in the week (``rate`` events, 1-5) and the desk ratings
  of the week (1-3), with the previous week and the pooled average of the four weeks before.

Nothing here reads a name, a phone number or a message text: digests carry receipt codes and counts only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Integer, and_, case, cast, column, func, or_, select, union_all, values
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE

from bot.context import Context
from models.tables import AuditEvent, Clock, Desk, DeskRating, Item

PROVINCE = "@province"
"""The DigestRun key of the province-wide digest that coordinators receive."""
OVERDUE_LIST = 10
HISTORY_WEEKS = 12
AVERAGE_WEEKS = 4
_WEEK = re.compile(r"^(\d{4})-W(\d{1,2})$")


@dataclass(frozen=True, order=True)
class IsoWeek:
    """An ISO 8601 week, written ``2026-W07``."""

    year: int
    week: int

    @classmethod
    def parse(cls, text: str) -> IsoWeek:
        match = _WEEK.match(text.strip().upper())
        if not match:
            raise ValueError(f"not an ISO week (YYYY-Www, e.g. 2026-W07): {text!r}")
        year, number = int(match[1]), int(match[2])
        try:
            date.fromisocalendar(year, number, 1)
        except ValueError:
            raise ValueError(f"{year} has no week {number}") from None
        return cls(year, number)

    @classmethod
    def of(cls, day: date) -> IsoWeek:
        year, number, _ = day.isocalendar()
        return cls(year, number)

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def sunday(self) -> date:
        return self.monday + timedelta(days=6)

    @property
    def next_monday(self) -> date:
        return self.monday + timedelta(days=7)

    def shift(self, weeks: int) -> IsoWeek:
        return IsoWeek.of(self.monday + timedelta(weeks=weeks))

    def start(self, zone: ZoneInfo) -> datetime:
        """Monday 00:00 local time, in UTC."""
        return datetime.combine(self.monday, time(0), tzinfo=zone).astimezone(UTC)

    def end(self, zone: ZoneInfo) -> datetime:
        """The next Monday 00:00 local time, in UTC (exclusive)."""
        return datetime.combine(self.next_monday, time(0), tzinfo=zone).astimezone(UTC)

    def __str__(self) -> str:
        return self.label


@dataclass
class OnTime:
    """Deadlines settled in a week: met on time, or missed."""

    on_time: int = 0
    late: int = 0

    @property
    def total(self) -> int:
        return self.on_time + self.late

    @property
    def rate(self) -> float | None:
        return self.on_time / self.total if self.total else None

    def __add__(self, other: OnTime) -> OnTime:
        return OnTime(self.on_time + other.on_time, self.late + other.late)


@dataclass
class Mean:
    """A sum and a count, so that means pool correctly when units are added up."""

    total: float = 0
    count: int = 0

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None

    def __add__(self, other: Mean) -> Mean:
        return Mean(self.total + other.total, self.count + other.count)


@dataclass
class Satisfaction:
    """Ratings of the week, of the week before, and of the four weeks before the week (pooled)."""

    week: Mean = field(default_factory=Mean)
    previous: Mean = field(default_factory=Mean)
    four_weeks: Mean = field(default_factory=Mean)

    @staticmethod
    def _delta(current: float | None, other: float | None) -> float | None:
        return None if current is None or other is None else current - other

    @property
    def vs_previous(self) -> float | None:
        return self._delta(self.week.value, self.previous.value)

    @property
    def vs_four_weeks(self) -> float | None:
        return self._delta(self.week.value, self.four_weeks.value)

    def __add__(self, other: Satisfaction) -> Satisfaction:
        return Satisfaction(self.week + other.week, self.previous + other.previous, self.four_weeks + other.four_weeks)


@dataclass
class DeskFigures:
    code: str
    name: str
    unit_code: str
    ratings: Satisfaction = field(default_factory=Satisfaction)
    happy: int = 0
    neutral: int = 0
    unhappy: int = 0


@dataclass(frozen=True)
class OverdueItem:
    receipt_code: str
    unit_code: str
    type: str
    category: str
    status: str
    received_at: datetime
    due_date: date
    days_overdue: int


@dataclass
class WeekPoint:
    week: IsoWeek
    received: int = 0
    answered_on_time: int = 0
    overdue: int = 0


@dataclass
class Digest:
    """One unit's week (or the province's, with ``unit_code == PROVINCE``)."""

    unit_code: str
    week: IsoWeek
    as_of: date
    received: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    by_category: Counter[str] = field(default_factory=Counter)
    transferred_in: int = 0
    transferred_out: int = 0
    answered: int = 0
    answered_on_time: int = 0
    accept: OnTime = field(default_factory=OnTime)
    resolve: OnTime = field(default_factory=OnTime)
    to_response: Mean = field(default_factory=Mean)
    to_answer: Mean = field(default_factory=Mean)
    extensions: int = 0
    overdue_count: int = 0
    overdue: list[OverdueItem] = field(default_factory=list)
    item_rating: Satisfaction = field(default_factory=Satisfaction)
    desk_rating: Satisfaction = field(default_factory=Satisfaction)
    desks: list[DeskFigures] = field(default_factory=list)
    history: list[WeekPoint] = field(default_factory=list)

    @property
    def on_time(self) -> OnTime:
        """Both clocks together: what units are ranked by."""
        return self.accept + self.resolve

    @property
    def is_empty(self) -> bool:
        """Nothing happened and nothing is late: the head gets the short "no items this week" digest."""
        return not (
            self.received
            or self.answered
            or self.accept.total
            or self.resolve.total
            or self.overdue_count
            or self.extensions
            or self.transferred_in
            or self.transferred_out
            or self.item_rating.week.count
            or self.desk_rating.week.count
        )


@dataclass(frozen=True)
class UnitRank:
    rank: int | None  # None: no deadline fell in the week, nothing to rank by
    unit_code: str
    on_time: OnTime
    overdue_count: int
    received: int


@dataclass
class ProvinceDigest:
    total: Digest
    units: dict[str, Digest]
    ranking: list[UnitRank]


@dataclass(frozen=True)
class ItemRow:
    """One line of the XLSX: an item of the week, without anything that identifies the citizen."""

    receipt_code: str
    unit_code: str
    type: str
    category: str
    commune_code: str | None
    status: str
    received_at: datetime
    accepted_at: datetime | None
    answered_at: datetime | None
    accept_due: date | None
    resolve_due: date | None
    extensions: int
    rating: int | None


def digest_day(ctx: Context, week: IsoWeek) -> date:
    """The day a week's digest is due: the configured weekday of the following week, or the next working day."""
    day = week.next_monday + timedelta(days=ctx.province.scheduler.digest_weekday)
    return ctx.calendar.next_working_day(day)


def local_date(ctx: Context, expr: Any, at: datetime) -> ColumnElement[date]:
    """The province-local calendar day of a UTC timestamp column, in SQL.

    SQLite has no time zones: the offset in force at ``at`` is applied (Vietnam has no daylight saving time).
    """
    zone = ctx.province.timezone
    dialect = ctx.engine.dialect.name
    if dialect == "postgresql":
        return cast(func.timezone(zone.key, expr), Date)
    if dialect == "sqlite":
        offset = at.astimezone(zone).utcoffset() or timedelta(0)
        return func.date(expr, f"{int(offset.total_seconds()):+d} seconds", type_=Date)
    raise NotImplementedError(f"digest queries support SQLite and PostgreSQL, not {dialect}")


@dataclass(frozen=True)
class CalendarTable:
    """Days with ``n``, the number of working days up to and including the day, as a SQL table and in Python.

    The working days between two days are ``n(later) - n(earlier)``: the count of working days d with
    earlier < d <= later, as ``WorkingCalendar.working_days_between`` counts them.
    """

    cte: CTE
    numbers: dict[date, int]

    def n(self, day: date) -> int:
        return self.numbers[day]


def calendar_table(ctx: Context, first: date, last: date) -> CalendarTable:
    """Days ``first..last`` as a ``VALUES`` table, to join on in working-day arithmetic."""
    numbers: dict[date, int] = {}
    number = 0
    day = first
    while day <= last:
        if ctx.calendar.is_working_day(day):
            number += 1
        numbers[day] = number
        day += timedelta(days=1)
    cte = values(column("day", Date), column("n", Integer), name="cal").data(list(numbers.items())).cte("cal")
    return CalendarTable(cte, numbers)


def _bucket(expr: Any, bounds: list[datetime]) -> ColumnElement[int]:
    """Which of the history weeks ``expr`` falls in, given each week's end (the caller filters the range)."""
    return case(*[(expr < bound, index) for index, bound in enumerate(bounds[:-1])], else_=len(bounds) - 1)


class _Window:
    """The week's boundaries and everything derived from them, in UTC and as local days."""

    def __init__(self, ctx: Context, week: IsoWeek) -> None:
        zone = ctx.province.timezone
        self.week = week
        self.start = week.start(zone)
        self.end = week.end(zone)
        self.as_of = digest_day(ctx, week)
        self.history = [week.shift(k - HISTORY_WEEKS + 1) for k in range(HISTORY_WEEKS)]
        self.history_ends = [w.end(zone) for w in self.history]
        self.history_start = self.history[0].start(zone)
        self.previous_start = week.shift(-1).start(zone)
        self.average_start = week.shift(-AVERAGE_WEEKS).start(zone)


async def compute_digests(
    ctx: Context, session: AsyncSession, week: IsoWeek, units: Collection[str] | None = None
) -> dict[str, Digest]:
    """Every unit's digest for ``week`` (or only ``units``), keyed by unit code, in one set of queries."""
    window = _Window(ctx, week)
    codes = list(units) if units is not None else list(ctx.province.units)
    digests = {code: _empty_digest(code, window) for code in codes}

    def get(code: str) -> Digest:
        if code not in digests:
            digests[code] = _empty_digest(code, window)
        return digests[code]

    unit_filter: list[ColumnElement[bool]] = [Item.unit_code.in_(codes)] if units is not None else []
    first_received = await session.scalar(select(func.min(Item.received_at)))
    if first_received is None:
        return digests
    first_day = min(ctx.local_date(first_received), window.history[0].monday) - timedelta(days=1)
    cal = calendar_table(ctx, first_day, max(window.as_of, week.next_monday))

    await _received(ctx, session, window, unit_filter, get)
    await _answered(ctx, session, window, unit_filter, get)
    await _response_times(ctx, session, window, unit_filter, cal, get)
    await _settled_clocks(ctx, session, window, unit_filter, get)
    await _overdue(ctx, session, window, unit_filter, cal, get)
    await _overdue_history(ctx, session, window, unit_filter, get)
    await _audit_figures(ctx, session, window, unit_filter, get, codes if units is not None else None)
    await _item_ratings(ctx, session, window, unit_filter, get)
    await _desk_ratings(ctx, session, window, codes if units is not None else None, get)
    return digests


def empty_digest(ctx: Context, unit_code: str, week: IsoWeek) -> Digest:
    """A digest with nothing in it yet (and its 12 history weeks), to be filled in."""
    return _empty_digest(unit_code, _Window(ctx, week))


def _empty_digest(code: str, window: _Window) -> Digest:
    return Digest(
        unit_code=code,
        week=window.week,
        as_of=window.as_of,
        history=[WeekPoint(w) for w in window.history],
    )


async def _received(ctx: Context, session: AsyncSession, window: _Window, unit_filter: list[Any], get: Any) -> None:
    week_rows = await session.execute(
        select(Item.unit_code, Item.type, Item.category, func.count())
        .where(Item.received_at >= window.start, Item.received_at < window.end, *unit_filter)
        .group_by(Item.unit_code, Item.type, Item.category)
    )
    for unit_code, type_code, category, count in week_rows:
        digest = get(unit_code)
        digest.received += count
        digest.by_type[type_code] += count
        digest.by_category[category] += count
    bucket = _bucket(Item.received_at, window.history_ends).label("bucket")
    inner = (
        select(Item.unit_code.label("unit_code"), bucket)
        .where(Item.received_at >= window.history_start, Item.received_at < window.end, *unit_filter)
        .subquery()
    )
    for unit_code, index, count in await session.execute(
        select(inner.c.unit_code, inner.c.bucket, func.count()).group_by(inner.c.unit_code, inner.c.bucket)
    ):
        get(unit_code).history[index].received = count


async def _answered(ctx: Context, session: AsyncSession, window: _Window, unit_filter: list[Any], get: Any) -> None:
    """Answered per history week, and how many of them with every clock met by its due day."""
    late_clock = (
        select(Clock.id)
        .where(Clock.item_id == Item.id, local_date(ctx, Clock.met_at, window.start) > Clock.due_date)
        .exists()
    )
    inner = (
        select(
            Item.unit_code.label("unit_code"),
            _bucket(Item.answered_at, window.history_ends).label("bucket"),
            case((late_clock, 0), else_=1).label("on_time"),
        )
        .where(Item.answered_at >= window.history_start, Item.answered_at < window.end, *unit_filter)
        .subquery()
    )
    query = select(inner.c.unit_code, inner.c.bucket, func.count(), func.sum(inner.c.on_time)).group_by(
        inner.c.unit_code, inner.c.bucket
    )
    last = len(window.history) - 1
    for unit_code, index, count, on_time in await session.execute(query):
        digest = get(unit_code)
        digest.history[index].answered_on_time = int(on_time or 0)
        if index == last:
            digest.answered = count
            digest.answered_on_time = int(on_time or 0)


async def _response_times(
    ctx: Context, session: AsyncSession, window: _Window, unit_filter: list[Any], cal: CalendarTable, get: Any
) -> None:
    """Working days from receipt to acceptance and to the answer. The items of the week are first counted per
    (unit, day received, day accepted) — a few hundred pairs — and only those pairs meet the calendar table."""
    for moment, attribute in ((Item.accepted_at, "to_response"), (Item.answered_at, "to_answer")):
        days = (
            select(
                Item.unit_code.label("unit_code"),
                local_date(ctx, Item.received_at, window.start).label("received"),
                local_date(ctx, moment, window.start).label("reached"),
            )
            .where(moment >= window.start, moment < window.end, *unit_filter)
            .subquery()
        )
        pairs = (
            select(days.c.unit_code, days.c.received, days.c.reached, func.count().label("n_items"))
            .group_by(days.c.unit_code, days.c.received, days.c.reached)
            .subquery()
        )
        received, reached = cal.cte.alias("cal_r"), cal.cte.alias("cal_x")
        query = (
            select(
                pairs.c.unit_code, func.sum((reached.c.n - received.c.n) * pairs.c.n_items), func.sum(pairs.c.n_items)
            )
            .select_from(pairs)
            .join(received, received.c.day == pairs.c.received)
            .join(reached, reached.c.day == pairs.c.reached)
            .group_by(pairs.c.unit_code)
        )
        for unit_code, total_days, count in await session.execute(query):
            setattr(get(unit_code), attribute, Mean(float(total_days or 0), int(count or 0)))


async def _settled_clocks(
    ctx: Context, session: AsyncSession, window: _Window, unit_filter: list[Any], get: Any
) -> None:
    met_in = and_(Clock.met_at >= window.start, Clock.met_at < window.end)
    met_day = local_date(ctx, Clock.met_at, window.start)
    # Missed in the week: the first day after the due day lies in the week.
    missed_window = and_(
        Clock.due_date >= window.week.monday - timedelta(days=1),
        Clock.due_date < window.week.next_monday - timedelta(days=1),
    )
    on_time = and_(met_in, met_day <= Clock.due_date)
    late = and_(
        missed_window,
        or_(and_(Clock.met_at.is_(None), Item.paused.is_(False)), met_day > Clock.due_date),
    )
    query = (
        select(
            Item.unit_code,
            Clock.kind,
            func.sum(case((on_time, 1), else_=0)),
            func.sum(case((late, 1), else_=0)),
        )
        .select_from(Clock)
        .join(Item, Item.id == Clock.item_id)
        .where(or_(met_in, missed_window), *unit_filter)
        .group_by(Item.unit_code, Clock.kind)
    )
    for unit_code, kind, on_time_count, late_count in await session.execute(query):
        figures = OnTime(int(on_time_count or 0), int(late_count or 0))
        digest = get(unit_code)
        if kind == "accept":
            digest.accept = figures
        elif kind == "resolve":
            digest.resolve = figures


def _unmet_clocks(ctx: Context, due_before: date, met_since: datetime) -> Any:
    """Clocks due before a day and not met by a moment: (item_id, due_date, met_at).

    Written as a UNION ALL of ``met_at IS NULL`` and ``met_at >= …`` so that both halves use the ``met_at``
    index on SQLite and PostgreSQL alike; as one OR, SQLite's planner scans the due-date index instead, which
    at a million items reads nearly every clock. A clock met on or before its due day was never overdue, so
    only the clocks met late are kept from the second half.
    """
    columns = (Clock.item_id.label("item_id"), Clock.due_date.label("due_date"), Clock.met_at.label("met_at"))
    met_late = local_date(ctx, Clock.met_at, met_since) > Clock.due_date
    return union_all(
        select(*columns).where(Clock.met_at.is_(None), Clock.due_date < due_before),
        select(*columns).where(Clock.met_at >= met_since, Clock.due_date < due_before, met_late),
    ).subquery("unmet")


def overdue_at_end(ctx: Context, window_end: datetime, cutoff_day: date, unit_filter: list[Any]) -> Any:
    """Items open and overdue when the week ended: (item_id, unit_code, earliest due day missed).

    A due day before the cutoff implies the item was received before it, so items are only looked up by key,
    in the (id, unit_code, paused) index; the callers read the other columns for the few rows they show.
    """
    unmet = _unmet_clocks(ctx, cutoff_day, window_end)
    return (
        select(
            Item.id.label("item_id"),
            Item.unit_code.label("unit_code"),
            func.min(unmet.c.due_date).label("due"),
        )
        .select_from(unmet)
        .join(Item, Item.id == unmet.c.item_id)
        .where(Item.paused.is_(False), *unit_filter)
        .group_by(Item.id)
        .subquery("overdue")
    )


_ITEM_DETAILS = (
    Item.receipt_code.label("receipt_code"),
    Item.type.label("type"),
    Item.category.label("category"),
    Item.status.label("status"),
    Item.received_at.label("received_at"),
)


async def _overdue(
    ctx: Context, session: AsyncSession, window: _Window, unit_filter: list[Any], cal: CalendarTable, get: Any
) -> None:
    """How many items are open and overdue per unit, and the ``OVERDUE_LIST`` oldest of each (window functions)."""
    overdue = overdue_at_end(ctx, window.end, window.week.next_monday, unit_filter)
    as_of_number = cal.n(window.as_of)
    # Item ids grow with receipt, so (due day, id) puts the oldest first.
    ranked = select(
        overdue,
        func.row_number()
        .over(partition_by=overdue.c.unit_code, order_by=(overdue.c.due, overdue.c.item_id))
        .label("rank"),
        func.count().over(partition_by=overdue.c.unit_code).label("total"),
    ).subquery("ranked")
    rows = await session.execute(
        select(ranked, *_ITEM_DETAILS, cal.cte.c.n)
        .join(Item, Item.id == ranked.c.item_id)
        .outerjoin(cal.cte, cal.cte.c.day == ranked.c.due)
        .where(ranked.c.rank <= OVERDUE_LIST)
        .order_by(ranked.c.unit_code, ranked.c.rank)
    )
    for row in rows.mappings():
        digest = get(row["unit_code"])
        digest.overdue_count = row["total"]
        digest.overdue.append(
            OverdueItem(
                receipt_code=row["receipt_code"],
                unit_code=row["unit_code"],
                type=row["type"],
                category=row["category"],
                status=row["status"],
                received_at=row["received_at"],
                due_date=_as_date(row["due"]),  # type: ignore[arg-type]
                days_overdue=as_of_number - (row["n"] or 0),
            )
        )


async def _overdue_history(
    ctx: Context, session: AsyncSession, window: _Window, unit_filter: list[Any], get: Any
) -> None:
    """Open overdue items at the end of each history week: one flag per week per item, then summed per unit."""
    unmet = _unmet_clocks(ctx, window.week.next_monday, window.history_ends[0])
    flags = []
    for index, (point, end) in enumerate(zip(window.history, window.history_ends, strict=True)):
        condition = and_(unmet.c.due_date < point.next_monday, or_(unmet.c.met_at.is_(None), unmet.c.met_at >= end))
        flags.append(func.max(case((condition, 1), else_=0)).label(f"w{index}"))
    per_item = (
        select(Item.unit_code.label("unit_code"), *flags)
        .select_from(unmet)
        .join(Item, Item.id == unmet.c.item_id)
        .where(Item.paused.is_(False), *unit_filter)
        .group_by(Item.id)
        .subquery()
    )
    query = select(
        per_item.c.unit_code, *(func.sum(per_item.c[f"w{index}"]) for index in range(len(window.history)))
    ).group_by(per_item.c.unit_code)
    for unit_code, *counts in await session.execute(query):
        digest = get(unit_code)
        for point, count in zip(digest.history, counts, strict=True):
            point.overdue = int(count or 0)


async def _audit_figures(
    ctx: Context,
    session: AsyncSession,
    window: _Window,
    unit_filter: list[Any],
    get: Any,
    codes: list[str] | None,
) -> None:
    """Extensions granted and transfers in and out, from the audit trail (each event carries its moment)."""
    in_week = and_(AuditEvent.created_at >= window.start, AuditEvent.created_at < window.end)
    extensions = await session.execute(
        select(Item.unit_code, func.count())
        .select_from(AuditEvent)
        .join(Item, Item.id == AuditEvent.item_id)
        .where(AuditEvent.action == "extend", in_week, *unit_filter)
        .group_by(Item.unit_code)
    )
    for unit_code, count in extensions:
        get(unit_code).extensions = count
    source = AuditEvent.data["from"].as_string().label("source")
    target = AuditEvent.data["to"].as_string().label("target")
    inner = select(source, target).where(AuditEvent.action == "transfer", in_week).subquery()
    transfers = await session.execute(
        select(inner.c.source, inner.c.target, func.count()).group_by(inner.c.source, inner.c.target)
    )
    wanted = set(codes) if codes is not None else None
    for source_code, target_code, count in transfers:
        if source_code and (wanted is None or source_code in wanted):
            get(source_code).transferred_out += count
        if target_code and (wanted is None or target_code in wanted):
            get(target_code).transferred_in += count


def _periods(window: _Window, moment: Any) -> tuple[Any, Any, Any]:
    return (
        moment >= window.start,
        and_(moment >= window.previous_start, moment < window.start),
        moment < window.start,
    )


async def _item_ratings(ctx: Context, session: AsyncSession, window: _Window, unit_filter: list[Any], get: Any) -> None:
    rating = AuditEvent.data["rating"].as_integer()
    week, previous, before = _periods(window, AuditEvent.created_at)
    query = (
        select(
            Item.unit_code,
            *(
                aggregate
                for period in (week, previous, before)
                for aggregate in (func.sum(case((period, rating))), func.count(case((period, 1))))
            ),
        )
        .select_from(AuditEvent)
        .join(Item, Item.id == AuditEvent.item_id)
        .where(
            AuditEvent.action == "rate",
            AuditEvent.created_at >= window.average_start,
            AuditEvent.created_at < window.end,
            *unit_filter,
        )
        .group_by(Item.unit_code)
    )
    for unit_code, week_sum, week_count, prev_sum, prev_count, avg_sum, avg_count in await session.execute(query):
        get(unit_code).item_rating = Satisfaction(
            Mean(float(week_sum or 0), week_count),
            Mean(float(prev_sum or 0), prev_count),
            Mean(float(avg_sum or 0), avg_count),
        )


async def _desk_ratings(
    ctx: Context, session: AsyncSession, window: _Window, codes: list[str] | None, get: Any
) -> None:
    """Per desk (active desks even without ratings, so an unused QR poster shows), then per unit."""
    monday, previous_monday = window.week.monday, window.week.shift(-1).monday
    day = DeskRating.day
    week, previous, before = day >= monday, and_(day >= previous_monday, day < monday), day < monday
    in_week = DeskRating.day >= monday
    query = (
        select(
            Desk.unit_code,
            Desk.code,
            Desk.name,
            *(
                aggregate
                for period in (week, previous, before)
                for aggregate in (func.sum(case((period, DeskRating.score))), func.count(case((period, 1))))
            ),
            func.count(case((and_(in_week, DeskRating.score == 3), 1))),
            func.count(case((and_(in_week, DeskRating.score == 2), 1))),
            func.count(case((and_(in_week, DeskRating.score == 1), 1))),
        )
        .select_from(Desk)
        .outerjoin(
            DeskRating,
            and_(
                DeskRating.desk_code == Desk.code,
                DeskRating.day >= window.week.shift(-AVERAGE_WEEKS).monday,
                DeskRating.day < window.week.next_monday,
            ),
        )
        .where(or_(Desk.active.is_(True), DeskRating.id.is_not(None)))
        .group_by(Desk.unit_code, Desk.code, Desk.name)
        .order_by(Desk.unit_code, Desk.code)
    )
    if codes is not None:
        query = query.where(Desk.unit_code.in_(codes))
    for row in await session.execute(query):
        unit_code, code, name, w_sum, w_count, p_sum, p_count, a_sum, a_count, happy, neutral, unhappy = row
        ratings = Satisfaction(
            Mean(float(w_sum or 0), w_count), Mean(float(p_sum or 0), p_count), Mean(float(a_sum or 0), a_count)
        )
        digest = get(unit_code)
        digest.desks.append(DeskFigures(code, name, unit_code, ratings, happy, neutral, unhappy))
        digest.desk_rating = digest.desk_rating + ratings


def province_total(ctx: Context, week: IsoWeek, digests: Iterable[Digest]) -> Digest:
    """The province's figures: sums of the units' (means pooled; the oldest overdue items merged)."""
    window = _Window(ctx, week)
    total = _empty_digest(PROVINCE, window)
    overdue: list[OverdueItem] = []
    for digest in digests:
        total.received += digest.received
        total.by_type.update(digest.by_type)
        total.by_category.update(digest.by_category)
        total.answered += digest.answered
        total.answered_on_time += digest.answered_on_time
        total.accept = total.accept + digest.accept
        total.resolve = total.resolve + digest.resolve
        total.to_response = total.to_response + digest.to_response
        total.to_answer = total.to_answer + digest.to_answer
        total.extensions += digest.extensions
        total.overdue_count += digest.overdue_count
        overdue.extend(digest.overdue)
        total.item_rating = total.item_rating + digest.item_rating
        total.desk_rating = total.desk_rating + digest.desk_rating
        for mine, theirs in zip(total.history, digest.history, strict=True):
            mine.received += theirs.received
            mine.answered_on_time += theirs.answered_on_time
            mine.overdue += theirs.overdue
    # Each unit's list holds its oldest; the province's oldest are among them.
    total.overdue = sorted(overdue, key=lambda item: (item.due_date, item.received_at, item.receipt_code))[
        :OVERDUE_LIST
    ]
    return total


def rank_units(digests: Iterable[Digest]) -> list[UnitRank]:
    """Units by on-time rate (both clocks), best first; ties: fewer overdue, then more deadlines, then code.

    Units with no deadline settled in the week have no rate and come last, unranked.
    """
    rated = sorted(
        (d for d in digests if d.on_time.total),
        key=lambda d: (-(d.on_time.rate or 0), d.overdue_count, -d.on_time.total, d.unit_code),
    )
    ranking = [UnitRank(index, d.unit_code, d.on_time, d.overdue_count, d.received) for index, d in enumerate(rated, 1)]
    idle = sorted((d for d in digests if not d.on_time.total), key=lambda d: (-d.overdue_count, d.unit_code))
    ranking += [UnitRank(None, d.unit_code, d.on_time, d.overdue_count, d.received) for d in idle]
    return ranking


async def compute_province_digest(ctx: Context, session: AsyncSession, week: IsoWeek) -> ProvinceDigest:
    """Every unit's digest, the province's totals and the ranking, from one set of queries."""
    units = await compute_digests(ctx, session, week)
    return ProvinceDigest(province_total(ctx, week, units.values()), units, rank_units(units.values()))


async def week_items(ctx: Context, session: AsyncSession, week: IsoWeek, unit_code: str | None) -> list[ItemRow]:
    """Every item received or answered in the week (one unit, or the whole province), for the XLSX."""
    zone = ctx.province.timezone
    start, end = week.start(zone), week.end(zone)
    query = (
        select(
            Item.receipt_code,
            Item.unit_code,
            Item.type,
            Item.category,
            Item.commune_code,
            Item.status,
            Item.received_at,
            Item.accepted_at,
            Item.answered_at,
            func.max(case((Clock.kind == "accept", Clock.due_date))),
            func.max(case((Clock.kind == "resolve", Clock.due_date))),
            func.coalesce(func.sum(Clock.extensions), 0),
            Item.rating,
        )
        .outerjoin(Clock, Clock.item_id == Item.id)
        .where(
            or_(
                and_(Item.received_at >= start, Item.received_at < end),
                and_(Item.answered_at >= start, Item.answered_at < end),
            )
        )
        .group_by(Item.id)
        .order_by(Item.received_at, Item.id)
    )
    if unit_code is not None:
        query = query.where(Item.unit_code == unit_code)
    rows = await session.execute(query)
    return [
        ItemRow(
            receipt_code=row[0],
            unit_code=row[1],
            type=row[2],
            category=row[3],
            commune_code=row[4],
            status=row[5],
            received_at=row[6],
            accepted_at=row[7],
            answered_at=row[8],
            accept_due=_as_date(row[9]),
            resolve_due=_as_date(row[10]),
            extensions=int(row[11]),
            rating=row[12],
        )
        for row in rows
    ]


async def overdue_items(ctx: Context, session: AsyncSession, week: IsoWeek, unit_code: str | None) -> list[OverdueItem]:
    """Every item open and overdue when the week ended, oldest deadline first, for the XLSX."""
    window = _Window(ctx, week)
    unit_filter = [Item.unit_code == unit_code] if unit_code is not None else []
    overdue = overdue_at_end(ctx, window.end, week.next_monday, unit_filter)
    first = _as_date(await session.scalar(select(func.min(overdue.c.due))))
    if first is None:
        return []
    cal = calendar_table(ctx, first - timedelta(days=1), window.as_of)
    as_of_number = cal.n(window.as_of)
    rows = await session.execute(
        select(overdue, *_ITEM_DETAILS, cal.cte.c.n)
        .join(Item, Item.id == overdue.c.item_id)
        .outerjoin(cal.cte, cal.cte.c.day == overdue.c.due)
        .order_by(overdue.c.due, overdue.c.item_id)
    )
    return [
        OverdueItem(
            receipt_code=row["receipt_code"],
            unit_code=row["unit_code"],
            type=row["type"],
            category=row["category"],
            status=row["status"],
            received_at=row["received_at"],
            due_date=_as_date(row["due"]),  # type: ignore[arg-type]
            days_overdue=as_of_number - (row["n"] or 0),
        )
        for row in rows.mappings()
    ]


def _as_date(value: Any) -> date | None:
    """Aggregates over a Date column come back as text on SQLite."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
