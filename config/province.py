"""Per-province data files (communes, units, categories, routing, deadlines, calendar) and their validation.

Everything here is data: a new province is a new folder of the same files. Invalid data raises
ConfigError naming the file, the key and what is wrong, so that ``pakn serve`` can stop with one line.
"""

from __future__ import annotations

import csv
import re
import tomllib
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ITEM_TYPES = ("gop_y", "phan_anh", "kien_nghi", "khieu_nai", "to_cao")
DayUnit = Literal["working", "calendar"]
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
COMMUNE_UNIT = "@commune"


class ConfigError(Exception):
    """A configuration problem, located by file and key."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        super().__init__(f"{file}: {key}: {problem}")
        self.file = file
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class LegacyCommune:
    name: str
    code: str


@dataclass(frozen=True)
class Commune:
    code: str
    name: str
    division_type: str
    codename: str
    remote: bool
    legacy: tuple[LegacyCommune, ...]
    unit_code: str


@dataclass(frozen=True)
class Unit:
    code: str
    name_vi: str
    name_en: str
    supervisor: str | None
    coordinator: bool = False
    commune_code: str | None = None

    def name(self, locale: str) -> str:
        return self.name_en if locale == "en" else self.name_vi


@dataclass(frozen=True)
class Category:
    code: str
    name_vi: str
    name_en: str

    def name(self, locale: str) -> str:
        return self.name_en if locale == "en" else self.name_vi


@dataclass(frozen=True)
class RoutingRule:
    id: str
    unit: str
    type: str | None = None
    category: str | None = None
    commune: str | None = None


@dataclass(frozen=True)
class ClockRule:
    days: int
    unit: DayUnit
    basis: str
    complex: int | None = None
    remote: int | None = None
    remote_complex: int | None = None
    multi_place: int | None = None


@dataclass(frozen=True)
class ExtensionRule:
    max: int
    days: int
    unit: DayUnit
    basis: str


@dataclass(frozen=True)
class ItemTypeRule:
    code: str
    name_vi: str
    name_en: str
    identity_required: bool
    accept: ClockRule
    resolve: ClockRule | None
    extension: ExtensionRule | None
    identity_basis: str | None = None  # the law that makes the sender's name required, cited to the citizen

    def name(self, locale: str) -> str:
        return self.name_en if locale == "en" else self.name_vi


@dataclass(frozen=True)
class CalendarConfig:
    weekend: frozenset[int]
    working_days: frozenset[date]
    days_off: frozenset[date]


@dataclass(frozen=True)
class SchedulerConfig:
    reminder_offsets: tuple[int, ...]
    escalate_after: int
    digest_weekday: int
    digest_time: time
    identity_retention_days: int


@dataclass(frozen=True)
class Province:
    code: str
    name_vi: str
    name_en: str
    timezone: ZoneInfo
    receipt_prefix: str
    hotline_phone: str
    hotline_email: str
    communes: dict[str, Commune]
    units: dict[str, Unit]
    categories: dict[str, Category]
    routing: tuple[RoutingRule, ...]
    item_types: dict[str, ItemTypeRule]
    calendar: CalendarConfig
    scheduler: SchedulerConfig

    @property
    def coordinator(self) -> Unit:
        return next(u for u in self.units.values() if u.coordinator)


class _Reader:
    """Small typed accessors that report the file and key of a bad value."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = str(path)

    def load(self) -> dict[str, Any]:
        try:
            return tomllib.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(self.file, "-", "file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(self.file, "-", f"not valid TOML: {exc}") from None

    def string(self, table: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = table.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(self.file, f"{where}.{key}", "missing or not a non-empty string")
        return value

    def opt_str(self, table: dict[str, Any], key: str, where: str) -> str | None:
        if key not in table:
            return None
        return self.string(table, key, where)

    def integer(self, table: dict[str, Any], key: str, where: str, minimum: int = 0) -> int:
        value = table.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(self.file, f"{where}.{key}", f"must be a whole number ≥ {minimum}")
        return value

    def opt_int(self, table: dict[str, Any], key: str, where: str, minimum: int = 1) -> int | None:
        return self.integer(table, key, where, minimum) if key in table else None

    def flag(self, table: dict[str, Any], key: str, where: str, default: bool = False) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(self.file, f"{where}.{key}", "must be true or false")
        return value

    def date_list(self, table: dict[str, Any], key: str) -> frozenset[date]:
        values = table.get(key, [])
        if not isinstance(values, list):
            raise ConfigError(self.file, key, "must be a list of dates")
        result = set()
        for index, value in enumerate(values):
            if isinstance(value, date):
                result.add(value)
                continue
            try:
                result.add(date.fromisoformat(str(value)))
            except ValueError:
                raise ConfigError(self.file, f"{key}[{index}]", f"not a date (YYYY-MM-DD): {value!r}") from None
        return frozenset(result)


_LEGACY = re.compile(r"^(?P<name>.+?)\s*\((?P<code>\d+)\)$")
_CODE = re.compile(r"^[a-z0-9_]+$")


def _load_communes(path: Path) -> list[tuple[dict[str, str], tuple[LegacyCommune, ...], bool]]:
    file = str(path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise ConfigError(file, "-", "file not found") from None
    required = {"code", "name", "division_type", "codename", "remote", "legacy_sources"}
    result = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        missing = required - {k for k, v in row.items() if v is not None}
        if missing:
            raise ConfigError(file, f"line {line}", f"missing columns: {', '.join(sorted(missing))}")
        code = row["code"].strip()
        if not code.isdigit():
            raise ConfigError(file, f"line {line}.code", f"not a numeric commune code: {code!r}")
        if code in seen:
            raise ConfigError(file, f"line {line}.code", f"duplicate commune code {code}")
        seen.add(code)
        remote = row["remote"].strip().lower()
        if remote not in ("true", "false"):
            raise ConfigError(file, f"line {line}.remote", f"must be true or false, got {row['remote']!r}")
        legacy = []
        for part in filter(None, (p.strip() for p in row["legacy_sources"].split(";"))):
            match = _LEGACY.match(part)
            if not match:
                raise ConfigError(file, f"line {line}.legacy_sources", f"expected 'Name (code)', got {part!r}")
            legacy.append(LegacyCommune(match["name"], match["code"]))
        result.append((row, tuple(legacy), remote == "true"))
    if not result:
        raise ConfigError(file, "-", "no communes")
    return result


def _strip_division(name: str) -> tuple[str, str]:
    for prefix, english in (("Phường ", "Ward"), ("Xã ", "Commune"), ("Thị trấn ", "Township")):
        if name.startswith(prefix):
            return name[len(prefix) :], english
    return name, "Commune"


def _clock(reader: _Reader, table: Any, where: str) -> ClockRule:
    if not isinstance(table, dict):
        raise ConfigError(reader.file, where, "must be a table")
    unit = reader.string(table, "unit", where)
    if unit not in ("working", "calendar"):
        raise ConfigError(reader.file, f"{where}.unit", f"must be 'working' or 'calendar', got {unit!r}")
    return ClockRule(
        days=reader.integer(table, "days", where, 1),
        unit=unit,  # type: ignore[arg-type]
        basis=reader.string(table, "basis", where),
        complex=reader.opt_int(table, "complex", where),
        remote=reader.opt_int(table, "remote", where),
        remote_complex=reader.opt_int(table, "remote_complex", where),
        multi_place=reader.opt_int(table, "multi_place", where),
    )


def load_province(directory: Path) -> Province:
    """Load and cross-check every data file of one province."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(str(directory), "province_dir", "not a directory")

    province_reader = _Reader(directory / "province.toml")
    meta = province_reader.load()
    try:
        timezone = ZoneInfo(province_reader.string(meta, "timezone", "province"))
    except ZoneInfoNotFoundError:
        raise ConfigError(province_reader.file, "province.timezone", "unknown time zone") from None
    hotline = meta.get("hotline", {})

    commune_rows = _load_communes(directory / "communes.csv")

    units_reader = _Reader(directory / "units.toml")
    units_data = units_reader.load()
    units: dict[str, Unit] = {}
    for index, table in enumerate(units_data.get("unit", [])):
        where = f"unit[{index}]"
        code = units_reader.string(table, "code", where)
        if not _CODE.match(code):
            raise ConfigError(units_reader.file, f"{where}.code", f"use lower-case letters, digits, _: {code!r}")
        if code in units:
            raise ConfigError(units_reader.file, f"{where}.code", f"duplicate unit code {code!r}")
        units[code] = Unit(
            code=code,
            name_vi=units_reader.string(table, "name_vi", where),
            name_en=units_reader.string(table, "name_en", where),
            supervisor=units_reader.opt_str(table, "supervisor", where),
            coordinator=units_reader.flag(table, "coordinator", where),
        )
    template = units_data.get("commune_units")
    if not isinstance(template, dict):
        raise ConfigError(units_reader.file, "commune_units", "missing table")
    communes: dict[str, Commune] = {}
    for row, legacy, remote in commune_rows:
        short_name, division_en = _strip_division(row["name"])
        fmt = {
            "codename": row["codename"],
            "name": row["name"],
            "name_en": short_name,
            "division_en": division_en,
            "code": row["code"],
        }
        try:
            unit_code = units_reader.string(template, "code", "commune_units").format(**fmt)
            unit = Unit(
                code=unit_code,
                name_vi=units_reader.string(template, "name_vi", "commune_units").format(**fmt),
                name_en=units_reader.string(template, "name_en", "commune_units").format(**fmt),
                supervisor=units_reader.opt_str(template, "supervisor", "commune_units"),
                commune_code=row["code"],
            )
        except KeyError as exc:
            raise ConfigError(units_reader.file, "commune_units", f"unknown placeholder {exc}") from None
        if unit_code in units:
            raise ConfigError(units_reader.file, "commune_units.code", f"duplicate unit code {unit_code!r}")
        units[unit_code] = unit
        communes[row["code"]] = Commune(
            code=row["code"],
            name=row["name"],
            division_type=row["division_type"],
            codename=row["codename"],
            remote=remote,
            legacy=legacy,
            unit_code=unit_code,
        )
    coordinators = [u.code for u in units.values() if u.coordinator]
    if len(coordinators) != 1:
        raise ConfigError(
            units_reader.file, "coordinator", f"exactly one unit must be the coordinator, found {coordinators}"
        )
    if units[coordinators[0]].supervisor is None:
        raise ConfigError(
            units_reader.file, f"{coordinators[0]}.supervisor", "the coordinator needs a supervisor for items about it"
        )
    for unit in units.values():
        if unit.supervisor is not None and unit.supervisor not in units:
            raise ConfigError(units_reader.file, f"{unit.code}.supervisor", f"unknown unit {unit.supervisor!r}")
    for unit in units.values():
        seen = [unit.code]
        current = unit.supervisor
        while current is not None:
            if current in seen:
                cycle = " → ".join([*seen, current])
                raise ConfigError(units_reader.file, f"{unit.code}.supervisor", f"supervisor cycle: {cycle}")
            seen.append(current)
            current = units[current].supervisor

    categories_reader = _Reader(directory / "categories.toml")
    categories: dict[str, Category] = {}
    for index, table in enumerate(categories_reader.load().get("category", [])):
        where = f"category[{index}]"
        code = categories_reader.string(table, "code", where)
        if code in categories:
            raise ConfigError(categories_reader.file, f"{where}.code", f"duplicate category {code!r}")
        categories[code] = Category(
            code, categories_reader.string(table, "name_vi", where), categories_reader.string(table, "name_en", where)
        )
    if not categories:
        raise ConfigError(categories_reader.file, "category", "no categories")

    deadlines_reader = _Reader(directory / "deadlines.toml")
    deadlines = deadlines_reader.load()
    item_types: dict[str, ItemTypeRule] = {}
    for key in deadlines:
        if key not in ITEM_TYPES:
            raise ConfigError(deadlines_reader.file, key, f"unknown item type; use one of {', '.join(ITEM_TYPES)}")
    for code in ITEM_TYPES:
        table = deadlines.get(code)
        if not isinstance(table, dict):
            raise ConfigError(deadlines_reader.file, code, "missing rule for this item type")
        extension = None
        if "extension" in table:
            ext = table["extension"]
            if not isinstance(ext, dict):
                raise ConfigError(deadlines_reader.file, f"{code}.extension", "must be a table")
            ext_unit = deadlines_reader.string(ext, "unit", f"{code}.extension")
            if ext_unit not in ("working", "calendar"):
                raise ConfigError(deadlines_reader.file, f"{code}.extension.unit", "must be 'working' or 'calendar'")
            extension = ExtensionRule(
                max=deadlines_reader.integer(ext, "max", f"{code}.extension", 1),
                days=deadlines_reader.integer(ext, "days", f"{code}.extension", 1),
                unit=ext_unit,  # type: ignore[arg-type]
                basis=deadlines_reader.string(ext, "basis", f"{code}.extension"),
            )
        if "accept" not in table:
            raise ConfigError(deadlines_reader.file, f"{code}.accept", "missing")
        resolve = _clock(deadlines_reader, table["resolve"], f"{code}.resolve") if "resolve" in table else None
        if extension is not None and resolve is None:
            raise ConfigError(deadlines_reader.file, f"{code}.extension", "an extension needs a resolve clock")
        identity_required = deadlines_reader.flag(table, "identity_required", code)
        identity_basis = deadlines_reader.opt_str(table, "identity_basis", code)
        if identity_required and identity_basis is None:
            raise ConfigError(
                deadlines_reader.file, f"{code}.identity_basis", "required with identity_required: the law to cite"
            )
        item_types[code] = ItemTypeRule(
            code=code,
            name_vi=deadlines_reader.string(table, "name_vi", code),
            name_en=deadlines_reader.string(table, "name_en", code),
            identity_required=identity_required,
            accept=_clock(deadlines_reader, table["accept"], f"{code}.accept"),
            resolve=resolve,
            extension=extension,
            identity_basis=identity_basis,
        )

    routing_reader = _Reader(directory / "routing.toml")
    rules: list[RoutingRule] = []
    seen_ids: set[str] = set()
    for index, table in enumerate(routing_reader.load().get("rule", [])):
        where = f"rule[{index}]"
        rule = RoutingRule(
            id=routing_reader.string(table, "id", where),
            unit=routing_reader.string(table, "unit", where),
            type=routing_reader.opt_str(table, "type", where),
            category=routing_reader.opt_str(table, "category", where),
            commune=routing_reader.opt_str(table, "commune", where),
        )
        where = f"rule {rule.id!r}"
        if rule.id in seen_ids:
            raise ConfigError(routing_reader.file, f"{where}.id", "duplicate rule id")
        seen_ids.add(rule.id)
        if rule.unit != COMMUNE_UNIT and rule.unit not in units:
            raise ConfigError(routing_reader.file, f"{where}.unit", f"unknown unit {rule.unit!r}")
        if rule.unit == COMMUNE_UNIT and rule.commune is None:
            raise ConfigError(routing_reader.file, f"{where}.unit", "'@commune' needs a commune condition")
        if rule.type is not None and rule.type not in ITEM_TYPES:
            raise ConfigError(routing_reader.file, f"{where}.type", f"unknown item type {rule.type!r}")
        if rule.category is not None and rule.category not in categories:
            raise ConfigError(routing_reader.file, f"{where}.category", f"unknown category {rule.category!r}")
        if rule.commune is not None and rule.commune != "*" and rule.commune not in communes:
            raise ConfigError(routing_reader.file, f"{where}.commune", f"commune code {rule.commune!r} does not exist")
        rules.append(rule)

    calendar_reader = _Reader(directory / "calendar.toml")
    cal = calendar_reader.load()
    weekend_names = cal.get("weekend", ["saturday", "sunday"])
    if not isinstance(weekend_names, list) or any(n not in WEEKDAYS for n in weekend_names):
        raise ConfigError(calendar_reader.file, "weekend", f"must be a list of {', '.join(WEEKDAYS)}")
    calendar = CalendarConfig(
        weekend=frozenset(WEEKDAYS.index(n) for n in weekend_names),
        working_days=calendar_reader.date_list(cal, "working_days"),
        days_off=calendar_reader.date_list(cal, "days_off"),
    )
    clash = calendar.working_days & calendar.days_off
    if clash:
        raise ConfigError(calendar_reader.file, "working_days", f"also listed in days_off: {sorted(clash)[0]}")

    scheduler_reader = _Reader(directory / "scheduler.toml")
    sched = scheduler_reader.load()
    offsets = sched.get("reminder_offsets", [2, 0])
    if not isinstance(offsets, list) or not all(isinstance(o, int) and o >= 0 for o in offsets):
        raise ConfigError(scheduler_reader.file, "reminder_offsets", "must be a list of whole numbers ≥ 0")
    digest = sched.get("digest", {})
    weekday = scheduler_reader.string(digest, "weekday", "digest", "monday")
    if weekday not in WEEKDAYS:
        raise ConfigError(scheduler_reader.file, "digest.weekday", f"must be one of {', '.join(WEEKDAYS)}")
    try:
        digest_time = time.fromisoformat(scheduler_reader.string(digest, "time", "digest", "07:30"))
    except ValueError:
        raise ConfigError(scheduler_reader.file, "digest.time", "must be HH:MM") from None
    scheduler = SchedulerConfig(
        reminder_offsets=tuple(sorted(set(offsets), reverse=True)),
        escalate_after=scheduler_reader.integer(sched, "escalate_after", "scheduler", 0)
        if "escalate_after" in sched
        else 2,
        digest_weekday=WEEKDAYS.index(weekday),
        digest_time=digest_time,
        identity_retention_days=scheduler_reader.integer(sched.get("retention", {}), "identity_days", "retention", 1)
        if "retention" in sched
        else 1825,
    )

    prefix = province_reader.string(meta, "receipt_prefix", "province")
    if not re.fullmatch(r"[A-Z]{1,3}", prefix):
        raise ConfigError(province_reader.file, "receipt_prefix", "must be 1 to 3 capital letters")
    return Province(
        code=province_reader.string(meta, "code", "province"),
        name_vi=province_reader.string(meta, "name_vi", "province"),
        name_en=province_reader.string(meta, "name_en", "province"),
        timezone=timezone,
        receipt_prefix=prefix,
        hotline_phone=str(hotline.get("phone", "")),
        hotline_email=str(hotline.get("email", "")),
        communes=communes,
        units=units,
        categories=categories,
        routing=tuple(rules),
        item_types=item_types,
        calendar=calendar,
        scheduler=scheduler,
    )
