"""``pakn digest`` as an administrator uses it: a real process on an SQLite database holding the golden week."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from bot.app import build_context, prepare_database
from config import load_settings
from models.tables import Outbox
from tests.conftest import TestClock
from tests.digest_seed import UNIT, VN, add_official, local, seed_golden_week

ROOT = Path(__file__).resolve().parent.parent


def pakn(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=120,
    )


@pytest.fixture
def data_env(tmp_path: Path) -> dict[str, str]:
    return {"PAKN_DATA_DIR": str(tmp_path / "data"), "PAKN_DATABASE_URL": ""}


@pytest.fixture
async def golden(data_env: dict[str, str]) -> dict[str, str]:
    """The golden week of tests/digest_seed.py in the CLI's own database."""
    ctx = await build_context(load_settings({**os.environ, **data_env}))
    await prepare_database(ctx, migrate=True)
    clock = TestClock(datetime.now(UTC))
    ctx.clock = clock

    def set_now(moment: datetime) -> None:
        at = moment.astimezone(VN)
        clock.set_local(at.year, at.month, at.day, at.hour, at.minute)

    try:
        return await seed_golden_week(ctx, set_now)
    finally:
        await ctx.engine.dispose()


async def _add_head(data_env: dict[str, str]) -> None:
    ctx = await build_context(load_settings({**os.environ, **data_env}))
    try:
        await add_official(ctx, "head", UNIT, created_at=local(2026, 3, 1))
    finally:
        await ctx.engine.dispose()


async def _outbox_weeks(data_env: dict[str, str]) -> list[str]:
    ctx = await build_context(load_settings({**os.environ, **data_env}))
    try:
        async with ctx.sessions() as session:
            rows = (await session.execute(select(Outbox).where(Outbox.recipient_kind == "official"))).scalars()
            return [row.payload["digest"]["week"] for row in rows if "digest" in row.payload]
    finally:
        await ctx.engine.dispose()


async def test_preview_writes_the_html_png_and_xlsx(
    golden: dict[str, str], data_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = pakn("digest", "--unit", UNIT, "--week", "2026-W10", "--preview", str(out), env=data_env)
    assert result.returncode == 0, result.stderr
    stem = out / "pakn-ubnd_xa_muong_phang-2026-W10"
    assert sorted(p.name for p in out.iterdir()) == [f"{stem.name}.html", f"{stem.name}.png", f"{stem.name}.xlsx"]
    page = Path(f"{stem}.html").read_text(encoding="utf-8")
    assert "<b>📊 Báo cáo tuần 10 năm 2026</b>" in page and "UBND Xã Mường Phăng" in page
    assert f"<code>{golden['H']}</code> · Phản ánh · quá hạn 30 ngày làm việc" in page
    assert f'<img src="{stem.name}.png"' in page and f'href="{stem.name}.xlsx"' in page
    assert Path(f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    book = load_workbook(io.BytesIO(Path(f"{stem}.xlsx").read_bytes()))
    overdue = [row[0] for row in book["Quá hạn"].iter_rows(min_row=2, values_only=True)]
    assert overdue == [golden["H"], golden["A"]]
    assert "1 digest(s) for 2026-W10 written to" in result.stdout


async def test_preview_in_english_and_of_a_quiet_unit(
    golden: dict[str, str], data_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "quiet"
    result = pakn(
        "digest", "--unit", "so_tu_phap", "--week", "2026-W10", "--preview", str(out), "--locale", "en", env=data_env
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in out.iterdir()] == ["pakn-so_tu_phap-2026-W10.html"]
    assert "No items this week, and nothing overdue." in (out / "pakn-so_tu_phap-2026-W10.html").read_text()
    assert "no items this week: the short message only" in result.stdout


async def test_send_respects_exactly_once(golden: dict[str, str], data_env: dict[str, str]) -> None:
    result = pakn("digest", "--unit", UNIT, "--week", "2026-W10", "--send", env=data_env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "pakn: ubnd_xa_muong_phang has no active head; nothing sent (invite one with `pakn invite`)"
    )
    await _add_head(data_env)
    result = pakn("digest", "--unit", UNIT, "--week", "2026-W10", "--send", env=data_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ubnd_xa_muong_phang: digest for 2026-W10 queued for 1 head(s)"
    again = pakn("digest", "--all", "--week", "2026-W10", "--send", env=data_env)
    assert again.returncode == 0, again.stderr
    assert "2026-W10: 0 digest(s) queued for 0 recipient(s); 1 already sent;" in again.stdout
    assert await _outbox_weeks(data_env) == ["2026-W10"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--unit", "ubnd_nowhere", "--preview", "x"), "pakn: unknown unit 'ubnd_nowhere' (see `pakn units list`)"),
        (("--all", "--week", "2026-W54", "--preview", "x"), "2026 has no week 54"),
        (("--all", "--week", "47/2026", "--preview", "x"), "not an ISO week (YYYY-Www, e.g. 2026-W07)"),
        (("--all", "--week", "2099-W01", "--preview", "x"), "pakn: week 2099-W01 has not started yet"),
        (("--all", "--preview", "x", "--send"), "not allowed with argument"),
        (("--all",), "one of the arguments --preview --send is required"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    args: tuple[str, ...], message: str, data_env: dict[str, str], tmp_path: Path
) -> None:
    result = pakn("digest", *args, env=data_env)
    assert result.returncode == 2
    assert message in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_digest_has_help(data_env: dict[str, str]) -> None:
    result = pakn("digest", "--help", env=data_env)
    assert result.returncode == 0 and "usage: pakn digest" in result.stdout and "--preview DIR" in result.stdout


def test_the_current_week_cannot_be_sent(data_env: dict[str, str]) -> None:
    week = datetime.now(VN).strftime("%G-W%V")
    result = pakn("digest", "--all", "--week", week, "--send", env=data_env)
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == f"pakn: week {week} has not ended yet; only a finished week can be sent"


def test_the_default_week_is_last_week(data_env: dict[str, str], tmp_path: Path) -> None:
    from datetime import timedelta

    last = (datetime.now(VN) - timedelta(days=7)).strftime("%G-W%V")
    result = pakn("digest", "--unit", UNIT, "--preview", str(tmp_path / "o"), env=data_env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o" / f"pakn-{UNIT}-{last}.html").exists()


async def test_preview_of_every_unit_includes_the_province(
    golden: dict[str, str], data_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "all"
    result = pakn("digest", "--all", "--week", "2026-W10", "--preview", str(out), env=data_env)
    assert result.returncode == 0, result.stderr
    assert "60 digest(s) for 2026-W10 written to" in result.stdout  # 59 units and the province
    names = {p.name for p in out.iterdir()}
    assert len([n for n in names if n.endswith(".html")]) == 60
    # Files only where something happened: the two busy units, Sở Xây dựng (a transfer out), the province.
    assert {n for n in names if n.endswith(".png")} == {
        f"pakn-{code}-2026-W10.png" for code in (UNIT, "so_y_te", "so_xay_dung", "province")
    }
    page = (out / "pakn-province-2026-W10.html").read_text(encoding="utf-8")
    assert "Toàn tỉnh Điện Biên" in page and "1. Sở Y tế: 1/1 (100%)" in page
    assert "2. UBND Xã Mường Phăng: 5/8 (62,5%)" in page
