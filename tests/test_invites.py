"""Invites: one-time, expiring, unforgeable; the CLI prints the link and writes its QR code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from bot import officials
from bot.context import Context
from bot.errors import DomainError
from tests.conftest import TestClock

ROOT = Path(__file__).resolve().parent.parent


async def test_an_invite_works_once_and_not_after_it_expires(ctx: Context, clock: TestClock) -> None:
    async with ctx.sessions.begin() as session:
        token = await officials.create_invite(
            ctx, session, unit_code="so_y_te", role="officer", valid_for=timedelta(days=7)
        )
        expiring = await officials.create_invite(
            ctx, session, unit_code="so_y_te", role="head", valid_for=timedelta(hours=1)
        )
    assert token.startswith("inv_") and len(token) <= 64
    async with ctx.sessions.begin() as session:
        official = await officials.accept_invite(
            ctx, session, token, telegram_user_id=42, display_name="Cán bộ A", locale="vi"
        )
    assert (official.role, official.unit_code) == ("officer", "so_y_te")
    for bad, key in ((token, "invite.used"), (token[:-2] + "xx", "invite.invalid"), ("inv_", "invite.invalid")):
        with pytest.raises(DomainError) as caught:
            async with ctx.sessions.begin() as session:
                await officials.accept_invite(ctx, session, bad, telegram_user_id=43, display_name="B", locale="vi")
        assert caught.value.key == key
    clock.advance(hours=2)
    with pytest.raises(DomainError) as caught:
        async with ctx.sessions.begin() as session:
            await officials.accept_invite(ctx, session, expiring, telegram_user_id=44, display_name="C", locale="vi")
    assert caught.value.key == "invite.expired"
    assert "hết hạn" in caught.value.vi


async def test_only_the_coordinating_unit_has_coordinators(ctx: Context) -> None:
    with pytest.raises(DomainError) as caught:
        async with ctx.sessions.begin() as session:
            await officials.create_invite(
                ctx, session, unit_code="so_y_te", role="coordinator", valid_for=timedelta(days=1)
            )
    assert caught.value.key == "error.coordinator_unit"


def test_pakn_invite_prints_a_deep_link_and_writes_its_qr_code(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PAKN_DATA_DIR": str(tmp_path / "data"),
        "PAKN_DATABASE_URL": "",
        "PAKN_TELEGRAM_BOT_USERNAME": "DienBienPaknBot",
    }

    def pakn(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
        )

    result = pakn(
        "invite", "--unit", "ubnd_xa_muong_phang", "--role", "head", "--expires", "3d", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    link = re.search(r"https://t\.me/DienBienPaknBot\?start=inv_[A-Za-z0-9_-]+", result.stdout)
    assert link is not None
    decoded = zxingcpp.read_barcodes(Image.open(tmp_path / "invite-ubnd_xa_muong_phang-head.png"))
    assert [code.text for code in decoded] == [link.group(0)]
    assert pakn("invite", "--unit", "nowhere", "--role", "head").returncode != 0
    bad = pakn("invite", "--unit", "so_y_te", "--role", "head", "--expires", "soon")
    assert bad.returncode == 2 and "--expires" in bad.stderr
    listing = pakn("officials", "list")
    assert listing.returncode == 0 and "0 officials" in listing.stdout
    missing = pakn("officials", "revoke", "99")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PAKN_DATA_DIR": str(tmp_path / "data"), "PAKN_DATABASE_URL": ""}


def _pakn(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=ROOT, env=_env(tmp_path), timeout=60
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command's only line on stderr (alembic's log lines aside)."""
    lines = [line for line in result.stderr.splitlines() if " INFO alembic." not in line]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_an_invite_is_valid_for_a_year_at_most(tmp_path: Path) -> None:
    assert officials.parse_duration("365d") == officials.parse_duration("8760h") == timedelta(days=365)
    for text in ("366d", "8761h", "3000000d", "9" * 30 + "m"):
        with pytest.raises(ValueError, match="at most 365 days"):
            officials.parse_duration(text)
    result = _pakn(tmp_path, "invite", "--unit", "thanh_tra", "--role", "officer", "--expires", "3000000d")
    assert result.returncode == 2
    assert _one_line(result) == "pakn: --expires: '3000000d' is too long: at most 365 days"


async def test_create_invite_refuses_a_validity_out_of_bounds(ctx: Context) -> None:
    for valid_for in (timedelta(0), timedelta(days=366), timedelta(days=3_000_000)):
        with pytest.raises(DomainError) as caught:
            async with ctx.sessions.begin() as session:
                await officials.create_invite(ctx, session, unit_code="so_y_te", role="officer", valid_for=valid_for)
        assert caught.value.key == "error.invalid"
