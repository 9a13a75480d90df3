"""The weekly digest: golden figures of a seeded week, the message, chart and workbook, the schedule (with
holiday Mondays and missed weeks) and exactly-once sending across processes and restarts.

The seeded week is 2026-W10 (Monday 02/03 to Sunday 08/03/2026); tests/digest_seed.py lists the items by
letter. Working days skip weekends and Tết 2026 (16–20/02); "wd" below means working days, counted the way the
law counts them (the start day excluded).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import re
import struct
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.calendar import WorkingCalendar
from bot.context import Context
from bot.digest import (
    PROVINCE,
    Digest,
    IsoWeek,
    Mean,
    OnTime,
    ProvinceDigest,
    UnitRank,
    compute_digests,
    compute_province_digest,
    digest_day,
    empty_digest,
    province_total,
    rank_units,
)
from bot.digest_jobs import (
    CATCH_UP_WEEKS,
    Recipient,
    claim_and_enqueue,
    due_weeks,
    send_due_digests,
    send_moment,
)
from bot.digest_render import (
    MESSAGE_LIMIT,
    PNG_MIME,
    XLSX_MIME,
    Details,
    RenderedDigest,
    load_details,
    render_digest,
    render_message,
    render_province_message,
    split_blocks,
    utf16_length,
)
from bot.privacy import Keys, Vault
from config import Province, Settings
from models import create_engine, make_session_factory
from models.tables import DigestRun, Outbox
from tests.conftest import TestClock
from tests.digest_seed import CITIZEN_NAME, UNIT, VN, add_official, local, seed_golden_week

W10 = IsoWeek(2026, 10)
ROOT = Path(__file__).resolve().parent.parent


def set_clock(clock: TestClock) -> Any:
    def set_now(moment: datetime) -> None:
        at = moment.astimezone(VN)
        clock.set_local(at.year, at.month, at.day, at.hour, at.minute)

    return set_now


@pytest.fixture
async def golden(ctx: Context, clock: TestClock) -> dict[str, str]:
    return await seed_golden_week(ctx, set_clock(clock))


async def digests_of(ctx: Context, week: IsoWeek = W10) -> ProvinceDigest:
    async with ctx.sessions() as session:
        return await compute_province_digest(ctx, session, week)


async def rendered(ctx: Context, digest: Digest, locale: str = "vi", **kwargs: Any) -> RenderedDigest:
    async with ctx.sessions() as session:
        details = await load_details(ctx, session, digest)
    return await render_digest(ctx, digest, locale, details, **kwargs)


async def digest_rows(ctx: Context) -> list[Outbox]:
    async with ctx.sessions() as session:
        rows = (await session.execute(select(Outbox).order_by(Outbox.id))).scalars().all()
    return [row for row in rows if row.recipient_kind == "official" and "digest" in row.payload]


async def second_context(ctx: Context, database_url: tuple[str, str | None]) -> Context:
    """Another process's view of the same database: its own engine and connection pool."""
    url, schema = database_url
    engine = create_engine(url, schema=schema)
    return dataclasses.replace(ctx, engine=engine, sessions=make_session_factory(engine))


# --- weeks and schedule -----------------------------------------------------------------------------------


def test_iso_weeks_parse_and_bound_local_time() -> None:
    week = IsoWeek.parse("2026-W10")
    assert (week.monday, week.sunday, week.label) == (date(2026, 3, 2), date(2026, 3, 8), "2026-W10")
    assert IsoWeek.parse("2026-w7") == IsoWeek(2026, 7) and str(IsoWeek(2026, 7)) == "2026-W07"
    # Monday 00:00 in Hà Nội is Sunday 17:00 UTC.
    assert week.start(VN) == datetime(2026, 3, 1, 17, tzinfo=UTC)
    assert week.end(VN) == datetime(2026, 3, 8, 17, tzinfo=UTC)
    assert IsoWeek(2026, 1).shift(-1) == IsoWeek(2025, 52) and IsoWeek(2020, 53).shift(1) == IsoWeek(2021, 1)
    for bad in ("2026-10", "2026-W54", "2025-W53", "W10"):
        with pytest.raises(ValueError):
            IsoWeek.parse(bad)


@pytest.fixture
def bare_ctx(province: Province, keys: Keys) -> Context:
    """A context without a database, for the pure schedule rules."""
    return Context(
        settings=Settings(),
        province=province,
        calendar=WorkingCalendar(province.calendar),
        keys=keys,
        vault=Vault(keys),
        engine=None,  # type: ignore[arg-type]
        sessions=None,  # type: ignore[arg-type]
    )


def test_a_holiday_monday_moves_the_digest_to_the_next_working_day(bare_ctx: Context) -> None:
    # An ordinary week: Monday 07:30 in Hà Nội.
    assert send_moment(bare_ctx, W10) == datetime(2026, 3, 9, 7, 30, tzinfo=VN)
    # W07 (9–15/02) is due Monday 16/02, Tết eve: Tết lasts to Friday 20/02, so Monday 23/02 — the same morning
    # as W08's digest.
    assert digest_day(bare_ctx, IsoWeek(2026, 7)) == date(2026, 2, 23)
    assert digest_day(bare_ctx, IsoWeek(2026, 8)) == date(2026, 2, 23)
    # Giỗ Tổ (Sunday 26/04/2026) is observed on Monday 27/04: W17's digest goes on Tuesday 28/04.
    assert send_moment(bare_ctx, IsoWeek(2026, 17)) == datetime(2026, 4, 28, 7, 30, tzinfo=VN)
    # 31/08 (day off swapped with Saturday 22/08), then Quốc khánh 1–2/09: W35's digest goes on Thursday 03/09.
    assert digest_day(bare_ctx, IsoWeek(2026, 35)) == date(2026, 9, 3)


def test_due_weeks_are_the_finished_weeks_whose_time_has_come(bare_ctx: Context) -> None:
    monday = datetime(2026, 3, 9, 7, 29, tzinfo=VN)
    assert due_weeks(bare_ctx, monday)[-1] == IsoWeek(2026, 9)
    assert due_weeks(bare_ctx, datetime(2026, 3, 9, 7, 30, tzinfo=VN))[-1] == W10
    # During Tết nothing new is due; on 23/02 both W07 and W08 are.
    assert due_weeks(bare_ctx, datetime(2026, 2, 20, 12, tzinfo=VN))[-1] == IsoWeek(2026, 6)
    assert due_weeks(bare_ctx, datetime(2026, 2, 23, 7, 30, tzinfo=VN))[-2:] == [IsoWeek(2026, 7), IsoWeek(2026, 8)]
    # Catch-up reaches back CATCH_UP_WEEKS weeks, oldest first.
    weeks = due_weeks(bare_ctx, datetime(2026, 3, 18, 10, tzinfo=VN))
    assert weeks == [IsoWeek(2026, 12 - CATCH_UP_WEEKS + k) for k in range(CATCH_UP_WEEKS)]


# --- golden figures ---------------------------------------------------------------------------------------


async def test_golden_week_figures_computed_by_hand(ctx: Context, golden: dict[str, str]) -> None:
    province = await digests_of(ctx)
    d = province.units[UNIT]
    # Received in the week: C (02/03), F (02/03, at Sở Xây dựng, transferred here 04/03), D (03/03), E (04/03).
    assert d.received == 4
    assert d.by_type == {"phan_anh": 2, "kien_nghi": 1, "gop_y": 1}
    assert d.by_category == {"dat_dai": 1, "giao_thong": 1, "moi_truong": 1, "xay_dung": 1}
    assert (d.transferred_in, d.transferred_out) == (1, 0)
    assert (province.units["so_xay_dung"].transferred_out, province.units["so_xay_dung"].received) == (1, 0)
    # Answered: D (04/03), C (05/03), I (06/03). I's resolve-by was 03/03 — 15 wd from its acceptance on 03/02,
    # across Tết — so I is late and only C and D were answered on time.
    assert (d.answered, d.answered_on_time) == (3, 2)
    # Accept clocks settled in the week. On time: C (accepted 03/03, by 16/03), D (answered 04/03, by 17/03),
    # F (accepted 06/03, by 16/03). Missed: A (by Thu 05/03 — 10 wd from 12/02 across Tết; without Tết it would
    # have been 26/02 — never accepted) and B (tố cáo, 7 wd from 13/02 = Tue 03/03, accepted a day late).
    # K's accept-by (02/03) also falls in the window but it was met on 10/02: settled then, not now.
    assert d.accept == OnTime(on_time=3, late=2)
    # Resolve clocks. On time: C, D. Missed: I (by 03/03, answered 06/03).
    assert d.resolve == OnTime(on_time=2, late=1)
    assert d.on_time == OnTime(5, 3)
    # First response (acceptance) in the week: C 02→03/03 = 1 wd, D 03→04/03 = 1, F 02→06/03 = 4,
    # B 13/02→04/03 = 5 + 3 = 8 (Tết not counted): 14 / 4 = 3.5 wd.
    assert d.to_response == Mean(14, 4)
    # Answers: C 02→05/03 = 3 wd, D = 1, I 02/02→06/03 = 4 + 5 + 5 + 5 = 19: 23 / 3.
    assert d.to_answer == Mean(23, 3)
    assert d.extensions == 1  # G, on 02/03
    # Open and overdue when the week ended: H (accept-by 19/01) and A (accept-by 05/03). M is as old as H
    # but waits for the citizen, so its clock stands still. B and I met their clocks (late) before the end.
    assert d.overdue_count == 2
    assert [(o.receipt_code, o.due_date, o.status) for o in d.overdue] == [
        (golden["H"], date(2026, 1, 19), "submitted"),
        (golden["A"], date(2026, 3, 5), "submitted"),
    ]
    # Days overdue, counted to Monday 09/03: H 20–23/01 4, 26–30/01 5, 2–6/02 5, 9–13/02 5, Tết 0, 23–27/02 5,
    # 2–6/03 5, 9/03 1 = 30; A: 06/03 and 09/03 = 2.
    assert [o.days_overdue for o in d.overdue] == [30, 2]
    # Ratings of answers: W10 D 2, C 4, I 5 = 11/3; W09 J 3; the four weeks before (W06–W09) J 3, K 5 = 4.
    assert d.item_rating.week == Mean(11, 3)
    assert d.item_rating.previous == Mean(3, 1) and d.item_rating.four_weeks == Mean(8, 2)
    assert d.item_rating.vs_previous == pytest.approx(2 / 3)
    assert d.item_rating.vs_four_weeks == pytest.approx(-1 / 3)
    # Desk MP01: W10 3, 3, 3, 2, 1 = 12/5 = 2.4; W09 3, 1 = 2.0; W06–W09 3, 3, 3, 1 = 2.5. MP02: no ratings.
    assert d.desk_rating.week == Mean(12, 5) and d.desk_rating.previous == Mean(4, 2)
    assert d.desk_rating.four_weeks == Mean(10, 4)
    assert [(x.code, x.ratings.week.count, x.happy, x.neutral, x.unhappy) for x in d.desks] == [
        ("MP01", 5, 3, 1, 1),
        ("MP02", 0, 0, 0, 0),
    ]
    # The chart's 12 weeks, W51/2025 to W10/2026 (received, answered on time, overdue at the week's end).
    history = {p.week.label: (p.received, p.answered_on_time, p.overdue) for p in d.history}
    assert (d.history[0].week.label, d.history[-1].week.label) == ("2025-W51", "2026-W10")
    assert history["2026-W02"] == (2, 0, 0)  # H and M received; nothing due yet
    assert history["2026-W03"] == (0, 0, 0)  # H is due on 19/01, the Monday after
    assert history["2026-W04"] == (0, 0, 1)  # H overdue from 20/01 (M paused)
    assert history["2026-W07"] == (3, 1, 1)  # K, A, B received; K answered on time; H
    assert history["2026-W08"] == (0, 0, 1)  # Tết week
    assert history["2026-W09"] == (2, 1, 1)  # G, J received; J answered
    assert history["2026-W10"] == (4, 2, 2)


async def test_one_unit_alone_gives_the_same_figures_as_all_units(ctx: Context, golden: dict[str, str]) -> None:
    everything = (await digests_of(ctx)).units[UNIT]
    async with ctx.sessions() as session:
        alone = (await compute_digests(ctx, session, W10, [UNIT]))[UNIT]
    assert alone == everything


async def test_the_province_totals_and_ranking(ctx: Context, golden: dict[str, str]) -> None:
    province = await digests_of(ctx)
    total = province.total
    assert total.unit_code == PROVINCE
    # L (Sở Y tế, accepted the day it came) adds one item and one accept clock on time.
    assert (total.received, total.answered, total.answered_on_time) == (5, 3, 2)
    assert (total.accept, total.resolve) == (OnTime(4, 2), OnTime(2, 1))
    assert total.to_response == Mean(14, 5)  # L: 0 wd
    assert total.overdue_count == 2 and [o.receipt_code for o in total.overdue] == [golden["H"], golden["A"]]
    ranked = [(r.rank, r.unit_code, r.on_time) for r in province.ranking if r.rank is not None]
    assert ranked == [(1, "so_y_te", OnTime(1, 0)), (2, UNIT, OnTime(5, 3))]
    assert len(province.ranking) == len(ctx.province.units)


# --- the message ------------------------------------------------------------------------------------------


async def test_the_head_reads_the_golden_week_in_vietnamese(ctx: Context, golden: dict[str, str]) -> None:
    [text] = render_message(ctx, (await digests_of(ctx)).units[UNIT], "vi")
    lines = text.split("\n")
    assert lines[:3] == [
        "<b>📊 Báo cáo tuần 10 năm 2026</b>",
        "<b>UBND Xã Mường Phăng</b>",
        "02/03/2026 – 08/03/2026 (2026-W10)",
    ]
    expected = [
        "<b>📥 Tiếp nhận: 4</b>",
        "• Theo loại: Phản ánh 2 · Góp ý 1 · Kiến nghị 1",
        "• Theo lĩnh vực: Đất đai 1 · Môi trường 1 · Xây dựng và trật tự đô thị 1 · Giao thông 1",
        "• Chuyển đến: 1 · chuyển đi: 0",
        "<b>✅ Đã trả lời: 3</b> (đúng hạn: 2)",
        "• Thụ lý đúng hạn: 3/5 (60%)",
        "• Giải quyết đúng hạn: 2/3 (66,7%)",
        "• Thời gian đến khi thụ lý: trung bình 3,5 ngày làm việc",
        "• Thời gian đến khi trả lời: trung bình 7,7 ngày làm việc",
        "• Gia hạn giải quyết: 1",
        "<b>⚠️ Quá hạn, chưa xử lý xong: 2</b>",
        f"1. <code>{golden['H']}</code> · Phản ánh · quá hạn 30 ngày làm việc · Đã tiếp nhận, chờ thụ lý",
        f"2. <code>{golden['A']}</code> · Phản ánh · quá hạn 2 ngày làm việc · Đã tiếp nhận, chờ thụ lý",
        "• Đánh giá kết quả trả lời: 3,7/5 (3 lượt); so với tuần trước +0,7; so với trung bình 4 tuần trước −0,3",
        "• Đánh giá tại bộ phận một cửa: 2,4/3 (5 lượt); so với tuần trước +0,4; so với trung bình 4 tuần trước −0,1",
        "• Bộ phận một cửa xã Mường Phăng: 2,4/3 (5 lượt); so với tuần trước +0,4; so với trung bình 4 tuần trước "
        "−0,1 · 😊 3 · 😐 1 · ☹️ 1",
        "• Điểm tiếp nhận bản Nà Nhạn: chưa có đánh giá trong tuần · 😊 0 · 😐 0 · ☹️ 0",
        "<i>Số liệu tính đến hết Chủ nhật 08/03/2026; số ngày quá hạn tính đến ngày 09/03/2026.</i>",
    ]
    for line in expected:
        assert line in lines, line
    assert utf16_length(text) <= MESSAGE_LIMIT


async def test_english_numbers_and_the_late_label(ctx: Context, golden: dict[str, str]) -> None:
    digest = (await digests_of(ctx)).units[UNIT]
    [text] = render_message(ctx, digest, "en", late_due=date(2026, 3, 9))
    assert "• Resolved on time: 2/3 (66.7%)" in text
    assert "• Time to answer: 7.7 working days on average" in text
    assert "⏱ <i>Sent late: this digest was due on 09/03/2026.</i>" in text
    assert "(2026-W10)" in text


async def test_nothing_personal_goes_into_a_digest(ctx: Context, golden: dict[str, str]) -> None:
    province = await digests_of(ctx)
    unit = await rendered(ctx, province.units[UNIT])
    whole = await rendered(ctx, province.total, province=province)
    from openpyxl import load_workbook

    for result in (unit, whole):
        text = "\n".join(result.messages)
        for document in result.documents:
            if document.mime == XLSX_MIME:
                book = load_workbook(io.BytesIO(document.data))
                text += "\n".join(str(c) for ws in book for row in ws.iter_rows(values_only=True) for c in row)
        assert CITIZEN_NAME not in text and "0912" not in text and "345 678" not in text
        assert "Cán bộ thử nghiệm" not in text and "Đoạn đường liên bản" not in text


async def test_a_unit_with_no_items_gets_the_short_digest(ctx: Context, golden: dict[str, str]) -> None:
    digest = (await digests_of(ctx)).units["so_tu_phap"]
    assert digest.is_empty
    result = await rendered(ctx, digest)
    assert result.documents == []
    [text] = result.messages
    assert text == (
        "<b>📊 Báo cáo tuần 10 năm 2026</b>\n<b>Sở Tư pháp</b>\n02/03/2026 – 08/03/2026 (2026-W10)\n\n"
        "Trong tuần không có phản ánh, kiến nghị nào; không có hồ sơ quá hạn."
    )
    [payload] = result.payloads()
    assert "documents" not in payload and payload["digest"] == {
        "unit": "so_tu_phap",
        "week": "2026-W10",
        "part": 1,
        "parts": 1,
    }
    assert render_message(ctx, digest, "en")[0].endswith("No items this week, and nothing overdue.")


async def test_an_empty_database_gives_empty_digests(ctx: Context) -> None:
    province = await digests_of(ctx)
    assert all(d.is_empty for d in province.units.values()) and province.total.is_empty
    assert all(r.rank is None for r in province.ranking)


def _balanced(html_text: str) -> bool:
    stack: list[str] = []
    for closing, tag in re.findall(r"<(/?)([a-z]+)[^>]*>", html_text):
        if closing:
            if not stack or stack.pop() != tag:
                return False
        else:
            stack.append(tag)
    return not stack


def test_blocks_are_packed_without_cutting_a_block() -> None:
    blocks = [f"<b>{index}.</b> <code>DB-{index:04d}</code> · {'đ' * 90}" for index in range(200)]
    parts = split_blocks(blocks, limit=1000)
    assert len(parts) > 10
    assert all(utf16_length(part) <= 1000 and _balanced(part) for part in parts)
    assert "\n".join(parts).split("\n") == blocks  # nothing lost, nothing cut, order kept
    # Emoji count twice in Telegram's UTF-16 measure.
    assert utf16_length("😊") == 2
    assert all(utf16_length(p) <= 100 for p in split_blocks(["😊" * 30] * 10, limit=100))


async def test_a_long_province_digest_splits_cleanly_between_units(ctx: Context) -> None:
    week = W10
    digests = []
    for index, code in enumerate(ctx.province.units):
        digest = empty_digest(ctx, code, week)
        digest.accept = OnTime(on_time=index, late=3)
        digest.overdue_count = index % 4
        digests.append(digest)
    province = ProvinceDigest(
        province_total(ctx, week, digests), {d.unit_code: d for d in digests}, rank_units(digests)
    )
    parts = render_province_message(ctx, province, "en")
    assert len(parts) >= 2
    assert all(utf16_length(part) <= MESSAGE_LIMIT and _balanced(part) for part in parts)
    assert all("(continued, part" in part for part in parts[1:])
    rank_lines = [line for part in parts for line in part.split("\n") if re.match(r"\d+\. ", line)]
    assert len(rank_lines) == len(ctx.province.units)
    assert rank_lines[0].startswith("1. ")
    assert rank_lines[-1].startswith(f"{len(ctx.province.units)}. ")


def test_ranking_orders_by_rate_then_overdue_and_leaves_idle_units_unranked() -> None:
    def unit(code: str, on_time: int, late: int, overdue: int) -> Digest:
        digest = Digest(unit_code=code, week=W10, as_of=date(2026, 3, 9), overdue_count=overdue)
        digest.resolve = OnTime(on_time, late)
        return digest

    ranking = rank_units([unit("a", 1, 1, 0), unit("b", 3, 0, 2), unit("c", 2, 0, 0), unit("d", 0, 0, 5)])
    assert ranking == [
        UnitRank(1, "c", OnTime(2, 0), 0, 0),
        UnitRank(2, "b", OnTime(3, 0), 2, 0),
        UnitRank(3, "a", OnTime(1, 1), 0, 0),
        UnitRank(None, "d", OnTime(0, 0), 5, 0),
    ]


# --- chart and workbook -----------------------------------------------------------------------------------


async def test_chart_and_workbook_read_back(ctx: Context, golden: dict[str, str]) -> None:
    from openpyxl import load_workbook

    result = await rendered(ctx, (await digests_of(ctx)).units[UNIT])
    png, xlsx = result.documents
    assert (png.mime, png.filename) == (PNG_MIME, "pakn-ubnd_xa_muong_phang-2026-W10.png")
    assert png.data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png.data[16:24])
    assert (width, height) == (1000, 500)
    assert 10_000 < len(png.data) < 300_000

    assert (xlsx.mime, xlsx.filename) == (XLSX_MIME, "pakn-ubnd_xa_muong_phang-2026-W10.xlsx")
    book = load_workbook(io.BytesIO(xlsx.data))
    assert book.sheetnames == ["Tổng hợp", "Hồ sơ trong tuần", "Quá hạn", "Bộ phận một cửa"]
    summary = {row[0]: row[1] for row in book["Tổng hợp"].iter_rows(min_row=2, values_only=True)}
    assert summary["Tiếp nhận"] == 4 and summary["Quá hạn, chưa xử lý xong (cuối tuần)"] == 2
    assert summary["Thụ lý đúng hạn"] == 3 and summary["Hạn thụ lý tính trong tuần (đúng hạn và trễ hạn)"] == 5
    assert summary["Số ngày làm việc trung bình đến khi thụ lý"] == 3.5

    items = list(book["Hồ sơ trong tuần"].iter_rows(values_only=True))
    assert items[0][:3] == ("Mã hồ sơ", "Đơn vị", "Loại")
    # Received or answered in the week, by time of receipt: I (answered 06/03), C, F, D, E.
    assert [row[0] for row in items[1:]] == [golden[x] for x in "ICFDE"]
    by_code = {row[0]: row for row in items[1:]}
    i_row = by_code[golden["I"]]
    assert i_row[1] == "UBND Xã Mường Phăng" and i_row[2] == "Phản ánh" and i_row[5] == "Đã đóng"
    assert i_row[6] == datetime(2026, 2, 2, 9, 0)  # local time of receipt
    assert i_row[9] == datetime(2026, 3, 3)  # resolve-by, across Tết
    assert i_row[10] == datetime(2026, 3, 6, 9, 0) and i_row[12] == 5
    assert (
        by_code[golden["E"]][7] == datetime(2026, 3, 18) and by_code[golden["E"]][9] is None
    )  # góp ý: no resolve clock

    overdue = list(book["Quá hạn"].iter_rows(min_row=2, values_only=True))
    assert [(row[0], row[6], row[7]) for row in overdue] == [
        (golden["H"], datetime(2026, 1, 19), 30),
        (golden["A"], datetime(2026, 3, 5), 2),
    ]
    desks = list(book["Bộ phận một cửa"].iter_rows(min_row=2, values_only=True))
    assert desks[0][:6] == ("Bộ phận một cửa xã Mường Phăng", 5, 2.4, 3, 1, 1)


async def test_the_province_workbook_lists_every_unit(ctx: Context, golden: dict[str, str]) -> None:
    from openpyxl import load_workbook

    province = await digests_of(ctx)
    result = await rendered(ctx, province.total, province=province)
    assert result.documents[0].filename == "pakn-province-2026-W10.png"
    book = load_workbook(io.BytesIO(result.documents[1].data))
    units = {row[1] for row in book["Hồ sơ trong tuần"].iter_rows(min_row=2, values_only=True)}
    assert units == {"UBND Xã Mường Phăng", "Sở Y tế"}
    assert "Bộ phận một cửa" not in book.sheetnames


# --- sending ----------------------------------------------------------------------------------------------


@pytest.fixture
async def officials(ctx: Context, golden: dict[str, str]) -> dict[str, int]:
    """Heads of the two busy units (one reads English), a coordinator, and people who must get nothing."""
    joined = local(2026, 3, 2, 8)  # after W09's digest went out, so W09 is not owed to them
    return {
        "head": await add_official(ctx, "head", UNIT, created_at=joined),
        "head_en": await add_official(ctx, "head", "so_y_te", created_at=joined, locale="en"),
        "coordinator": await add_official(ctx, "coordinator", "thanh_tra", created_at=joined),
        "officer": await add_official(ctx, "officer", UNIT, created_at=joined),
        "revoked": await add_official(ctx, "head", "so_tu_phap", created_at=joined, active=False),
    }


async def test_heads_get_their_digest_at_0730_on_monday_exactly_once(
    ctx: Context, officials: dict[str, int], database_url: tuple[str, str | None]
) -> None:
    assert await send_due_digests(ctx, local(2026, 3, 9, 7, 29)) == 0
    assert await digest_rows(ctx) == []
    assert await send_due_digests(ctx, local(2026, 3, 9, 7, 30)) == 3  # two units and the province
    rows = await digest_rows(ctx)
    by_recipient: dict[int, list[Outbox]] = {}
    for row in rows:
        by_recipient.setdefault(row.recipient_id, []).append(row)
    assert set(by_recipient) == {officials["head"], officials["head_en"], officials["coordinator"]}
    assert all(row.channel == "telegram" and row.status == "pending" for row in rows)

    [head] = by_recipient[officials["head"]]
    assert head.payload["digest"] == {"unit": UNIT, "week": "2026-W10", "part": 1, "parts": 1}
    assert head.payload["text"].startswith("<b>📊 Báo cáo tuần 10 năm 2026</b>\n<b>UBND Xã Mường Phăng</b>")
    assert "Gửi bù" not in head.payload["text"]
    png, xlsx = head.payload["documents"]
    assert (png["filename"], png["mime"]) == ("pakn-ubnd_xa_muong_phang-2026-W10.png", PNG_MIME)
    assert base64.b64decode(png["data_b64"])[:4] == b"\x89PNG"
    assert xlsx["mime"] == XLSX_MIME and base64.b64decode(xlsx["data_b64"])[:2] == b"PK"
    assert png["caption"] and xlsx["caption"]

    [english] = by_recipient[officials["head_en"]]
    assert english.payload["text"].startswith("<b>📊 Digest for week 10 of 2026</b>\n<b>Department of Health</b>")
    coordinator = by_recipient[officials["coordinator"]]
    assert coordinator[0].payload["digest"]["unit"] == PROVINCE
    assert "Toàn tỉnh Điện Biên" in coordinator[0].payload["text"]
    assert "pakn-province-2026-W10.xlsx" in [d["filename"] for d in coordinator[-1].payload["documents"]]

    # Later ticks, and a restarted process with its own engine, send nothing more.
    assert await send_due_digests(ctx, local(2026, 3, 9, 7, 31)) == 0
    assert await send_due_digests(ctx, local(2026, 3, 10, 9)) == 0
    restarted = await second_context(ctx, database_url)
    try:
        assert await send_due_digests(restarted, local(2026, 3, 9, 12)) == 0
    finally:
        await restarted.engine.dispose()
    assert len(await digest_rows(ctx)) == len(rows)
    async with ctx.sessions() as session:
        runs = (await session.execute(select(DigestRun.unit_code, DigestRun.week))).all()
    assert sorted(runs) == sorted([(UNIT, "2026-W10"), ("so_y_te", "2026-W10"), (PROVINCE, "2026-W10")])


async def test_missed_mondays_are_sent_when_the_service_returns_oldest_first(
    ctx: Context, officials: dict[str, int]
) -> None:
    # Down from Sunday 08/03 to Wednesday 18/03: W10's (due 09/03) and W11's (due 16/03) digests are owed.
    assert await send_due_digests(ctx, local(2026, 3, 18, 10)) == 6
    heads = [row for row in await digest_rows(ctx) if row.recipient_id == officials["head"]]
    assert [row.payload["digest"]["week"] for row in heads] == ["2026-W10", "2026-W11"]
    assert "⏱ <i>Gửi bù: báo cáo này đến hạn gửi ngày 09/03/2026" in heads[0].payload["text"]
    assert "(2026-W10)" in heads[0].payload["text"] and "(2026-W11)" in heads[1].payload["text"]
    # Weeks before they joined (W09 and older) are not a backlog to them.
    assert await send_due_digests(ctx, local(2026, 3, 18, 11)) == 0


async def test_a_new_head_gets_no_backlog(ctx: Context, golden: dict[str, str]) -> None:
    await add_official(ctx, "head", UNIT, created_at=local(2026, 3, 11, 15))
    assert await send_due_digests(ctx, local(2026, 3, 12, 9)) == 0
    assert await send_due_digests(ctx, local(2026, 3, 16, 7, 30)) == 1
    assert [row.payload["digest"]["week"] for row in await digest_rows(ctx)] == ["2026-W11"]


async def test_tet_monday_sends_two_weeks_on_the_next_working_day(ctx: Context, clock: TestClock) -> None:
    seeder_now = set_clock(clock)
    seeder_now(local(2026, 2, 10))
    from tests.digest_seed import Seeder

    seeder = Seeder(ctx, seeder_now)
    await seeder.submit("X", local(2026, 2, 10), "phan_anh", "dat_dai")
    head = await add_official(ctx, "head", UNIT, created_at=local(2026, 2, 9, 8))
    assert await send_due_digests(ctx, local(2026, 2, 16, 8)) == 0  # Tết eve: W07 waits
    assert await send_due_digests(ctx, local(2026, 2, 20, 8)) == 0
    assert await send_due_digests(ctx, local(2026, 2, 23, 7, 30)) == 2
    rows = [row for row in await digest_rows(ctx) if row.recipient_id == head]
    assert [row.payload["digest"]["week"] for row in rows] == ["2026-W07", "2026-W08"]
    assert "Gửi bù" not in rows[0].payload["text"]  # on its (holiday-moved) schedule, not late
    assert "Tiếp nhận: 1" in rows[0].payload["text"] and "Không có phản ánh" not in rows[0].payload["text"]
    assert rows[1].payload["text"].endswith("không có hồ sơ quá hạn.")  # W08: nothing happened


async def test_two_senders_racing_send_each_digest_once(
    ctx: Context, officials: dict[str, int], database_url: tuple[str, str | None]
) -> None:
    other = await second_context(ctx, database_url)
    try:
        counts = await asyncio.gather(
            send_due_digests(ctx, local(2026, 3, 9, 7, 30)), send_due_digests(other, local(2026, 3, 9, 7, 30))
        )
    finally:
        await other.engine.dispose()
    assert sum(counts) == 3
    rows = await digest_rows(ctx)
    keys = [(row.recipient_id, row.payload["digest"]["week"], row.payload["digest"]["part"]) for row in rows]
    assert len(keys) == len(set(keys))
    assert {row.recipient_id for row in rows} == {officials["head"], officials["head_en"], officials["coordinator"]}


async def test_a_lost_claim_writes_nothing(ctx: Context, database_url: tuple[str, str | None]) -> None:
    """Two processes insert the same (unit, week) at once: one commits, the other's insert fails and rolls back
    with its messages (PostgreSQL makes it wait for the first to commit; SQLite serialises the writers)."""
    head = await add_official(ctx, "head", UNIT, created_at=local(2026, 3, 1))
    other = await second_context(ctx, database_url)
    message = RenderedDigest(UNIT, W10, "vi", ["digest"], [])
    try:
        won = await asyncio.gather(
            *(claim_and_enqueue(c, UNIT, W10, [Recipient(head, "vi")], {"vi": message}) for c in (ctx, other, ctx))
        )
    finally:
        await other.engine.dispose()
    assert sorted(won) == [False, False, True]
    assert len(await digest_rows(ctx)) == 1
    async with ctx.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(DigestRun)) == 1


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_two_processes_send_each_digest_once(
    ctx: Context, officials: dict[str, int], database_url: tuple[str, str | None]
) -> None:
    """Two real `send_due_digests` processes let go at the same instant on one PostgreSQL database, as two
    `pakn serve` processes behind a load balancer would be (SQLite is covered by the two-engine race above)."""
    url, schema = database_url
    now = local(2026, 3, 9, 7, 30).isoformat()
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.digest_worker",
            url,
            schema or "",
            now,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for process in processes:  # both imported and connected …
        assert process.stdout is not None
        assert (await asyncio.wait_for(process.stdout.readline(), 60)).strip() == b"ready"
    results = await asyncio.gather(*(process.communicate(b"go\n") for process in processes))  # … then go at once
    for process, (_out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err.decode()
    assert sum(int(out.decode().strip().splitlines()[-1]) for out, _ in results) == 3
    rows = await digest_rows(ctx)
    keys = [(row.recipient_id, row.payload["digest"]["unit"], row.payload["digest"]["part"]) for row in rows]
    assert len(keys) == len(set(keys)) and {k[0] for k in keys} == {
        officials["head"],
        officials["head_en"],
        officials["coordinator"],
    }


async def test_details_are_loaded_for_the_workbook_only_when_needed(ctx: Context) -> None:
    digest = Digest(unit_code="so_tu_phap", week=W10, as_of=date(2026, 3, 9))
    async with ctx.sessions() as session:
        assert await load_details(ctx, session, digest) == Details([], [])


async def test_a_head_of_a_unit_no_longer_configured_does_not_stop_the_others(
    ctx: Context, officials: dict[str, int]
) -> None:
    from models.tables import Unit

    async with ctx.sessions.begin() as session:
        session.add(Unit(code="ubnd_old", name_vi="UBND xã cũ", name_en="Old commune", active=False))
    old_head = await add_official(ctx, "head", "ubnd_old", created_at=local(2026, 3, 2, 8))
    assert await send_due_digests(ctx, local(2026, 3, 9, 7, 30)) == 4
    [row] = [row for row in await digest_rows(ctx) if row.recipient_id == old_head]
    assert row.payload["digest"]["unit"] == "ubnd_old" and "ubnd_old" in row.payload["text"]
