"""Desk posters: every QR code decodes back to its URL, the PDF is vector with real Vietnamese text."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from qr.codes import QUIET_ZONE, Symbol, landing_url, make_symbol, telegram_url
from qr.poster import (
    PAPERS,
    Layout,
    PosterText,
    desk_poster_text,
    layout,
    missing_glyphs,
    render_pdf,
    render_png,
    render_svg,
    text_width,
)

PAYLOAD = "d1_ubnd-xa-muong-phang-1_q2XzK0Jx4BvYp8Lw"
URLS = {
    "landing": landing_url("https://pakn.dienbien.gov.vn", PAYLOAD),
    "telegram": telegram_url("PaknDienBienBot", PAYLOAD),
}
VIETNAMESE = (
    "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvxyỳýỷỹỵ"
    "AÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬBCDĐEÈÉẺẼẸÊỀẾỂỄỆGHIÌÍỈĨỊKLMNOÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢPQRSTUÙÚỦŨỤƯỪỨỬỮỰVXYỲÝỶỸỴ"
)


@pytest.fixture
def poppler() -> None:
    """pdftoppm and friends, from Debian's poppler-utils; required when PAKN_REQUIRE_BROWSER=1 (CI)."""
    if all(shutil.which(tool) for tool in ("pdftoppm", "pdftotext", "pdfimages", "pdffonts", "pdfinfo")):
        return
    message = "poppler-utils (pdftoppm, pdftotext …) is not installed (apt-get install poppler-utils)"
    if os.environ.get("PAKN_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _text(target: str, unit: str = "UBND Xã Mường Phăng", desk: str = "Bộ phận tiếp nhận và trả kết quả") -> PosterText:
    return desk_poster_text(
        province_name="tỉnh Điện Biên",
        unit_name=unit,
        desk_name=desk,
        url=URLS[target],
        telegram=target == "telegram",
        hotline_phone="0215 3 825 888",
        hotline_email="pakn@dienbien.gov.vn",
    )


def _page(target: str = "landing", paper: str = "A5", **names: str) -> Layout:
    return layout(_text(target, **names), make_symbol(URLS[target]), paper)


def decode(image: Image.Image) -> list[zxingcpp.Barcode]:
    return [code for code in zxingcpp.read_barcodes(image) if code.format == zxingcpp.BarcodeFormat.QRCode]


def assert_quiet_zone(image: Image.Image, code: zxingcpp.Barcode, symbol: Symbol) -> None:
    """At least four modules of white all around the symbol."""
    gray = image.convert("L")
    position = code.position
    left = min(position.top_left.x, position.bottom_left.x)
    right = max(position.top_right.x, position.bottom_right.x)
    top = min(position.top_left.y, position.top_right.y)
    bottom = max(position.bottom_left.y, position.bottom_right.y)
    module = (right - left) / (symbol.size - 1)
    margin = round(module * QUIET_ZONE)
    outer = gray.crop((left - margin, top - margin, right + margin + 1, bottom + margin + 1))
    inner_box = (margin - 1, margin - 1, margin + right - left + 2, margin + bottom - top + 2)
    pixels = outer.load()
    assert pixels is not None
    for y in range(outer.height):
        for x in range(outer.width):
            inside = inner_box[0] <= x <= inner_box[2] and inner_box[1] <= y <= inner_box[3]
            if not inside:
                assert pixels[x, y] > 200, f"dark pixel in the quiet zone at {x},{y}"


def test_the_symbol_has_error_correction_m_or_better() -> None:
    for url in URLS.values():
        symbol = make_symbol(url)
        assert symbol.error in ("M", "Q", "H")
        assert symbol.size == 17 + 4 * symbol.version


def test_the_poster_font_covers_vietnamese_in_every_weight() -> None:
    for weight in ("regular", "bold", "italic"):
        assert missing_glyphs(VIETNAMESE, weight) == set()  # type: ignore[arg-type]


@pytest.mark.parametrize("paper", sorted(PAPERS))
@pytest.mark.parametrize("target", sorted(URLS))
def test_the_png_poster_decodes_to_its_url(target: str, paper: str) -> None:
    page = _page(target, paper)
    image = Image.open(io.BytesIO(render_png(page)))
    assert image.size == (round(PAPERS[paper][0] / 25.4 * 300), round(PAPERS[paper][1] / 25.4 * 300))
    assert image.info["dpi"] == pytest.approx((300, 300), abs=0.1)
    (code,) = decode(image)
    assert code.text == URLS[target]
    assert code.ec_level in ("M", "Q", "H")
    assert_quiet_zone(image, code, page.code.symbol)


def test_the_layout_keeps_text_off_the_code_and_inside_the_page() -> None:
    for paper in PAPERS:
        page = _page("landing", paper)
        code = page.code
        assert code.size >= page.width * 0.55  # large: readable from arm's length
        for line in page.lines:
            half = text_width(line.text, line.weight, line.size_pt) / 2
            assert line.x - half >= 0 and line.x + half <= page.width, line.text
            assert not (code.y - 1 < line.y < code.y + code.size + line.size_pt * 0.35), line.text
        texts = page.text()
        assert "UBND Xã Mường Phăng" in texts and URLS["landing"] in texts.replace("\n", "")
        assert "Đường dây nóng: 0215 3 825 888 · Email: pakn@dienbien.gov.vn" in texts
        assert "Scan with your phone camera" in texts  # the English line


def test_long_names_shrink_and_wrap_instead_of_overflowing() -> None:
    unit = "Ban Quản lý các khu công nghiệp và khu kinh tế cửa khẩu quốc tế Tây Trang tỉnh Điện Biên"
    desk = "Bộ phận tiếp nhận hồ sơ và trả kết quả giải quyết thủ tục hành chính theo cơ chế một cửa liên thông"
    page = _page("landing", "A5", unit=unit, desk=desk)
    assert page.code.size >= 40
    (code,) = decode(Image.open(io.BytesIO(render_png(page))))
    assert code.text == URLS["landing"]


@pytest.mark.usefixtures("poppler")
@pytest.mark.parametrize("paper", sorted(PAPERS))
def test_the_pdf_poster_is_vector_with_extractable_vietnamese(tmp_path: Path, paper: str) -> None:
    pdf = tmp_path / "poster.pdf"
    pdf.write_bytes(render_pdf(_page("landing", paper)))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    text = unicodedata.normalize("NFC", text)
    assert "UBND Xã Mường Phăng" in text
    assert "Bộ phận tiếp nhận và trả kết quả" in text
    assert "Đường dây nóng: 0215 3 825 888" in text and "pakn@dienbien.gov.vn" in text
    assert URLS["landing"] in text
    assert "Scan with your phone camera" in text
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    size_line = next(line for line in info.splitlines() if line.startswith("Page size:"))
    width_pt, height_pt = (float(part) for part in size_line.split(":")[1].split("pts")[0].split(" x "))
    assert (round(width_pt / 72 * 25.4), round(height_pt / 72 * 25.4)) == PAPERS[paper]
    images = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert len(images.strip().splitlines()) == 2  # only the header: the code is drawn, not pasted as a bitmap
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "BeVietnamPro" in fonts and " no " not in fonts.split("\n", 2)[2]  # embedded, subset, with ToUnicode
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(pdf), str(tmp_path / "page")], check=True)
    (png,) = tmp_path.glob("page*.png")
    (code,) = decode(Image.open(png))
    assert code.text == URLS["landing"]


def test_the_svg_poster_is_standalone_vector() -> None:
    svg = render_svg(_page("telegram", "A4"))
    assert svg.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert 'width="210.0mm" height="297.0mm"' in svg
    assert "UBND Xã Mường Phăng" in svg and "@font-face" in svg and "data:font/ttf;base64," in svg
    assert "<image" not in svg and "http://" not in svg.replace("http://www.w3.org/2000/svg", "")
    assert 'shape-rendering="crispEdges"' in svg
