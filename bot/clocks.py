"""When each legal clock next needs attention: reminders before the deadline, the overdue alert, escalation.

The scheduler finds due work by the indexed ``clocks.next_due_at`` column; this module computes it.
Alarms ring at 08:00 in the province's time zone on working days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from bot.calendar import WorkingCalendar
from config.province import Province

ALARM_TIME = time(8, 0)


@dataclass(frozen=True)
class Alarm:
    kind: str  # "reminder" | "overdue" | "escalation"
    at: datetime
    offset: int = 0


def working_days_before(calendar: WorkingCalendar, due: date, count: int) -> date:
    """The ``count``-th working day before ``due`` (``due`` itself, moved to a working day, for 0)."""
    day = due
    while not calendar.is_working_day(day):
        day -= timedelta(days=1)
    remaining = count
    while remaining > 0:
        day -= timedelta(days=1)
        if calendar.is_working_day(day):
            remaining -= 1
    return day


def alarms(province: Province, calendar: WorkingCalendar, due: date) -> list[Alarm]:
    """Every alarm of a clock due on ``due``, in time order."""
    zone = province.timezone

    def morning(day: date) -> datetime:
        return datetime.combine(day, ALARM_TIME, tzinfo=zone)

    result = [
        Alarm("reminder", morning(working_days_before(calendar, due, offset)), offset)
        for offset in province.scheduler.reminder_offsets
    ]
    result.append(Alarm("overdue", morning(calendar.add_working_days(due, 1))))
    escalate_after = province.scheduler.escalate_after
    if escalate_after > 0:
        result.append(Alarm("escalation", morning(calendar.add_working_days(due, 1 + escalate_after))))
    return sorted(result, key=lambda alarm: alarm.at)


def next_alarm(province: Province, calendar: WorkingCalendar, due: date, after: datetime) -> Alarm | None:
    """The first alarm strictly after ``after`` (so a tick that handled one moves on to the next)."""
    return next((alarm for alarm in alarms(province, calendar, due) if alarm.at > after), None)
