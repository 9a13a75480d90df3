"""Legal deadlines on real dates with the bundled Điện Biên rules (every expected date checked by hand)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.calendar import WorkingCalendar
from bot.deadlines import Deadline, accept_deadline, extend_deadline, resolve_deadline, resume_after_pause
from bot.errors import DomainError, ExtensionLimitReached
from config import Province
from config.province import ClockRule


@pytest.fixture(scope="module")
def calendar(province: Province) -> WorkingCalendar:
    return WorkingCalendar(province.calendar)


def _resolve(province: Province, calendar: WorkingCalendar, type_code: str, accepted: date, **flags: bool) -> Deadline:
    deadline = resolve_deadline(province, calendar, type_code, accepted, **flags)
    assert deadline is not None
    return deadline


# --- accept (thụ lý) ---------------------------------------------------------------------------------


def test_gop_y_accept_over_tet(province: Province, calendar: WorkingCalendar) -> None:
    deadline = accept_deadline(province, calendar, "gop_y", date(2026, 2, 12))
    assert deadline == Deadline(
        kind="accept",
        start=date(2026, 2, 12),
        due=date(2026, 3, 5),
        days=10,
        unit="working",
        basis="Luật Tiếp công dân 2013, Điều 28",
        rule="gop_y.accept",
    )


def test_accept_over_gio_to_and_may_day(province: Province, calendar: WorkingCalendar) -> None:
    for type_code in ("gop_y", "phan_anh", "kien_nghi"):
        assert accept_deadline(province, calendar, type_code, date(2026, 4, 22)).due == date(2026, 5, 11)


def test_to_cao_accept(province: Province, calendar: WorkingCalendar) -> None:
    # 7 working days from Thu 12/2: 13/2, then 23/2 .. 27/2, then Mon 2/3.
    deadline = accept_deadline(province, calendar, "to_cao", date(2026, 2, 12))
    assert (deadline.due, deadline.days, deadline.rule) == (date(2026, 3, 2), 7, "to_cao.accept")
    assert deadline.basis == "Luật Tố cáo 2018, Điều 24"


def test_to_cao_accept_multi_place(province: Province, calendar: WorkingCalendar) -> None:
    deadline = accept_deadline(province, calendar, "to_cao", date(2026, 2, 12), multi_place=True)
    assert (deadline.due, deadline.days, deadline.rule) == (date(2026, 3, 5), 10, "to_cao.accept.multi_place")


def test_multi_place_is_ignored_where_the_type_has_none(province: Province, calendar: WorkingCalendar) -> None:
    deadline = accept_deadline(province, calendar, "phan_anh", date(2026, 2, 12), multi_place=True)
    assert (deadline.due, deadline.rule) == (date(2026, 3, 5), "phan_anh.accept")


def test_khieu_nai_accept_counts_calendar_days(province: Province, calendar: WorkingCalendar) -> None:
    # 10 days from Thu 12/2 is Sun 22/2, so Mon 23/2.
    deadline = accept_deadline(province, calendar, "khieu_nai", date(2026, 2, 12))
    assert (deadline.due, deadline.unit) == (date(2026, 2, 23), "calendar")


def test_unknown_type(province: Province, calendar: WorkingCalendar) -> None:
    with pytest.raises(DomainError) as raised:
        accept_deadline(province, calendar, "thu_khen", date(2026, 2, 12))
    assert raised.value.key == "error.unknown_type"
    assert raised.value.params == {"value": "thu_khen"}
    with pytest.raises(DomainError, match="thu_khen"):
        resolve_deadline(province, calendar, "thu_khen", date(2026, 2, 12))


# --- resolve -----------------------------------------------------------------------------------------


def test_to_cao_resolve_rolls_off_the_weekend(province: Province, calendar: WorkingCalendar) -> None:
    # 30 days from 12/2 is Saturday 14/3: the deadline is Monday 16/3.
    deadline = _resolve(province, calendar, "to_cao", date(2026, 2, 12))
    assert (deadline.kind, deadline.start, deadline.due) == ("resolve", date(2026, 2, 12), date(2026, 3, 16))
    assert (deadline.days, deadline.unit, deadline.rule) == (30, "calendar", "to_cao.resolve")
    assert deadline.basis == "Luật Tố cáo 2018, Điều 30"


@pytest.mark.parametrize(
    ("remote", "complex_", "days", "due", "rule"),
    [
        (False, False, 30, date(2026, 4, 1), "khieu_nai.resolve"),  # a Wednesday
        (False, True, 45, date(2026, 4, 16), "khieu_nai.resolve.complex"),  # a Thursday
        (True, False, 45, date(2026, 4, 16), "khieu_nai.resolve.remote"),
        (True, True, 60, date(2026, 5, 4), "khieu_nai.resolve.remote_complex"),  # Fri 1/5 is a holiday → Mon 4/5
    ],
)
def test_khieu_nai_resolve_variants(
    province: Province,
    calendar: WorkingCalendar,
    remote: bool,
    complex_: bool,
    days: int,
    due: date,
    rule: str,
) -> None:
    deadline = _resolve(province, calendar, "khieu_nai", date(2026, 3, 2), remote=remote, complex=complex_)
    assert (deadline.days, deadline.due, deadline.rule) == (days, due, rule)
    assert deadline.basis == "Luật Khiếu nại 2011, Điều 28"


def test_remote_complex_falls_back_to_complex_then_remote(province: Province, calendar: WorkingCalendar) -> None:
    khieu_nai = province.item_types["khieu_nai"]
    assert khieu_nai.resolve is not None

    def with_clock(clock: ClockRule) -> Province:
        item_types = {**province.item_types, "khieu_nai": replace(khieu_nai, resolve=clock)}
        return replace(province, item_types=item_types)

    only_complex = with_clock(replace(khieu_nai.resolve, remote_complex=None, remote=None))
    deadline = _resolve(only_complex, calendar, "khieu_nai", date(2026, 3, 2), remote=True, complex=True)
    assert (deadline.days, deadline.rule) == (45, "khieu_nai.resolve.complex")
    deadline = _resolve(only_complex, calendar, "khieu_nai", date(2026, 3, 2), remote=True)
    assert (deadline.days, deadline.rule) == (30, "khieu_nai.resolve")

    only_remote = with_clock(replace(khieu_nai.resolve, remote_complex=None, complex=None, remote=50))
    deadline = _resolve(only_remote, calendar, "khieu_nai", date(2026, 3, 2), remote=True, complex=True)
    assert (deadline.days, deadline.rule) == (50, "khieu_nai.resolve.remote")


def test_flags_without_a_variant_use_the_plain_days(province: Province, calendar: WorkingCalendar) -> None:
    deadline = _resolve(province, calendar, "to_cao", date(2026, 2, 12), remote=True, complex=True)
    assert (deadline.days, deadline.due, deadline.rule) == (30, date(2026, 3, 16), "to_cao.resolve")


def test_phan_anh_resolve(province: Province, calendar: WorkingCalendar) -> None:
    # 15 working days from Wed 22/4 skipping 27/4, 30/4, 1/5: Mon 18/5.
    deadline = _resolve(province, calendar, "phan_anh", date(2026, 4, 22))
    assert (deadline.days, deadline.unit, deadline.due) == (15, "working", date(2026, 5, 18))


def test_gop_y_has_no_resolve_clock(province: Province, calendar: WorkingCalendar) -> None:
    assert resolve_deadline(province, calendar, "gop_y", date(2026, 2, 12)) is None


# --- extensions --------------------------------------------------------------------------------------


def test_to_cao_extends_twice_then_stops(province: Province, calendar: WorkingCalendar) -> None:
    first = _resolve(province, calendar, "to_cao", date(2026, 2, 12))  # Mon 16/3
    second = extend_deadline(province, calendar, "to_cao", first, 0)
    assert (second.start, second.due) == (date(2026, 3, 16), date(2026, 4, 15))  # a Wednesday
    assert (second.kind, second.days, second.unit) == ("resolve", 30, "calendar")
    assert (second.rule, second.basis) == ("to_cao.resolve.extension_1", "Luật Tố cáo 2018, Điều 30")
    third = extend_deadline(province, calendar, "to_cao", second, 1)
    assert (third.due, third.rule) == (date(2026, 5, 15), "to_cao.resolve.extension_2")  # a Friday
    with pytest.raises(ExtensionLimitReached) as raised:
        extend_deadline(province, calendar, "to_cao", third, 2)
    assert raised.value.key == "error.extension_limit"
    assert raised.value.params == {"max": 2}


def test_phan_anh_extends_once(province: Province, calendar: WorkingCalendar) -> None:
    deadline = _resolve(province, calendar, "phan_anh", date(2026, 4, 22))  # Mon 18/5
    extended = extend_deadline(province, calendar, "phan_anh", deadline, 0)
    # 15 working days from 18/5: 19-22/5, 25-29/5, 1-5/6, Mon 8/6.
    assert (extended.due, extended.unit, extended.rule) == (date(2026, 6, 8), "working", "phan_anh.resolve.extension_1")
    with pytest.raises(ExtensionLimitReached) as raised:
        extend_deadline(province, calendar, "phan_anh", extended, 1)
    assert raised.value.params == {"max": 1}


def test_types_without_an_extension_rule(province: Province, calendar: WorkingCalendar) -> None:
    accept = accept_deadline(province, calendar, "gop_y", date(2026, 2, 12))
    with pytest.raises(DomainError) as raised:
        extend_deadline(province, calendar, "gop_y", accept, 0)
    assert raised.value.key == "error.no_extension"
    assert not isinstance(raised.value, ExtensionLimitReached)
    complaint = _resolve(province, calendar, "khieu_nai", date(2026, 3, 2))
    with pytest.raises(DomainError, match="cannot be extended"):
        extend_deadline(province, calendar, "khieu_nai", complaint, 0)


def test_only_a_resolve_deadline_is_extended(province: Province, calendar: WorkingCalendar) -> None:
    accept = accept_deadline(province, calendar, "to_cao", date(2026, 2, 12))
    with pytest.raises(ValueError):
        extend_deadline(province, calendar, "to_cao", accept, 0)


# --- pauses ------------------------------------------------------------------------------------------


def test_pause_over_tet_on_a_working_day_clock(province: Province, calendar: WorkingCalendar) -> None:
    # Accepted Mon 9/2: 10-13/2 (4), 23-27/2 (9), 2-6/3 (14), Mon 9/3 (15).
    deadline = _resolve(province, calendar, "phan_anh", date(2026, 2, 9))
    assert deadline.due == date(2026, 3, 9)
    # Paused Thu 12/2, resumed Tue 24/2: twelve calendar days but only 13/2, 23/2, 24/2 are working days.
    resumed = resume_after_pause(calendar, deadline, date(2026, 2, 12), date(2026, 2, 24))
    assert resumed.due == date(2026, 3, 12)
    assert resumed.paused == 3
    assert (resumed.start, resumed.days, resumed.rule) == (deadline.start, deadline.days, deadline.rule)


def test_pause_on_a_calendar_clock(province: Province, calendar: WorkingCalendar) -> None:
    deadline = _resolve(province, calendar, "to_cao", date(2026, 2, 12))  # Sat 14/3 → Mon 16/3
    # One day: the 30 days end Sun 15/3, still Monday 16/3.
    one = resume_after_pause(calendar, deadline, date(2026, 3, 2), date(2026, 3, 3))
    assert (one.due, one.paused) == (date(2026, 3, 16), 1)
    # Two more days: Tue 17/3.
    three = resume_after_pause(calendar, one, date(2026, 3, 5), date(2026, 3, 7))
    assert (three.due, three.paused) == (date(2026, 3, 17), 3)
    # Six days: Fri 20/3.
    six = resume_after_pause(calendar, deadline, date(2026, 3, 2), date(2026, 3, 8))
    assert six.due == date(2026, 3, 20)


def test_pause_on_a_deadline_rebuilt_without_its_pauses(province: Province, calendar: WorkingCalendar) -> None:
    # Stored as due 17/3 but with paused = 0: the pause is added to the due date itself.
    rebuilt = replace(_resolve(province, calendar, "to_cao", date(2026, 2, 12)), due=date(2026, 3, 17))
    resumed = resume_after_pause(calendar, rebuilt, date(2026, 3, 9), date(2026, 3, 12))
    assert resumed.due == date(2026, 3, 20)


def test_pause_of_zero_length_changes_nothing(province: Province, calendar: WorkingCalendar) -> None:
    deadline = _resolve(province, calendar, "phan_anh", date(2026, 2, 9))
    assert resume_after_pause(calendar, deadline, date(2026, 2, 12), date(2026, 2, 12)) == deadline
    # Over the weekend only: no working day passed.
    assert resume_after_pause(calendar, deadline, date(2026, 2, 13), date(2026, 2, 15)) == deadline
    with pytest.raises(ValueError):
        resume_after_pause(calendar, deadline, date(2026, 2, 12), date(2026, 2, 11))


def test_extension_after_a_pause_starts_from_the_paused_due(province: Province, calendar: WorkingCalendar) -> None:
    deadline = _resolve(province, calendar, "to_cao", date(2026, 2, 12))
    paused = resume_after_pause(calendar, deadline, date(2026, 3, 2), date(2026, 3, 8))  # Fri 20/3
    extended = extend_deadline(province, calendar, "to_cao", paused, 0)
    assert (extended.start, extended.due, extended.paused) == (date(2026, 3, 20), date(2026, 4, 20), 0)  # 19/4 Sun


dates = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))
type_codes = st.sampled_from(["phan_anh", "kien_nghi", "khieu_nai", "to_cao"])


@given(type_code=type_codes, accepted=dates, pauses=st.lists(st.integers(min_value=0, max_value=20), max_size=4))
def test_pauses_never_move_the_due_date_earlier(
    province: Province, calendar: WorkingCalendar, type_code: str, accepted: date, pauses: list[int]
) -> None:
    deadline = _resolve(province, calendar, type_code, accepted)
    day = accepted
    for length in pauses:
        resumed_on = date.fromordinal(day.toordinal() + length)
        later = resume_after_pause(calendar, deadline, day, resumed_on)
        assert later.due >= deadline.due
        assert calendar.is_working_day(later.due)
        deadline, day = later, resumed_on
    # Pausing in pieces equals pausing all at once.
    whole = resume_after_pause(calendar, _resolve(province, calendar, type_code, accepted), accepted, day)
    assert whole.due == deadline.due
