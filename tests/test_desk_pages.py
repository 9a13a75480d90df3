"""The desk's landing page, its forms, /track and /stats over real HTTP, as a browser without JavaScript sends them."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from html import unescape
from typing import Any

import aiohttp
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from bot.context import Context
from bot.desks import add_desk
from bot.intake import Draft, submit_item
from bot.ratings import NETWORK_DESK_LIMIT
from bot.receipts import code_from_payload
from bot.tracking import TRACK_LIMIT
from models.tables import DeskRating, Item
from qr.payload import sign_desk
from tests.conftest import TestClock, drop_pooled_connections

REPORT = "Cán bộ quầy một cửa yêu cầu nộp thêm tiền ngoài quy định mới nhận hồ sơ của tôi."


async def _payload(ctx: Context, unit: str = "ubnd_xa_muong_phang", name: str = "Bộ phận một cửa") -> str:
    async with ctx.sessions.begin() as session:
        desk = await add_desk(ctx, session, unit_code=unit, name=name)
    return sign_desk(ctx.keys, desk.code)


def _client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def _token(html: str) -> str:
    match = re.search(r'name="t" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def _text(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


async def _count(ctx: Context, model: type) -> int:
    async with ctx.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_the_landing_page_names_the_desk_and_offers_every_way_in(ctx: Context, web_url: str) -> None:
    payload = await _payload(ctx)
    async with _client() as http, http.get(f"{web_url}/d/{payload}") as response:
        assert response.status == 200
        html = await response.text()
        assert "pakn_chat" in response.cookies
        assert response.headers["Cache-Control"] == "private, no-store"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    text = _text(html)
    assert "Bộ phận một cửa" in text and "UBND Xã Mường Phăng" in text
    assert "Bạn được phục vụ thế nào?" in text
    assert [f'name="score" value="{n}"' in html for n in (1, 2, 3)] == [True] * 3
    assert f'href="/chat?desk={payload}"' in html
    assert "t.me" not in html and "zalo" not in html.lower()  # not configured
    assert "0215 3 825 888" in text and "pakn@dienbien.gov.vn" in text
    assert "<script" not in html  # works without JavaScript
    assert not re.search(r'(src|href)="(https?:)?//(?!t\.me/|zalo\.me/)', html)  # nothing from another site

    ctx.settings = dataclasses.replace(
        ctx.settings, telegram_bot_username="PaknDienBienBot", zalo_url="https://zalo.me/4318001234567890"
    )
    async with _client() as http, http.get(f"{web_url}/d/{payload}?lang=en") as response:
        html = await response.text()
    assert f'href="https://t.me/PaknDienBienBot?start={payload}"' in html
    assert 'href="https://zalo.me/4318001234567890"' in html
    text = _text(html)
    assert "How were you served?" in text and "People's Committee of Mường Phăng Commune" in text


async def test_rating_without_javascript_is_two_taps_and_counts_once(ctx: Context, web_url: str) -> None:
    payload = await _payload(ctx)
    async with _client() as http:
        async with http.get(f"{web_url}/d/{payload}") as response:
            token = _token(await response.text())
        form = {"t": token, "lang": "vi", "score": "3", "comment": "Chị cán bộ hướng dẫn rất tận tình."}
        async with http.post(f"{web_url}/d/{payload}/rate", data=form, allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == f"/d/{payload}/thanks?r=recorded"
        async with http.get(f"{web_url}/d/{payload}/thanks?r=recorded") as response:
            text = _text(await response.text())
        assert "Cảm ơn bạn đã đánh giá!" in text and "Đánh giá của bạn đã được ghi nhận: Hài lòng." in text
        for _ in range(10):  # the same browser again and again
            async with http.post(f"{web_url}/d/{payload}/rate", data={**form, "score": "1"}) as response:
                assert response.status == 200  # followed the redirect
                assert "đánh giá được cập nhật thành: Không hài lòng" in _text(await response.text())
        async with http.post(
            f"{web_url}/d/{payload}/comment", data={"t": token, "comment": "Nhưng phải chờ lâu, số tôi 0912345678"}
        ) as response:
            assert "Đã lưu góp ý của bạn" in _text(await response.text())
    async with ctx.sessions() as session:
        rows = (await session.execute(select(DeskRating))).scalars().all()
    assert [(r.score, r.comment) for r in rows] == [(1, "Nhưng phải chờ lâu, số tôi [số điện thoại]")]
    assert len(rows[0].client_hash) == 64 and "pakn" not in rows[0].client_hash


async def test_ballot_stuffing_with_fresh_cookies_is_capped_per_network(ctx: Context, web_url: str) -> None:
    payload = await _payload(ctx)
    for _ in range(NETWORK_DESK_LIMIT.count + 5):
        async with _client() as http:  # a new browser each time: cookies cleared
            async with http.get(f"{web_url}/d/{payload}") as response:
                token = _token(await response.text())
            async with http.post(f"{web_url}/d/{payload}/rate", data={"t": token, "score": "3"}) as response:
                last = _text(await response.text())
    assert "chưa được ghi nhận" in last
    assert await _count(ctx, DeskRating) == NETWORK_DESK_LIMIT.count


async def test_forms_without_the_cookie_token_or_with_bad_bodies_are_refused(ctx: Context, web_url: str) -> None:
    payload = await _payload(ctx)
    async with _client() as http:
        async with http.post(f"{web_url}/d/{payload}/rate", data={"score": "3"}) as response:
            assert response.status == 403 and "Phiên đã hết hạn" in await response.text()
        async with http.get(f"{web_url}/d/{payload}") as response:
            token = _token(await response.text())
        big = {"t": token, "score": "3", "comment": "x" * 20_000}
        async with http.post(f"{web_url}/d/{payload}/rate", data=big) as response:
            assert response.status == 413 and "Nội dung quá dài" in await response.text()
        async with http.post(f"{web_url}/d/{payload}/rate", json={"t": token, "score": 3}) as response:
            assert response.status == 415
        async with http.post(f"{web_url}/d/{payload}/rate", data={"t": token, "score": "5"}) as response:
            assert response.status == 400 and "Traceback" not in await response.text()
        async with http.put(f"{web_url}/d/{payload}") as response:
            assert response.status == 405
        async with http.get(f"{web_url}/d/{payload}/rate") as response:
            assert response.status == 405
        async with http.delete(f"{web_url}/track") as response:
            assert response.status == 405
    # A token is worthless without the cookie it was made for.
    async with (
        _client() as other,
        other.post(f"{web_url}/d/{payload}/rate", data={"t": token, "score": "3"}) as response,
    ):
        assert response.status == 403
    assert await _count(ctx, DeskRating) == 0


async def test_a_forged_payload_gets_a_polite_vietnamese_404(ctx: Context, web_url: str) -> None:
    payload = await _payload(ctx)
    async with _client() as http:
        for bad in (payload[:-1] + ("A" if payload[-1] != "A" else "B"), payload[:30], "d1_x_y", "%00" * 3, "a" * 500):
            async with http.get(f"{web_url}/d/{bad}") as response:
                assert response.status == 404, bad
                text = _text(await response.text())
                assert "Không tìm thấy quầy" in text and "Mã QR này không hợp lệ" in text
                assert "0215 3 825 888" in text
        async with http.get(f"{web_url}/d/d1_x_y?lang=en") as response:
            assert "This QR code is not valid" in await response.text()


async def test_a_report_about_the_staff_is_filed_for_the_supervisor(ctx: Context, web_url: str) -> None:
    payload = await _payload(ctx)
    async with _client() as http:
        async with http.get(f"{web_url}/d/{payload}/report") as response:
            html = await response.text()
        assert "Thanh tra tỉnh" in _text(html)  # says where it goes
        token = _token(html)
        async with http.post(f"{web_url}/d/{payload}/report", data={"t": token, "description": "Tệ quá"}) as response:
            assert response.status == 400
            html = await response.text()
            assert "Nội dung quá ngắn" in _text(html) and "Tệ quá" in html  # kept for correction
        data = {"t": token, "description": REPORT}
        async with http.post(f"{web_url}/d/{payload}/report", data=data, allow_redirects=False) as response:
            assert response.status == 303
            location = response.headers["Location"]
        async with http.get(f"{web_url}{location}") as response:
            text = _text(await response.text())
    code = re.search(r"DB-[0-9A-Z]{4}-[0-9A-Z]{4}", text)
    assert code is not None and "Đã gửi báo cáo" in text
    async with ctx.sessions() as session:
        item = (await session.execute(select(Item))).scalar_one()
    assert (item.receipt_code, item.unit_code, item.about_unit_code) == (
        code.group(0),
        "thanh_tra",
        "ubnd_xa_muong_phang",
    )


async def test_track_answers_unknown_and_malformed_alike_and_limits_lookups(ctx: Context, web_url: str) -> None:
    draft = Draft(type="kien_nghi", category="giao_thong", commune_code="3325", description=REPORT)
    async with ctx.sessions.begin() as session:
        code = (await submit_item(ctx, session, draft, channel="web", channel_id="x")).item.receipt_code
    async with _client() as http:
        async with http.get(f"{web_url}/track") as response:
            assert response.status == 200 and "Mã tra cứu" in await response.text()
        async with http.post(f"{web_url}/track", data={"code": code.lower()}) as response:
            assert response.status == 200
            text = _text(await response.text())
        assert code in text and "Đã tiếp nhận, chờ thụ lý" in text and "Sở Xây dựng" in text
        assert "đã tiếp nhận" in text and REPORT not in text
        answers = []
        for raw in (code_from_payload("DB", "Z0Z0Z0Z"), "không phải mã"):
            async with http.post(f"{web_url}/track", data={"code": raw}) as response:
                answers.append((response.status, _text(await response.text()).replace(raw, "…")))
        assert answers[0] == answers[1] and answers[0][0] == 404
        assert "Không tìm thấy việc nào với mã này" in answers[0][1]
        for _ in range(TRACK_LIMIT.count):
            async with http.post(f"{web_url}/track", data={"code": code}) as response:
                status = response.status
        assert status == 429
        assert response.headers["Retry-After"] == "600"
        async with http.post(f"{web_url}/track", data={"code": code}) as response:
            assert response.status == 429 and "Bạn thao tác quá nhanh" in _text(await response.text())


async def test_stats_page_and_csv(ctx: Context, web_url: str) -> None:
    payload = await _payload(ctx)
    async with _client() as http:
        async with http.get(f"{web_url}/d/{payload}") as response:
            token = _token(await response.text())
        await http.post(f"{web_url}/d/{payload}/rate", data={"t": token, "score": "3"})
        async with http.get(f"{web_url}/stats") as response:
            assert response.status == 200
            html = await response.text()
        assert "<svg" in html and "Thống kê công khai" in html
        assert 'data-unit="ubnd_xa_muong_phang"' in html and "100 % (1/1)" in _text(html)
        async with http.get(f"{web_url}/stats?unit=ubnd_xa_muong_phang&lang=en") as response:
            assert response.status == 200 and "People's Committee of Mường Phăng Commune" in _text(
                await response.text()
            )
        async with http.get(f"{web_url}/stats?unit=nope") as response:
            assert response.status == 404
        async with http.get(f"{web_url}/stats.csv") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/csv")
            assert "attachment" in response.headers["Content-Disposition"]
            body = (await response.read()).decode("utf-8")
    assert body.startswith("\ufeffunit_code,unit_name,week_start,items_received")
    assert "ubnd_xa_muong_phang,UBND Xã Mường Phăng," in body


async def _received_today(http: aiohttp.ClientSession, web_url: str) -> tuple[str, str]:
    """The page's "received" figure and its "as of" line."""
    async with http.get(f"{web_url}/stats") as response:
        html = await response.text()
    received = re.search(r'id="kpi-received">([^<]*)<', html)
    as_of = re.search(r'id="stats-as-of">([^<]*)<', html)
    assert received is not None and as_of is not None
    return received.group(1), unescape(as_of.group(1))


async def test_stats_are_computed_once_for_a_few_minutes(ctx: Context, clock: TestClock, web_url: str) -> None:
    """At a province's size the figures take seconds: they are kept five minutes, and the page says so."""
    clock.set_local(2026, 3, 2, 9)
    draft = Draft(type="phan_anh", category="dat_dai", commune_code="3325", description="Đèn đường hỏng " * 3)

    async def file() -> None:
        async with ctx.sessions.begin() as session:
            await submit_item(ctx, session, draft, channel="web", channel_id="stats-visitor")

    await file()
    async with _client() as http:
        first, as_of = await _received_today(http, web_url)
        assert first == "1" and as_of == "Số liệu tính lúc 09:00 ngày 02/03/2026, cập nhật 5 phút một lần."
        await file()
        assert await _received_today(http, web_url) == (first, as_of)  # the same figures, minutes old
        clock.advance(seconds=5 * 60 + 1)
        assert (await _received_today(http, web_url))[0] == "2"

        await file()
        clock.advance(seconds=5 * 60 + 1)
        reports: list[str] = []

        def count_reports(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "GROUP BY" in statement and "FROM items" in statement:
                reports.append(statement)

        # Every engine's statements: the report reads on a connection of its own (on SQLite, another engine's).
        event.listen(Engine, "before_cursor_execute", count_reports)
        try:
            pages = await asyncio.gather(*(_received_today(http, web_url) for _ in range(6)))
        finally:
            event.remove(Engine, "before_cursor_execute", count_reports)
    assert {received for received, _ in pages} == {"3"}
    assert len(reports) == 1, "six visitors at once share one computation"


async def test_a_mistyped_address_gets_a_page_in_the_visitors_language(web_url: str) -> None:
    """Typed by hand from a poster, or cut short in a message: the way on, not aiohttp's bare "404: Not Found"."""
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    async with _client() as http:
        for address in ("/trak", "/chat/", "/stats/ubnd", "/d"):
            async with http.get(f"{web_url}{address}", headers=browser) as response:
                assert response.status == 404, address
                assert response.content_type == "text/html"
                html = await response.text()
                assert "Không tìm thấy trang" in _text(html) and "Địa chỉ này không có trang nào" in _text(html)
                assert 'href="/chat"' in html and 'href="/track"' in html and 'href="/stats"' in html
        async with http.get(f"{web_url}/trak", headers={**browser, "Accept-Language": "en-GB,en;q=0.9"}) as response:
            assert response.status == 404 and "There is no page at this address" in await response.text()
        # Neither an API client, nor a stylesheet or an image, nor a form sent to nowhere gets a page.
        async with http.get(f"{web_url}/chat/api/nothing", headers={"Accept": "application/json"}) as response:
            assert response.status == 404 and "Không tìm thấy trang" not in await response.text()
        async with http.get(f"{web_url}/static/nothing.css", headers={"Accept": "text/css,*/*;q=0.1"}) as response:
            assert response.status == 404 and "Không tìm thấy trang" not in await response.text()
        async with http.post(f"{web_url}/trak", headers=browser, data={"code": "x"}) as response:
            assert response.status in (404, 405) and "Không tìm thấy trang" not in await response.text()


def test_every_public_page_string_is_in_both_catalogs() -> None:
    """Catalog keys used by the desk, track and stats pages and the posters exist in Vietnamese and English."""
    from pathlib import Path

    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parent.parent
    sources = [
        *(root / "handlers" / "templates").glob("*.html"),
        root / "handlers" / "desk_pages.py",
        root / "handlers" / "public_pages.py",
        root / "handlers" / "charts.py",
        root / "qr" / "poster.py",
        root / "bot" / "desks.py",
        root / "bot" / "ratings.py",
    ]
    keys = set()
    for path in sources:
        keys |= set(re.findall(r"""["']((?:desk|page|track|stats|poster|event)\.[a-z_.0-9]+)["']""", path.read_text()))
    keys |= {f"desk.score.{n}" for n in (1, 2, 3)}
    kinds = ("not_found", "missing", "expired", "too_many", "too_large", "bad_request")
    keys |= {f"page.{kind}.{part}" for kind in kinds for part in ("title", "text")}
    keys = {key for key in keys if not key.endswith((".", ".html"))}
    assert len(keys) > 80
    for locale in ("vi", "en"):
        with (root / "bot" / "locale" / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
            catalog = read_po(handle, locale=locale)
        missing = sorted(key for key in keys if not (catalog.get(key) and catalog.get(key).string))
        assert missing == [], (locale, missing)


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_a_page_survives_the_database_dropping_its_connections(ctx: Context, web_url: str) -> None:
    """PostgreSQL restarted: every pooled connection is dead, and the first page to use one is read again on a
    new connection instead of answering 500 (there is no ping on checkout)."""
    payload = await _payload(ctx)
    async with _client() as http:
        async with http.get(f"{web_url}/d/{payload}") as response:
            assert response.status == 200
        await drop_pooled_connections(ctx.engine)
        async with http.get(f"{web_url}/d/{payload}") as response:
            assert response.status == 200
            assert "Bộ phận một cửa" in _text(await response.text())
