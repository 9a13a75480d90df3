"""A small server-side SVG bar chart: no JavaScript, no third-party library, readable without colour.

Each week has two bars side by side: items received, and desk ratings stacked by face. The chart has a
title and a description for screen readers; the same figures are in the table under it.
"""

from __future__ import annotations

from datetime import date

from markupsafe import Markup, escape

from bot.i18n import format_day, format_number, gettext
from bot.stats import Figures

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 34, 40
RECEIVED = "#b71c1c"
DESK_COLOURS = {3: "#2e7d32", 2: "#c79100", 1: "#6d4c41"}


def _nice_ceiling(value: int) -> int:
    """An axis maximum whose four gridlines fall on round whole numbers (4 × 1, 2 or 5 × 10^n)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if 4 * step * factor >= value:
                return 4 * step * factor
        step *= 10


def weekly_chart(locale: str, week_starts: list[date], weeks: list[Figures], chart_id: str = "chart") -> Markup:
    top_value = _nice_ceiling(max([1] + [max(w.received, w.desk_ratings) for w in weeks]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(weeks))
    bar = slot * 0.36

    def y(value: float) -> float:
        return TOP + plot_h - value / top_value * plot_h

    title = escape(gettext(locale, "stats.chart_title"))
    desc = escape(gettext(locale, "stats.chart_desc"))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="11">',
        f'<title id="{chart_id}-t">{title}</title><desc id="{chart_id}-d">{desc}</desc>',
    ]
    for step in range(5):
        value = top_value * step // 4
        label = format_number(locale, value)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#d5dbe3"/>'
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" fill="#54606e">{label}</text>'
        )
    for index, (start, week) in enumerate(zip(week_starts, weeks, strict=True)):
        x = LEFT + index * slot + slot * 0.12
        label = escape(f"{format_day(locale, start)}: {week.received} / {week.desk_ratings}")
        parts.append(f"<g><title>{label}</title>")
        if week.received:
            parts.append(
                f'<rect x="{x:.1f}" y="{y(week.received):.1f}" width="{bar:.1f}" '
                f'height="{y(0) - y(week.received):.1f}" fill="{RECEIVED}"/>'
            )
        base = 0
        for score in (1, 2, 3):
            count = week.desk_scores.get(score, 0)
            if count:
                parts.append(
                    f'<rect x="{x + bar + 2:.1f}" y="{y(base + count):.1f}" width="{bar:.1f}" '
                    f'height="{y(base) - y(base + count):.1f}" fill="{DESK_COLOURS[score]}"/>'
                )
                base += count
        parts.append("</g>")
        if index % 2 == 0 or len(weeks) <= 6:
            day = escape(format_day(locale, start)[:5])
            parts.append(
                f'<text x="{x + bar:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" fill="#54606e">{day}</text>'
            )
    legend = [
        (RECEIVED, "stats.legend.received"),
        (DESK_COLOURS[3], "stats.legend.happy"),
        (DESK_COLOURS[2], "stats.legend.neutral"),
        (DESK_COLOURS[1], "stats.legend.unhappy"),
    ]
    lx = LEFT
    for colour, key in legend:
        text = gettext(locale, key)
        parts.append(
            f'<rect x="{lx}" y="8" width="12" height="12" fill="{colour}"/>'
            f'<text x="{lx + 16}" y="18" fill="#1b2430">{escape(text)}</text>'
        )
        lx += 24 + int(len(text) * 6.2)
    parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#1b2430"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
