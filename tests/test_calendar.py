"""The working-day calendar on real 2025-2026 dates, and its counting laws as properties."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.calendar import WorkingCalendar
from config import Province
from config.province import CalendarConfig

WEEKEND = frozenset({5, 6})


@pytest.fixture(scope="module")
def calendar(province: Province) -> WorkingCalendar:
    return WorkingCalendar(province.calendar)


dates = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))
counts = st.integers(min_value=1, max_value=80)


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 2, 16),  # Tết: 29 Tháng Chạp
        date(2026, 2, 17),  # Mùng 1
        date(2026, 2, 20),  # Mùng 4
        date(2026, 4, 27),  # Giỗ Tổ (26/4 is a Sunday), observed
        date(2026, 4, 30),
        date(2026, 5, 1),
        date(2026, 8, 31),  # nghỉ bù for the make-up Saturday 22/8
        date(2026, 9, 1),
        date(2026, 9, 2),
        date(2025, 5, 2),  # nghỉ bù for the make-up Saturday 26/4/2025
        date(2026, 1, 1),
    ],
)
def test_public_holidays_are_days_off(calendar: WorkingCalendar, day: date) -> None:
    assert not calendar.is_working_day(day)
    reason = calendar.day_off_reason(day)
    assert reason is not None
    assert reason not in ("weekend", "announced day off")


def test_make_up_saturdays_are_working_days(calendar: WorkingCalendar) -> None:
    assert date(2026, 8, 22).weekday() == 5
    assert calendar.is_working_day(date(2026, 8, 22))
    assert calendar.day_off_reason(date(2026, 8, 22)) is None
    assert date(2025, 4, 26).weekday() == 5
    assert calendar.is_working_day(date(2025, 4, 26))
    # The Saturday after is an ordinary weekend.
    assert calendar.day_off_reason(date(2026, 8, 29)) == "weekend"


def test_ordinary_days(calendar: WorkingCalendar) -> None:
    assert calendar.is_working_day(date(2026, 2, 12))  # Thursday
    assert calendar.day_off_reason(date(2026, 3, 14)) == "weekend"
    assert calendar.day_off_reason(date(2026, 3, 15)) == "weekend"


def test_announced_day_off_and_custom_weekend() -> None:
    config = CalendarConfig(
        weekend=frozenset({6}),  # Sunday only
        working_days=frozenset({date(2026, 2, 17)}),  # a working day wins even over a holiday
        days_off=frozenset({date(2026, 3, 10)}),
    )
    calendar = WorkingCalendar(config)
    assert calendar.day_off_reason(date(2026, 3, 10)) == "announced day off"
    assert calendar.is_working_day(date(2026, 3, 14))  # Saturday
    assert calendar.day_off_reason(date(2026, 3, 15)) == "weekend"
    assert calendar.is_working_day(date(2026, 2, 17))
    assert calendar.add_working_days(date(2026, 3, 9), 1) == date(2026, 3, 11)


def test_next_working_day(calendar: WorkingCalendar) -> None:
    assert calendar.next_working_day(date(2026, 2, 12)) == date(2026, 2, 12)
    assert calendar.next_working_day(date(2026, 2, 14)) == date(2026, 2, 23)  # Sat, Sun, then Tết
    assert calendar.next_working_day(date(2026, 8, 29)) == date(2026, 9, 3)  # weekend, 31/8, 1/9, 2/9


def test_add_working_days_over_tet(calendar: WorkingCalendar) -> None:
    # Thu 12/2: Fri 13/2 is day 1, Tết 16-20/2 is off, then 23/2 .. 5/3 are days 2..10.
    assert calendar.add_working_days(date(2026, 2, 12), 1) == date(2026, 2, 13)
    assert calendar.add_working_days(date(2026, 2, 12), 2) == date(2026, 2, 23)
    assert calendar.add_working_days(date(2026, 2, 12), 10) == date(2026, 3, 5)


def test_add_working_days_over_april_and_may(calendar: WorkingCalendar) -> None:
    # Wed 22/4: 23, 24, (27 Giỗ Tổ observed), 28, 29, (30/4, 1/5), 4, 5, 6, 7, 8, 11.
    assert calendar.add_working_days(date(2026, 4, 22), 10) == date(2026, 5, 11)


def test_add_working_days_counts_a_make_up_saturday(calendar: WorkingCalendar) -> None:
    # Fri 21/8: Sat 22/8 (make-up) is day 1, Mon 24/8 day 2.
    assert calendar.add_working_days(date(2026, 8, 21), 1) == date(2026, 8, 22)
    assert calendar.add_working_days(date(2026, 8, 21), 2) == date(2026, 8, 24)
    # Fri 28/8: 31/8, 1/9, 2/9 are off, so day 1 is Thu 3/9.
    assert calendar.add_working_days(date(2026, 8, 28), 1) == date(2026, 9, 3)


def test_add_working_days_from_a_day_off(calendar: WorkingCalendar) -> None:
    # Received on a Saturday: Monday is day 1.
    assert calendar.add_working_days(date(2026, 3, 14), 1) == date(2026, 3, 16)


@pytest.mark.parametrize("days", [0, -1])
def test_add_working_days_needs_a_positive_count(calendar: WorkingCalendar, days: int) -> None:
    with pytest.raises(ValueError):
        calendar.add_working_days(date(2026, 3, 2), days)


def test_add_calendar_days(calendar: WorkingCalendar) -> None:
    assert calendar.add_calendar_days(date(2026, 2, 12), 30) == date(2026, 3, 16)  # Sat 14/3 → Mon 16/3
    assert calendar.add_calendar_days(date(2026, 3, 2), 30) == date(2026, 4, 1)  # a Wednesday, unchanged
    assert calendar.add_calendar_days(date(2026, 2, 6), 10) == date(2026, 2, 23)  # Mon 16/2 is Tết
    assert calendar.add_calendar_days(date(2026, 3, 2), 0) == date(2026, 3, 2)
    with pytest.raises(ValueError):
        calendar.add_calendar_days(date(2026, 3, 2), -1)


def test_add_days_dispatches_on_unit(calendar: WorkingCalendar) -> None:
    assert calendar.add_days(date(2026, 2, 12), 10, "working") == date(2026, 3, 5)
    assert calendar.add_days(date(2026, 2, 12), 10, "calendar") == date(2026, 2, 23)  # Sun 22/2 → Mon
    with pytest.raises(ValueError):
        calendar.add_days(date(2026, 2, 12), 10, "lunar")


def test_working_days_between(calendar: WorkingCalendar) -> None:
    assert calendar.working_days_between(date(2026, 2, 12), date(2026, 3, 5)) == 10
    assert calendar.working_days_between(date(2026, 3, 5), date(2026, 2, 12)) == -10
    assert calendar.working_days_between(date(2026, 2, 12), date(2026, 2, 12)) == 0
    assert calendar.working_days_between(date(2026, 2, 13), date(2026, 2, 22)) == 0  # Tết and two weekends
    assert calendar.working_days_between(date(2026, 8, 21), date(2026, 8, 23)) == 1  # the make-up Saturday


def test_holidays_of_several_years(calendar: WorkingCalendar) -> None:
    # Tết 2025 (29/1) and Tết 2027 (6/2) come from the same lazily filled cache.
    assert not calendar.is_working_day(date(2025, 1, 29))
    assert not calendar.is_working_day(date(2027, 2, 8))
    assert calendar.working_days_between(date(2024, 12, 31), date(2027, 1, 4)) > 400


@given(start=dates, n=counts)
def test_add_working_days_lands_on_the_nth_working_day(calendar: WorkingCalendar, start: date, n: int) -> None:
    result = calendar.add_working_days(start, n)
    assert calendar.is_working_day(result)
    assert calendar.working_days_between(start, result) == n
    assert result > start


@given(start=dates, n=st.integers(min_value=0, max_value=80))
def test_add_calendar_days_lands_on_a_working_day(calendar: WorkingCalendar, start: date, n: int) -> None:
    result = calendar.add_calendar_days(start, n)
    assert calendar.is_working_day(result)
    assert result >= start + timedelta(days=n)
    # Only days off are skipped.
    assert calendar.working_days_between(start + timedelta(days=n), result) <= 1


@given(start=dates, n=counts)
def test_results_are_monotonic_in_n(calendar: WorkingCalendar, start: date, n: int) -> None:
    assert calendar.add_working_days(start, n) < calendar.add_working_days(start, n + 1)
    assert calendar.add_calendar_days(start, n) <= calendar.add_calendar_days(start, n + 1)


@given(a=dates, b=dates)
def test_working_days_between_is_antisymmetric(calendar: WorkingCalendar, a: date, b: date) -> None:
    assert calendar.working_days_between(a, b) == -calendar.working_days_between(b, a)


@given(a=dates, b=dates, c=dates)
def test_working_days_between_is_additive(calendar: WorkingCalendar, a: date, b: date, c: date) -> None:
    total = calendar.working_days_between(a, b) + calendar.working_days_between(b, c)
    assert total == calendar.working_days_between(a, c)


@given(day=dates)
def test_next_working_day_is_the_first(calendar: WorkingCalendar, day: date) -> None:
    result = calendar.next_working_day(day)
    assert calendar.is_working_day(result)
    assert calendar.working_days_between(day - timedelta(days=1), result) == 1
