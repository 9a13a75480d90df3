"""Tables, sessions and migrations. No business rules live here."""

from models.db import create_engine, make_session_factory
from models.tables import (
    AuditEvent,
    AuditHead,
    Base,
    Citizen,
    Clock,
    Desk,
    DeskRating,
    DialogState,
    Item,
    ItemMessage,
    JobLease,
    Official,
    Outbox,
    Pause,
    ProcessedUpdate,
    RoutingDecision,
    Unit,
)

__all__ = [
    "AuditEvent",
    "AuditHead",
    "Base",
    "Citizen",
    "Clock",
    "Desk",
    "DeskRating",
    "DialogState",
    "Item",
    "ItemMessage",
    "JobLease",
    "Official",
    "Outbox",
    "Pause",
    "ProcessedUpdate",
    "RoutingDecision",
    "Unit",
    "create_engine",
    "make_session_factory",
]
