"""Which unit receives an item: ordered rules (type × category × commune), first match wins.

Conflict of interest comes first: an item about the conduct of a unit goes to the unit that supervises
it, never to the unit itself (DESIGN.md, "Protecting the citizen" 4).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import ValidationError
from config.province import COMMUNE_UNIT, Province

CONFLICT_RULE = "conflict_of_interest"
FALLBACK_RULE = "fallback_coordinator"
DESK_RULE = "desk"


@dataclass(frozen=True)
class RouteDecision:
    unit_code: str
    rule_id: str
    reason: str


def supervisor_of(province: Province, unit_code: str) -> str:
    """The unit that handles items about ``unit_code``: its supervisor, else the coordinator.

    Never ``unit_code`` itself: config validation requires the coordinator to have a supervisor.
    """
    unit = province.units.get(unit_code)
    if unit is None:
        raise ValidationError("error.unknown_unit", value=unit_code)
    if unit.supervisor is not None:
        return unit.supervisor
    return province.coordinator.code


def route(
    province: Province,
    *,
    type_code: str,
    category: str,
    commune_code: str | None,
    about_unit_code: str | None = None,
    desk_unit_code: str | None = None,
) -> RouteDecision:
    """Decide the receiving unit and name the rule that decided it."""
    if about_unit_code is not None:
        supervisor = supervisor_of(province, about_unit_code)
        return RouteDecision(supervisor, CONFLICT_RULE, f"about the conduct of {about_unit_code}")
    if desk_unit_code is not None:
        if desk_unit_code not in province.units:
            raise ValidationError("error.unknown_unit", value=desk_unit_code)
        return RouteDecision(desk_unit_code, DESK_RULE, "filed at the unit's one-stop desk")
    for rule in province.routing:
        if rule.type is not None and rule.type != type_code:
            continue
        if rule.category is not None and rule.category != category:
            continue
        if rule.commune is not None:
            if commune_code is None:
                continue
            if rule.commune != "*" and rule.commune != commune_code:
                continue
        if rule.unit == COMMUNE_UNIT:
            assert commune_code is not None
            return RouteDecision(province.communes[commune_code].unit_code, rule.id, f"rule {rule.id}")
        return RouteDecision(rule.unit, rule.id, f"rule {rule.id}")
    return RouteDecision(province.coordinator.code, FALLBACK_RULE, "no rule matched")
