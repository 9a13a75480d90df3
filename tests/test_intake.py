"""Intake: an item is created whole, routed, on the legal clock, audited — or not at all."""

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import audit
from bot.context import Context
from bot.errors import ValidationError
from bot.intake import Draft, submit_item
from bot.receipts import new_receipt_code, normalise_receipt_code
from models.tables import AuditEvent, Citizen, Clock, Item, ItemMessage, Outbox, RoutingDecision, UnitChat
from tests.digest_seed import add_official

PHONE = "0912 345 678"
MUONG_PHANG = "3325"


def land_report(**changes: object) -> Draft:
    fields: dict[str, object] = {
        "type": "phan_anh",
        "category": "dat_dai",
        "commune_code": MUONG_PHANG,
        "description": "Đất nhà tôi ở bản Nà Nhạn bị lấn chiếm để làm đường, đề nghị xã kiểm tra giúp.",
    }
    fields.update(changes)
    return Draft(**fields)  # type: ignore[arg-type]


async def _count(ctx: Context, model: type) -> int:
    async with ctx.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_an_anonymous_report_is_routed_and_on_the_clock(ctx: Context) -> None:
    async with ctx.sessions.begin() as session:
        result = await submit_item(ctx, session, land_report(), channel="telegram", channel_id="1001")
    assert normalise_receipt_code(result.item.receipt_code, "DB") == result.item.receipt_code
    # Received Thursday 12/02/2026; ten working days around Tết (16–20/02) end on 05/03/2026.
    assert result.accept.due == date(2026, 3, 5)
    assert result.resolve is not None and result.resolve.due == date(2026, 3, 26)
    assert len(result.pseudonym) == 4
    async with ctx.sessions() as session:
        item = await session.get(Item, result.item.id)
        assert item is not None and item.receipt_code == result.item.receipt_code
        assert item.unit_code == result.item.unit_code == "ubnd_xa_muong_phang"
        assert item.status == "submitted" and item.anonymous and not item.paused and item.version == 1
        assert item.citizen_id == result.item.citizen_id and item.received_at is not None
        clocks = {c.kind: c for c in (await session.execute(select(Clock))).scalars()}
        decision = (await session.execute(select(RoutingDecision))).scalar_one()
        events = (await session.execute(select(AuditEvent))).scalars().all()
    assert clocks["accept"].due_date == date(2026, 3, 5) and clocks["accept"].next_due_at is not None
    assert decision.rule_id == "land-in-commune"
    assert [e.action for e in events] == ["submit"]
    assert events[0].data["unit"] == "ubnd_xa_muong_phang"


async def test_a_receipt_code_already_taken_is_passed_over(ctx: Context) -> None:
    """Receipt codes are random: should a new one equal an existing item's, the next one is tried and both items
    keep their own."""
    async with ctx.sessions.begin() as session:
        first = (await submit_item(ctx, session, land_report(), channel="telegram", channel_id="1001")).item
    fresh = new_receipt_code("DB")
    async with ctx.sessions.begin() as session:
        second = (
            await submit_item(
                ctx,
                session,
                land_report(),
                channel="telegram",
                channel_id="1002",
                codes=iter([first.receipt_code, fresh]),
            )
        ).item
    assert second.receipt_code == fresh and second.id != first.id
    async with ctx.sessions() as session:
        codes = dict((await session.execute(select(Item.id, Item.receipt_code))).all())
    assert codes == {first.id: first.receipt_code, second.id: fresh}


async def test_a_refusal_after_the_first_write_is_not_a_refusal(ctx: Context) -> None:
    """A filing runs without a savepoint because it refuses before it writes; should a refusal ever come after a
    write (here the receipt codes' source refuses, after the citizen's row is written), it is raised as an error
    that rolls the caller's whole transaction back, not as a refusal that the conversation would answer and
    commit with half an item."""

    def refusing_codes() -> Iterator[str]:
        raise ValidationError("error.invalid")
        yield "never"

    with pytest.raises(RuntimeError, match="refused after its first write"):
        async with ctx.sessions.begin() as session:
            await submit_item(ctx, session, land_report(), channel="web", channel_id="s1", codes=refusing_codes())
    assert await _count(ctx, Citizen) == 0 and await _count(ctx, Item) == 0


async def test_a_complaint_needs_a_name_and_phone(ctx: Context) -> None:
    with pytest.raises(ValidationError) as caught:
        async with ctx.sessions.begin() as session:
            await submit_item(ctx, session, land_report(type="khieu_nai"), channel="web", channel_id="s1")
    assert caught.value.vi == "Khiếu nại phải ghi rõ họ tên, số điện thoại của người gửi (Luật Khiếu nại 2011, Điều 8)."
    assert caught.value.en.startswith("A Complaint must carry the sender's name and phone number")
    assert await _count(ctx, Item) == 0


async def test_an_identified_item_needs_consent(ctx: Context) -> None:
    draft = land_report(type="khieu_nai", anonymous=False, name="Lò Văn A", phone=PHONE, consent=False)
    with pytest.raises(ValidationError) as caught:
        async with ctx.sessions.begin() as session:
            await submit_item(ctx, session, draft, channel="web", channel_id="s1")
    assert caught.value.key == "error.consent_required"


async def test_a_short_description_is_refused_in_the_users_language(ctx: Context) -> None:
    with pytest.raises(ValidationError) as caught:
        async with ctx.sessions.begin() as session:
            await submit_item(ctx, session, land_report(description="  đường hỏng  "), channel="web", channel_id="s")
    assert caught.value.vi == "Nội dung quá ngắn: cần ít nhất 20 ký tự."
    assert await _count(ctx, Item) == 0


async def test_the_identity_is_encrypted_and_the_text_masked_for_officials(ctx: Context) -> None:
    description = f"Cán bộ địa chính xã đòi tiền khi làm sổ đỏ. Gọi lại cho tôi theo số {PHONE} nhé."
    draft = land_report(
        type="khieu_nai", description=description, anonymous=False, name="Lò Văn Bình", phone=PHONE, consent=True
    )
    async with ctx.sessions.begin() as session:
        result = await submit_item(ctx, session, draft, channel="telegram", channel_id="777000111")
    async with ctx.sessions() as session:
        message = (await session.execute(select(ItemMessage))).scalar_one()
        citizen = await session.get(Citizen, result.item.citizen_id)
    assert "912" not in message.text_masked and "[số điện thoại]" in message.text_masked
    assert citizen is not None and citizen.enc_phone is not None
    assert ctx.vault.decrypt(citizen.enc_phone, "citizen.phone") == "+84912345678"
    assert ctx.vault.decrypt(citizen.enc_name or b"", "citizen.name") == "Lò Văn Bình"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # searches the SQLite file's bytes
async def test_a_citizens_phone_cannot_be_found_in_the_database_file(ctx: Context, tmp_path: Path) -> None:
    draft = land_report(
        type="khieu_nai",
        anonymous=False,
        name="Lò Văn Bình",
        phone=PHONE,
        consent=True,
        description=f"Xin liên hệ {PHONE} hoặc 0912345678 hoặc binh.lv@gmail.com để xác minh.",
    )
    async with ctx.sessions.begin() as session:
        await submit_item(ctx, session, draft, channel="telegram", channel_id="777000111")
    await ctx.engine.dispose()
    database = Path(str(ctx.engine.url.database))
    data = b"".join(path.read_bytes() for path in database.parent.glob(database.name + "*"))
    for needle in ("912345678", "912 345 678", "Lò Văn Bình", "binh.lv@gmail.com", "777000111"):
        assert needle.encode() not in data, needle


async def test_a_failure_before_commit_leaves_nothing_behind(ctx: Context) -> None:
    with pytest.raises(RuntimeError):
        async with ctx.sessions.begin() as session:
            await submit_item(ctx, session, land_report(), channel="web", channel_id="s1")
            raise RuntimeError("the process died here")
    for model in (Item, ItemMessage, Clock, RoutingDecision, AuditEvent):
        assert await _count(ctx, model) == 0, model
    async with ctx.sessions() as session:
        assert (await audit.verify(session)).ok


async def test_an_item_about_a_communes_conduct_goes_to_the_inspectorate(ctx: Context) -> None:
    draft = land_report(category="thai_do_can_bo", about_unit_code="ubnd_xa_muong_phang")
    async with ctx.sessions.begin() as session:
        result = await submit_item(ctx, session, draft, channel="web", channel_id="s1")
    assert result.item.unit_code == "thanh_tra"
    assert result.decision.rule_id == "conflict_of_interest"


async def test_receipt_codes_are_unique_across_many_items(ctx: Context) -> None:
    codes = set()
    async with ctx.sessions.begin() as session:
        for index in range(40):
            result = await submit_item(ctx, session, land_report(), channel="web", channel_id=f"s{index}")
            codes.add(result.item.receipt_code)
    assert len(codes) == 40


async def test_a_chat_that_files_again_is_the_same_citizen_in_the_language_it_last_used(ctx: Context) -> None:
    async with ctx.sessions.begin() as session:
        first = await submit_item(ctx, session, land_report(), channel="telegram", channel_id="5150", locale="vi")
    draft = land_report(type="khieu_nai", anonymous=False, name="Lò Văn Bình", phone=PHONE, consent=True)
    async with ctx.sessions.begin() as session:
        second = await submit_item(ctx, session, draft, channel="telegram", channel_id="5150", locale="en")
    assert first.item.citizen_id == second.item.citizen_id and first.item.id != second.item.id
    async with ctx.sessions() as session:
        citizens = (await session.execute(select(Citizen))).scalars().all()
        items = {item.id: item for item in (await session.execute(select(Item))).scalars()}
    assert len(citizens) == 1 and citizens[0].locale == "en"
    assert ctx.vault.decrypt(citizens[0].enc_name or b"", "citizen.name") == "Lò Văn Bình"
    assert items[first.item.id].anonymous and not items[second.item.id].anonymous


async def _cards_queued(ctx: Context) -> list[tuple[str, int, str]]:
    async with ctx.sessions() as session:
        rows = (await session.execute(select(Outbox).order_by(Outbox.id))).scalars().all()
    return [(row.recipient_kind, row.recipient_id, row.payload["text"]) for row in rows if row.payload.get("card")]


async def test_the_card_goes_to_each_officer_in_their_language_or_to_the_units_bound_group(ctx: Context) -> None:
    unit, now = "ubnd_xa_muong_phang", ctx.now()
    officer = await add_official(ctx, "officer", unit, created_at=now, locale="en")
    head = await add_official(ctx, "head", unit, created_at=now)
    await add_official(ctx, "officer", unit, created_at=now, active=False)
    await add_official(ctx, "officer", "thanh_tra", created_at=now)
    async with ctx.sessions.begin() as session:
        code = (await submit_item(ctx, session, land_report(), channel="web", channel_id="c1")).item.receipt_code
    cards = await _cards_queued(ctx)
    assert [(kind, recipient) for kind, recipient, _ in cards] == [("official", officer), ("official", head)]
    assert all(code in text for _, _, text in cards)
    assert "Sender:" in cards[0][2] and "Người gửi:" in cards[1][2]
    async with ctx.sessions.begin() as session:
        group = UnitChat(unit_code=unit, lookup_hash="g", enc_chat_id=b"-", active=True)
        session.add_all([group, UnitChat(unit_code=unit, lookup_hash="h", enc_chat_id=b"-", active=False)])
    async with ctx.sessions.begin() as session:
        await submit_item(ctx, session, land_report(), channel="web", channel_id="c2")
    assert [(kind, recipient) for kind, recipient, _ in (await _cards_queued(ctx))[2:]] == [("group", group.id)]
