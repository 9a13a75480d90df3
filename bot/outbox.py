"""The outbox: every message that must reach someone is a row written with the change that caused it,
and a dispatcher sends it after commit.

Claiming is a short transaction that marks rows ``sending`` with a lease (``SELECT … FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so several processes share the work; SQLite transactions are exclusive). A row is
sent, then marked ``sent``. A process that dies after claiming leaves the row ``sending``; when the lease
expires another dispatcher takes it, so a crash between commit and send still delivers. Messages to one
recipient go out in the order they were written. Network errors and 5xx back off exponentially; a 429 waits
``retry_after``; a recipient that can never be reached (blocked the bot) is marked ``dead`` for the
coordinator to see.

The citizen's own replies that must survive a crash (a receipt) need not wait for the dispatcher's next round:
the conversation writes them already claimed by its process (``Leased``) and sends them right after its commit;
the lease is then the only thing a crash leaves behind, and the dispatcher sends them when it runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import socket
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.batching import GroupCommit
from bot.context import Context
from bot.i18n import Msg
from bot.privacy import VaultError
from models.db import Prepared, begin, run_statements_inline
from models.tables import Citizen, Item, ItemCard, Official, Outbox, UnitChat

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 8
MAX_BACKOFF = timedelta(minutes=10)
_FOR_DISPATCHER = "pakn.outbox.for_dispatcher"  # a session.info key
# Built once, run as Core statements: a citizen's replies are written on the hot path of every filing.
_OUTBOX: Table = Outbox.__table__  # type: ignore[assignment]
_INSERT_MESSAGES = Prepared(_OUTBOX.insert())
_INSERT_LEASED = Prepared(_OUTBOX.insert().returning(_OUTBOX.c.id, sort_by_parameter_order=True))
_UNSENT_TO = Prepared(
    select(_OUTBOX.c.id)
    .where(
        _OUTBOX.c.channel == bindparam("u_channel"),
        _OUTBOX.c.recipient_kind == bindparam("u_kind"),
        _OUTBOX.c.recipient_id == bindparam("u_id"),
        _OUTBOX.c.status.in_(("pending", "sending")),
    )
    .limit(1)
)
# The outcomes of sends right after commit, one per filing: a statement built per call cost about a millisecond
# of SQLAlchemy's cache-key work for its list of ids; an expanding parameter is compiled once.
_MARK_SENT = (
    _OUTBOX.update()
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(status="sent", error=None, sent_at=bindparam("now"))
)
_HAND_BACK = (
    _OUTBOX.update().where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True))).values(not_before=bindparam("now"))
)


class DeliveryError(Exception):
    """Base of what a sender may raise."""


class RetryLater(DeliveryError):
    """A temporary failure (network, 5xx) or a rate limit (429 with ``retry_after``)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Undeliverable(DeliveryError):
    """The message can never be delivered (the user blocked the bot, the chat is gone)."""


class Sender(Protocol):
    async def send(self, chat_id: str, payload: dict[str, Any]) -> int | None:
        """Deliver one payload; return the id of the message posted (to edit it later), if any."""
        ...


def _row(ctx: Context, channel: str, recipient_kind: str, recipient_id: int, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.now()
    return {
        "channel": channel,
        "recipient_kind": recipient_kind,
        "recipient_id": recipient_id,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "not_before": now,
        "created_at": now,
        "sent_at": None,
        "error": None,
    }


def enqueue(
    ctx: Context,
    session: AsyncSession,
    *,
    channel: str,
    recipient_kind: str,
    recipient_id: int,
    payload: dict[str, Any],
) -> Outbox:
    """Write one message in the caller's transaction."""
    row = Outbox(**_row(ctx, channel, recipient_kind, recipient_id, payload))
    session.add(row)
    session.info[_FOR_DISPATCHER] = True
    return row


async def tell_coordinators(ctx: Context, session: AsyncSession, message: Msg, item_id: int | None = None) -> None:
    """``message`` to every active coordinator, each in their language: what nobody else is placed to act on."""
    coordinators = await session.scalars(
        select(Official).where(Official.role == "coordinator", Official.active.is_(True))
    )
    for official in coordinators:
        payload: dict[str, Any] = {"text": message.render(official.locale, html.escape), "buttons": []}
        if item_id is not None:
            payload["item_id"] = item_id
        enqueue(ctx, session, channel="telegram", recipient_kind="official", recipient_id=official.id, payload=payload)


def queued_for_dispatcher(session: AsyncSession) -> bool:
    """Whether this session's transaction wrote messages that the dispatcher is to send (wake it after commit)."""
    return bool(session.info.get(_FOR_DISPATCHER))


@dataclass(frozen=True)
class Leased:
    """Messages to one chat written as already claimed by this process (``enqueue_all(..., lease_to=…)``), for
    it to send right after the commit (``Dispatcher.send_after_commit``) instead of waiting for the dispatcher's
    next round. Should the process die first, the lease runs out and the dispatcher sends them as any others."""

    channel: str
    chat_id: str
    row_ids: list[int]
    payloads: list[dict[str, Any]]


async def enqueue_all(
    ctx: Context,
    session: AsyncSession,
    *,
    channel: str,
    recipient_kind: str,
    recipient_id: int,
    payloads: list[dict[str, Any]],
    lease_to: str | None = None,
) -> Leased | None:
    """Write several messages to one recipient, in this order, with one statement in the caller's transaction.

    ``lease_to``: the recipient's chat id, when the caller can send the messages itself once committed; they are
    then written as claimed and returned, unless an earlier message to the recipient is still unsent (the
    dispatcher keeps each recipient's messages in order, so these wait their turn behind it)."""
    if not payloads:
        return None
    rows = [_row(ctx, channel, recipient_kind, recipient_id, payload) for payload in payloads]
    await session.flush()  # what the session holds comes first (as the ORM's autoflush would have it)
    connection = await session.connection()
    recipient = {"u_channel": channel, "u_kind": recipient_kind, "u_id": recipient_id}
    if lease_to is None or (await _UNSENT_TO.execute(connection, recipient)).rows:
        await _INSERT_MESSAGES.execute(connection, rows)
        session.info[_FOR_DISPATCHER] = True
        return None
    lease_until = ctx.now() + LEASE
    for row in rows:
        row.update(status="sending", attempts=1, not_before=lease_until)
    inserted = await _INSERT_LEASED.execute(connection, rows)
    return Leased(channel, lease_to, [row_id for (row_id,) in inserted.rows], payloads)


@dataclass(frozen=True)
class Unreadable:
    """A recipient whose stored address the vault cannot open (a damaged row, or one sealed under another key):
    their messages fail alone, everyone else's still go."""

    reason: str


class Dispatcher:
    def __init__(self, ctx: Context, senders: Mapping[str, Sender], *, worker: str | None = None) -> None:
        self.ctx = ctx
        self.senders = dict(senders)
        self.worker = worker or f"{socket.gethostname()}:{id(self):x}"
        self.wake = asyncio.Event()
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._outcomes: GroupCommit[tuple[list[int], list[int]], None] = GroupCommit(self._record_outcomes)

    async def _claim(self, limit: int) -> list[tuple[Outbox, str | Unreadable | None]]:
        now = self.ctx.now()
        async with self.ctx.sessions.begin() as session:
            earlier = aliased(Outbox)
            held_back = (
                select(earlier.id)
                .where(
                    earlier.channel == Outbox.channel,
                    earlier.recipient_kind == Outbox.recipient_kind,
                    earlier.recipient_id == Outbox.recipient_id,
                    earlier.status.in_(("pending", "sending")),
                    earlier.id < Outbox.id,
                    earlier.not_before > now,
                )
                .exists()
            )
            query = (
                select(Outbox)
                .where(
                    Outbox.channel.in_(list(self.senders)),
                    or_(Outbox.status == "pending", Outbox.status == "sending"),
                    Outbox.not_before <= now,
                    ~held_back,  # keep each recipient's messages in the order they were written
                )
                .order_by(Outbox.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            rows = list((await session.execute(query)).scalars())
            for row in rows:
                row.status = "sending"
                row.attempts += 1
                row.not_before = now + LEASE
            chat_ids: dict[tuple[str, int], str | Unreadable | None] = {}
            for row in rows:  # each recipient looked up and decrypted once per batch
                key = (row.recipient_kind, row.recipient_id)
                if key not in chat_ids:
                    try:
                        chat_ids[key] = await self._chat_id(session, row)
                    except VaultError as exc:
                        log.error("outbox: the address of %s %s cannot be read: %s", *key, exc)
                        chat_ids[key] = Unreadable(str(exc))
        return [(row, chat_ids[(row.recipient_kind, row.recipient_id)]) for row in rows]

    async def _chat_id(self, session: AsyncSession, row: Outbox) -> str | None:
        if row.recipient_kind == "citizen":
            citizen = await session.get(Citizen, row.recipient_id)
            return self.ctx.vault.decrypt(citizen.enc_channel_id, "citizen.channel_id") if citizen else None
        if row.recipient_kind == "official":
            official = await session.get(Official, row.recipient_id)
            if official is None or not official.active:
                return None
            return self.ctx.vault.decrypt(official.enc_channel_id, "official.channel_id")
        if row.recipient_kind == "group":
            group = await session.get(UnitChat, row.recipient_id)
            return self.ctx.vault.decrypt(group.enc_chat_id, "group.chat_id") if group and group.active else None
        return None

    def sends(self, channel: str) -> bool:
        """Whether this process has a sender for ``channel`` (the web chat has none: its page collects)."""
        return channel in self.senders

    def send_after_commit(self, leased: Leased) -> asyncio.Future[Any]:
        """Send messages this process wrote as claimed, in the background; the caller may wait for the sending
        as long as it likes (cancelling the wait leaves the sending alone)."""
        return self._track(self.send_leased(leased))

    async def send_leased(self, leased: Leased) -> None:
        """Send messages this process wrote as claimed, now and in order; their outcomes are recorded in the
        background, whatever happens here (cancelled, the rest is handed back). The first failure, whatever it
        is, hands that message and the rest back to the dispatcher at once, which retries (or gives up on) them
        as it would its own."""
        sender = self.senders[leased.channel]
        sent = 0
        try:
            for payload in leased.payloads:
                try:
                    await sender.send(leased.chat_id, payload)
                except Exception as exc:
                    log.info("sending right after commit failed, the dispatcher takes over: %s", exc)
                    break
                sent += 1
        finally:
            self._track(self._outcomes.submit((leased.row_ids[:sent], leased.row_ids[sent:])))

    def _track(self, work: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(work)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return task

    async def settle(self) -> None:
        """Wait for the sends started after commit, and for their outcomes to be recorded (before stopping)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _record_outcomes(self, batch: list[tuple[list[int], list[int]]]) -> list[None]:
        """One transaction for the outcomes, (sent, handed back), of every send after commit that finished
        meanwhile."""
        delivered = [row_id for sent, _ in batch for row_id in sent]
        handed_back = [row_id for _, rest in batch for row_id in rest]
        now = self.ctx.now()
        try:
            async with begin(self.ctx.engine) as connection:
                run_statements_inline(connection)  # one or two UPDATEs by primary key
                if delivered:
                    await connection.execute(_MARK_SENT, {"ids": delivered, "now": now})
                if handed_back:
                    await connection.execute(_HAND_BACK, {"ids": handed_back, "now": now})
        except Exception:  # their lease runs out and the dispatcher sends them (again: at least once)
            log.exception("could not record %d messages sent right after commit", len(delivered))
        else:
            if handed_back:
                self.wake.set()
        return [None] * len(batch)

    async def run_once(self, limit: int = 100) -> int:
        """Send what is due now; return how many messages were delivered.

        Recipients are served concurrently, each one's messages in order; the results are recorded in one
        transaction at the end.
        """
        claimed = await self._claim(limit)
        by_recipient: dict[tuple[str, str, int], list[tuple[Outbox, str | Unreadable | None]]] = {}
        for row, chat_id in claimed:
            by_recipient.setdefault((row.channel, row.recipient_kind, row.recipient_id), []).append((row, chat_id))
        outcomes: dict[int, tuple[str, str | None, timedelta | None, int | None]] = {}

        async def serve(queue: list[tuple[Outbox, str | Unreadable | None]]) -> None:
            for index, (row, chat_id) in enumerate(queue):
                outcomes[row.id] = await self._deliver(row, chat_id)
                if outcomes[row.id][0] != "sent":  # hold the rest back: this recipient's order is kept
                    for later, _ in queue[index + 1 :]:
                        outcomes[later.id] = ("pending", None, timedelta(0), None)
                    return

        await asyncio.gather(*(serve(queue) for queue in by_recipient.values()))
        delivered = 0
        async with self.ctx.sessions.begin() as session:
            plain_sent = {row.id for row, _ in claimed if outcomes[row.id][0] == "sent" and not row.payload.get("card")}
            if plain_sent:  # the common case, one statement for the whole batch
                await session.execute(
                    update(Outbox)
                    .where(Outbox.id.in_(sorted(plain_sent)))
                    .values(status="sent", error=None, sent_at=self.ctx.now())
                    .execution_options(synchronize_session=False)
                )
                delivered += len(plain_sent)
            for row, _ in claimed:
                if row.id in plain_sent:
                    continue
                status, error, delay, message_id = outcomes[row.id]
                fresh = await session.get(Outbox, row.id)
                if fresh is None:
                    continue
                fresh.status = status
                fresh.error = error
                if status == "sent":
                    fresh.sent_at = self.ctx.now()
                    delivered += 1
                    if message_id is not None:  # a card: remember its message, to edit it in place later
                        session.add(
                            ItemCard(
                                item_id=row.payload["item_id"],
                                recipient_kind=row.recipient_kind,
                                recipient_id=row.recipient_id,
                                message_id=message_id,
                                created_at=self.ctx.now(),
                            )
                        )
                elif status == "dead" and row.recipient_kind == "citizen":
                    await self._tell_coordinators(session, row)
                elif status == "pending":
                    fresh.not_before = self.ctx.now() + (delay or timedelta(0))
                    if delay == timedelta(0):
                        fresh.attempts -= 1
        return delivered

    async def _tell_coordinators(self, session: AsyncSession, row: Outbox) -> None:
        """A citizen who can never be reached (blocked the bot) is shown to the coordinators."""
        item = await session.get(Item, row.payload.get("item_id") or 0)
        text = Msg("outbox.undeliverable", {"code": item.receipt_code if item else "-", "error": row.error or ""})
        await tell_coordinators(self.ctx, session, text)

    async def _deliver(
        self, row: Outbox, chat_id: str | Unreadable | None
    ) -> tuple[str, str | None, timedelta | None, int | None]:
        sender = self.senders[row.channel]
        if chat_id is None:
            return ("dead", "recipient not found or no longer active", None, None)
        if isinstance(chat_id, Unreadable):
            return ("dead", f"the recipient's address cannot be read: {chat_id.reason}"[:500], None, None)
        try:
            message_id = await sender.send(chat_id, row.payload)
        except Undeliverable as exc:
            log.warning("outbox %s undeliverable: %s", row.id, exc)
            return ("dead", str(exc)[:500], None, None)
        except RetryLater as exc:
            if row.attempts >= MAX_ATTEMPTS and exc.retry_after is None:
                return ("dead", f"gave up after {row.attempts} attempts: {exc}"[:500], None, None)
            backoff = (
                timedelta(seconds=exc.retry_after)
                if exc.retry_after is not None
                else min(MAX_BACKOFF, timedelta(seconds=2 ** (row.attempts - 1)))
            )
            log.info("outbox %s retry in %s: %s", row.id, backoff, exc)
            return ("pending", str(exc)[:500], backoff, None)
        return ("sent", None, None, message_id)

    async def run_forever(self, idle: float = 1.0) -> None:
        """Send as messages appear: woken by ``wake`` after a commit, or every ``idle`` seconds."""
        while True:
            try:
                while await self.run_once():
                    pass
            except Exception:
                log.exception("outbox dispatcher failed; retrying")
            self.wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that arrives as the wait
            # ends (a commit woke the dispatcher just as the service stops), and the loop would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(idle):
                    await self.wake.wait()


async def take_for_web(ctx: Context, session: AsyncSession, citizen_id: int) -> list[dict[str, Any]]:
    """The web chat has no push channel: its pending messages are handed over when the page asks."""
    rows = list(
        (
            await session.execute(
                select(Outbox)
                .where(
                    Outbox.channel == "web",
                    Outbox.recipient_kind == "citizen",
                    Outbox.recipient_id == citizen_id,
                    Outbox.status == "pending",
                )
                .order_by(Outbox.id)
                .with_for_update()
            )
        ).scalars()
    )
    for row in rows:
        row.status = "sent"
        row.sent_at = ctx.now()
    return [row.payload for row in rows]
