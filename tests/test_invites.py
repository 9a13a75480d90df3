"""Invites: one-time, expiring, unforgeable; the CLI prints the link and writes its QR code."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
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
    png = re.search(r"^QR code: (.+)$", result.stdout, re.MULTILINE)
    assert png is not None and Path(png.group(1)) == tmp_path / "invite-ubnd_xa_muong_phang-head-1.png"
    decoded = zxingcpp.read_barcodes(Image.open(png.group(1)))
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


def _count(tmp_path: Path, table: str) -> int:
    with sqlite3.connect(tmp_path / "data" / "pakn.db") as connection:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_an_out_folder_that_cannot_be_made_stores_no_invite(tmp_path: Path) -> None:
    assert _pakn(tmp_path, "db", "upgrade").returncode == 0
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    for out in (not_a_folder, not_a_folder / "sub"):
        result = _pakn(tmp_path, "invite", "--unit", "thanh_tra", "--role", "officer", "--out", str(out))
        assert result.returncode == 2
        assert _one_line(result) == f"pakn: --out: cannot create the folder {out}: " + (
            "File exists" if out == not_a_folder else "Not a directory"
        )
    assert (_count(tmp_path, "invites"), _count(tmp_path, "audit_events")) == (0, 0)


def test_a_qr_code_that_cannot_be_written_stores_no_invite(tmp_path: Path) -> None:
    out = tmp_path / "qr"
    out.mkdir()
    (out / "invite-thanh_tra-officer-1.png").write_text("someone else's file")
    result = _pakn(tmp_path, "invite", "--unit", "thanh_tra", "--role", "officer", "--out", str(out))
    assert result.returncode == 2
    assert _one_line(result).startswith(f"pakn: --out: cannot write {out / 'invite-thanh_tra-officer-1.png'}")
    assert (out / "invite-thanh_tra-officer-1.png").read_text() == "someone else's file"
    assert (_count(tmp_path, "invites"), _count(tmp_path, "audit_events")) == (0, 0)


def test_two_invites_for_the_same_unit_and_role_keep_both_qr_codes(tmp_path: Path) -> None:
    codes = {}
    for _ in range(2):
        result = _pakn(tmp_path, "invite", "--unit", "thanh_tra", "--role", "officer", "--out", str(tmp_path))
        assert result.returncode == 0, result.stderr
        link = re.search(r"^https://t\.me/\S+$", result.stdout, re.MULTILINE)
        png = re.search(r"^QR code: (.+)$", result.stdout, re.MULTILINE)
        assert link is not None and png is not None
        codes[png.group(1)] = link.group(0)
    assert sorted(codes) == [str(tmp_path / f"invite-thanh_tra-officer-{n}.png") for n in (1, 2)]
    for png, link in codes.items():
        assert [code.text for code in zxingcpp.read_barcodes(Image.open(png))] == [link]


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


def test_an_unknown_unit_is_bad_usage_for_every_officials_command(tmp_path: Path) -> None:
    for args in (
        ("invite", "--unit", "nope", "--role", "officer", "--out", str(tmp_path / "qr")),
        ("officials", "list", "--unit", "nope"),
        ("items", "list", "--unit", "nope"),
    ):
        result = _pakn(tmp_path, *args)
        assert result.returncode == 2, args
        assert _one_line(result) == "pakn: unknown unit 'nope' (see `pakn units list`)", args
    assert not (tmp_path / "qr").exists() or not any((tmp_path / "qr").iterdir())


async def _join(tmp_path: Path, token: str) -> int:
    """Open the invite as a Telegram account would, in the CLI's database; the new official's id."""
    from bot.app import build_context
    from config import load_settings

    ctx = await build_context(load_settings(_env(tmp_path)))
    try:
        async with ctx.sessions.begin() as session:
            official = await officials.accept_invite(
                ctx, session, token, telegram_user_id=4242, display_name="Cán bộ A", locale="vi"
            )
        return official.id
    finally:
        await ctx.engine.dispose()


def test_revoking_a_missing_or_revoked_official_says_which(tmp_path: Path) -> None:
    result = _pakn(tmp_path, "officials", "revoke", "99")
    assert result.returncode == 1
    assert _one_line(result).startswith("pakn: no official with id 99")
    result = _pakn(tmp_path, "invite", "--unit", "thanh_tra", "--role", "officer", "--out", str(tmp_path))
    token = re.search(r"start=(inv_[A-Za-z0-9_-]+)", result.stdout)
    assert token is not None, result.stderr
    official = asyncio.run(_join(tmp_path, token.group(1)))
    result = _pakn(tmp_path, "officials", "revoke", str(official))
    assert result.returncode == 0, result.stderr
    assert f"official {official} (officer of thanh_tra) revoked" in result.stdout
    with sqlite3.connect(tmp_path / "data" / "pakn.db") as connection:
        connection.execute("UPDATE officials SET revoked_at = '2026-03-01 02:00:00.000000' WHERE id = ?", (official,))
    result = _pakn(tmp_path, "officials", "revoke", str(official))
    assert result.returncode == 1
    assert _one_line(result) == f"pakn: official {official} (officer of thanh_tra) was already revoked on 2026-03-01"
    assert _count(tmp_path, "audit_events") == 3  # the invite, the joining, one revocation
