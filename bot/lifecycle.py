"""The item's life as an explicit state machine; services consult it before every change.

submitted ──accept──► accepted ──answer──► answered ──close/rate──► closed
    │  ▲                 │  ▲                 │
    │  └──add_info──┐    │  └─add_info─┐     └──reopen──► reopened (at the supervisor)
    └─request_info─►needs_info◄─request_info
submitted/accepted/reopened ──transfer──► submitted (another unit)
submitted/reopened ──reject──► rejected (not competent, with guidance)
"""

from __future__ import annotations

from enum import StrEnum

from bot.errors import IllegalTransition
from bot.i18n import Msg


class Status(StrEnum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    NEEDS_INFO = "needs_info"
    ANSWERED = "answered"
    CLOSED = "closed"
    REJECTED = "rejected"
    REOPENED = "reopened"


OPEN_STATUSES = frozenset({Status.SUBMITTED, Status.ACCEPTED, Status.NEEDS_INFO, Status.REOPENED})

# action -> (statuses it is allowed from, resulting status; None keeps the status or is decided by the service)
TRANSITIONS: dict[str, tuple[frozenset[Status], Status | None]] = {
    "accept": (frozenset({Status.SUBMITTED, Status.REOPENED}), Status.ACCEPTED),
    "request_info": (frozenset({Status.SUBMITTED, Status.ACCEPTED, Status.REOPENED}), Status.NEEDS_INFO),
    "add_info": (frozenset({Status.NEEDS_INFO, Status.SUBMITTED, Status.ACCEPTED, Status.REOPENED}), None),
    "answer": (frozenset({Status.SUBMITTED, Status.ACCEPTED, Status.REOPENED}), Status.ANSWERED),
    "transfer": (frozenset({Status.SUBMITTED, Status.ACCEPTED, Status.REOPENED}), Status.SUBMITTED),
    "extend": (frozenset({Status.ACCEPTED, Status.REOPENED}), None),
    "reject": (frozenset({Status.SUBMITTED, Status.REOPENED}), Status.REJECTED),
    "rate": (frozenset({Status.ANSWERED, Status.CLOSED}), None),
    "reopen": (frozenset({Status.ANSWERED, Status.CLOSED}), Status.REOPENED),
    "close": (frozenset({Status.ANSWERED}), Status.CLOSED),
}


def allowed_actions(status: str) -> list[str]:
    return [action for action, (sources, _) in TRANSITIONS.items() if status in sources]


def check_transition(status: str, action: str) -> Status | None:
    """Return the status after ``action``, or raise IllegalTransition naming both in the user's words."""
    sources, target = TRANSITIONS[action]
    if status not in sources:
        raise IllegalTransition(action=Msg(f"action.{action}"), status=Msg(f"status.{status}"))
    return target
