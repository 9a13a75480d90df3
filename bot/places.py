"""Finding a commune from what a citizen types: accent-insensitive, and pre-reform names still resolve.

People keep using the names of the communes that were merged in 2025 ("Thanh Xương" is now part of
Phường Mường Thanh), so both the current and the legacy names are searched; a current name wins.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from config.province import Commune, Province

_PREFIXES = re.compile(r"^(xa|phuong|thi tran|tt|p|x)\.?\s+")


def fold(text: str) -> str:
    """Lower case, no diacritics (đ → d), single spaces: what a citizen types on any keyboard."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", plain).split())


def _bare(name: str) -> str:
    return _PREFIXES.sub("", fold(name))


@dataclass(frozen=True)
class Match:
    commune: Commune
    via_legacy: str | None  # the pre-reform name that matched, if it was not the current name


class CommuneDirectory:
    """Folded current and pre-reform names of one province's communes, built once."""

    def __init__(self, province: Province) -> None:
        entries: list[tuple[str, Commune, str | None]] = []
        for commune in province.communes.values():
            entries.append((_bare(commune.name), commune, None))
        for commune in province.communes.values():
            for legacy in commune.legacy:
                entries.append((_bare(legacy.name), commune, legacy.name))
        self.entries = tuple(entries)

    def search(self, query: str, limit: int = 8) -> list[Match]:
        """Communes whose current or pre-reform name matches ``query``: exact names first, then prefixes,
        then words contained. Each commune appears once, by its best match; one clear winner comes alone."""
        return _search(self.entries, query, limit)


def _search(entries: tuple[tuple[str, Commune, str | None], ...], query: str, limit: int) -> list[Match]:
    wanted = _bare(query)
    if not wanted:
        return []
    ranked: dict[str, tuple[int, Match]] = {}
    for name, commune, legacy in entries:
        if name == wanted:
            rank = 0
        elif name.startswith(wanted):
            rank = 2
        elif f" {wanted}" in f" {name}":
            rank = 4
        else:
            continue
        rank += 1 if legacy else 0
        best = ranked.get(commune.code)
        if best is None or rank < best[0]:
            ranked[commune.code] = (rank, Match(commune, legacy))
    ordered = sorted(ranked.values(), key=lambda pair: (pair[0], pair[1].commune.name))
    if ordered and ordered[0][0] <= 1 and (len(ordered) == 1 or ordered[1][0] > ordered[0][0]):
        return [ordered[0][1]]
    return [match for _, match in ordered[:limit]]
