"""Protecting the citizen: keys, the identity vault, keyed look-ups, pseudonyms and redaction.

One master secret (``PAKN_SECRET_KEY`` or the key file) is split with HKDF into independent sub-keys, so
a leak of one derived value (say, a pseudonym) says nothing about the others. Identities are stored only
encrypted (``Vault``) or as keyed hashes (``lookup_hash``); officials see per-item pseudonyms and text
with phone numbers, ID numbers and e-mail addresses masked (``mask_text``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.errors import ValidationError

KEY_BYTES = 32
MIN_PASSPHRASE_CHARS = 32
_VAULT_VERSION = 1
_NONCE_BYTES = 12
_TAG_BYTES = 16


class SecretKeyError(Exception):
    """The master secret is missing, malformed or exposed; the message tells the operator what to fix."""


class VaultError(Exception):
    """A vault blob could not be decrypted: tampered, truncated, wrong key or wrong purpose."""


# --- keys -------------------------------------------------------------------------------------------


def _hkdf(material: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(material)


@dataclass(frozen=True)
class Keys:
    """Sub-keys derived from one master secret; each use has its own key so no two uses can be related."""

    vault: bytes = field(repr=False)
    lookup: bytes = field(repr=False)
    pseudonym: bytes = field(repr=False)
    signing: bytes = field(repr=False)
    session: bytes = field(repr=False)

    @classmethod
    def from_master(cls, master: bytes) -> Keys:
        if len(master) != KEY_BYTES:
            raise SecretKeyError(f"master secret must be {KEY_BYTES} bytes, got {len(master)}")
        return cls(
            vault=_hkdf(master, b"pakn/vault/v1"),
            lookup=_hkdf(master, b"pakn/lookup/v1"),
            pseudonym=_hkdf(master, b"pakn/pseudonym/v1"),
            signing=_hkdf(master, b"pakn/signing/v1"),
            session=_hkdf(master, b"pakn/session/v1"),
        )

    def __repr__(self) -> str:  # never print key material into logs or tracebacks
        return "Keys(<redacted>)"


def _decode_base64_key(text: str) -> bytes | None:
    """Standard or url-safe base64 of exactly 32 bytes (padding optional), else None."""
    if not re.fullmatch(r"[A-Za-z0-9+/_\-]+={0,2}", text):
        return None
    unpadded = text.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == KEY_BYTES else None


def _master_from_setting(secret_key: str) -> bytes:
    if re.fullmatch(r"[0-9A-Fa-f]{64}", secret_key):
        return bytes.fromhex(secret_key)
    raw = _decode_base64_key(secret_key)
    if raw is not None:
        return raw
    if len(secret_key) >= MIN_PASSPHRASE_CHARS:
        return _hkdf(secret_key.encode("utf-8"), b"pakn/master/v1", salt=b"pakn passphrase")
    raise SecretKeyError(
        f"PAKN_SECRET_KEY is too short ({len(secret_key)} characters): use 64 hex characters, "
        f"base64 of 32 bytes, or a passphrase of at least {MIN_PASSPHRASE_CHARS} characters"
    )


def _fsync_dir(directory: Path) -> None:
    """Make the new directory entry durable: losing the key file means losing every stored identity."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_new(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_key_file(key_file: Path) -> None:
    """Create the key file once, atomically: it appears complete, or not at all, and never twice.

    The key is written to a private temporary file (O_CREAT|O_EXCL, mode 0600) and published with a hard
    link, which fails if another process got there first; the loser then reads the winner's key.
    """
    try:
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise SecretKeyError(f"cannot create directory {key_file.parent} for the key file: {exc.strerror}") from None
    content = base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n"
    temporary = key_file.with_name(f".{key_file.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        _write_new(temporary, content)
        try:
            os.link(temporary, key_file)
        except FileExistsError:
            return
        except OSError:
            # No hard links on this file system: fall back to exclusive creation in place; a concurrent
            # reader may briefly see an empty file, which _read_key_file waits out.
            with contextlib.suppress(FileExistsError):
                _write_new(key_file, content)
    except OSError as exc:
        raise SecretKeyError(f"cannot create key file {key_file}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    _fsync_dir(key_file.parent)


def _read_key_file(key_file: Path) -> bytes:
    for _attempt in range(20):
        try:
            fd = os.open(key_file, os.O_RDONLY)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise SecretKeyError(f"cannot read key file {key_file}: {exc.strerror}") from None
        try:
            status = os.fstat(fd)
            mode = status.st_mode
            if not stat.S_ISREG(mode):
                raise SecretKeyError(f"key file {key_file} is not a regular file")
            if os.name == "posix" and mode & 0o077:
                raise SecretKeyError(
                    f"key file {key_file} is accessible to other users (mode {stat.S_IMODE(mode):04o}): "
                    f"run chmod 600 {key_file}"
                )
            data = os.read(fd, 4096)
        except OSError as exc:
            raise SecretKeyError(f"cannot read key file {key_file}: {exc.strerror}") from None
        finally:
            os.close(fd)
        if data or time.time() - status.st_mtime > 2:
            break
        time.sleep(0.05)  # just created by another process that is still writing it (fallback path only)
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    raw = _decode_base64_key(text)
    if raw is None:
        raise SecretKeyError(f"key file {key_file} is corrupt: expected {KEY_BYTES} bytes in base64")
    return raw


def load_keys(secret_key: str, key_file: Path) -> Keys:
    """Keys from ``PAKN_SECRET_KEY`` if set, else from the key file, created (mode 0600) on first start."""
    secret_key = secret_key.strip()
    if secret_key:
        return Keys.from_master(_master_from_setting(secret_key))
    try:
        return Keys.from_master(_read_key_file(key_file))
    except FileNotFoundError:
        pass
    _create_key_file(key_file)
    try:
        return Keys.from_master(_read_key_file(key_file))
    except FileNotFoundError:
        raise SecretKeyError(f"key file {key_file} disappeared right after it was created") from None


# --- vault ------------------------------------------------------------------------------------------


class Vault:
    """AES-GCM for identity fields. The purpose is authenticated, so a blob copied to another column fails."""

    def __init__(self, keys: Keys) -> None:
        self._aead = AESGCM(keys.vault)

    def __repr__(self) -> str:
        return "Vault(<redacted>)"

    def encrypt(self, plaintext: str | bytes, purpose: str) -> bytes:
        """``version (1) | nonce (12) | ciphertext+tag``; a random nonce per call, so equal values differ. Text
        is sealed as UTF-8 (bytes as they are)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        sealed = self._aead.encrypt(nonce, data, purpose.encode("utf-8"))
        return bytes([_VAULT_VERSION]) + nonce + sealed

    def decrypt(self, blob: bytes, purpose: str) -> str:
        blob = bytes(blob)
        if len(blob) < 1 + _NONCE_BYTES + _TAG_BYTES:
            raise VaultError(f"cannot decrypt {purpose}: blob too short")
        if blob[0] != _VAULT_VERSION:
            raise VaultError(f"cannot decrypt {purpose}: unknown vault version {blob[0]}")
        nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            plaintext = self._aead.decrypt(nonce, sealed, purpose.encode("utf-8"))
        except InvalidTag:
            raise VaultError(f"cannot decrypt {purpose}: wrong key, wrong purpose or tampered data") from None
        return plaintext.decode("utf-8")


# --- keyed hashes -----------------------------------------------------------------------------------


def lookup_hash(keys: Keys, channel: str, channel_id: str | int) -> str:
    """Find a citizen by channel id without storing it; without the key the hash cannot be brute-forced."""
    if ":" in channel:
        raise ValueError(f"channel name must not contain ':': {channel!r}")
    message = f"{channel}:{channel_id}".encode()
    return hmac.new(keys.lookup, message, hashlib.sha256).hexdigest()


def pseudonym_tag(keys: Keys, item_id: int) -> str:
    """``7F3A``: keyed per item, so officials cannot link two items of the same citizen."""
    digest = hmac.new(keys.pseudonym, f"item:{item_id}".encode(), hashlib.sha256).digest()
    return digest[:2].hex().upper()


# --- text -------------------------------------------------------------------------------------------

PHONE_MARK = "[số điện thoại]"
ID_MARK = "[số giấy tờ]"
EMAIL_MARK = "[email]"
ACCOUNT_MARK = "[tài khoản]"
# A Telegram (or similar) @username written in the text: 5–32 letters, digits or underscores.
_ACCOUNT_RE = re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{4,31}\b")

_SP = r"[ \t\u00a0]"
# Between two digits of one number: a dot or dash (maybe spaced), one or two spaces, or a parenthesis
# around an area code: "0912 345 678", "091-234-5678", "(0215) 3 825 888", "+84 (0) 912.345.678".
_SEP = rf"(?:{_SP}?[.\-]{_SP}?|{_SP}{{1,2}}|{_SP}?\({_SP}?|{_SP}?\){_SP}?)"
_D = rf"(?:{_SEP}?\d)"
# National significant number (after 0 or 84): landline 2xx + 7–8 digits (10 in all), mobile 9 digits
# (03x, 05x, 07x, 08x, 09x), and old 11-digit mobiles (01x) that people still write.
_NATIONAL = rf"(?:[35789]{_D}{{8}}|[12]{_D}{{9}})"
_PHONE_RE = re.compile(
    rf"""
    (?<!\d)
    (?:
        (?:\({_SP}?)?0{_SEP}?{_NATIONAL}
      | (?:\({_SP}?\+?{_SP}?84{_SP}?\)|\+{_SP}?84|00{_SP}?84|84) {_SEP}? (?:\(?0\)?{_SEP}?)? {_NATIONAL}
    )
    (?!\d)
    """,
    re.VERBOSE,
)
# Dates ("12.03.2026", "05-2026") and money ("3.457.566") are found first: a phone-shaped run that
# overlaps a date, or starts or ends inside an amount, is a misreading, as in "ngày 03.05.2026 0912 345 678"
# ("05.2026 0912" would leave "345 678" visible) or "08-03-2030 09/07" or "3.096 3.457.566".
_DATE_RE = re.compile(
    r"""
    (?<![\d./\-])
    (?: (?:0?[1-9]|[12]\d|3[01]) (?P<sep>[./\-]) (?:0?[1-9]|1[0-2]) (?P=sep) (?:19|20)\d{2}
      | (?:0?[1-9]|1[0-2]) [./\-] (?:19|20)\d{2}
    )
    (?![./\-]?\d)
    """,
    re.VERBOSE,
)
_MONEY_RE = re.compile(r"(?<![\d.,])\d{1,3}(?:(?P<sep>[.,])\d{3})(?:(?P=sep)\d{3})*(?![.,]?\d)")

# CCCD: 12 digits (province code 001–096 first, so it starts with 0; sometimes typed in groups of 3 or 4);
# CMND: 9 digits. Grouped forms must stand alone, so "120.000.000.000 đồng" is not read as "000.000.000".
# Plain runs of 9 or 12 digits are IDs unless a currency word follows.
_ID_RE = re.compile(
    r"""
    (?<!\d)(?<!\d[.,\-])
    (?:
        0\d{2}(?P<s3>[ .\-])\d{3}(?P=s3)\d{3}(?P=s3)\d{3}
      | 0\d{3}(?P<s4>[ .\-])\d{4}(?P=s4)\d{4}
      | 0\d{2}(?P<c3>[ .\-])\d{3}(?P=c3)\d{3}
    )
    (?!\d)(?![.,\-]\d)
    | (?<!\d) (?:\d{12}|\d{9}) (?!\d)
    """,
    re.VERBOSE,
)
_CURRENCY_RE = re.compile(r"\s*(?:đồng|đ(?!\w)|vnđ|vnd|₫|triệu|tỷ|tỉ|nghìn|ngàn|usd|\$)", re.IGNORECASE)
_EMAIL_RE = re.compile(r"[\w.+%\-]+ ?@ ?[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,}(?!\w)")


def _mask_id(match: re.Match[str]) -> str:
    number = match.group(0)
    if not number.startswith("0") and _CURRENCY_RE.match(match.string, match.end()):
        return number  # "150000000 đồng" is money, not an ID card
    return ID_MARK


def _mask_phones(text: str) -> str:
    dates = [match.span() for match in _DATE_RE.finditer(text)]
    amounts = [match.span() for match in _MONEY_RE.finditer(text)]
    parts: list[str] = []
    done = search_from = 0
    while match := _PHONE_RE.search(text, search_from):
        start, end = match.span()
        if (
            any(start < d_end and d_start < end for d_start, d_end in dates)
            or any(a_start < start < a_end or a_start < end < a_end for a_start, a_end in amounts)
            or ((start, end) in amounts and _CURRENCY_RE.match(text, end))  # "84.561.247.799 triệu"
        ):
            search_from = start + 1  # try the same text again from the next character
            continue
        parts += [text[done:start], PHONE_MARK]
        done = search_from = end
    parts.append(text[done:])
    return "".join(parts)


def _fold_char(char: str) -> str:
    if "\uff01" <= char <= "\uff5e":  # full-width forms from CJK keyboards: "０９１２", "＋８４"
        return chr(ord(char) - 0xFEE0)
    if char.isdecimal() and not char.isascii():
        return str(unicodedata.decimal(char))
    return char


# What _fold_char changes: full-width forms, and decimal digits other than ASCII's (``\d`` is Unicode's Nd).
_FOLDED_RE = re.compile(r"[\uff01-\uff5e]|(?![0-9])\d")


def _fold_digits(text: str) -> str:
    """Digits in any script, and full-width punctuation, as ASCII, so no phone hides in other forms."""
    return text if text.isascii() else _FOLDED_RE.sub(lambda match: _fold_char(match.group()), text)


def mask_text(text: str) -> str:
    """Mask phone numbers, ID-card numbers, e-mail addresses and @usernames before a unit sees the text.

    Dates, money with separators, years and short numbers (house numbers, "tổ 5") are kept: the unit
    needs them to act. When in doubt about a phone number, mask it.
    """
    text = _EMAIL_RE.sub(EMAIL_MARK, _fold_digits(text))
    text = _ACCOUNT_RE.sub(ACCOUNT_MARK, text)
    text = _mask_phones(text)
    return _ID_RE.sub(_mask_id, text)


# What of a citizen's file an official sees that the citizen typed or named: masked as the text is.
_TYPED_FILE_FIELDS = ("caption", "name")


def mask_attachments(vault: Vault, attachments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A citizen's files as officials may see them. A photo's caption is typed like any message (an anonymous
    citizen's "photo I took — Lò Văn Pọm, 0912345678"), and a file's name can carry an ID number: both are masked
    as the description is, and, where masking changed them, the originals are kept sealed (``sealed``), as the
    description's are. The file itself stays on Telegram's servers."""
    shown = []
    for attachment in attachments:
        copy = dict(attachment)
        original = {key: copy[key] for key in _TYPED_FILE_FIELDS if isinstance(copy.get(key), str) and copy[key]}
        masked = {key: mask_text(value) for key, value in original.items()}
        if masked != original:
            copy.update(masked)
            sealed = vault.encrypt(json.dumps(original, ensure_ascii=False), "attachment.original")
            copy["sealed"] = base64.b64encode(sealed).decode("ascii")
        shown.append(copy)
    return shown


_PHONE_CHARS_RE = re.compile(r"[\s.\-()]")


def normalise_phone(raw: str) -> str:
    """E.164 (``+84912345678``), so the same phone typed two ways is stored and compared as one."""
    compact = _PHONE_CHARS_RE.sub("", unicodedata.normalize("NFKC", raw))
    for country in ("+84", "0084", "84"):
        if compact.startswith(country) and len(compact) >= len(country) + 9:
            national = compact.removeprefix(country)
            national = national[1:] if national.startswith("0") else national  # "+84 (0) 912 345 678"
            break
    else:
        if not compact.startswith("0"):
            raise ValidationError("error.invalid_phone")
        national = compact[1:]
    if not national.isascii() or not national.isdigit():
        raise ValidationError("error.invalid_phone")
    valid = (len(national) == 9 and national[0] in "35789") or (len(national) == 10 and national[0] == "2")
    if not valid:
        raise ValidationError("error.invalid_phone")
    return "+84" + national


_KEEP_FORMAT = {"\u200d"}  # zero-width joiner: part of emoji sequences
_HSPACE_RE = re.compile(r"[^\S\n\t]+")


def _keep_char(char: str) -> bool:
    if char in "\n\t":
        return True
    category = unicodedata.category(char)
    if category == "Cc":
        return False
    # Invisible format characters (zero-width space, bidi overrides, BOM) could hide a phone number
    # from masking or make text read differently to the official.
    return category != "Cf" or char in _KEEP_FORMAT


def normalise_text(text: str) -> str:
    """NFC (some phones send Vietnamese decomposed), no control characters, single spaces, trimmed."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    if not text.replace("\n", "").replace("\t", "").isprintable():  # printable: no Cc, no Cf, nothing to drop
        text = "".join(char for char in text if _keep_char(char))
    text = _HSPACE_RE.sub(" ", text)
    text = re.sub(r" +\n", "\n", text)
    return text.strip()
