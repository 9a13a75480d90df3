"""Runs the citizen's dialog against the database: one update, one transaction.

For each event: lock (or create) the chat's dialog state, let the pure dialog decide, perform the effects
it asks for with the domain services, save the new state, and either return the replies for the channel to
send now or, when they must survive a crash (a receipt), write them to the outbox in the same transaction.
Concurrent updates from one chat are serialised by the row lock (PostgreSQL ``FOR UPDATE``; SQLite's
``BEGIN IMMEDIATE``) and the row's version: an update that lost the race (or started from this process's
cached copy of a state another process has changed since) is handled again; so is a first-contact race.
"""

from __future__ import annotations

import asyncio
import functools
import html
import logging
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Integer, Table, bindparam, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from bot import tickets
from bot.batching import GroupCommit
from bot.citizen_dialog import CitizenDialog, new_state
from bot.citizens import citizen_id_for_chat
from bot.context import Context
from bot.desks import desk_from_payload
from bot.dialog import (
    AddInfo,
    DeskInfo,
    Effect,
    Event,
    Outcome,
    RateDesk,
    RateItem,
    ReopenItem,
    Reply,
    ResolveDesk,
    SetLanguage,
    SubmitDraft,
    SubmittedInfo,
    TimelineEntry,
    TrackInfo,
    TrackItem,
)
from bot.errors import DomainError, NotAllowed
from bot.i18n import format_moment, normalise_locale, render
from bot.intake import Draft, submit_item
from bot.officials import ACTIVE_OFFICIAL, is_official, official_key
from bot.outbox import Dispatcher, Leased, enqueue_all, queued_for_dispatcher
from bot.privacy import VaultError, lookup_hash, normalise_phone
from bot.ratings import rate_desk
from bot.tracking import public_timeline, tracked_item
from models.db import Prepared, begin, commit_with_next_statement, run_on_sqlite_connection, run_statements_inline
from models.tables import Citizen, Desk, DialogState, Item, ItemMessage

log = logging.getLogger(__name__)

MAX_EFFECTS_PER_EVENT = 4
MAX_ATTEMPTS = 5
STATES_CACHED = 4096  # chats whose latest state this process keeps (sealed; about 1 KB each)
# How long an update's handling waits for its durable replies (a receipt) to be sent: Telegram sends a chat's next
# update once this one is answered, so the reply to it comes after the receipt; a slow Bot API holds no longer.
DURABLE_SEND_WAIT = 2.0
# The ids of a chat's latest updates live in its sealed state under this key, so that an update Telegram
# delivers again is recognised without a statement of its own; a redelivery comes soon after the original.
RECENT_UPDATES_KEY = "_updates"
RECENT_UPDATES_KEPT = 20

_STATES: Table = DialogState.__table__  # type: ignore[assignment]
# Built once: a prepared statement skips building and cache-key generation on every update. The state row is
# locked (PostgreSQL; SQLite's BEGIN IMMEDIATE locks the database) and, for a Telegram user, whether they are an
# official is asked in the same statement.
_STATE_COLUMNS = (_STATES.c.id, _STATES.c.enc_state, _STATES.c.version)
_STATE_OF_CHAT = (_STATES.c.channel == bindparam("s_channel"), _STATES.c.chat_hash == bindparam("s_chat_hash"))
_SELECT_STATE = Prepared(select(*_STATE_COLUMNS).where(*_STATE_OF_CHAT).with_for_update(of=_STATES))
_SELECT_STATE_UNLESS_OFFICIAL = Prepared(
    select(*_STATE_COLUMNS, ACTIVE_OFFICIAL.label("official")).where(*_STATE_OF_CHAT).with_for_update(of=_STATES)
)
_INSERT_STATE = Prepared(_STATES.insert().returning(_STATES.c.id))
# The same UPDATE as _UPDATE_STATE, for sqlite3 itself (the state writer's batches bypass SQLAlchemy).
_SQLITE_UPDATE_STATE = (
    "UPDATE dialog_states SET enc_state = ?, version = ?, updated_at = ? WHERE id = ? AND version = ? AND chat_hash = ?"
)
# The state writer's batch on PostgreSQL: many chats' states in one statement, each with its version check.
_POSTGRESQL_UPDATE_STATES = text(
    "UPDATE dialog_states AS d SET enc_state = v.enc_state, version = v.version + 1, updated_at = :updated_at "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:versions AS integer[]), CAST(:states AS bytea[]), "
    "CAST(:hashes AS text[])) AS v(id, version, enc_state, chat_hash) "
    "WHERE d.id = v.id AND d.version = v.version AND d.chat_hash = v.chat_hash RETURNING d.id"
).columns(id=Integer)
# The version check, and the chat's hash: a deleted chat's row number can be a new chat's (SQLite reuses the
# highest), at the same version, and a process that kept the deleted state must not write over the new one.
_UPDATE_STATE = Prepared(
    _STATES.update().where(
        _STATES.c.id == bindparam("s_id"),
        _STATES.c.version == bindparam("s_version"),
        _STATES.c.chat_hash == bindparam("s_chat_hash"),
    )
)


@dataclass(frozen=True)
class Rendered:
    """Replies rendered for one recipient, ready for a channel adapter. ``locale`` is the chat's language."""

    locale: str
    replies: list[dict[str, Any]]
    duplicate: bool = False
    queued: bool = False  # replies went to the outbox instead
    official: bool = False  # the sender is an official: nothing was done (see ``unless_official``)


def render_reply(reply: Reply, locale: str) -> dict[str, Any]:
    """A reply as plain JSON with HTML-escaped parameters: what adapters and the outbox carry."""
    return {
        "text": "\n".join(render(text, locale, html.escape) for text in reply.texts),
        "buttons": [[{"label": render(b.label, locale), "payload": b.payload} for b in row] for row in reply.buttons],
        "request_contact": render(reply.request_contact, locale) if reply.request_contact else None,
        "request_location": render(reply.request_location, locale) if reply.request_location else None,
        "input_hint": reply.input_hint,
    }


def _take_recent_updates(state: dict[str, Any], update_id: int | None) -> list[int] | None:
    """Take the recent update ids out of ``state`` (the dialog never sees them), with ``update_id`` added; None
    when ``update_id`` is already among them (a redelivery)."""
    recent: list[int] = state.pop(RECENT_UPDATES_KEY, [])
    if update_id is None:
        return recent
    if update_id in recent:
        return None
    return [*recent, update_id][-RECENT_UPDATES_KEPT:]


def _with_recent_updates(state: dict[str, Any], recent: list[int]) -> dict[str, Any]:
    return {**state, RECENT_UPDATES_KEY: recent} if recent else state


@dataclass(frozen=True)
class _SavedState:
    row_id: int
    version: int
    sealed: bytes


class _StateCache:
    """The dialog state this process last wrote for each recent chat, sealed as in the database, so that an update
    needs no SELECT: the UPDATE's version check tells whether the row changed since (another process handled
    the chat, housekeeping dropped it, or the user became an official, which deletes it); then the chat's
    entry is dropped and the update is handled again from the database. An entry is put only once its
    transaction has committed. Least recently used entries go first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str], _SavedState] = OrderedDict()

    def get(self, key: tuple[str, str]) -> _SavedState | None:
        saved = self._entries.get(key)
        if saved is not None:
            self._entries.move_to_end(key)
        return saved

    def put(self, key: tuple[str, str], saved: _SavedState) -> None:
        self._entries[key] = saved
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def drop(self, key: tuple[str, str]) -> None:
        self._entries.pop(key, None)


def _write_states(connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[bool]:
    """In SQLite's thread: one transaction for many chats' state writes; which of them still found their row."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        written = [connection.execute(_SQLITE_UPDATE_STATE, row).rowcount == 1 for row in rows]
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return written


@dataclass(frozen=True)
class _StateWrite:
    saved: _SavedState  # the row and version the new state was computed from
    chat_hash: str
    sealed: bytes


class _StateWriter:
    """Group commit of the most common update: one that only moves a cached chat's dialog along.

    Each such update hands its new state (sealed, with the version it read) to the writer and waits; whatever
    has arrived meanwhile is written at once (``bot.batching.GroupCommit``), each row with its own version
    check: on SQLite one transaction in one trip to SQLite's thread, on PostgreSQL one ``UPDATE … FROM
    unnest(…)`` statement (atomic by itself, so without a transaction around it). An update whose row changed
    meanwhile (or a batch that failed) is told so, and is handled again through the general path, from the
    database.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._sqlite = ctx.engine.dialect.name == "sqlite"
        self._to_date = _STATES.c.updated_at.type.dialect_impl(ctx.engine.dialect).bind_processor(ctx.engine.dialect)
        self._autocommit = ctx.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._batches: GroupCommit[_StateWrite, bool] = GroupCommit(self._write_batch)

    async def write(self, saved: _SavedState, chat_hash: str, sealed: bytes) -> bool:
        """Write ``sealed`` over version ``saved.version`` of the chat's row; True once committed, False when the
        row had changed (or is no longer the chat's)."""
        return await self._batches.submit(_StateWrite(saved, chat_hash, sealed))

    async def _write_batch(self, batch: list[_StateWrite]) -> list[bool]:
        try:
            return await (self._write_sqlite(batch) if self._sqlite else self._write_postgresql(batch))
        except Exception:
            log.exception("writing %d dialog states at once failed; each is handled again", len(batch))
            return [False] * len(batch)

    async def _write_sqlite(self, batch: list[_StateWrite]) -> list[bool]:
        updated_at = self.ctx.now()
        when = self._to_date(updated_at) if self._to_date else updated_at
        rows = [(w.sealed, w.saved.version + 1, when, w.saved.row_id, w.saved.version, w.chat_hash) for w in batch]
        return await run_on_sqlite_connection(self.ctx.engine, functools.partial(_write_states, rows=rows))

    async def _write_postgresql(self, batch: list[_StateWrite]) -> list[bool]:
        # Two presses of one chat at once both computed from the same version: only the first is written (the
        # statement would apply just one of them, unpredictably), the other loses as the version check would.
        firsts = {w.saved.row_id: w for w in reversed(batch)}
        async with self._autocommit.connect() as connection:
            result = await connection.execute(
                _POSTGRESQL_UPDATE_STATES,
                {
                    "ids": list(firsts),
                    "versions": [w.saved.version for w in firsts.values()],
                    "states": [w.sealed for w in firsts.values()],
                    "hashes": [w.chat_hash for w in firsts.values()],
                    "updated_at": self.ctx.now(),
                },
            )
            written = set(result.scalars())
        return [w.saved.row_id in written and firsts[w.saved.row_id] is w for w in batch]


class _Unit:
    """One update's unit of work: the transaction's Core connection, and an ORM session on that same transaction
    opened only when an effect or the outbox needs one (most updates only read and write their dialog state)."""

    def __init__(self, ctx: Context, connection: AsyncConnection) -> None:
        self.ctx = ctx
        self.connection = connection
        self._session: AsyncSession | None = None
        self.citizen_id: int | None = None  # known once an item is filed: the outbox needs no look-up then
        self.saved: tuple[tuple[str, str], _SavedState] | None = None  # for the state cache, after the commit
        self.leased: Leased | None = None  # durable replies this process sends itself, after the commit
        self.for_dispatcher = False  # messages were written for the dispatcher (known once closed)

    @property
    def has_session(self) -> bool:
        return self._session is not None

    def session(self) -> AsyncSession:
        if self._session is None:
            # "rollback_only": the session joins the connection's transaction and never commits it itself.
            self._session = self.ctx.sessions(bind=self.connection, join_transaction_mode="rollback_only")
        return self._session

    async def flush(self) -> None:
        if self._session is not None:
            await self._session.flush()

    async def close(self) -> None:
        if self._session is not None:
            self.for_dispatcher = queued_for_dispatcher(self._session)
            await self._session.close()


class Conversations:
    """The citizen channel's entry point, shared by every adapter (Telegram, web chat, Zalo)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.dialog = CitizenDialog(ctx.province)
        self.outbox: Dispatcher | None = None  # woken after a commit that queued messages; sends leased ones
        self.states = _StateCache(STATES_CACHED)
        self.writer = _StateWriter(ctx)

    async def handle(
        self,
        channel: str,
        chat_id: str,
        event: Event,
        *,
        update_id: int | None = None,
        operator_id: int | None = None,
        unless_official: int | None = None,
    ) -> Rendered:
        """Process one event; retry when another process changed the same conversation at the same moment.

        ``operator_id``: a hotline operator is filing on a caller's behalf (channel ``hotline``); the item is
        keyed to the caller's phone, and lasting messages go to the operator. ``unless_official``: the sender's
        Telegram user id; when that user is an active official nothing is done and ``Rendered.official`` is
        set (asked in the same transaction: the citizen hot path's only look-up of officials).

        Durable replies to the citizen's own chat are sent by this process right after the commit, and this
        returns once they are sent or after ``DURABLE_SEND_WAIT`` seconds, whichever comes first (the sending
        goes on in the background).
        """
        moved = await self._move_along(channel, chat_id, event, update_id)
        if moved is not None:
            return moved
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with begin(self.ctx.engine) as connection:
                    run_statements_inline(connection)  # a citizen's update: a few short statements
                    unit = _Unit(self.ctx, connection)
                    try:
                        rendered = await self._handle(
                            unit, channel, chat_id, event, update_id, operator_id, unless_official
                        )
                        await unit.flush()
                    finally:
                        await unit.close()
                if unit.saved is not None:
                    self.states.put(*unit.saved)
                break
            except (IntegrityError, StaleDataError):
                if attempt == MAX_ATTEMPTS - 1:
                    raise
                log.debug("retrying a conflicting update for a %s chat", channel)
            except DBAPIError as error:
                if not error.connection_invalidated or attempt == MAX_ATTEMPTS - 1:
                    raise
                log.warning("the database connection was lost; handling a %s update again", channel)
        else:
            raise AssertionError("unreachable: the last attempt breaks or raises")
        if self.outbox is not None:
            if unit.for_dispatcher:  # a new item's cards, a note to the unit, a reply not leased
                self.outbox.wake.set()
            if unit.leased is not None:
                await asyncio.wait({self.outbox.send_after_commit(unit.leased)}, timeout=DURABLE_SEND_WAIT)
        return rendered

    async def _handle(
        self,
        unit: _Unit,
        channel: str,
        chat_id: str,
        event: Event,
        update_id: int | None,
        operator_id: int | None,
        unless_official: int | None,
    ) -> Rendered:
        # The dialog state is read and written with prepared Core statements: the ORM's unit of work took a
        # third of the CPU of an update for this one row. The version check is the one the mapper's
        # version_id_col makes.
        connection = unit.connection
        chat_hash = lookup_hash(self.ctx.keys, channel, chat_id)
        key = (channel, chat_hash)
        # A chat this process wrote last needs no SELECT, and no officials' check: becoming an official deletes
        # the chat's citizen state, which the version check below then notices.
        saved = self.states.get(key)
        if saved is None:
            parameters = {"s_channel": channel, "s_chat_hash": chat_hash}
            if unless_official is None:
                row = (await _SELECT_STATE.execute(connection, parameters)).first()
            else:
                parameters["o_key"] = official_key(self.ctx, unless_official)
                row = (await _SELECT_STATE_UNLESS_OFFICIAL.execute(connection, parameters)).first()
                official = row[3] if row is not None else await is_official(self.ctx, connection, unless_official)
                if official:
                    return Rendered("vi", [], official=True)
            if row is not None:
                row_id, enc_state, version = row[:3]
                saved = _SavedState(row_id, version, enc_state)
        state = self._unseal(saved.sealed) if saved is not None else new_state(event.language)
        recent = _take_recent_updates(state, update_id)
        if recent is None:  # a second delivery of an update already handled: nothing changes
            return Rendered(state.get("locale", "vi"), [], duplicate=True)
        step = self.dialog.handle(state, event)
        replies = list(step.replies)
        durable = step.durable
        for _ in range(MAX_EFFECTS_PER_EVENT):
            if step.effect is None:
                break
            outcome = await self._perform(
                unit, channel, chat_id, step.effect, step.state.get("locale", "vi"), operator_id
            )
            step = self.dialog.on_result(step.state, step.effect, outcome)
            replies += step.replies
            durable = durable or step.durable
        locale = step.state.get("locale", "vi")
        rendered = [render_reply(reply, locale) for reply in replies]  # before the write, which may commit
        sealed = self._seal(_with_recent_updates(step.state, recent))
        now = self.ctx.now()
        if not durable and not unit.has_session:
            commit_with_next_statement(connection)  # the state is all this update writes
        if saved is None:
            inserted = await _INSERT_STATE.execute(
                connection,
                {"channel": channel, "chat_hash": chat_hash, "enc_state": sealed, "version": 1, "updated_at": now},
            )
            unit.saved = (key, _SavedState(inserted.scalar(), 1, sealed))
        else:
            written = await _UPDATE_STATE.execute(
                connection,
                {
                    "s_id": saved.row_id,
                    "s_version": saved.version,
                    "s_chat_hash": chat_hash,
                    "enc_state": sealed,
                    "version": saved.version + 1,
                    "updated_at": now,
                },
            )
            if written.rowcount != 1:
                self.states.drop(key)
                raise StaleDataError("the conversation changed while this update was handled")
            unit.saved = (key, _SavedState(saved.row_id, saved.version + 1, sealed))
        if not durable:
            return Rendered(locale, rendered)
        session = unit.session()
        if operator_id is not None:
            target = ("telegram", "official", operator_id)
        else:
            citizen_id = unit.citizen_id or await citizen_id_for_chat(self.ctx, session, channel, chat_id)
            target = (channel, "citizen", citizen_id)
        # The citizen's own chat: sent by this process right after the commit (see bot.outbox.Leased).
        lease = operator_id is None and self.outbox is not None and self.outbox.sends(channel)
        unit.leased = await enqueue_all(
            self.ctx,
            session,
            channel=target[0],
            recipient_kind=target[1],
            recipient_id=target[2],
            payloads=rendered,
            lease_to=chat_id if lease else None,
        )
        return Rendered(locale, [], queued=True)

    async def _move_along(self, channel: str, chat_id: str, event: Event, update_id: int | None) -> Rendered | None:
        """The fast path of a cached chat whose update only moves the dialog along (no effect, nothing durable):
        the state goes to the group-committing writer. None: take the general path."""
        key = (channel, lookup_hash(self.ctx.keys, channel, chat_id))
        saved = self.states.get(key)
        if saved is None:
            return None
        state = self._unseal(saved.sealed)
        recent = _take_recent_updates(state, update_id)
        if recent is None:  # a second delivery of an update already handled: nothing changes
            return Rendered(state.get("locale", "vi"), [], duplicate=True)
        step = self.dialog.handle(state, event)
        if step.effect is not None or step.durable:
            return None
        locale = step.state.get("locale", "vi")
        rendered = [render_reply(reply, locale) for reply in step.replies]
        sealed = self._seal(_with_recent_updates(step.state, recent))
        if not await self.writer.write(saved, key[1], sealed):
            self.states.drop(key)
            return None
        self.states.put(key, _SavedState(saved.row_id, saved.version + 1, sealed))
        return Rendered(locale, rendered)

    async def chat_locale(self, channel: str, chat_id: str, fallback: str | None) -> str:
        """The language this chat's dialog speaks (the one the citizen chose), else ``fallback``: for the few
        messages sent outside the dialog (an edited message ignored, an apology after a failure)."""
        key = (channel, lookup_hash(self.ctx.keys, channel, chat_id))
        saved = self.states.get(key)
        sealed = saved.sealed if saved is not None else None
        if sealed is None:
            async with self.ctx.sessions() as session:
                sealed = await session.scalar(
                    select(DialogState.enc_state).where(DialogState.channel == channel, DialogState.chat_hash == key[1])
                )
        if sealed is None:
            return normalise_locale(fallback)
        try:
            return normalise_locale(self._unseal(sealed).get("locale"))
        except (VaultError, ValueError):
            return normalise_locale(fallback)

    def _seal(self, state: dict[str, Any]) -> bytes:
        return self.ctx.vault.encrypt(orjson.dumps(state, option=orjson.OPT_NON_STR_KEYS), "dialog.state")

    def _unseal(self, sealed: bytes) -> dict[str, Any]:
        state: dict[str, Any] = orjson.loads(self.ctx.vault.decrypt(sealed, "dialog.state"))
        return state

    # ----------------------------------------------------------------- effects

    async def _perform(
        self, unit: _Unit, channel: str, chat_id: str, effect: Effect, locale: str, operator_id: int | None
    ) -> Outcome:
        """Perform one effect in a savepoint, so a refused one leaves nothing behind but the refusal. A filing
        needs none: it refuses before it writes (``submit_item``), and the savepoint cost a fifth of its CPU."""
        try:
            if isinstance(effect, SubmitDraft):
                return await self._perform_effect(unit, channel, chat_id, effect, locale, operator_id)
            async with unit.session().begin_nested():
                return await self._perform_effect(unit, channel, chat_id, effect, locale, operator_id)
        except DomainError as error:
            return Outcome(error=error.as_msg())

    async def _perform_effect(
        self, unit: _Unit, channel: str, chat_id: str, effect: Effect, locale: str, operator_id: int | None
    ) -> Outcome:
        ctx, session = self.ctx, unit.session()
        if isinstance(effect, ResolveDesk):
            desk = await desk_from_payload(ctx, session, effect.payload)  # None: forged, malformed or disabled
            if desk is None:
                return Outcome(None)
            return Outcome(DeskInfo(desk.code, desk.name, desk.unit_code, desk.commune_code))
        if isinstance(effect, SubmitDraft):
            draft = Draft(**effect.draft)
            caller = chat_id
            if operator_id is not None:  # the caller's phone is who they are; the operator calls back
                caller = normalise_phone(draft.phone) if draft.phone else f"anonymous-call:{chat_id}"
            result = await submit_item(
                ctx,
                session,
                draft,
                channel=channel,
                channel_id=caller,
                locale=locale,
                recorded_by=operator_id,
                actor=f"official:{operator_id}" if operator_id else "citizen",
            )
            unit.citizen_id = result.item.citizen_id
            accept, resolve = result.accept, result.resolve
            return Outcome(
                SubmittedInfo(
                    receipt_code=result.item.receipt_code,
                    unit_code=result.item.unit_code,
                    accept_due=accept.due,
                    accept_days=accept.days,
                    accept_unit=accept.unit,
                    resolve_due=resolve.due if resolve else None,
                    resolve_days=resolve.days if resolve else None,
                    resolve_unit=resolve.unit if resolve else None,
                )
            )
        if isinstance(effect, TrackItem):
            return Outcome(await self._track(session, channel, chat_id, effect.code, locale))
        if isinstance(effect, RateDesk):
            desk = await session.get(Desk, effect.desk_code)
            if desk is None or not desk.active:
                raise DomainError("error.unknown_desk")
            # One rating per chat per desk per day, as on the web (a second one changes the first); the
            # hash has its own namespace, so ratings cannot be joined to the citizen's vault row.
            device = lookup_hash(ctx.keys, f"desk-{channel}", chat_id)
            await rate_desk(ctx, session, desk, score=effect.score, device=device)
            return Outcome(True)
        if isinstance(effect, SetLanguage):  # a citizen who has filed: their later notices follow the new language
            key = lookup_hash(ctx.keys, channel, chat_id)
            await session.execute(update(Citizen).where(Citizen.lookup_hash == key).values(locale=effect.locale))
            return Outcome(True)
        item = await self._own_item(session, channel, chat_id, effect.code)
        if isinstance(effect, AddInfo):
            await tickets.add_info(ctx, session, item, text=effect.text, attachments=effect.attachments)
            return Outcome(True)
        if isinstance(effect, RateItem):
            await tickets.rate_item(ctx, session, item, rating=effect.rating)
            return Outcome(True)
        if isinstance(effect, ReopenItem):
            return Outcome(await tickets.reopen_item(ctx, session, item, reason=effect.reason))
        raise TypeError(f"unknown effect {effect!r}")

    async def _citizen_id(self, session: AsyncSession, channel: str, chat_id: str) -> int | None:
        key = lookup_hash(self.ctx.keys, channel, chat_id)
        return await session.scalar(select(Citizen.id).where(Citizen.lookup_hash == key))

    async def _own_item(self, session: AsyncSession, channel: str, chat_id: str, code: str) -> Item:
        """The item behind ``code`` if this chat filed it; anyone else gets "not allowed"."""
        item = await tickets.item_by_receipt(session, code)
        citizen_id = await self._citizen_id(session, channel, chat_id)
        if item is None or citizen_id is None or item.citizen_id != citizen_id:
            raise NotAllowed()
        return await tickets.lock_item(session, item.id)

    async def _track(
        self, session: AsyncSession, channel: str, chat_id: str, code: str, locale: str
    ) -> TrackInfo | None:
        item = await tracked_item(session, code)
        if item is None:
            return None
        citizen_id = await self._citizen_id(session, channel, chat_id)
        owned = citizen_id is not None and item.citizen_id == citizen_id
        events = await public_timeline(session, item.id)
        answer = None
        if owned:
            answer = await session.scalar(
                select(ItemMessage.text_masked)
                .where(ItemMessage.item_id == item.id, ItemMessage.kind.in_(("answer", "rejection", "question")))
                .order_by(ItemMessage.id.desc())
                .limit(1)
            )
        return TrackInfo(
            receipt_code=item.receipt_code,
            type=item.type,
            status=item.status,
            unit_code=item.unit_code,
            owned=owned,
            timeline=tuple(TimelineEntry(action, format_moment(locale, at)) for action, at in events),
            answer=answer,
            rating=item.rating,
            accept_due=item.accept_due,
            resolve_due=item.resolve_due,
        )
