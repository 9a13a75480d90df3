"""SQLAlchemy 2 typed ORM tables.

Identity data (names, phones, channel ids) only ever appears here as AES-GCM ciphertext (``enc_*``
columns) or as a keyed hash (``lookup_hash``); see ``bot.privacy``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Unit(Base):
    """A receiving unit, mirrored from the province's units.toml at start."""

    __tablename__ = "units"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_vi: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    supervisor_code: Mapped[str | None] = mapped_column(String(64))
    coordinator: Mapped[bool] = mapped_column(Boolean, default=False)
    commune_code: Mapped[str | None] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Citizen(Base):
    """The identity vault: one row per citizen per channel, everything identifying encrypted."""

    __tablename__ = "citizens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    lookup_hash: Mapped[str] = mapped_column(String(64), unique=True)
    enc_channel_id: Mapped[bytes] = mapped_column(LargeBinary)
    enc_name: Mapped[bytes | None] = mapped_column(LargeBinary)
    enc_phone: Mapped[bytes | None] = mapped_column(LargeBinary)
    locale: Mapped[str] = mapped_column(String(8), default="vi")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Official(Base):
    __tablename__ = "officials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lookup_hash: Mapped[str] = mapped_column(String(64), index=True)
    enc_channel_id: Mapped[bytes] = mapped_column(LargeBinary)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    locale: Mapped[str] = mapped_column(String(8), default="vi")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class UnitChat(Base):
    """A Telegram group bound to a unit (``/bind`` in the group, confirmed by the unit head): cards go there."""

    __tablename__ = "unit_chats"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    channel: Mapped[str] = mapped_column(String(16), default="telegram")
    lookup_hash: Mapped[str] = mapped_column(String(64), index=True)
    enc_chat_id: Mapped[bytes] = mapped_column(LargeBinary)
    title: Mapped[str] = mapped_column(String(200), default="")
    bound_by: Mapped[int | None] = mapped_column(ForeignKey("officials.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invite(Base):
    """A one-time invitation binding a Telegram account to a role in a unit; only its hash is stored."""

    __tablename__ = "invites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    used_by: Mapped[int | None] = mapped_column(ForeignKey("officials.id"))


class Desk(Base):
    """A one-stop desk (bộ phận tiếp nhận và trả kết quả) with its QR code."""

    __tablename__ = "desks"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"))
    commune_code: Mapped[str | None] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeskRating(Base):
    """A citizen's two-tap rating of a desk (1 unhappy, 2 so-so, 3 happy)."""

    __tablename__ = "desk_ratings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    desk_code: Mapped[str] = mapped_column(ForeignKey("desks.code"))
    day: Mapped[date] = mapped_column(Date)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    client_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_desk_ratings_desk_day", "desk_code", "day"),
        Index("ix_desk_ratings_client", "client_hash"),
    )


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    receipt_code: Mapped[str] = mapped_column(String(16), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    commune_code: Mapped[str | None] = mapped_column(String(16))
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"))
    status: Mapped[str] = mapped_column(String(16))
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    desk_code: Mapped[str | None] = mapped_column(ForeignKey("desks.code"))
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("officials.id"))  # hotline operator
    anonymous: Mapped[bool] = mapped_column(Boolean, default=True)
    about_unit_code: Mapped[str | None] = mapped_column(ForeignKey("units.code"))
    complex: Mapped[bool] = mapped_column(Boolean, default=False)
    remote: Mapped[bool] = mapped_column(Boolean, default=False)
    multi_place: Mapped[bool] = mapped_column(Boolean, default=False)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    rating: Mapped[int | None] = mapped_column(Integer)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (
        Index("ix_items_unit_status", "unit_code", "status"),
        # With the unit, so that the weekly digest counts a week's items per unit from the index alone; and what
        # /stats reads of the last 12 weeks' items (the id for its joins), so that it reads no table row either.
        Index("ix_items_received_at", "received_at", "unit_code", "answered_at", "rating", "id"),
        Index("ix_items_accepted_at", "accepted_at", "unit_code"),
        Index("ix_items_answered_at", "answered_at", "unit_code"),
        # Clocks of a week joined to their item's unit, read from the index alone (PostgreSQL: index-only scan).
        Index("ix_items_id_unit_paused", "id", "unit_code", "paused"),
    )
    __mapper_args__ = {"version_id_col": version}


class ItemMessage(Base):
    """The item's thread. Officials read ``text_masked``; the original is kept encrypted."""

    __tablename__ = "item_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    author: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    official_id: Mapped[int | None] = mapped_column(ForeignKey("officials.id"))
    unit_code: Mapped[str | None] = mapped_column(String(64))
    text_masked: Mapped[str] = mapped_column(Text, default="")
    enc_text: Mapped[bytes | None] = mapped_column(LargeBinary)
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ItemCard(Base):
    """Where an item's card was posted, so that it can be edited in place when the item changes."""

    __tablename__ = "item_cards"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    recipient_kind: Mapped[str] = mapped_column(String(16))
    recipient_id: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RoutingDecision(Base):
    __tablename__ = "routing_decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"))
    rule_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Clock(Base):
    """One legal clock of an item: ``accept`` (thụ lý) or ``resolve`` (giải quyết)."""

    __tablename__ = "clocks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    kind: Mapped[str] = mapped_column(String(8))
    start_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    days: Mapped[int] = mapped_column(Integer)
    day_unit: Mapped[str] = mapped_column(String(8))
    basis: Mapped[str] = mapped_column(String(300))
    extensions: Mapped[int] = mapped_column(Integer, default=0)
    paused_days: Mapped[int] = mapped_column(Integer, default=0)
    met_at: Mapped[datetime | None] = mapped_column()
    next_due_at: Mapped[datetime | None] = mapped_column(index=True)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("item_id", "kind"),
        # The weekly digest: deadlines met in a week, falling due in a week, still open (met_at IS NULL);
        # covering, so that a week's clocks are counted without reading the table.
        Index("ix_clocks_due_date", "due_date", "met_at", "item_id", "kind"),
        Index("ix_clocks_met_at", "met_at", "due_date", "item_id", "kind"),
        # An item's clocks (the digest: is any met late?), and one clock by (item_id, kind) from the index alone
        # (/stats: the accept and resolve clocks of the 12 weeks' items).
        Index("ix_clocks_item_kind_due_met", "item_id", "kind", "due_date", "met_at"),
    )


class Pause(Base):
    """A period during which an item's clocks stood still, waiting for the citizen."""

    __tablename__ = "pauses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(500), default="")


class AuditEvent(Base):
    """Append-only, hash-chained record of every action (see ``bot.audit``). An event is written without its
    place in the chain (``seq``, ``prev_hash`` and ``hash`` empty) and sealed into the chain soon after its
    transaction commits."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        # The weekly digest counts a week's extensions, transfers and ratings by action and time.
        Index("ix_audit_events_action_created_at", "action", "created_at"),
        # The sealer's queue: only the events not sealed yet are in this index.
        Index(
            "ix_audit_events_unsealed",
            "id",
            sqlite_where=text("seq IS NULL"),
            postgresql_where=text("seq IS NULL"),
        ),
    )


class AuditHead(Base):
    """The chain's tip: the last sealed event's place and hash. Sealing locks this one row, so that one sealer at
    a time, in any process, extends the chain."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class Outbox(Base):
    """A message to send after commit (written in the transaction that caused it)."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    recipient_kind: Mapped[str] = mapped_column(String(16))
    recipient_id: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        Index("ix_outbox_status_not_before", "status", "not_before"),
        Index("ix_outbox_recipient", "channel", "recipient_kind", "recipient_id", "status"),
    )


class DialogState(Base):
    """A conversation's state per (channel, chat), encrypted: a draft holds the citizen's words and identity.

    The row is locked while an update is handled; ``version`` guards against a lost update besides."""

    __tablename__ = "dialog_states"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_hash: Mapped[str] = mapped_column(String(64))
    enc_state: Mapped[bytes] = mapped_column(LargeBinary)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("channel", "chat_hash"),)
    __mapper_args__ = {"version_id_col": version}


class DigestRun(Base):
    """One unit's digest for one ISO week: the unique key makes it go out once across processes."""

    __tablename__ = "digest_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_code: Mapped[str] = mapped_column(String(64))
    week: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12), default="sent")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("unit_code", "week"),)


class Throttle(Base):
    """A fixed-window counter per key (a hashed client), shared by every process: rate limits for look-ups
    and ratings."""

    __tablename__ = "throttles"
    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    window_start: Mapped[datetime] = mapped_column()
    count: Mapped[int] = mapped_column(Integer, default=0)


class JobLease(Base):
    """A named lease for scheduled work on backends without SKIP LOCKED (SQLite)."""

    __tablename__ = "job_leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column()
