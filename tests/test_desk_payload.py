"""Signed desk payloads: what a QR code carries. Genuine ones verify; anything else is refused everywhere."""

from __future__ import annotations

import re

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.context import Context
from bot.conversation import Conversations
from bot.desks import add_desk, desk_from_payload, set_desk_active
from bot.dialog import Event
from bot.privacy import Keys
from qr.payload import sign_desk, verify_desk

KEYS = Keys.from_master(bytes(range(32)))
OTHER_KEYS = Keys.from_master(bytes(range(1, 33)))
CODES = st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True)


@given(CODES)
def test_a_signed_payload_is_compact_url_safe_and_verifies(code: str) -> None:
    payload = sign_desk(KEYS, code)
    assert len(payload) <= 64 and re.fullmatch(r"[A-Za-z0-9_-]+", payload)
    assert payload.startswith("d1_")
    assert verify_desk(KEYS, payload) == code


def test_the_payload_fits_telegram_start_even_for_the_longest_code() -> None:
    assert len(sign_desk(KEYS, "x" * 32)) == 52


@given(CODES, st.data())
def test_every_single_character_change_is_refused(code: str, data: st.DataObject) -> None:
    payload = sign_desk(KEYS, code)
    index = data.draw(st.integers(0, len(payload) - 1))
    replacement = data.draw(st.sampled_from("abcXYZ019_-").filter(lambda c: c != payload[index]))
    forged = payload[:index] + replacement + payload[index + 1 :]
    assert verify_desk(KEYS, forged) is None


def test_forged_truncated_and_malformed_payloads_are_refused() -> None:
    payload = sign_desk(KEYS, "mp-1")
    code, signature = "mp-1", payload.rsplit("_", 1)[1]
    assert verify_desk(OTHER_KEYS, payload) is None  # signed by another server
    assert verify_desk(KEYS, f"d1_mp-2_{signature}") is None  # signature moved to another desk
    assert verify_desk(KEYS, payload[:-1]) is None  # truncated
    assert verify_desk(KEYS, payload[:20]) is None
    assert verify_desk(KEYS, payload + "A") is None  # extended
    assert verify_desk(KEYS, payload.replace("d1_", "d2_")) is None  # unknown version
    assert verify_desk(KEYS, payload.upper()) is None
    for junk in ("", "d1", "d1__", f"d1_{code}_", f"d1_MP-1_{signature}", "x" * 10_000, "d1_mp-1_" + "A" * 16):
        assert verify_desk(KEYS, junk) is None, junk


def test_an_invalid_desk_code_cannot_be_signed() -> None:
    for bad in ("", "Mp", "mp_1", "-mp", "x" * 33, "mường"):
        with pytest.raises(ValueError):
            sign_desk(KEYS, bad)


async def test_a_disabled_desk_is_refused_where_payloads_are_used(ctx: Context, web_url: str) -> None:
    async with ctx.sessions.begin() as session:
        desk = await add_desk(ctx, session, unit_code="ubnd_xa_muong_phang", name="Bộ phận một cửa")
    payload = sign_desk(ctx.keys, desk.code)
    conversations = Conversations(ctx)
    start = Event(kind="command", command="start", args=payload, language="vi")

    async with ctx.sessions() as session:
        assert (await desk_from_payload(ctx, session, payload)) is not None
    welcome = await conversations.handle("telegram", "501", start)
    assert "Bộ phận một cửa" in str(welcome.replies)
    async with aiohttp.ClientSession() as http, http.get(f"{web_url}/d/{payload}") as response:
        assert response.status == 200 and "Bộ phận một cửa" in await response.text()

    async with ctx.sessions.begin() as session:
        await set_desk_active(ctx, session, desk.code, False)

    async with ctx.sessions() as session:
        assert await desk_from_payload(ctx, session, payload) is None
    refused = await conversations.handle("telegram", "502", start)
    assert "quầy đã ngừng hoạt động" in str(refused.replies)
    async with aiohttp.ClientSession() as http:
        for path in (f"/d/{payload}", f"/d/{payload}/thanks", f"/d/{payload}/report"):
            async with http.get(f"{web_url}{path}") as response:
                assert response.status == 404, path
                text = await response.text()
                assert "Mã QR này không hợp lệ hoặc quầy đã ngừng hoạt động" in text
                assert "Traceback" not in text
        async with http.post(f"{web_url}/d/{payload}/rate", data={"score": "3"}) as response:
            assert response.status == 404
