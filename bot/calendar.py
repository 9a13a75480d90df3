"""Vietnam's working-day calendar, used to count legal deadlines.

Vietnamese law counts many deadlines in "ngày làm việc" (working days) and the rest in plain "ngày"
(calendar days). Civil Code 2015 arts. 147-148 fix how: the day of the event (receipt, acceptance) is
never counted, so counting starts on the following day; and when the last day of a period falls on a
day off, the period ends at the end of the next working day.

Days off are the weekend, the public holidays of Labour Code 2019 art. 112 as published by the
`holidays` package (Tết, Giỗ Tổ Hùng Vương, 30/4, 1/5, Quốc khánh and the substitute days off the
government announces), and the extra days off in the province's calendar.toml. Make-up working days
announced by the government (usually a Saturday, e.g. 2026-08-22 for the day off on 2026-08-31) are
listed in calendar.toml too; they are working days whatever else says so.
"""

from __future__ import annotations

from datetime import date, timedelta

import holidays

from config.province import CalendarConfig

_ONE_DAY = timedelta(days=1)


class WorkingCalendar:
    """Answers "is this a working day?" and counts working or calendar days between dates."""

    def __init__(self, config: CalendarConfig) -> None:
        self._config = config
        self._holidays: dict[int, dict[date, str]] = {}
        # Every filing walks a few dozen days to count its deadlines and alarms, mostly the same ones: the answer
        # for a day never changes (the configuration is fixed), and a few years of days is a small dict.
        self._working: dict[date, bool] = {}

    def _holiday_name(self, day: date) -> str | None:
        year_holidays = self._holidays.get(day.year)
        if year_holidays is None:
            year_holidays = dict(holidays.country_holidays("VN", years=day.year).items())
            self._holidays[day.year] = year_holidays
        return year_holidays.get(day)

    def day_off_reason(self, day: date) -> str | None:
        """Why `day` is a day off: the holiday's name, "weekend" or "announced day off"; None on a working day."""
        if day in self._config.working_days:
            return None
        name = self._holiday_name(day)
        if name is not None:
            return name
        if day in self._config.days_off:
            return "announced day off"
        if day.weekday() in self._config.weekend:
            return "weekend"
        return None

    def is_working_day(self, day: date) -> bool:
        working = self._working.get(day)
        if working is None:
            working = self._working[day] = self.day_off_reason(day) is None
        return working

    def next_working_day(self, day: date) -> date:
        """`day` itself when it is a working day, else the first working day after it."""
        while not self.is_working_day(day):
            day += _ONE_DAY
        return day

    def add_working_days(self, start: date, days: int) -> date:
        """The `days`-th working day after `start`; `start` itself is never counted (Civil Code art. 147)."""
        if days < 1:
            raise ValueError(f"days must be at least 1, got {days}")
        day = start
        remaining = days
        while remaining:
            day += _ONE_DAY
            if self.is_working_day(day):
                remaining -= 1
        return day

    def add_calendar_days(self, start: date, days: int) -> date:
        """`start` + `days`, moved to the next working day when that is a day off (Civil Code art. 148)."""
        if days < 0:
            raise ValueError(f"days must not be negative, got {days}")
        return self.next_working_day(start + timedelta(days=days))

    def add_days(self, start: date, days: int, unit: str) -> date:
        """Dispatch on the clock's unit: "working" or "calendar"."""
        if unit == "working":
            return self.add_working_days(start, days)
        if unit == "calendar":
            return self.add_calendar_days(start, days)
        raise ValueError(f"unknown day unit {unit!r}")

    def working_days_between(self, start: date, end: date) -> int:
        """The number of working days d with start < d <= end; negative when end is before start."""
        if end < start:
            return -self.working_days_between(end, start)
        count = 0
        day = start + _ONE_DAY
        while day <= end:
            if self.is_working_day(day):
                count += 1
            day += _ONE_DAY
        return count
