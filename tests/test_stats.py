"""Public statistics: counted by the database, folded into 12 weeks, on the working-day calendar."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from bot import tickets
from bot.context import Context
from bot.desks import add_desk
from bot.intake import Draft, submit_item
from bot.ratings import rate_desk
from bot.stats import CSV_COLUMNS, Figures, csv_rows, monday, unit_report, window
from models.tables import Clock, Item
from tests.conftest import VN, TestClock

MP = "ubnd_xa_muong_phang"
TEXT = "Đường vào bản bị sạt lở sau mưa lớn, xe máy không đi qua được, đề nghị xã xử lý."


async def _submit(ctx: Context, clock: TestClock, day: date, desk_code: str | None = None) -> int:
    clock.set_local(day.year, day.month, day.day, 10)
    draft = Draft(type="phan_anh", category="dat_dai", commune_code="3325", description=TEXT, desk_code=desk_code)
    async with ctx.sessions.begin() as session:
        return (await submit_item(ctx, session, draft, channel="web", channel_id=f"w{day}")).item.id


async def _answer(ctx: Context, clock: TestClock, item_id: int, day: date, rating: int | None = None) -> None:
    clock.set_local(day.year, day.month, day.day, 16)
    async with ctx.sessions.begin() as session:
        item = await tickets.lock_item(session, item_id)
        await tickets.answer_item(ctx, session, item, actor="official:1", text="Xã đã cử cán bộ xuống kiểm tra.")
        if rating is not None:
            await tickets.rate_item(ctx, session, item, rating=rating)


async def _scenario(ctx: Context, clock: TestClock) -> None:
    answered = await _submit(ctx, clock, date(2026, 1, 5))  # Monday
    await _answer(ctx, clock, answered, date(2026, 1, 8), rating=5)  # 3 working days later, on time
    await _submit(ctx, clock, date(2026, 1, 5))  # never answered: its accept-by (19/01) has passed
    await _submit(ctx, clock, date(2026, 2, 10))  # recent, not due yet: not decided
    await _submit(ctx, clock, date(2025, 10, 1))  # before the 12 weeks
    clock.set_local(2026, 1, 1)
    async with ctx.sessions.begin() as session:
        justice = await add_desk(ctx, session, unit_code="so_tu_phap", name="Quầy hộ tịch")
        mp_desk = await add_desk(ctx, session, unit_code=MP, name="Bộ phận một cửa")
    other = await _submit(ctx, clock, date(2026, 2, 2), desk_code=justice.code)  # routed to the desk's unit
    # Received Monday 02/02, answered Monday 23/02: Tết (16–20/02/2026) is not counted, nor weekends.
    await _answer(ctx, clock, other, date(2026, 2, 23), rating=2)
    for day, scores in ((date(2026, 2, 11), (3, 3, 1)), (date(2025, 11, 1), (1,))):
        clock.set_local(day.year, day.month, day.day, 9)
        for n, score in enumerate(scores):
            async with ctx.sessions.begin() as session:
                await rate_desk(ctx, session, mp_desk, score=score, device=f"dev-{day}-{n}", network=None)
    clock.set_local(2026, 2, 25, 9)


async def test_figures_per_unit_and_week(ctx: Context, clock: TestClock) -> None:
    await _scenario(ctx, clock)
    async with ctx.sessions() as session:
        report = await unit_report(ctx, session)
    assert report.today == date(2026, 2, 25)
    assert report.week_starts[0] == date(2025, 12, 8) and report.week_starts[-1] == date(2026, 2, 23)
    assert len(report.week_starts) == 12

    mp = report.units[MP].total
    assert (mp.received, mp.decided, mp.on_time) == (3, 2, 1)
    assert mp.on_time_rate == 0.5
    assert (mp.answered, mp.average_working_days) == (1, 3.0)
    assert (mp.item_ratings, mp.item_satisfied) == (1, 1)
    assert mp.desk_scores == {1: 1, 2: 0, 3: 2} and mp.desk_ratings == 3
    assert round(mp.desk_satisfaction or 0, 3) == 0.667

    weeks = dict(zip(report.week_starts, report.units[MP].weeks, strict=True))
    assert weeks[date(2026, 1, 5)].received == 2 and weeks[date(2026, 2, 9)].received == 1
    assert weeks[date(2026, 2, 9)].desk_ratings == 3

    justice = report.units["so_tu_phap"].total
    assert (justice.received, justice.answered, justice.on_time) == (1, 1, 1)
    assert justice.average_working_days == 10  # 3–6/02, 9–13/02, 23/02: weekends and Tết are not counted
    assert (justice.item_ratings, justice.item_satisfied) == (1, 0)

    total = report.total.total
    assert (total.received, total.desk_ratings, total.answered) == (4, 3, 2)
    assert [u.unit_code for u in report.active_units()] == [MP, "so_tu_phap"]


async def test_the_csv_has_one_row_per_unit_and_week(ctx: Context, clock: TestClock) -> None:
    await _scenario(ctx, clock)
    async with ctx.sessions() as session:
        report = await unit_report(ctx, session)
    rows = csv_rows(ctx, report, ["*", MP])
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 1 + 2 * 12
    parsed = list(csv.DictReader(io.StringIO("\n".join(",".join(r) for r in rows))))
    week = next(r for r in parsed if r["unit_code"] == MP and r["week_start"] == "2026-01-05")
    assert week["unit_name"] == "UBND Xã Mường Phăng"
    assert (week["items_received"], week["answered_on_time"], week["on_time_rate"]) == ("2", "1", "0.500")
    assert week["avg_working_days_to_answer"] == "3.0"
    assert parsed[0]["unit_name"] == "Toàn tỉnh"


async def test_an_item_answered_after_its_deadline_is_late(ctx: Context, clock: TestClock) -> None:
    item_id = await _submit(ctx, clock, date(2026, 1, 5))
    async with ctx.sessions() as session:
        item = await session.get(Item, item_id)
        assert item is not None and item.unit_code == MP
    # The resolve clock (accept-by 19/01, then 15 working days) ran out in February; answered in March.
    await _answer(ctx, clock, item_id, date(2026, 3, 2))
    async with ctx.sessions() as session:
        report = await unit_report(ctx, session)
    figures = report.units[MP].total
    assert (figures.decided, figures.on_time, figures.answered) == (1, 0, 1)


async def test_the_figures_match_the_definitions_item_by_item(ctx: Context, clock: TestClock) -> None:
    """Items of three units written directly in many shapes (no clock, an accept clock only, both; met on time,
    late, near midnight, never; answered or not, rated or not; some before the 12 weeks): the report equals
    the definitions applied to each item's own rows."""
    clock.set_local(2026, 2, 25, 9)
    today = ctx.local_date()
    week_starts = window(today)
    units = (MP, "so_tu_phap", sorted(set(ctx.province.units) - {MP, "so_tu_phap"})[0])
    rng = random.Random(20260225)
    expected: dict[str, list[Figures]] = {}
    shapes: Counter[str] = Counter()

    def moment(day: date) -> datetime:
        return datetime.combine(day, datetime.min.time(), tzinfo=VN).replace(hour=rng.randrange(24)).astimezone(UTC)

    async with ctx.sessions.begin() as session:
        for n in range(120):
            received = moment(date(2025, 11, 24) + timedelta(days=rng.randrange(93)))
            received_day = received.astimezone(VN).date()
            answered = moment(received_day + timedelta(days=rng.randrange(40))) if rng.random() < 0.6 else None
            if answered is not None and answered > clock.current:
                answered = None
            item = Item(
                receipt_code=f"T-{n:04d}",
                type="phan_anh",
                category="dat_dai",
                unit_code=rng.choice(units),
                status="answered" if answered else "accepted",
                channel="web",
                received_at=received,
                answered_at=answered,
                rating=rng.choice((None, 1, 2, 3, 4, 5)) if answered else None,
            )
            session.add(item)
            await session.flush()
            clocks: dict[str, Clock] = {}
            for kind in rng.choice(((), ("accept",), ("accept", "resolve"), ("accept", "resolve"))):
                due = received_day + timedelta(days=rng.randrange(1, 30))
                met = moment(due + timedelta(days=rng.randrange(-5, 4))) if rng.random() < 0.7 else None
                clocks[kind] = Clock(
                    item_id=item.id,
                    kind=kind,
                    start_date=received_day,
                    due_date=due,
                    days=10,
                    day_unit="working",
                    basis="test",
                    met_at=met if met is None or met <= clock.current else None,
                )
                session.add(clocks[kind])
            if received_day < week_starts[0]:
                shapes["before the 12 weeks"] += 1
                continue
            week = expected.setdefault(item.unit_code, [Figures() for _ in week_starts])[
                (monday(received_day) - week_starts[0]).days // 7
            ]
            week.received += 1
            outcomes: dict[str, tuple[bool, bool]] = {}
            for kind, row in clocks.items():
                met_day = row.met_at.astimezone(VN).date() if row.met_at else None
                outcomes[kind] = (
                    met_day is not None or row.due_date < today,
                    met_day is not None and met_day <= row.due_date,
                )
            decided, on_time = outcomes.get("resolve") or outcomes.get("accept") or (False, False)
            week.decided += decided
            week.on_time += on_time
            shapes["no clock" if not clocks else "accept differs" if len(set(outcomes.values())) > 1 else "agree"] += 1
            if answered is not None:
                week.answered += 1
                days = ctx.calendar.working_days_between(received_day, answered.astimezone(VN).date())
                week.answer_working_days += max(0, days)
            week.item_ratings += item.rating is not None
            week.item_satisfied += (item.rating or 0) >= 3
    async with ctx.sessions() as session:
        report = await unit_report(ctx, session)
    assert {code: unit.weeks for code, unit in report.units.items()} == expected
    totals = [sum(unit[i].received for unit in expected.values()) for i in range(len(week_starts))]
    assert [week.received for week in report.total.weeks] == totals
    assert set(expected) == set(units)
    assert min(shapes[shape] for shape in ("before the 12 weeks", "no clock", "accept differs", "agree")) >= 5, shapes


def test_the_window_is_twelve_mondays_ending_this_week() -> None:
    weeks = window(date(2026, 2, 12))
    assert weeks[-1] == date(2026, 2, 9) and weeks[0] == date(2025, 11, 24)
    assert all(day.weekday() == 0 for day in weeks)
