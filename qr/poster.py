"""Print-ready desk posters: one layout, drawn three ways (vector PDF, vector SVG, 300 dpi PNG).

The layout is computed once in millimetres from the text metrics of Be Vietnam Pro (a font made for
Vietnamese, so every stacked diacritic has its own glyph), and each renderer only draws it. That keeps the
three formats identical and lets the tests check one layout. The PDF and the SVG embed a subset of the
font, so a print shop without the font prints the same poster.
"""

from __future__ import annotations

import base64
import io
import os
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

import fontpkg_be_vietnam_pro

from qr.codes import QUIET_ZONE, Symbol

Weight = Literal["regular", "bold", "italic"]
Format = Literal["pdf", "svg", "png"]
FORMATS: tuple[Format, ...] = ("pdf", "svg", "png")
PAPERS: dict[str, tuple[float, float]] = {"A4": (210.0, 297.0), "A5": (148.0, 210.0)}
PNG_DPI = 300
PT = 25.4 / 72  # millimetres per typographic point

FONT_DIR = Path(fontpkg_be_vietnam_pro.ROOT) / "files"
FONT_FILES: dict[Weight, str] = {
    "regular": "BeVietnamPro-Regular.ttf",
    "bold": "BeVietnamPro-Bold.ttf",
    "italic": "BeVietnamPro-Italic.ttf",
}
RED = (183, 28, 28)
INK = (27, 36, 48)
GREY = (84, 96, 110)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


def font_path(weight: Weight) -> Path:
    return FONT_DIR / FONT_FILES[weight]


@cache
def _metrics(weight: Weight) -> tuple[dict[int, str], dict[str, tuple[int, int]], int]:
    from fontTools.ttLib import TTFont  # imported when needed: every ``pakn`` command loads this module

    font = TTFont(font_path(weight), lazy=True)
    return font.getBestCmap(), font["hmtx"].metrics, font["head"].unitsPerEm


def text_width(text: str, weight: Weight, size_pt: float) -> float:
    """Advance width in millimetres (no kerning: a little wider than drawn, which is the safe side)."""
    cmap, advances, units = _metrics(weight)
    total = 0
    for char in text:
        glyph = cmap.get(ord(char)) or cmap.get(ord("?"), ".notdef")
        total += advances.get(glyph, (units // 2, 0))[0]
    return total / units * size_pt * PT


def missing_glyphs(text: str, weight: Weight = "regular") -> set[str]:
    cmap = _metrics(weight)[0]
    return {char for char in text if not char.isspace() and ord(char) not in cmap}


def wrap(text: str, weight: Weight, size_pt: float, width: float) -> list[str]:
    """Greedy word wrap; a single word wider than the line (a URL) is cut between characters."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if text_width(candidate, weight, size_pt) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while text_width(current, weight, size_pt) > width:
            cut = len(current) - 1
            while cut > 1 and text_width(current[:cut], weight, size_pt) > width:
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    return lines


# --- layout -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float
    color: tuple[int, int, int]


@dataclass(frozen=True)
class Line:
    """One line of text centred on ``x`` with its baseline at ``y``."""

    x: float
    y: float
    text: str
    size_pt: float
    weight: Weight
    color: tuple[int, int, int]


@dataclass(frozen=True)
class Code:
    """The QR symbol; ``x``, ``y`` and ``size`` include the quiet zone, which is drawn white."""

    x: float
    y: float
    size: float
    symbol: Symbol

    @property
    def module(self) -> float:
        return self.size / self.symbol.size_with_quiet_zone


@dataclass(frozen=True)
class Layout:
    width: float
    height: float
    paper: str
    title: str
    boxes: tuple[Box, ...]
    lines: tuple[Line, ...]
    code: Code

    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@dataclass(frozen=True)
class PosterText:
    """Everything written on a poster, already in its final words (the caller localises)."""

    band: str
    unit_name: str
    desk_name: str
    instructions: str
    english: str
    privacy: str
    url_label: str
    url: str
    hotline: str
    footer: str

    def normalised(self) -> PosterText:
        def nfc(value: str) -> str:
            return unicodedata.normalize("NFC", " ".join(value.split()))

        return PosterText(
            band=nfc(self.band),
            unit_name=nfc(self.unit_name),
            desk_name=nfc(self.desk_name),
            instructions=nfc(self.instructions),
            english=nfc(self.english),
            privacy=nfc(self.privacy),
            url_label=nfc(self.url_label),
            url=self.url.strip(),
            hotline=nfc(self.hotline),
            footer=nfc(self.footer),
        )


class _Column:
    """Stacks centred text blocks downwards."""

    def __init__(self, center: float, width: float, y: float, scale: float) -> None:
        self.center, self.width, self.y, self.scale = center, width, y, scale
        self.lines: list[Line] = []

    def block(
        self,
        text: str,
        size_pt: float,
        weight: Weight = "regular",
        color: tuple[int, int, int] = INK,
        *,
        gap_after: float = 2.0,
        max_lines: int = 6,
        shrink_to_lines: int | None = None,
        min_pt: float = 8,
    ) -> None:
        size = size_pt * self.scale
        lines = wrap(text, weight, size, self.width)
        # A long unit name is set smaller rather than running onto many lines, and a URL stays on one line
        # if it can: a URL cut in two is hard to type.
        while shrink_to_lines is not None and len(lines) > shrink_to_lines and size > min_pt * self.scale:
            size = max(size * 0.94, min_pt * self.scale)
            lines = wrap(text, weight, size, self.width)
        leading = size * PT * 1.28
        for text_line in lines[:max_lines]:
            self.y += leading
            self.lines.append(Line(self.center, self.y - leading * 0.22, text_line, size, weight, color))
        self.y += gap_after * self.scale


def layout(text: PosterText, symbol: Symbol, paper: str = "A5") -> Layout:
    """Place every element on the page; the QR code takes the room the text leaves, up to 78 % of the width."""
    if paper not in PAPERS:
        raise ValueError(f"unknown paper {paper!r}: use {', '.join(PAPERS)}")
    text = text.normalised()
    width, height = PAPERS[paper]
    scale = width / PAPERS["A5"][0]
    margin = 10 * scale
    inner = width - 2 * margin
    boxes: list[Box] = []

    band = _Column(width / 2, inner, 0, scale)
    band.y = 3 * scale
    band.block(text.band, 13.5, "bold", WHITE, gap_after=3.5)
    band_height = band.y
    boxes.append(Box(0, 0, width, band_height, RED))

    top = _Column(width / 2, inner, band_height + 3 * scale, scale)
    top.block(text.unit_name, 21, "bold", INK, gap_after=1.2, shrink_to_lines=2, max_lines=3)
    top.block(text.desk_name, 13, "regular", GREY, gap_after=2.5, max_lines=2)

    bottom = _Column(width / 2, inner, 0, scale)
    bottom.block(text.instructions, 11, "regular", INK, gap_after=0.8)
    bottom.block(text.privacy, 10, "bold", INK, gap_after=1.5)
    bottom.block(text.english, 9, "italic", GREY, gap_after=3)
    bottom.block(text.url_label, 8.5, "regular", GREY, gap_after=0.3)
    bottom.block(text.url, 8.5, "bold", INK, gap_after=3, max_lines=3, shrink_to_lines=1, min_pt=6.5)
    bottom.block(text.hotline, 10.5, "bold", RED, gap_after=2.5, max_lines=3)
    bottom.block(text.footer, 8, "regular", GREY, gap_after=0, max_lines=2)
    bottom_height = bottom.y
    bottom_top = height - margin * 0.8 - bottom_height

    room = bottom_top - top.y
    size = min(inner * 0.78, room)
    if size < 40:
        raise ValueError("the poster's text leaves too little room for the QR code: shorten the names")
    code = Code(x=(width - size) / 2, y=top.y + (room - size) / 2, size=size, symbol=symbol)

    lines = list(band.lines) + list(top.lines)
    lines += [Line(ln.x, ln.y + bottom_top, ln.text, ln.size_pt, ln.weight, ln.color) for ln in bottom.lines]
    rule_y = bottom_top - 1.5 * scale
    boxes.append(Box(margin, rule_y, inner, 0.35 * scale, RED))
    title = f"{text.unit_name} — {text.desk_name}"
    return Layout(width, height, paper, title, tuple(boxes), tuple(lines), code)


# --- PDF --------------------------------------------------------------------------------------------


def render_pdf(page: Layout) -> bytes:
    """A one-page vector PDF: text in the embedded font subset, the QR code as filled rectangles."""
    from fpdf import FPDF

    pdf = FPDF(unit="mm", format=(page.width, page.height))
    pdf.set_margin(0)
    pdf.set_auto_page_break(False)
    pdf.set_title(page.title)
    pdf.set_lang("vi")
    pdf.set_creator("PAKN")
    for weight in FONT_FILES:
        pdf.add_font("BeVietnamPro", {"regular": "", "bold": "B", "italic": "I"}[weight], font_path(weight))
    pdf.add_page()
    for box in page.boxes:
        pdf.set_fill_color(*box.color)
        pdf.rect(box.x, box.y, box.w, box.h, style="F")
    code = page.code
    pdf.set_fill_color(*WHITE)
    pdf.rect(code.x, code.y, code.size, code.size, style="F")
    module = code.module
    origin_x = code.x + QUIET_ZONE * module
    origin_y = code.y + QUIET_ZONE * module
    pdf.set_fill_color(*BLACK)
    with pdf.new_path() as path:
        path.style.fill_color = "#000000"
        path.style.stroke_color = None
        for row, column, length in code.symbol.runs():
            path.rectangle(origin_x + column * module, origin_y + row * module, length * module, module)
    for line in page.lines:
        pdf.set_font("BeVietnamPro", {"regular": "", "bold": "B", "italic": "I"}[line.weight], line.size_pt)
        pdf.set_text_color(*line.color)
        pdf.text(line.x - pdf.get_string_width(line.text) / 2, line.y, line.text)
    return bytes(pdf.output())


# --- SVG --------------------------------------------------------------------------------------------


def _font_subset(weight: Weight, text: str) -> bytes:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    font = TTFont(font_path(weight))
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=text + " ")
    subsetter.subset(font)
    buffer = io.BytesIO()
    font.save(buffer)
    return buffer.getvalue()


def _hex(color: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def render_svg(page: Layout) -> str:
    """A standalone vector SVG in millimetres with the used glyphs embedded (no font needs installing)."""
    faces = []
    for weight in FONT_FILES:
        used = "".join(sorted({char for line in page.lines if line.weight == weight for char in line.text}))
        if not used:
            continue
        data = base64.b64encode(_font_subset(weight, used)).decode("ascii")
        faces.append(
            f"@font-face{{font-family:'Poster {weight}';src:url(data:font/ttf;base64,{data}) format('truetype');}}"
        )
    code = page.code
    module = code.module
    path = "".join(f"M{column} {row}h{length}v1h-{length}z" for row, column, length in code.symbol.runs())
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{page.width}mm" height="{page.height}mm" '
        f'viewBox="0 0 {page.width} {page.height}" lang="vi">',
        f"<title>{escape(page.title)}</title>",
        f"<style>{''.join(faces)}</style>",
        f'<rect x="0" y="0" width="{page.width}" height="{page.height}" fill="#ffffff"/>',
    ]
    for box in page.boxes:
        parts.append(
            f'<rect x="{box.x:.3f}" y="{box.y:.3f}" width="{box.w:.3f}" height="{box.h:.3f}" fill="{_hex(box.color)}"/>'
        )
    parts.append(
        f'<rect x="{code.x:.3f}" y="{code.y:.3f}" width="{code.size:.3f}" height="{code.size:.3f}" fill="#ffffff"/>'
    )
    parts.append(
        f'<path transform="translate({code.x + QUIET_ZONE * module:.4f} {code.y + QUIET_ZONE * module:.4f}) '
        f'scale({module:.5f})" d="{path}" fill="#000000" shape-rendering="crispEdges"/>'
    )
    for line in page.lines:
        parts.append(
            f'<text x="{line.x:.3f}" y="{line.y:.3f}" font-family={quoteattr(f"Poster {line.weight}")} '
            f'font-size="{line.size_pt * PT:.3f}" fill="{_hex(line.color)}" text-anchor="middle">'
            f"{escape(line.text)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# --- PNG --------------------------------------------------------------------------------------------


def render_png(page: Layout, dpi: int = PNG_DPI) -> bytes:
    """A raster for screens and office printers; QR modules are whole pixels so edges stay sharp."""
    from PIL import Image, ImageDraw, ImageFont

    def px(mm: float) -> int:
        return round(mm / 25.4 * dpi)

    image = Image.new("RGB", (px(page.width), px(page.height)), WHITE)
    draw = ImageDraw.Draw(image)
    for box in page.boxes:
        draw.rectangle((px(box.x), px(box.y), px(box.x + box.w) - 1, px(box.y + box.h) - 1), fill=box.color)
    code = page.code
    cells = code.symbol.size_with_quiet_zone
    module = max(1, px(code.size) // cells)
    left = px(code.x) + (px(code.size) - module * cells) // 2
    top = px(code.y) + (px(code.size) - module * cells) // 2
    draw.rectangle((left, top, left + module * cells - 1, top + module * cells - 1), fill=WHITE)
    for row, column, length in code.symbol.runs():
        x = left + (QUIET_ZONE + column) * module
        y = top + (QUIET_ZONE + row) * module
        draw.rectangle((x, y, x + length * module - 1, y + module - 1), fill=BLACK)
    fonts: dict[tuple[Weight, int], ImageFont.FreeTypeFont] = {}
    for line in page.lines:
        size = max(1, round(line.size_pt / 72 * dpi))
        key = (line.weight, size)
        if key not in fonts:
            fonts[key] = ImageFont.truetype(str(font_path(line.weight)), size, layout_engine=ImageFont.Layout.BASIC)
        draw.text((px(line.x), px(line.y)), line.text, font=fonts[key], fill=line.color, anchor="ms")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", dpi=(dpi, dpi), optimize=True)
    return buffer.getvalue()


# --- files ------------------------------------------------------------------------------------------


def render(page: Layout, fmt: Format) -> bytes:
    if fmt == "pdf":
        return render_pdf(page)
    if fmt == "svg":
        return render_svg(page).encode("utf-8")
    if fmt == "png":
        return render_png(page)
    raise ValueError(f"unknown format {fmt!r}: use {', '.join(FORMATS)}")


def write_atomically(path: Path, data: bytes) -> None:
    """A half-written poster never appears under its final name (a batch may be interrupted)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_poster(page: Layout, formats: Iterable[Format], out_dir: Path, stem: str) -> list[Path]:
    written = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        write_atomically(path, render(page, fmt))
        written.append(path)
    return written


def desk_poster_text(
    *,
    province_name: str,
    unit_name: str,
    desk_name: str,
    url: str,
    telegram: bool,
    hotline_phone: str,
    hotline_email: str,
) -> PosterText:
    """The poster's words: Vietnamese, with the instructions repeated in English on one line."""
    from bot.i18n import gettext

    instructions = "poster.instructions_telegram" if telegram else "poster.instructions"
    return PosterText(
        band=gettext("vi", "poster.band"),
        unit_name=unit_name,
        desk_name=desk_name,
        instructions=gettext("vi", instructions),
        english=gettext("en", instructions),
        privacy=gettext("vi", "poster.privacy"),
        url_label=gettext("vi", "poster.url_label"),
        url=url,
        hotline=gettext("vi", "poster.hotline", phone=hotline_phone, email=hotline_email),
        footer=gettext("vi", "poster.footer", province=province_name),
    )
