"""Translations from Babel gettext catalogs, keyed by message id (``bot/locale/<lang>/LC_MESSAGES``).

Message ids are stable keys such as ``error.description_too_short``; every key has a Vietnamese and an
English entry. Vietnamese is the default. Dates are shown in the province's time zone.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

LOCALES = ("vi", "en")
DEFAULT_LOCALE = "vi"
LOCALE_DIR = Path(__file__).parent / "locale"
TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def normalise_locale(locale: str | None) -> str:
    return locale if locale in LOCALES else DEFAULT_LOCALE


@cache
def translations(locale: str) -> Translations:
    """Read the ``.po`` catalog with Babel and compile it in memory, so no stale ``.mo`` can exist."""
    path = LOCALE_DIR / normalise_locale(locale) / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=normalise_locale(locale))
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer)


def gettext(locale: str | None, key: str, **params: Any) -> str:
    text = translations(normalise_locale(locale)).gettext(key)
    return text.format(**params) if params else text


def ngettext(locale: str | None, key: str, plural_key: str, count: int, **params: Any) -> str:
    text = translations(normalise_locale(locale)).ngettext(key, plural_key, count)
    return text.format(count=count, **params)


@dataclass(frozen=True)
class Localized:
    """A data string that exists in both languages (a unit's or a category's name from config)."""

    vi: str
    en: str

    def render(self, locale: str | None, escape: Callable[[str], str] | None = None) -> str:
        text = self.en if normalise_locale(locale) == "en" else self.vi
        return escape(text) if escape else text


@dataclass(frozen=True)
class Msg:
    """A message not yet rendered: a catalog key and its parameters (rendered per recipient's locale).

    With ``escape`` (e.g. ``html.escape``) every parameter is escaped while the catalog text, which may
    carry markup such as ``<b>``, is trusted.
    """

    key: str
    params: dict[str, Any] = field(default_factory=dict)

    def render(self, locale: str | None, escape: Callable[[str], str] | None = None) -> str:
        rendered = {}
        for name, value in self.params.items():
            if isinstance(value, Msg | Localized):
                rendered[name] = value.render(locale, escape)
            elif isinstance(value, str) and escape is not None:
                rendered[name] = escape(value)
            else:
                rendered[name] = value
        return gettext(locale, self.key, **rendered)


def render(text: Msg | Localized | str, locale: str | None, escape: Callable[[str], str] | None = None) -> str:
    """Render a message, a localized data string or a literal (escaped when ``escape`` is given)."""
    if isinstance(text, str):
        return escape(text) if escape else text
    return text.render(locale, escape)


def format_day(locale: str | None, day: date) -> str:
    """``05/03/2026`` in both languages: the form used on Vietnamese administrative documents."""
    return format_date(day, "dd/MM/yyyy", locale=normalise_locale(locale))


def format_moment(locale: str | None, moment: datetime) -> str:
    """``21:30 ngày 17/02/2026`` (vi) or ``21:30, 17/02/2026`` (en), in Asia/Ho_Chi_Minh."""
    local = moment.astimezone(TIMEZONE)
    return gettext(
        locale,
        "format.moment",
        time=format_datetime(local, "HH:mm", tzinfo=TIMEZONE, locale=normalise_locale(locale)),
        day=format_day(locale, local.date()),
    )


def format_number(locale: str | None, number: float) -> str:
    return format_decimal(number, locale=normalise_locale(locale))


def format_deadline(locale: str | None, days: int, day_unit: str, due: date) -> str:
    """``10 ngày làm việc — đến hết ngày 05/03/2026``: the legal wording, never a rounded delta."""
    key = "deadline.working" if day_unit == "working" else "deadline.calendar"
    return gettext(locale, key, days=days, due=format_day(locale, due))
