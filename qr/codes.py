"""What a desk's QR code points to, and the QR symbol itself.

Two targets: ``landing`` (``PAKN_PUBLIC_URL/d/<payload>``, the page that offers every channel and the
two-tap rating) and ``telegram`` (``https://t.me/<bot>?start=<payload>``, straight into the bot). Error
correction is at least M (15 % of the symbol may be dirty or scratched) and the quiet zone is 4 modules,
as ISO/IEC 18004 asks; segno raises the level for free when the URL fits the same symbol size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import segno

from config import Settings

Target = Literal["landing", "telegram"]
TARGETS: tuple[Target, ...] = ("landing", "telegram")
QUIET_ZONE = 4
MIN_ERROR = "M"
_ERROR_ORDER = "LMQH"


class TargetError(Exception):
    """A target that cannot be built from the settings (say, the bot's username is not set)."""


def landing_url(public_url: str, payload: str) -> str:
    return f"{public_url.rstrip('/')}/d/{payload}"


def telegram_url(bot_username: str, payload: str) -> str:
    return f"https://t.me/{bot_username.removeprefix('@')}?start={payload}"


def target_url(settings: Settings, payload: str, target: Target) -> str:
    if target == "landing":
        return landing_url(settings.public_url, payload)
    if target == "telegram":
        if not settings.telegram_bot_username:
            raise TargetError(
                "the telegram target needs the bot's username: set PAKN_TELEGRAM_BOT_USERNAME "
                "(or telegram_bot_username in the PAKN_CONFIG file)"
            )
        return telegram_url(settings.telegram_bot_username, payload)
    raise TargetError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")


@dataclass(frozen=True)
class Symbol:
    """A QR symbol as a grid of dark (True) modules, without its quiet zone."""

    url: str
    error: str
    version: int
    modules: tuple[tuple[bool, ...], ...]

    @property
    def size(self) -> int:
        return len(self.modules)

    @property
    def size_with_quiet_zone(self) -> int:
        return self.size + 2 * QUIET_ZONE

    def runs(self) -> list[tuple[int, int, int]]:
        """Horizontal runs of dark modules as (row, first column, length): few shapes, no seams."""
        result = []
        for row, cells in enumerate(self.modules):
            column = 0
            while column < len(cells):
                if cells[column]:
                    start = column
                    while column < len(cells) and cells[column]:
                        column += 1
                    result.append((row, start, column - start))
                else:
                    column += 1
        return result


def make_symbol(url: str) -> Symbol:
    qr = segno.make_qr(url, error=MIN_ERROR.lower(), boost_error=True)
    error = str(qr.error).upper()
    if _ERROR_ORDER.index(error) < _ERROR_ORDER.index(MIN_ERROR):
        raise RuntimeError(f"QR error correction {error} is below {MIN_ERROR}")
    modules = tuple(tuple(bool(cell) for cell in row) for row in qr.matrix)
    return Symbol(url=url, error=error, version=int(qr.version), modules=modules)
