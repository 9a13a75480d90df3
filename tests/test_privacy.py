"""Protecting the citizen: key handling, the vault, keyed hashes, pseudonyms, masking and normalisation."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import stat
import subprocess
import sys
import threading
import time
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from bot.app import StartupError, check_secret_key
from bot.citizens import citizen_id_for_chat
from bot.context import Context
from bot.errors import ValidationError
from bot.privacy import (
    _KEEP_FORMAT,
    EMAIL_MARK,
    ID_MARK,
    PHONE_MARK,
    Keys,
    SecretKeyError,
    Vault,
    VaultError,
    _fold_char,
    _fold_digits,
    load_keys,
    lookup_hash,
    mask_text,
    normalise_phone,
    normalise_text,
    pseudonym_tag,
)
from models.tables import Citizen

ROOT = Path(__file__).resolve().parents[1]
MASTER = bytes(range(32))
posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- key file ---------------------------------------------------------------------------------------


@posix_only
def test_key_file_is_created_private_with_its_directory(tmp_path: Path) -> None:
    key_file = tmp_path / "pakn-data" / "secret.key"
    keys = load_keys("", key_file)
    assert _mode(key_file) == 0o600
    content = key_file.read_bytes()
    assert content.endswith(b"\n")
    assert len(base64.b64decode(content.strip(), validate=True)) == 32
    assert keys == Keys.from_master(base64.b64decode(content.strip()))
    assert [p.name for p in key_file.parent.iterdir()] == ["secret.key"]  # no temporary file left


def test_key_file_is_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    first = load_keys("", key_file)
    content = key_file.read_bytes()
    second = load_keys("", key_file)
    assert first == second
    assert key_file.read_bytes() == content


@pytest.mark.parametrize(
    "content",
    [b"not a key\n", b"", b"\n", base64.b64encode(bytes(16)) + b"\n", base64.b64encode(bytes(33)), b"\xff\xfe\x00"],
)
def test_corrupt_key_file_is_refused_with_a_clear_message(tmp_path: Path, content: bytes) -> None:
    key_file = tmp_path / "secret.key"
    key_file.write_bytes(content)
    key_file.chmod(0o600)
    os.utime(key_file, (time.time() - 60, time.time() - 60))  # not one being written right now
    with pytest.raises(SecretKeyError) as excinfo:
        load_keys("", key_file)
    message = str(excinfo.value)
    assert message == f"key file {key_file} is corrupt: expected 32 bytes in base64"
    assert "\n" not in message
    assert key_file.read_bytes() == content  # never overwritten: it may be the only copy of a real key


def test_key_file_accepts_url_safe_base64_and_surrounding_whitespace(tmp_path: Path) -> None:
    raw = bytes([0xFB] * 32)  # encodes with "+" and "/" in standard base64, "-" and "_" in url-safe
    key_file = tmp_path / "secret.key"
    key_file.write_bytes(b"  " + base64.urlsafe_b64encode(raw) + b"\r\n")
    key_file.chmod(0o600)
    assert load_keys("", key_file) == Keys.from_master(raw)


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "secret.key"
    load_keys("", key_file)
    key_file.chmod(mode)
    with pytest.raises(SecretKeyError, match=r"chmod 600") as excinfo:
        load_keys("", key_file)
    assert str(key_file) in str(excinfo.value)


def test_key_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    key_file.mkdir()
    with pytest.raises(SecretKeyError, match=str(key_file)):
        load_keys("", key_file)


def test_concurrent_first_starts_in_threads_end_with_one_key(tmp_path: Path) -> None:
    key_file = tmp_path / "data" / "secret.key"
    count = 16
    barrier = threading.Barrier(count)
    results: list[Keys] = []
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            results.append(load_keys("", key_file))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == count
    assert len({keys.vault for keys in results}) == 1
    assert load_keys("", key_file) == results[0]
    assert [p.name for p in key_file.parent.iterdir()] == ["secret.key"]


_CHILD = """
import sys, time
from pathlib import Path
from bot.privacy import load_keys
go = Path(sys.argv[2])
Path(sys.argv[3]).touch()
while not go.exists():
    time.sleep(0.001)
print(load_keys("", Path(sys.argv[1])).vault.hex())
"""


def test_concurrent_first_starts_in_processes_end_with_one_key(tmp_path: Path) -> None:
    key_file = tmp_path / "data" / "secret.key"
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(key_file), str(go), str(tmp_path / f"ready{n}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
            text=True,
        )
        for n in range(4)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{n}").exists() for n in range(4)) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outputs = [child.communicate(timeout=60) for child in children]
    assert [child.returncode for child in children] == [0, 0, 0, 0], outputs
    assert len({out.strip() for out, _err in outputs}) == 1
    assert load_keys("", key_file).vault.hex() == outputs[0][0].strip()


def test_the_loser_of_a_creation_race_uses_the_winners_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "secret.key"
    winner = bytes([7] * 32)
    real_link = os.link

    def link_after_the_other_process(src: Path, dst: Path) -> None:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, base64.b64encode(winner) + b"\n")
        os.close(fd)
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link_after_the_other_process)
    assert load_keys("", key_file) == Keys.from_master(winner)
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]


@posix_only
def test_key_file_is_created_where_hard_links_are_not_supported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: Path, dst: Path) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    key_file = tmp_path / "secret.key"
    keys = load_keys("", key_file)
    assert _mode(key_file) == 0o600
    monkeypatch.undo()
    assert load_keys("", key_file) == keys


def test_a_key_file_still_being_written_is_waited_for(tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # as the fallback path does
    raw = bytes([9] * 32)

    def finish_writing() -> None:
        time.sleep(0.2)
        os.write(fd, base64.b64encode(raw) + b"\n")
        os.close(fd)

    writer = threading.Thread(target=finish_writing)
    writer.start()
    try:
        assert load_keys("", key_file) == Keys.from_master(raw)
    finally:
        writer.join()


# --- PAKN_SECRET_KEY --------------------------------------------------------------------------------


def test_secret_key_as_hex(tmp_path: Path) -> None:
    raw = bytes(range(100, 132))
    key_file = tmp_path / "secret.key"
    assert load_keys(raw.hex(), key_file) == Keys.from_master(raw)
    assert load_keys(raw.hex().upper(), key_file) == Keys.from_master(raw)
    assert not key_file.exists()  # the environment wins; no file is created


@pytest.mark.parametrize(
    "encode",
    [
        base64.b64encode,
        base64.urlsafe_b64encode,
        lambda raw: base64.b64encode(raw).rstrip(b"="),
        lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"="),
    ],
)
def test_secret_key_as_base64(tmp_path: Path, encode: object) -> None:
    raw = bytes([0xFB, 0xFF] * 16)
    text = encode(raw).decode()  # type: ignore[operator]
    assert load_keys(text, tmp_path / "secret.key") == Keys.from_master(raw)
    assert load_keys(f"  {text}\n", tmp_path / "secret.key") == Keys.from_master(raw)


def test_secret_key_as_passphrase(tmp_path: Path) -> None:
    passphrase = "mùa xuân trên bản Mường Phăng, hoa ban nở trắng"
    keys = load_keys(passphrase, tmp_path / "secret.key")
    assert keys == load_keys(passphrase, tmp_path / "secret.key")
    assert keys != load_keys(passphrase + "!", tmp_path / "secret.key")
    assert keys != Keys.from_master(passphrase.encode()[:32])
    assert not (tmp_path / "secret.key").exists()


@pytest.mark.parametrize("secret", ["s3cret", "x" * 31, "ab" * 15])
def test_short_secret_key_is_refused_without_echoing_it(tmp_path: Path, secret: str) -> None:
    with pytest.raises(SecretKeyError, match="PAKN_SECRET_KEY is too short") as excinfo:
        load_keys(secret, tmp_path / "secret.key")
    assert secret not in str(excinfo.value)


def test_sub_keys_are_distinct_and_never_printed() -> None:
    keys = Keys.from_master(MASTER)
    values = [keys.vault, keys.lookup, keys.pseudonym, keys.signing, keys.session]
    assert len(set(values)) == 5
    assert all(len(value) == 32 for value in values)
    assert MASTER not in values
    for value in values:
        assert value.hex() not in repr(keys)
        assert repr(value) not in repr(keys)
    with pytest.raises(SecretKeyError):
        Keys.from_master(bytes(16))


# --- vault ------------------------------------------------------------------------------------------


@given(st.text())
def test_vault_round_trip(plaintext: str) -> None:
    vault = Vault(Keys.from_master(MASTER))
    assert vault.decrypt(vault.encrypt(plaintext, "citizen.name"), "citizen.name") == plaintext


def test_vault_blob_layout_and_no_plaintext_inside() -> None:
    vault = Vault(Keys.from_master(MASTER))
    phone = "+84912345678"
    first = vault.encrypt(phone, "citizen.phone")
    second = vault.encrypt(phone, "citizen.phone")
    assert first[0] == 1
    assert len(first) == 1 + 12 + len(phone.encode()) + 16
    assert first != second  # random nonce: equal phones cannot be spotted in the table
    for blob in (first, second):
        assert phone.encode() not in blob
        assert b"912345678" not in blob


def test_vault_tampered_blob_fails() -> None:
    vault = Vault(Keys.from_master(MASTER))
    blob = vault.encrypt("Lò Văn Minh", "citizen.name")
    for index in range(len(blob)):
        tampered = bytearray(blob)
        tampered[index] ^= 0x01
        with pytest.raises(VaultError):
            vault.decrypt(bytes(tampered), "citizen.name")
    for truncated in (b"", blob[:1], blob[:13], blob[:-1]):
        with pytest.raises(VaultError):
            vault.decrypt(truncated, "citizen.name")


def test_vault_wrong_purpose_or_key_fails() -> None:
    vault = Vault(Keys.from_master(MASTER))
    blob = vault.encrypt("0912345678", "citizen.phone")
    with pytest.raises(VaultError):
        vault.decrypt(blob, "citizen.name")
    with pytest.raises(VaultError):
        Vault(Keys.from_master(bytes(32))).decrypt(blob, "citizen.phone")
    assert not issubclass(VaultError, SecretKeyError)


# --- keyed hashes and pseudonyms --------------------------------------------------------------------


def test_lookup_hash_is_stable_and_distinct_per_channel() -> None:
    keys = Keys.from_master(MASTER)
    telegram = lookup_hash(keys, "telegram", 123456789)
    assert re.fullmatch(r"[0-9a-f]{64}", telegram)
    assert telegram == lookup_hash(Keys.from_master(MASTER), "telegram", "123456789")
    assert telegram != lookup_hash(keys, "zalo", 123456789)
    assert telegram != lookup_hash(keys, "telegram", 123456780)
    assert telegram != lookup_hash(Keys.from_master(bytes(32)), "telegram", 123456789)
    assert "123456789" not in telegram
    with pytest.raises(ValueError):
        lookup_hash(keys, "tele:gram", 1)


def test_pseudonym_differs_between_items() -> None:
    keys = Keys.from_master(MASTER)
    tags = [pseudonym_tag(keys, item_id) for item_id in range(1, 1001)]
    assert all(re.fullmatch(r"[0-9A-F]{4}", tag) for tag in tags)
    assert tags[0] != tags[1]
    assert len(set(tags)) > 990  # 16 bits: a few birthday collisions, no pattern
    assert pseudonym_tag(keys, 1) == pseudonym_tag(Keys.from_master(MASTER), 1)
    other = Keys.from_master(bytes(32))
    assert [pseudonym_tag(other, item_id) for item_id in range(1, 11)] != tags[:10]


# --- masking ----------------------------------------------------------------------------------------

SENSITIVE = [
    ("Tôi là Lò Văn Minh, SĐT 0912 345 678, nhà ở bản Nà Nhạn.", ["0912 345 678"]),
    ("Gọi cho tôi theo số +84 912.345.678 nhé cán bộ.", ["+84 912.345.678"]),
    ("Số của chị Hoa là 091-234-5678, số của anh Tú là 0987654321.", ["091-234-5678", "0987654321"]),
    ("Điện thoại bàn nhà văn hoá: 0215 3 825 888 (giờ hành chính).", ["0215 3 825 888"]),
    ("Liên hệ (0215) 3825888 hoặc (024) 3825 8888.", ["(0215) 3825888", "3825888", "3825 8888"]),
    ("Zalo 84912345678, hoặc (+84) 912 345 678.", ["84912345678", "912 345 678"]),
    ("Số cũ của tôi +84 (0) 386 123 456 vẫn dùng được.", ["386 123 456"]),
    ("SĐT:0338123456.", ["0338123456"]),
    ("ĐT0912345678 hoặc 0912345678,0987654321 hoặc 0912345678-0987654321", ["912345678", "987654321"]),
    ("Ngày 03.05.2026 0912 345 678 có gọi tôi.", ["345 678", "0912"]),
    ("Tổ 5-0912345678 là số nhà trưởng bản.", ["0912345678", "912345678"]),
    ("Căn cước công dân số 011203012345, cấp ngày 12/03/2021.", ["011203012345"]),
    ("CCCD: 001 203 012 345 hoặc 0012 0301 2345.", ["001 203 012 345", "0012 0301 2345"]),
    ("CMND cũ của bố tôi là 040123456, còn của mẹ 040 987 654.", ["040123456", "040 987 654"]),
    ("Email: lo.van.minh@gmail.com, hoặc minh_lv+pakn@dienbien.gov.vn.", ["lo.van.minh", "gmail", "minh_lv"]),
    ("Gửi giúp về nguyễn.hoà@yahoo.com.vn hoặc abc @ gmail.com.", ["nguyễn.hoà", "yahoo", "abc @"]),
]


@pytest.mark.parametrize(("text", "secrets"), SENSITIVE)
def test_mask_text_hides_phones_ids_and_emails(text: str, secrets: list[str]) -> None:
    masked = mask_text(text)
    for secret in secrets:
        assert secret not in masked, masked
    assert PHONE_MARK in masked or ID_MARK in masked or EMAIL_MARK in masked


def test_mask_text_uses_one_marker_per_kind() -> None:
    text = "Tôi tên Minh, SĐT 0912 345 678, CCCD 011203012345, email minh@gmail.com."
    assert mask_text(text) == f"Tôi tên Minh, SĐT {PHONE_MARK}, CCCD {ID_MARK}, email {EMAIL_MARK}."


HARMLESS = [
    "Ngày 12/03/2026 tôi đã nộp 1.500.000 đồng tại xã.",
    "Nhà số 12, tổ 5, bản Nà Nhạn, xã Mường Phăng, năm 2025 bị sạt lở.",
    "Thửa đất số 045, tờ bản đồ số 12, diện tích 120 m2.",
    "Dự án 120.000.000.000 đồng khởi công ngày 05.06.2026 lúc 08:30.",
    "Tôi đã chuyển 150000000 đồng và 2.500.000đ, còn nợ 35.000.000 VNĐ.",
    "Quyết định số 1234/QĐ-UBND ngày 12-03-2026, Km 12+500 quốc lộ 12.",
    "Gọi đường dây nóng 1900 1234 hoặc 113, 114, 115.",
    "Toạ độ 21.3860, 103.0230; từ năm 1990 đến 2025; 3 hộ, 27 khẩu.",
]


@pytest.mark.parametrize("text", HARMLESS)
def test_mask_text_keeps_dates_money_and_house_numbers(text: str) -> None:
    assert mask_text(text) == text


MOBILE_PREFIXES = [
    *(f"3{d}" for d in "23456789"),
    *("52", "55", "56", "58", "59", "70", "76", "77", "78", "79"),
    *(f"8{d}" for d in "123456789"),
    *(f"9{d}" for d in "0123456789"),
]
LANDLINE_AREAS = ["215", "203", "206", "212", "214", "222", "236", "251", "290", "24", "28"]


@st.composite
def national_numbers(draw: st.DrawFn) -> str:
    """A Vietnamese national significant number (after the 0): mobile 9 digits or landline 10."""
    digits = st.text("0123456789", min_size=1, max_size=1)
    if draw(st.booleans()):
        head = draw(st.sampled_from(MOBILE_PREFIXES))
        return head + "".join(draw(digits) for _ in range(7))
    head = draw(st.sampled_from(LANDLINE_AREAS))
    return head + "".join(draw(digits) for _ in range(10 - len(head)))


@st.composite
def written_phones(draw: st.DrawFn) -> tuple[str, str]:
    """(how a citizen typed it, national number): any prefix, one kind of separator anywhere between digits.

    One kind per number, as people type: "0912.345.678", "091-234-5678", "0 9 1 2 3 4 5 6 7 8".
    """
    national = draw(national_numbers())
    prefix = draw(st.sampled_from(["0", "+84", "84", "0084", "+84 ", "(+84) ", "+84 (0) ", "(0", "84 0"]))
    separator = draw(st.sampled_from([" ", ".", "-"]))
    gaps = [separator if split else "" for split in draw(st.lists(st.booleans(), min_size=10, max_size=10))]
    if prefix[-1] in " (":
        gaps[0] = ""
    body = "".join(gap + digit for gap, digit in zip(gaps, national, strict=False))
    if prefix == "(0":  # area code in parentheses: "(0215) 3825888"
        split = 3 if national[0] == "2" else 2
        body = national[:split] + ") " + national[split:]
    return prefix + body, national


FILLER = [
    "Tôi", "ở", "bản", "Nà", "Nhạn", "xã", "Mường", "Phăng", "điện", "thoại", "số", "12", "tổ", "5",
    "ngày", "12/03/2026", "năm", "2025", "1.500.000 đồng", ",", ".", ":", "SĐT", "gọi", "hoặc",
    "Zalo", "liên", "hệ", "đường", "hỏng", "cán", "bộ", "địa", "chính", "(", ")", "đã", "báo", "\n",
    "05.06.2026", "3-2026", "tháng", "03/2026", "2.500.000đ", "35.000.000", "27", "khẩu", "lúc", "08:30",
]  # fmt: skip


@given(
    written_phones(),
    st.lists(st.sampled_from(FILLER), max_size=12),
    st.sampled_from([" ", ": ", ", ", " (", "\n", "SĐT", "ĐT:"]),
    st.sampled_from([" ", ". ", ", ", ") ", "\n", "! "]),
    st.lists(st.sampled_from(FILLER), max_size=12),
)
def test_no_phone_survives_masking(
    phone: tuple[str, str], before: list[str], opening: str, closing: str, after: list[str]
) -> None:
    written, national = phone
    text = " ".join(before) + opening + written + closing + " ".join(after)
    masked = mask_text(text)
    assert written not in masked
    digits, filler_digits = re.sub(r"\D", "", masked), re.sub(r"\D", "", "".join(before + after))
    for start in range(len(national) - 6):
        window = national[start : start + 7]
        assert window not in digits or window in filler_digits, (text, masked)
    assert PHONE_MARK in masked


@st.composite
def harmless_texts(draw: st.DrawFn) -> str:
    """Dates, money with its unit, years and small numbers, in any order."""
    day, month, year = draw(st.integers(1, 31)), draw(st.integers(1, 12)), draw(st.integers(1945, 2035))
    separator = draw(st.sampled_from("/.-"))
    amount = f"{draw(st.integers(1_000, 999_999_999_999)):,}".replace(",", ".")
    tokens = [
        f"{day:02d}{separator}{month:02d}{separator}{year}",
        f"{day}{separator}{month}{separator}{year}",
        f"{month:02d}{separator}{year}",
        amount + draw(st.sampled_from([" đồng", "đ", " VNĐ", " triệu", " tỷ đồng"])),
        str(year),
        str(draw(st.integers(1, 999))),
        *draw(st.lists(st.sampled_from(["số", "tổ", "ngày", "năm", "tháng", "nhà", ",", "và", "thửa"]))),
    ]
    return draw(st.sampled_from([" ", ", ", "; "])).join(draw(st.permutations(tokens)))


@given(harmless_texts())
def test_masking_keeps_any_mix_of_dates_money_and_small_numbers(text: str) -> None:
    assert mask_text(text) == text


@given(written_phones())
def test_normalise_phone_round_trip(phone: tuple[str, str]) -> None:
    written, national = phone
    normalised = normalise_phone(written)
    assert normalised == "+84" + national
    assert normalise_phone(normalised) == normalised
    assert normalise_phone("0" + national) == normalised
    assert mask_text(normalised) == PHONE_MARK


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "12345",
        "0912 345 67",
        "091234567890",
        "912345678",
        "0012345678",
        "0412345678",
        "02153825888 9",
        "+1 202 555 0100",
        "+84 12 345 678",
        "0912 345 678 ext",
        "09l2345678",
        "++84912345678",
    ],
)
def test_normalise_phone_refuses_what_is_not_a_vietnamese_number(raw: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        normalise_phone(raw)
    assert excinfo.value.key == "error.invalid_phone"


def test_normalise_phone_accepts_full_width_digits() -> None:
    assert normalise_phone("０９１２ ３４５ ６７８") == "+84912345678"


# --- text normalisation -----------------------------------------------------------------------------


def test_normalise_text_composes_vietnamese() -> None:
    decomposed = unicodedata.normalize("NFD", "Đường bản Nà Nhạn bị hỏng")
    assert decomposed != "Đường bản Nà Nhạn bị hỏng"
    assert normalise_text(decomposed) == "Đường bản Nà Nhạn bị hỏng"


def test_normalise_text_spaces_lines_and_controls() -> None:
    raw = "  Đường   hỏng\u00a0 \u00a0nặng \r\nđã báo\x07 xã\x00 \n\n\tcột 2\u200b  \u202e "
    assert normalise_text(raw) == "Đường hỏng nặng\nđã báo xã\n\n\tcột 2"


def test_normalise_text_keeps_emoji_sequences() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert normalise_text(f" nhà tôi {family} ") == f"nhà tôi {family}"


def test_full_width_and_other_script_digits_are_masked() -> None:
    assert (
        mask_text("SĐT ０９１２ ３４５ ６７８ hoặc ＋８４ ９８７ ６５４ ３２１")
        == f"SĐT {PHONE_MARK} hoặc {PHONE_MARK}"
    )
    assert (
        mask_text("CCCD \u0660\u0661\u0661\u0662\u0660\u0663\u0660\u0661\u0662\u0663\u0664\u0665") == f"CCCD {ID_MARK}"
    )


def test_hidden_characters_cannot_smuggle_a_phone_past_masking() -> None:
    text = "SĐT 0912\u200b345\u2060678"
    assert mask_text(normalise_text(text)) == f"SĐT {PHONE_MARK}"


def test_telegram_usernames_in_the_text_are_masked() -> None:
    from bot.privacy import mask_text

    masked = mask_text("Nhắn cho tôi qua @lovanbinh_88 hoặc email binh@gmail.com, tổ 5.")
    assert "lovanbinh" not in masked and "[tài khoản]" in masked and "[email]" in masked and "tổ 5" in masked


# Text as citizens send it, and the characters the cleaning is about: other scripts' digits, full-width forms,
# control and format characters (zero-width space, bidi overrides, BOM, the joiner emoji need), line breaks.
_TRICKY_CHARACTERS = "0９１２３٣۴৫\uff0b\u200b\u200d\u202e\ufeff\x00\x07\n\r\t\u2028\u2029 \u00a0ệ"
_TRICKY_TEXT = st.lists(st.text(max_size=3) | st.text(st.sampled_from(_TRICKY_CHARACTERS), min_size=1)).map("".join)


@given(_TRICKY_TEXT)
def test_folding_changes_each_character_as_fold_char_says(text: str) -> None:
    """Only the characters that need folding are looked at; the result is the character-by-character one."""
    assert _fold_digits(text) == "".join(_fold_char(char) for char in text)


@given(_TRICKY_TEXT)
def test_normalised_text_keeps_every_visible_character_in_order_and_nothing_invisible(text: str) -> None:
    """What an official reads: every character the citizen could see, in order; no control or format
    character that could hide a phone number from masking; single spaces, nothing around the text."""
    normalised = normalise_text(text)

    def hidden(char: str) -> bool:
        category = unicodedata.category(char)
        return (category == "Cc" and char not in "\n\t") or (category == "Cf" and char not in _KEEP_FORMAT)

    assert not [char for char in normalised if hidden(char)]
    visible = [char for char in unicodedata.normalize("NFC", text) if not char.isspace() and not hidden(char)]
    assert [char for char in normalised if not char.isspace()] == visible
    assert normalised == normalised.strip()
    assert "  " not in normalised


async def test_the_service_will_not_start_with_a_key_that_does_not_open_its_data(ctx: Context) -> None:
    """A lost key file regenerated, or a typo in PAKN_SECRET_KEY: without this check the service started,
    recognised no official and reached no citizen. Any key goes while nothing is sealed yet."""
    other = Keys.from_master(bytes(range(1, 33)))
    stranger = dataclasses.replace(ctx, keys=other, vault=Vault(other))
    await check_secret_key(stranger)
    async with ctx.sessions.begin() as session:
        await citizen_id_for_chat(ctx, session, "telegram", "5001")
        damaged = await citizen_id_for_chat(ctx, session, "telegram", "5002")
        await session.execute(update(Citizen).where(Citizen.id == damaged).values(enc_channel_id=b"\x01" * 45))
    await check_secret_key(ctx)  # one damaged row (the outbox sets it aside) does not stop the service
    with pytest.raises(StartupError, match="PAKN_SECRET_KEY does not open the data already in the database"):
        await check_secret_key(stranger)
