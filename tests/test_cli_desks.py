"""``pakn desk …`` and ``pakn qr`` as an administrator runs them: real processes, real files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from bot.cli import main
from tests.test_cli import pakn

PUBLIC = "https://pakn.dienbien.gov.vn"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PAKN_DATA_DIR": str(tmp_path / "data"),
        "PAKN_DATABASE_URL": "",
        "PAKN_PUBLIC_URL": PUBLIC,
        "PAKN_TELEGRAM_BOT_USERNAME": "",
        "PAKN_SECRET_KEY": "",
    }


def _decode(path: Path) -> str:
    (code,) = zxingcpp.read_barcodes(Image.open(path))
    return code.text


def test_desk_add_list_disable_enable(env: dict[str, str]) -> None:
    added = pakn("desk", "add", "--unit", "ubnd_xa_muong_phang", "--name", "Bộ phận một cửa", env=env)
    assert added.returncode == 0, added.stderr
    assert "added desk ubnd-xa-muong-phang-1: Bộ phận một cửa — UBND Xã Mường Phăng" in added.stdout
    landing = re.search(r"landing:  (\S+)", added.stdout)
    assert landing is not None and landing.group(1).startswith(f"{PUBLIC}/d/d1_ubnd-xa-muong-phang-1_")
    assert "telegram:" not in added.stdout

    second = pakn("desk", "add", "--unit", "so_tu_phap", "--name", "Quầy hộ tịch", "--code", "stp-1", env=env)
    assert second.returncode == 0, second.stderr
    listing = pakn("desk", "list", env=env)
    assert re.search(r"stp-1 +so_tu_phap +- +yes +Quầy hộ tịch", listing.stdout)
    assert re.search(r"ubnd-xa-muong-phang-1 +ubnd_xa_muong_phang +3325 +yes +Bộ phận một cửa", listing.stdout)

    disabled = pakn("desk", "disable", "stp-1", env=env)
    assert disabled.returncode == 0 and "disabled" in disabled.stdout
    assert "stp-1" not in pakn("desk", "list", "--active", env=env).stdout
    assert re.search(r"stp-1 .*DISABLED", pakn("desk", "list", env=env).stdout)
    refused = pakn("qr", "--desk", "stp-1", "--out", str(Path(env["PAKN_DATA_DIR"]) / "p"), env=env)
    assert refused.returncode == 1 and "is disabled" in refused.stderr
    assert pakn("desk", "enable", "stp-1", env=env).returncode == 0


def test_bad_desk_commands_say_what_is_wrong_in_one_line(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process (``main(argv)``) for speed; the other tests run the real command."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for args, code, message in (
        (("desk", "add", "--unit", "ubnd_nowhere", "--name", "Quầy"), 2, "There is no unit “ubnd_nowhere”"),
        (("desk", "add", "--unit", "so_y_te", "--name", "Q", "--code", "Bad_Code"), 2, "Invalid desk code"),
        (("desk", "add", "--unit", "so_y_te", "--name", "  "), 2, "The desk needs a name"),
        (("desk", "disable", "no-such-desk"), 2, "There is no desk with code"),
        (("desk", "list", "--unit", "nope"), 2, "unknown unit"),
        (("qr", "--desk", "nope", "--out", "/tmp/x"), 2, "unknown desk"),
        (("qr", "--all", "--out", "/tmp/x"), 1, "no desk in service"),
        (("qr", "--out", "/tmp/x"), 2, "one of the arguments --desk --all is required"),
        (("qr", "--all", "--format", "gif", "--out", "/tmp/x"), 2, "unknown format 'gif'"),
        (("qr", "--all", "--paper", "A3", "--out", "/tmp/x"), 2, "unknown paper 'A3'"),
    ):
        try:
            returned = main(list(args))
        except SystemExit as exit_:  # argparse's own refusals
            returned = int(exit_.code or 0)
        stderr = capsys.readouterr().err
        assert returned == code, (args, stderr)
        assert message in stderr, (args, stderr)
        assert "Traceback" not in stderr
        said = [line for line in stderr.splitlines() if line.startswith("pakn")]
        assert len(said) == 1, stderr  # one line that says what is wrong


def test_every_desk_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (("desk", "add"), ("desk", "list"), ("desk", "disable"), ("desk", "enable"), ("qr",)):
        with pytest.raises(SystemExit) as exited:
            main([*args, "--help"])
        assert exited.value.code == 0 and "usage: pakn" in capsys.readouterr().out, args


def test_posters_for_every_desk_in_every_format(env: dict[str, str], tmp_path: Path) -> None:
    for unit, name in (("ubnd_xa_muong_phang", "Bộ phận một cửa"), ("so_y_te", "Quầy cấp phép hành nghề")):
        assert pakn("desk", "add", "--unit", unit, "--name", name, env=env).returncode == 0
    out = tmp_path / "posters"
    result = pakn("qr", "--all", "--format", "pdf,svg,png", "--paper", "a5", "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert "posters: 100%" in result.stderr and "2/2" in result.stderr  # the batch's progress bar
    assert "wrote 6 files for 2 desks (A5, landing)" in result.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        f"{code}-landing-a5.{ext}" for code in ("so-y-te-1", "ubnd-xa-muong-phang-1") for ext in ("pdf", "png", "svg")
    ]
    url = _decode(out / "ubnd-xa-muong-phang-1-landing-a5.png")
    assert url.startswith(f"{PUBLIC}/d/d1_ubnd-xa-muong-phang-1_")
    assert (out / "ubnd-xa-muong-phang-1-landing-a5.pdf").read_bytes().startswith(b"%PDF-")

    no_bot = pakn("qr", "--all", "--target", "telegram", "--out", str(out), env=env)
    assert no_bot.returncode == 3 and "PAKN_TELEGRAM_BOT_USERNAME" in no_bot.stderr
    telegram_env = {**env, "PAKN_TELEGRAM_BOT_USERNAME": "@PaknDienBienBot"}
    result = pakn(
        "qr", "--desk", "so-y-te-1", "--target", "telegram", "--format", "png", "--out", str(out), env=telegram_env
    )
    assert result.returncode == 0, result.stderr
    assert "posters:" not in result.stderr  # no progress bar for a single desk
    telegram = _decode(out / "so-y-te-1-telegram-a4.png")
    assert re.fullmatch(r"https://t\.me/PaknDienBienBot\?start=d1_so-y-te-1_[A-Za-z0-9_-]{16}", telegram)


def test_a_poster_for_a_local_address_warns(env: dict[str, str], tmp_path: Path) -> None:
    local = {**env, "PAKN_PUBLIC_URL": "http://127.0.0.1:8080"}
    assert pakn("desk", "add", "--unit", "so_y_te", "--name", "Quầy", env=local).returncode == 0
    result = pakn("qr", "--all", "--format", "svg", "--out", str(tmp_path / "p"), env=local)
    assert result.returncode == 0
    assert (
        "warning: PAKN_PUBLIC_URL is http://127.0.0.1:8080: phones outside this network cannot open it" in result.stderr
    )
