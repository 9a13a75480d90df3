"""Legal deadlines for each item type: when it must be accepted (thụ lý) and when it must be resolved.

The numbers and their legal basis live in the province's deadlines.toml (DESIGN.md "Item types and their
clocks"): Luật Tiếp công dân 2013 art. 28 (10 working days to accept a góp ý, phản ánh or kiến nghị),
Luật Khiếu nại 2011 arts. 27-28 (10 days to accept a complaint, 30 days to resolve it, 45 when complex,
45 / 60 in remote communes), Luật Tố cáo 2018 arts. 24 and 30 (7 working days to accept a denunciation,
10 when it spans several places; 30 days to resolve, extendable at most twice by 30 days).

Counting follows Civil Code 2015 arts. 147-148 through WorkingCalendar: the start day is not counted and
a calendar-day deadline that falls on a day off moves to the next working day. Time spent waiting for
the citizen's additional information is not counted, so a pause moves the due date later.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from bot.calendar import WorkingCalendar
from bot.errors import DomainError, ExtensionLimitReached
from config.province import ClockRule, DayUnit, ItemTypeRule, Province

DeadlineKind = Literal["accept", "resolve"]


@dataclass(frozen=True)
class Deadline:
    """One legal clock. `due` is the last day, inclusive ("đến hết ngày")."""

    kind: DeadlineKind
    start: date  # counting starts the day after: receipt day (accept), acceptance day (resolve), old due (extension)
    due: date
    days: int
    unit: DayUnit
    basis: str  # legal reference, from config
    rule: str  # e.g. "to_cao.accept.multi_place", "khieu_nai.resolve.remote_complex", "phan_anh.resolve.extension_1"
    paused: int = 0  # days the clock stood still waiting for the citizen, in `unit`; due = start + days + paused


def _type_rule(province: Province, type_code: str) -> ItemTypeRule:
    rule = province.item_types.get(type_code)
    if rule is None:
        raise DomainError("error.unknown_type", value=type_code)
    return rule


def _make(
    calendar: WorkingCalendar, kind: DeadlineKind, clock: ClockRule, start: date, days: int, rule: str
) -> Deadline:
    return Deadline(
        kind=kind,
        start=start,
        due=calendar.add_days(start, days, clock.unit),
        days=days,
        unit=clock.unit,
        basis=clock.basis,
        rule=rule,
    )


def accept_deadline(
    province: Province, calendar: WorkingCalendar, type_code: str, received: date, *, multi_place: bool = False
) -> Deadline:
    """The last day to accept (thụ lý) or refuse an item received on `received`."""
    clock = _type_rule(province, type_code).accept
    if multi_place and clock.multi_place is not None:
        return _make(calendar, "accept", clock, received, clock.multi_place, f"{type_code}.accept.multi_place")
    return _make(calendar, "accept", clock, received, clock.days, f"{type_code}.accept")


def resolve_deadline(
    province: Province,
    calendar: WorkingCalendar,
    type_code: str,
    accepted: date,
    *,
    remote: bool = False,
    complex: bool = False,
) -> Deadline | None:
    """The last day to resolve an item accepted on `accepted`; None for types with no resolve clock (góp ý).

    A remote and complex item uses `remote_complex`, falling back to `complex`, then `remote`; otherwise
    the single matching variant, else the plain number of days.
    """
    clock = _type_rule(province, type_code).resolve
    if clock is None:
        return None
    candidates: list[tuple[str, int | None]] = []
    if remote and complex:
        candidates.append(("remote_complex", clock.remote_complex))
    if complex:
        candidates.append(("complex", clock.complex))
    if remote:
        candidates.append(("remote", clock.remote))
    for variant, days in candidates:
        if days is not None:
            return _make(calendar, "resolve", clock, accepted, days, f"{type_code}.resolve.{variant}")
    return _make(calendar, "resolve", clock, accepted, clock.days, f"{type_code}.resolve")


def extend_deadline(
    province: Province, calendar: WorkingCalendar, type_code: str, current: Deadline, extensions_used: int
) -> Deadline:
    """The resolve deadline after one more extension, counted from the current due date.

    Raises DomainError("error.no_extension") when the type cannot be extended and ExtensionLimitReached
    when `extensions_used` already reaches the limit.
    """
    extension = _type_rule(province, type_code).extension
    if extension is None:
        raise DomainError("error.no_extension")
    if extensions_used >= extension.max:
        raise ExtensionLimitReached(max=extension.max)
    if current.kind != "resolve":
        raise ValueError(f"only a resolve deadline can be extended, not {current.kind!r}")
    return Deadline(
        kind="resolve",
        start=current.due,
        due=calendar.add_days(current.due, extension.days, extension.unit),
        days=extension.days,
        unit=extension.unit,
        basis=extension.basis,
        rule=f"{type_code}.resolve.extension_{extensions_used + 1}",
    )


def resume_after_pause(calendar: WorkingCalendar, deadline: Deadline, paused_on: date, resumed_on: date) -> Deadline:
    """The deadline after a pause from `paused_on` to `resumed_on`, waiting for the citizen.

    The pause lasts the working days in (paused_on, resumed_on] on a working-day clock, the calendar days
    between the two dates on a calendar clock, and the due date moves later by that much. On a calendar
    clock the days are added to the unrolled due date (start + days + paused) before rolling forward, so a
    deadline already moved off a weekend is not moved twice: 30 days from 2026-02-12 end on Saturday 14/3,
    hence Monday 16/3; after a one-day pause they end on Sunday 15/3, still Monday 16/3. When `paused` does
    not match `due` (a Deadline rebuilt without it), the days are added to `due` itself.
    """
    if resumed_on < paused_on:
        raise ValueError(f"resumed on {resumed_on} before the pause on {paused_on}")
    if deadline.unit == "working":
        length = calendar.working_days_between(paused_on, resumed_on)
    else:
        length = (resumed_on - paused_on).days
    if length == 0:
        return deadline
    paused = deadline.paused + length
    if calendar.add_days(deadline.start, deadline.days + deadline.paused, deadline.unit) == deadline.due:
        due = calendar.add_days(deadline.start, deadline.days + paused, deadline.unit)
    else:
        due = calendar.add_days(deadline.due, length, deadline.unit)
    return replace(deadline, due=due, paused=paused)
