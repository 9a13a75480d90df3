"""The desk's pages in headless Chromium, as a citizen's phone shows them; screenshots go to docs/screenshots/.

The last test is the issue's "done when", tried as a new administrator and a citizen would: add the desk
with the CLI, print its A5 poster, read the QR code off the poster, open that URL, rate the desk, start a chat.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from aiohttp.test_utils import TestServer, unused_port
from PIL import Image
from sqlalchemy import func, select

from bot.context import Context
from bot.desks import add_desk
from bot.intake import Draft, submit_item
from models.tables import DeskRating, Item
from qr.payload import sign_desk
from tests.conftest import TestClock
from tests.test_stats import _scenario

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "vi-VN",  # the page follows Accept-Language
}
DESKTOP = {"viewport": {"width": 1100, "height": 900}, "locale": "vi-VN"}


async def _shot(ctx: Context | None, page: Any, name: str) -> None:
    """Keep one set of screenshots (from the SQLite run), so the committed pictures do not churn twice."""
    if ctx is not None and ctx.engine.url.get_backend_name() != "sqlite":
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / name), full_page=True)


async def _desk_payload(ctx: Context) -> str:
    async with ctx.sessions.begin() as session:
        desk = await add_desk(ctx, session, unit_code="ubnd_xa_muong_phang", name="Bộ phận một cửa")
    return sign_desk(ctx.keys, desk.code)


async def _ratings(ctx: Context) -> list[tuple[int, str]]:
    async with ctx.sessions() as session:
        return [(r.score, r.comment) for r in (await session.execute(select(DeskRating))).scalars()]


async def test_the_landing_page_on_a_phone(ctx: Context, web_url: str, browser: Any) -> None:
    payload = await _desk_payload(ctx)
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    response = await page.goto(f"{web_url}/d/{payload}")
    assert response is not None and response.status == 200
    assert await page.inner_text("#desk-name") == "Bộ phận một cửa"
    assert await page.inner_text("#unit-name") == "UBND Xã Mường Phăng"
    assert [await page.inner_text(f"#face-{n}") for n in (1, 2, 3)] == ["Không hài lòng", "Bình thường", "Hài lòng"]
    box = await page.locator("#face-3").bounding_box()
    assert box is not None and box["width"] >= 90 and box["height"] >= 90  # easy to tap
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    await _shot(ctx, page, "desk-landing-vi.png")
    await page.click("text=English")
    assert await page.inner_text("#rate-title") == "How were you served?"
    await _shot(ctx, page, "desk-landing-en.png")


async def test_rating_and_commenting_without_javascript(ctx: Context, web_url: str, browser: Any) -> None:
    payload = await _desk_payload(ctx)
    context = await browser.new_context(**PHONE, java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{web_url}/d/{payload}")
    await page.click("summary")  # <details> opens without scripts
    await page.fill("#comment", "Cán bộ hướng dẫn tận tình, không phải chờ lâu.")
    await page.click("#face-3")  # the second tap
    await page.wait_for_url(re.compile(r"/thanks\?r=recorded$"), wait_until="domcontentloaded")
    assert "Đánh giá của bạn đã được ghi nhận: Hài lòng." in await page.inner_text("#outcome")
    await _shot(ctx, page, "desk-rated-without-javascript.png")
    await page.goto(f"{web_url}/d/{payload}")
    await page.click("#face-2")  # changing one's mind does not add a ballot
    assert "đánh giá được cập nhật thành: Bình thường" in await page.inner_text("#outcome")
    await page.fill("#comment", "Bổ sung: phòng chờ hơi nóng.")
    await page.click("text=Gửi góp ý")
    assert await page.is_visible("#comment-saved")
    assert await _ratings(ctx) == [(2, "Bổ sung: phòng chờ hơi nóng.")]


async def test_reporting_the_desks_staff_in_the_browser(ctx: Context, web_url: str, browser: Any) -> None:
    payload = await _desk_payload(ctx)
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    await page.goto(f"{web_url}/d/{payload}")
    await page.click("#report-link")
    assert "Thanh tra tỉnh" in await page.inner_text("main")
    await page.fill("#description", "Cán bộ ở quầy yêu cầu nộp thêm 200.000 đồng ngoài quy định để nhận hồ sơ.")
    await _shot(ctx, page, "desk-report.png")
    await page.click("#report-submit")
    receipt = (await page.inner_text("#receipt")).strip()
    assert re.fullmatch(r"DB-[0-9A-Z]{4}-[0-9A-Z]{4}", receipt)
    await page.click("text=Tra cứu ngay")
    assert await page.inner_text("#track-status") == "Đã tiếp nhận, chờ thụ lý"
    assert "Thanh tra tỉnh" in await page.inner_text("#track-result")
    async with ctx.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Item).where(Item.unit_code == "thanh_tra")) == 1


async def test_tracking_in_the_browser(ctx: Context, web_url: str, browser: Any) -> None:
    draft = Draft(
        type="phan_anh",
        category="moi_truong",
        commune_code="3325",
        description="Bãi rác tự phát cạnh suối Nậm Rốm bốc mùi, đề nghị xã thu gom.",
    )
    async with ctx.sessions.begin() as session:
        code = (await submit_item(ctx, session, draft, channel="web", channel_id="w1")).item.receipt_code
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    await page.goto(f"{web_url}/track")
    await page.fill("#code", code.lower().replace("-", " "))
    await page.click("#track-submit")
    assert await page.inner_text("#result-code") == code
    assert "đã tiếp nhận" in await page.inner_text("#timeline")
    assert "Bãi rác" not in await page.content()
    await _shot(ctx, page, "track.png")
    await page.fill("#code", "DB-0000-0000")
    await page.click("#track-submit")
    assert "Không tìm thấy việc nào với mã này" in await page.inner_text("#track-not-found")


async def test_statistics_in_the_browser(ctx: Context, clock: TestClock, web_url: str, browser: Any) -> None:
    await _scenario(ctx, clock)
    context = await browser.new_context(**DESKTOP, java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{web_url}/stats")
    assert await page.inner_text("#kpi-received") == "4"
    assert await page.locator("svg.chart rect").count() > 4
    rows = await page.locator("#units-table tbody tr").count()
    assert rows == 2
    await _shot(ctx, page, "stats.png")
    await page.click("text=UBND Xã Mường Phăng")
    assert await page.inner_text("#stats-heading") == "UBND Xã Mường Phăng"
    assert await page.inner_text("#kpi-on-time") == "50 % (1/2)"
    async with page.expect_download() as downloading:
        await page.click("#csv-link")
    download = await downloading.value
    assert download.suggested_filename.startswith("pakn-stats-ubnd_xa_muong_phang-")
    phone = await browser.new_context(**PHONE)
    mobile = await phone.new_page()
    await mobile.goto(f"{web_url}/stats?unit=ubnd_xa_muong_phang")
    assert await mobile.evaluate("document.documentElement.scrollWidth") <= 390
    await _shot(ctx, mobile, "stats-unit-phone.png")


async def test_done_when_an_administrator_prints_a_poster_and_a_phone_opens_it(tmp_path: Path, browser: Any) -> None:
    """The issue's acceptance test, end to end with the real CLI, the real server and a real browser."""
    from bot.app import build_context, prepare_database
    from bot.conversation import Conversations
    from config import load_settings
    from handlers.http import create_web_app

    port = unused_port()
    env = {
        **os.environ,
        "PAKN_DATA_DIR": str(tmp_path / "data"),
        "PAKN_DATABASE_URL": "",
        "PAKN_SECRET_KEY": "",
        "PAKN_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }

    def pakn(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
        )

    added = pakn("desk", "add", "--unit", "ubnd_xa_muong_phang", "--name", "Bộ phận một cửa")
    assert added.returncode == 0, added.stderr
    code = re.search(r"added desk (\S+):", added.stdout)
    assert code is not None
    printed = pakn("qr", "--desk", code.group(1), "--paper", "A5", "--format", "pdf,png", "--out", str(tmp_path))
    assert printed.returncode == 0, printed.stderr
    poster = tmp_path / f"{code.group(1)}-landing-a5.png"
    (symbol,) = zxingcpp.read_barcodes(Image.open(poster))
    url = symbol.text  # what a phone camera reads
    assert url.startswith(f"http://127.0.0.1:{port}/d/d1_")
    subprocess.run(["pdftoppm", "-r", "100", "-png", "-singlefile", str(tmp_path / poster.with_suffix(".pdf").name),
                    str(SHOTS / "poster-a5")], check=True)  # fmt: skip

    ctx = await build_context(load_settings(env))
    await prepare_database(ctx, migrate=True)
    server = TestServer(create_web_app(ctx, Conversations(ctx)), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        context = await browser.new_context(**PHONE)
        page = await context.new_page()
        await page.goto(url)
        assert await page.inner_text("#desk-name") == "Bộ phận một cửa"
        assert await page.inner_text("#unit-name") == "UBND Xã Mường Phăng"
        await page.click("#face-3")
        assert "Đánh giá của bạn đã được ghi nhận: Hài lòng." in await page.inner_text("#outcome")
        await page.goto(url)
        await page.click("#open-web")
        await page.wait_for_selector("text=Bộ phận một cửa", timeout=15_000)
        assert "UBND Xã Mường Phăng" in await page.inner_text("#log")
        await _shot(None, page, "desk-web-chat.png")
        async with ctx.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(DeskRating)) == 1
    finally:
        await server.close()
        await ctx.engine.dispose()
