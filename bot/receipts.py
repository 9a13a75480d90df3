"""Receipt codes: short, typable, unguessable, self-checking (``DB-7K3M-9QXF``).

Seven random Crockford base32 characters (35 bits from ``secrets``) and one check character. Crockford
base32 has no I, L, O or U, so what a citizen reads aloud or copies by hand maps back to one code.

The check character makes the weighted sum ``sum(c[i] * a**(7 - i))`` over the eight characters zero,
computed in the field GF(32) (``a`` a primitive element). Any single wrong character changes the sum,
and so does swapping any two characters, adjacent or not. Luhn mod 32 was the first idea but it misses
one adjacent swap: ``0Z`` and ``Z0`` give the same sum, because doubling 31 folds back to 31.
"""

from __future__ import annotations

import re
import secrets
import unicodedata

from bot.errors import ValidationError

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PAYLOAD_CHARS = 7
CODE_CHARS = PAYLOAD_CHARS + 1
_VALUE = {char: value for value, char in enumerate(ALPHABET)}
_CONFUSABLES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS_RE = re.compile(r"[\s\-_.\u2010-\u2015\u2212]+")
_PREFIX_RE = re.compile(r"[A-Z0-9]*")
_GF_MODULUS = 0b100101  # x^5 + x^2 + 1, primitive: x generates all 31 non-zero elements


def _times_x(value: int) -> int:
    """Multiply by ``x`` in GF(32)."""
    value <<= 1
    return value ^ _GF_MODULUS if value & 0b100000 else value


def _checksum(values: list[int]) -> int:
    """Horner evaluation of the weighted sum in GF(32); addition is XOR."""
    total = 0
    for value in values:
        total = _times_x(total) ^ value
    return total


def _check_char(payload: str) -> str:
    return ALPHABET[_times_x(_checksum([_VALUE[char] for char in payload]))]


def _format(prefix: str, body: str) -> str:
    grouped = f"{body[:4]}-{body[4:]}"
    return f"{prefix}-{grouped}" if prefix else grouped


def _checked_prefix(prefix: str) -> str:
    prefix = prefix.upper()
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"receipt prefix must be letters and digits: {prefix!r}")
    return prefix


def code_from_payload(prefix: str, payload: str) -> str:
    """The full code for seven payload characters; ``new_receipt_code`` draws them at random."""
    if len(payload) != PAYLOAD_CHARS or any(char not in _VALUE for char in payload):
        raise ValueError(f"payload must be {PAYLOAD_CHARS} Crockford base32 characters: {payload!r}")
    return _format(_checked_prefix(prefix), payload + _check_char(payload))


def example_code(prefix: str) -> str:
    """The code shown as an example wherever a citizen is asked for one: a valid one, so that a citizen who types it
    to see what happens is told "no such item", not "that is not a code"."""
    return code_from_payload(prefix, "7K3M9QX")


def new_receipt_code(prefix: str) -> str:
    """A fresh code such as ``DB-7K3M-9QXF``. Not unique by itself: the caller checks the database."""
    payload = "".join(secrets.choice(ALPHABET) for _ in range(PAYLOAD_CHARS))
    return code_from_payload(prefix, payload)


def normalise_receipt_code(raw: str, prefix: str) -> str | None:
    """The canonical code for what a citizen typed, or None if it is malformed or fails its check.

    Accepts lower case, missing or extra dashes and spaces, O for 0, I or L for 1, with or without the
    prefix.
    """
    prefix = _checked_prefix(prefix)
    compact = _SEPARATORS_RE.sub("", unicodedata.normalize("NFKC", raw)).upper()
    if len(compact) == len(prefix) + CODE_CHARS and prefix:
        if compact[: len(prefix)].translate(_CONFUSABLES) != prefix.translate(_CONFUSABLES):
            return None
        compact = compact[len(prefix) :]
    if len(compact) != CODE_CHARS:
        return None
    body = compact.translate(_CONFUSABLES)
    if any(char not in _VALUE for char in body):
        return None
    if _checksum([_VALUE[char] for char in body]) != 0:
        return None
    return _format(prefix, body)


def parse_receipt_code(raw: str, prefix: str) -> str:
    """Like ``normalise_receipt_code`` but raises the error shown to the citizen."""
    code = normalise_receipt_code(raw, prefix)
    if code is None:
        raise ValidationError("error.invalid_receipt")
    return code
