"""Signed desk payloads: what a desk's QR code carries into ``/start`` and ``/d/{payload}``.

Format ``d1_<desk code>_<signature>``: version 1, the desk code (lower-case letters, digits and ``-``,
at most 32), and 16 characters of url-safe base64 of an HMAC-SHA256 (96 bits) with the server's signing
key. At most 52 characters of ``[A-Za-z0-9_-]``, so it fits a Telegram ``/start`` payload (64).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from bot.privacy import Keys

VERSION = "d1"
DESK_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_PAYLOAD = re.compile(r"^d1_(?P<code>[a-z0-9][a-z0-9-]{0,31})_(?P<sig>[A-Za-z0-9_-]{16})$")


def _signature(keys: Keys, desk_code: str) -> str:
    digest = hmac.new(keys.signing, f"desk:{VERSION}:{desk_code}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:16]


def sign_desk(keys: Keys, desk_code: str) -> str:
    if not DESK_CODE.match(desk_code):
        raise ValueError(f"invalid desk code {desk_code!r}: use a-z, 0-9 and '-', at most 32 characters")
    return f"{VERSION}_{desk_code}_{_signature(keys, desk_code)}"


def verify_desk(keys: Keys, payload: str) -> str | None:
    """The desk code in a genuine payload; None for anything forged, truncated or malformed."""
    match = _PAYLOAD.match(payload or "")
    if match is None:
        return None
    if not hmac.compare_digest(match["sig"], _signature(keys, match["code"])):
        return None
    return match["code"]
