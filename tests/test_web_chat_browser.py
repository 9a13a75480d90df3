"""The web chat driven in real headless Chromium, as a citizen on a phone would use it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
DESCRIPTION = "Cống thoát nước trước chợ trung tâm bị tắc, nước thải tràn ra đường mỗi khi mưa."


@pytest.mark.browser
async def test_a_citizen_files_an_anonymous_report_in_the_browser(web_url: str, browser: Any) -> None:
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="vi-VN")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{web_url}/chat")
    log = page.locator("#log")

    async def press(label: str) -> None:
        button = page.locator(".row button:not([disabled])", has_text=label).last
        await button.click()
        await page.wait_for_function("() => !document.querySelector('#send').disabled")

    async def say(text: str) -> None:
        await page.fill("#input", text)
        await page.press("#input", "Enter")
        await page.wait_for_function("() => !document.querySelector('#send').disabled")

    await log.get_by_text("Bạn muốn làm gì?").last.wait_for()
    await press("Gửi phản ánh")
    await log.get_by_text("Bạn muốn gửi loại nào?").last.wait_for()
    await press("Phản ánh")
    await press("Môi trường")
    await say("him lam")
    await log.get_by_text("nay thuộc Phường Điện Biên Phủ").wait_for()
    await press("Bỏ qua")
    await press("Không")
    await say(DESCRIPTION)
    await log.get_by_text("Đã ghi nhận").last.wait_for()
    await press("Xong")
    await press("ẩn danh")
    await log.get_by_text("Vui lòng kiểm tra lại trước khi gửi").wait_for()
    await press("Gửi")
    receipt = log.get_by_text("Đã gửi thành công.")
    await receipt.wait_for()
    text = await log.inner_text()
    assert re.search(r"Mã tra cứu: DB-[0-9A-Z]{4}-[0-9A-Z]{4}", text)
    assert "Thời hạn thụ lý: 10 ngày làm việc — đến hết ngày 05/03/2026" in text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "web-chat.png"), full_page=False)
    code = re.search(r"DB-[0-9A-Z]{4}-[0-9A-Z]{4}", text)
    assert code is not None
    await say(f"/track {code.group(0)}")
    await log.get_by_text("Trạng thái: Đã tiếp nhận, chờ thụ lý").wait_for()
    assert errors == []
    await context.close()


@pytest.mark.browser
async def test_user_text_is_shown_as_text_not_markup(web_url: str, browser: Any) -> None:
    context = await browser.new_context(locale="vi-VN")
    page = await context.new_page()
    await page.goto(f"{web_url}/chat")
    await page.locator("#log").get_by_text("Bạn muốn làm gì?").last.wait_for()
    await page.fill("#input", "<img src=x onerror=alert(1)><b>đậm</b>")
    await page.press("#input", "Enter")
    await page.locator(".msg.me", has_text="<img src=x").wait_for()
    assert await page.locator(".msg img").count() == 0
    await context.close()
