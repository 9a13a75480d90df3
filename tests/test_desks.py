"""Desks as a service: adding, listing, disabling; a report about a desk's staff goes to the supervisor."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.context import Context
from bot.desks import add_desk, list_desks, report_desk_staff, set_desk_active
from bot.errors import NotFound, ValidationError
from models.tables import AuditEvent, Item, ItemMessage, RoutingDecision

MUONG_PHANG = "ubnd_xa_muong_phang"


async def test_desk_codes_are_derived_from_the_unit_and_numbered(ctx: Context) -> None:
    async with ctx.sessions.begin() as session:
        first = await add_desk(ctx, session, unit_code=MUONG_PHANG, name="  Bộ phận   một cửa ")
        second = await add_desk(ctx, session, unit_code=MUONG_PHANG, name="Quầy số 2")
        named = await add_desk(ctx, session, unit_code="so_tu_phap", name="Quầy hộ tịch", code="stp-ho-tich")
    assert (first.code, second.code, named.code) == ("ubnd-xa-muong-phang-1", "ubnd-xa-muong-phang-2", "stp-ho-tich")
    assert first.name == "Bộ phận một cửa"
    assert first.commune_code == "3325"  # a commune committee's desk is placed in its commune
    assert named.commune_code is None
    async with ctx.sessions() as session:
        desks = await list_desks(session)
        only = await list_desks(session, unit_code="so_tu_phap")
        events = (await session.execute(select(AuditEvent.action, AuditEvent.data))).all()
    assert [d.code for d in desks] == ["stp-ho-tich", first.code, second.code]  # by unit, then code
    assert [d.code for d in only] == ["stp-ho-tich"]
    assert [action for action, _ in events] == ["desk_add"] * 3


async def test_bad_desks_are_refused_with_a_reason(ctx: Context) -> None:
    cases = [
        ({"unit_code": "ubnd_nowhere", "name": "Quầy"}, "error.unknown_unit"),
        ({"unit_code": MUONG_PHANG, "name": "   "}, "desk.error.name_required"),
        ({"unit_code": MUONG_PHANG, "name": "x" * 201}, "error.description_too_long"),
        ({"unit_code": MUONG_PHANG, "name": "Quầy", "commune_code": "9999"}, "error.unknown_commune"),
        ({"unit_code": MUONG_PHANG, "name": "Quầy", "code": "Quầy_1"}, "desk.error.bad_code"),
    ]
    for kwargs, key in cases:
        with pytest.raises(ValidationError) as caught:
            async with ctx.sessions.begin() as session:
                await add_desk(ctx, session, **kwargs)  # type: ignore[arg-type]
        assert caught.value.key == key, kwargs
    async with ctx.sessions.begin() as session:
        await add_desk(ctx, session, unit_code=MUONG_PHANG, name="Quầy", code="mp")
    with pytest.raises(ValidationError) as caught:
        async with ctx.sessions.begin() as session:
            await add_desk(ctx, session, unit_code=MUONG_PHANG, name="Quầy khác", code="mp")
    assert "already taken" in caught.value.en


async def test_disable_and_enable_are_recorded_once(ctx: Context) -> None:
    async with ctx.sessions.begin() as session:
        desk = await add_desk(ctx, session, unit_code=MUONG_PHANG, name="Quầy")
    for active in (False, False, True):
        async with ctx.sessions.begin() as session:
            changed = await set_desk_active(ctx, session, desk.code, active)
        assert changed.active is active
    async with ctx.sessions() as session:
        actions = (await session.execute(select(AuditEvent.action).order_by(AuditEvent.id))).scalars().all()
        active_only = await list_desks(session, active_only=True)
    assert actions == ["desk_add", "desk_disable", "desk_enable"]
    assert [d.code for d in active_only] == [desk.code]
    with pytest.raises(NotFound):
        async with ctx.sessions.begin() as session:
            await set_desk_active(ctx, session, "no-such-desk", False)


async def test_a_report_about_the_desks_staff_goes_to_the_supervisor_masked(ctx: Context) -> None:
    async with ctx.sessions.begin() as session:
        desk = await add_desk(ctx, session, unit_code=MUONG_PHANG, name="Bộ phận một cửa")
    text = "Cán bộ ở quầy đòi 200.000 đồng mới nhận hồ sơ, tôi gọi 0912 345 678 không ai nghe."
    async with ctx.sessions.begin() as session:
        submitted = await report_desk_staff(ctx, session, desk, description=text, channel="web", channel_id="dev-1")
    async with ctx.sessions() as session:
        item = await session.get(Item, submitted.item.id)
        decision = (await session.execute(select(RoutingDecision))).scalar_one()
        message = (await session.execute(select(ItemMessage))).scalar_one()
    assert item is not None
    assert item.unit_code == "thanh_tra" != MUONG_PHANG  # never the unit itself
    assert item.about_unit_code == MUONG_PHANG and item.desk_code == desk.code
    assert (item.type, item.category, item.channel, item.anonymous) == ("phan_anh", "thai_do_can_bo", "web", True)
    assert item.commune_code == "3325"
    assert decision.rule_id == "conflict_of_interest"
    assert "0912 345 678" not in message.text_masked and "200.000 đồng" in message.text_masked

    async with ctx.sessions.begin() as session:
        await set_desk_active(ctx, session, desk.code, False)
    with pytest.raises(ValidationError):
        async with ctx.sessions.begin() as session:
            await report_desk_staff(ctx, session, desk, description=text, channel="web", channel_id="dev-1")
