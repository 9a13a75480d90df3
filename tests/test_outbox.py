"""The outbox dispatcher against the fake Bot API: exactly once, crash recovery, 429, 5xx, blocked users."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.citizens import citizen_id_for_chat
from bot.context import Context
from bot.conversation import Conversations
from bot.dialog import Event
from bot.officials import accept_invite, create_invite
from bot.outbox import Dispatcher, Leased, enqueue, enqueue_all
from handlers.telegram import TelegramChannel
from models.tables import Citizen, Outbox
from tests.conftest import TestClock, second_process
from tests.fakes.telegram_api import FakeBotAPI

TOKEN = "123456:TEST-token"


@dataclasses.dataclass
class Rig:
    fake: FakeBotAPI
    ctx: Context
    channel: TelegramChannel

    def dispatcher(self, ctx: Context | None = None) -> Dispatcher:
        return Dispatcher(ctx or self.ctx, {"telegram": self.channel.sender})


@pytest.fixture
async def rig(ctx: Context) -> AsyncIterator[Rig]:
    async with FakeBotAPI(token=TOKEN) as fake:
        settings = dataclasses.replace(
            ctx.settings, telegram_token=TOKEN, telegram_api_url=fake.url, telegram_max_rate=0
        )
        ctx = dataclasses.replace(ctx, settings=settings)
        channel = TelegramChannel(ctx, Conversations(ctx))
        await channel.application.initialize()
        try:
            yield Rig(fake, ctx, channel)
        finally:
            await channel.application.shutdown()


async def _queue(ctx: Context, chats: list[int], per_chat: int = 1) -> None:
    async with ctx.sessions.begin() as session:
        for chat in chats:
            citizen_id = await citizen_id_for_chat(ctx, session, "telegram", str(chat))
            for index in range(per_chat):
                enqueue(
                    ctx,
                    session,
                    channel="telegram",
                    recipient_kind="citizen",
                    recipient_id=citizen_id,
                    payload={"text": f"Tin nhắn {index} cho {chat}", "buttons": []},
                )


async def _drain(*dispatchers: Dispatcher, rounds: int = 50) -> None:
    for _ in range(rounds):
        if not sum(await asyncio.gather(*(d.run_once(limit=10) for d in dispatchers))):
            pending = await _pending(dispatchers[0].ctx)
            if not pending:
                return
            await asyncio.sleep(0.1)


async def _pending(ctx: Context) -> int:
    async with ctx.sessions() as session:
        rows = (await session.execute(select(Outbox).where(Outbox.status.in_(("pending", "sending"))))).all()
    return len(rows)


async def test_two_dispatchers_deliver_each_message_exactly_once(rig: Rig) -> None:
    chats = list(range(9000, 9040))
    await _queue(rig.ctx, chats)
    second = second_process(rig.ctx)
    engine = second.engine
    try:
        await _drain(rig.dispatcher(), rig.dispatcher(second))
    finally:
        await engine.dispose()
    for chat in chats:
        assert [m.text for m in rig.fake.sent_to(chat)] == [f"Tin nhắn 0 cho {chat}"]


async def test_a_process_killed_after_claiming_delivers_after_restart(rig: Rig, clock: TestClock) -> None:
    await _queue(rig.ctx, [9100], per_chat=2)
    crashed = rig.dispatcher()
    claimed = await crashed._claim(limit=10)  # the process dies here, between commit and send
    assert len(claimed) == 2 and rig.fake.sent_to(9100) == []
    restarted = rig.dispatcher()
    assert await restarted.run_once() == 0, "the lease keeps another process off while the first may still send"
    clock.advance(seconds=61)
    await _drain(restarted)
    assert [m.text for m in rig.fake.sent_to(9100)] == ["Tin nhắn 0 cho 9100", "Tin nhắn 1 cho 9100"]


async def test_rate_limits_and_server_errors_are_retried_in_order(rig: Rig) -> None:
    await _queue(rig.ctx, [9200], per_chat=2)
    rig.fake.fail_next("sendMessage", status=429, retry_after=1)
    dispatcher = rig.dispatcher()
    assert await dispatcher.run_once() == 0
    async with rig.ctx.sessions() as session:
        first = (await session.execute(select(Outbox).order_by(Outbox.id))).scalars().first()
    assert first is not None and first.status == "pending" and "rate limited" in (first.error or "")
    rig.fake.fail_next("sendMessage", status=502, times=1)
    await asyncio.sleep(1.1)
    await _drain(dispatcher)
    assert [m.text for m in rig.fake.sent_to(9200)] == ["Tin nhắn 0 cho 9200", "Tin nhắn 1 cho 9200"]


async def test_a_citizen_who_blocked_the_bot_is_shown_to_the_coordinator(rig: Rig) -> None:
    async with rig.ctx.sessions.begin() as session:
        token = await create_invite(
            rig.ctx, session, unit_code="thanh_tra", role="coordinator", valid_for=timedelta(days=1)
        )
        await accept_invite(rig.ctx, session, token, telegram_user_id=9999, display_name="Điều phối", locale="vi")
    await _queue(rig.ctx, [9300])
    rig.fake.block_chat(9300)
    await _drain(rig.dispatcher())
    async with rig.ctx.sessions() as session:
        dead = (await session.execute(select(Outbox).where(Outbox.status == "dead"))).scalars().all()
    assert len(dead) == 1 and "blocked" in (dead[0].error or "")
    assert any("Không gửi được tin nhắn tới người dân" in m.text for m in rig.fake.sent_to(9999))


FILING = (
    Event(kind="command", command="start"),
    Event(kind="button", payload="menu:file"),
    Event(kind="button", payload="type:phan_anh"),
    Event(kind="button", payload="cat:dat_dai"),
    Event(kind="text", text="Mường Phăng"),
    Event(kind="text", text="Bỏ qua"),
    Event(kind="button", payload="cond:n"),
    Event(kind="text", text="Bãi rác tự phát cạnh suối Nậm Rốm bốc mùi, nước thải chảy ra suối nhiều ngày nay."),
    Event(kind="button", payload="desc:done"),
    Event(kind="button", payload="att:done"),
    Event(kind="button", payload="id:anon"),
    Event(kind="button", payload="sum:send"),
)


async def _file_report(conversations: Conversations, chat: int) -> None:
    for update_id, event in enumerate(FILING, start=1):
        rendered = await conversations.handle("telegram", str(chat), event, update_id=update_id)
    assert rendered.queued, "the receipt is durable: it goes through the outbox"


async def _citizen_rows(ctx: Context) -> list[Outbox]:
    async with ctx.sessions() as session:
        query = select(Outbox).where(Outbox.recipient_kind == "citizen").order_by(Outbox.id)
        return list((await session.execute(query)).scalars())


async def test_a_receipt_is_sent_right_after_its_commit_not_at_the_dispatchers_next_round(rig: Rig) -> None:
    conversations = Conversations(rig.ctx)
    conversations.outbox = dispatcher = rig.dispatcher()  # never run: only the filing process sends
    await _file_report(conversations, 9400)
    await dispatcher.settle()  # what pakn serve waits for when it stops
    texts = [message.text for message in rig.fake.sent_to(9400)]
    assert len(texts) == 1 and "DB-" in texts[0] and texts[0].endswith("Bạn muốn làm gì?"), "the receipt and menu"
    rows = await _citizen_rows(rig.ctx)
    assert [row.status for row in rows] == ["sent"] and rows[0].sent_at is not None
    assert await dispatcher.run_once() == 0 and len(rig.fake.sent_to(9400)) == 1, "sent once"


async def test_a_receipt_that_fails_right_after_commit_is_handed_to_the_dispatcher(rig: Rig) -> None:
    conversations = Conversations(rig.ctx)
    conversations.outbox = dispatcher = rig.dispatcher()
    for update_id, event in enumerate(FILING[:-1], start=1):
        await conversations.handle("telegram", "9401", event, update_id=update_id)
    rig.fake.fail_next("sendMessage", status=502)
    await conversations.handle("telegram", "9401", FILING[-1], update_id=len(FILING))
    for _ in range(100):
        rows = await _citizen_rows(rig.ctx)
        if rows and rows[0].not_before <= rig.ctx.now():
            break
        await asyncio.sleep(0.05)
    assert rig.fake.sent_to(9401) == [] and [row.status for row in rows] == ["sending"]
    await _drain(dispatcher)
    texts = [message.text for message in rig.fake.sent_to(9401)]
    assert len(texts) == 1 and "DB-" in texts[0], "sent once"


async def test_a_receipt_waits_behind_an_earlier_unsent_message_to_the_same_citizen(rig: Rig) -> None:
    await _queue(rig.ctx, [9402])  # an official's answer, say, that the dispatcher has not sent yet
    conversations = Conversations(rig.ctx)
    conversations.outbox = dispatcher = rig.dispatcher()
    await _file_report(conversations, 9402)
    rows = await _citizen_rows(rig.ctx)
    assert [(row.status, row.attempts) for row in rows] == [("pending", 0)] * 2, "not leased: for the dispatcher"
    await _drain(dispatcher)
    texts = [message.text for message in rig.fake.sent_to(9402)]
    assert texts[0] == "Tin nhắn 0 cho 9402" and "DB-" in texts[1] and len(texts) == 2


async def test_a_process_killed_before_sending_a_leased_receipt_leaves_it_to_the_dispatcher(
    rig: Rig, clock: TestClock
) -> None:
    async with rig.ctx.sessions.begin() as session:
        citizen_id = await citizen_id_for_chat(rig.ctx, session, "telegram", "9403")
        leased = await enqueue_all(
            rig.ctx,
            session,
            channel="telegram",
            recipient_kind="citizen",
            recipient_id=citizen_id,
            payloads=[{"text": "Biên nhận DB-TEST", "buttons": []}],
            lease_to="9403",
        )
    assert leased is not None  # the process dies here, after its commit and before sending
    restarted = rig.dispatcher()
    assert await restarted.run_once() == 0, "the lease keeps the dispatcher off while the writer may still send"
    clock.advance(seconds=61)
    await _drain(restarted)
    assert [message.text for message in rig.fake.sent_to(9403)] == ["Biên nhận DB-TEST"]


async def _lease(ctx: Context, chat: int, payloads: list[dict[str, Any]]) -> Leased:
    async with ctx.sessions.begin() as session:
        citizen_id = await citizen_id_for_chat(ctx, session, "telegram", str(chat))
        leased = await enqueue_all(
            ctx,
            session,
            channel="telegram",
            recipient_kind="citizen",
            recipient_id=citizen_id,
            payloads=payloads,
            lease_to=str(chat),
        )
    assert leased is not None
    return leased


RECEIPT = {"text": "Biên nhận", "buttons": []}
NOTE = {"text": "Ghi chú", "buttons": []}


async def test_messages_sent_after_commit_go_in_order_and_a_failure_hands_back_the_rest(rig: Rig) -> None:
    """Several messages leased together are sent one after the other; when one fails, it and those after it go
    back to the dispatcher at once (which sends them in order), and those before it count as sent."""
    dispatcher = rig.dispatcher()
    await dispatcher.send_leased(await _lease(rig.ctx, 9410, [RECEIPT, NOTE]))
    refused = {"text": "", "buttons": []}  # Telegram answers 400 "message text is empty"
    await dispatcher.send_leased(await _lease(rig.ctx, 9411, [RECEIPT, refused, NOTE]))
    await dispatcher.settle()
    assert [m.text for m in rig.fake.sent_to(9410)] == ["Biên nhận", "Ghi chú"]
    assert [m.text for m in rig.fake.sent_to(9411)] == ["Biên nhận"]
    rows = await _citizen_rows(rig.ctx)
    assert [row.status for row in rows] == ["sent", "sent", "sent", "sending", "sending"]
    assert all(row.not_before <= rig.ctx.now() for row in rows[3:]), "handed back: the dispatcher may take them"
    await _drain(dispatcher)
    assert [m.text for m in rig.fake.sent_to(9411)] == ["Biên nhận", "Ghi chú"]
    assert [row.status for row in await _citizen_rows(rig.ctx)][3:] == ["dead", "sent"]


async def test_a_send_after_commit_cancelled_on_its_way_hands_its_messages_back_at_once(rig: Rig) -> None:
    """A send right after commit cancelled while the receipt is on its way (the service stopping, say): the
    messages are handed back to the dispatcher now, not when their lease runs out a minute later."""
    dispatcher = rig.dispatcher()
    rig.fake.delay = 3.0  # Telegram slow to answer
    mark = len(rig.fake.calls)
    sending = asyncio.ensure_future(dispatcher.send_leased(await _lease(rig.ctx, 9414, [RECEIPT, NOTE])))
    await rig.fake.wait_for("sendMessage", after=mark, answered=False)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    rig.fake.delay = 0.0
    await dispatcher.settle()
    rows = await _citizen_rows(rig.ctx)
    assert [row.status for row in rows] == ["sending", "sending"]
    assert all(row.not_before <= rig.ctx.now() for row in rows), "the dispatcher may take them at once"


async def test_the_dispatcher_stops_when_told_to_even_as_a_commit_wakes_it(ctx: Context) -> None:
    """The service stops by cancelling the dispatcher's loop; a wake-up (a commit that queued messages) arriving in
    the same moment must not swallow that cancellation, or the loop runs on and the service never exits (as it did
    with ``asyncio.wait_for`` on Python 3.11)."""
    dispatcher = Dispatcher(ctx, {})
    running = asyncio.create_task(dispatcher.run_forever(idle=60))
    async with asyncio.timeout(10):  # nothing to send: it looks once, then waits to be woken (Event's own waiters)
        while not dispatcher.wake._waiters:  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
    dispatcher.wake.set()
    running.cancel()
    done, _ = await asyncio.wait({running}, timeout=5)
    assert done and running.cancelled()


async def test_a_recipient_whose_address_cannot_be_read_fails_alone(rig: Rig) -> None:
    """One damaged row (or one sealed under another key) must not stop every other chat's messages: the
    dispatcher used to roll the whole batch back and retry it forever."""
    await _queue(rig.ctx, [4101, 4102, 4103])
    async with rig.ctx.sessions.begin() as session:
        damaged = await citizen_id_for_chat(rig.ctx, session, "telegram", "4102")
        await session.execute(
            update(Citizen).where(Citizen.id == damaged).values(enc_channel_id=b"\x01" + b"\x00" * 40)
        )
    delivered = await rig.dispatcher().run_once()
    assert delivered == 2
    assert {str(call.params["chat_id"]) for call in rig.fake.calls_of("sendMessage")} == {"4101", "4103"}
    async with rig.ctx.sessions() as session:
        rows = {row.recipient_id: row for row in (await session.execute(select(Outbox))).scalars()}
    assert rows[damaged].status == "dead" and "cannot be read" in (rows[damaged].error or "")
    assert all(row.status == "sent" for recipient, row in rows.items() if recipient != damaged)
