"""A seeded province for the digest tests: the golden week 2026-W10 (Monday 2/3 to Sunday 8/3/2026).

Every item is filed and handled through the real services (intake, tickets) with the clock moved to each
moment, so the clocks, deadlines and audit events are exactly what production writes. The figures the tests
expect are worked out by hand in tests/test_digest.py. Tết 2026 (16–20/2) are days off, so every working-day
deadline counted across February lands a week later than a plain count would put it.

Items of UBND Xã Mường Phăng (the unit under test, commune 3325), by letter:

  H  phản ánh   received Mon 05/01, never accepted (accept-by 19/01)             overdue since January
  M  phản ánh   received Mon 05/01, waiting for the citizen since 07/01           paused: never overdue
  I  phản ánh   received Mon 02/02, accepted 03/02, answered Fri 06/03            resolve-by 03/03 (across Tết): late
  K  kiến nghị  received Mon 09/02, answered 10/02, rated 5 on 11/02
  A  phản ánh   received Thu 12/02, never accepted; accept-by Thu 05/03           (26/02 without Tết): missed in W10
  B  tố cáo     received Fri 13/02 (identified), accepted Wed 04/03               accept-by Tue 03/03: late
  G  phản ánh   received Mon 23/02, accepted 24/02, extended Mon 02/03
  J  góp ý      received Mon 23/02, answered 24/02, rated 3 on 25/02
  C  phản ánh   received Mon 02/03, accepted 03/03, answered Thu 05/03, rated 4 on 06/03
  F  phản ánh   received Mon 02/03 at Sở Xây dựng (transport), transferred here Wed 04/03, accepted Fri 06/03
  D  kiến nghị  received Tue 03/03, answered Wed 04/03 without accepting first, rated 2 on 05/03
  E  góp ý      received Wed 04/03, untouched (accept-by 18/03)

and L, a phản ánh of Sở Y tế received and accepted Mon 02/03. Desk ratings of desk MP01 (1 unhappy, 2 so-so,
3 happy): W07 3, 3; W09 3, 1; W10 3, 3, 3, 2, 1. Desk MP02 is active and never rated.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.context import Context
from bot.intake import Draft, submit_item
from bot.tickets import accept_item, answer_item, extend_item, lock_item, rate_item, request_info, transfer_item
from models.tables import Desk, DeskRating, Item, Official

UNIT = "ubnd_xa_muong_phang"
COMMUNE = "3325"
VN = ZoneInfo("Asia/Ho_Chi_Minh")
TEXT = "Đoạn đường liên bản từ Nà Nhạn đi Mường Phăng bị sạt lở sau mưa lớn, xe máy không đi qua được."
CITIZEN_NAME = "Lò Văn Bình"
CITIZEN_PHONE = "0912 345 678"


def local(year: int, month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=VN).astimezone(UTC)


class Seeder:
    """Files and handles items at given moments by moving the context's clock."""

    def __init__(self, ctx: Context, set_now: Callable[[datetime], None]) -> None:
        self.ctx = ctx
        self.set_now = set_now
        self.ids: dict[str, int] = {}
        self.codes: dict[str, str] = {}
        self._chat = 0

    async def submit(self, letter: str, when: datetime, type_code: str, category: str, **extra: Any) -> None:
        self.set_now(when)
        self._chat += 1
        draft = Draft(type=type_code, category=category, commune_code=COMMUNE, description=TEXT, **extra)
        async with self.ctx.sessions.begin() as session:
            item = (await submit_item(self.ctx, session, draft, channel="web", channel_id=f"chat-{self._chat}")).item
            self.ids[letter], self.codes[letter] = item.id, item.receipt_code

    async def act(self, letter: str, when: datetime, action: Callable[..., Awaitable[Any]], **kwargs: Any) -> None:
        self.set_now(when)
        async with self.ctx.sessions.begin() as session:
            item = await lock_item(session, self.ids[letter])
            await action(self.ctx, session, item, **kwargs)


async def seed_golden_week(ctx: Context, set_now: Callable[[datetime], None]) -> dict[str, str]:
    """File the scenario above; return the receipt code of each letter."""
    s = Seeder(ctx, set_now)
    official = "official:1"
    await s.submit("H", local(2026, 1, 5), "phan_anh", "dat_dai")
    await s.submit("M", local(2026, 1, 5, 10), "phan_anh", "an_sinh")
    await s.act("M", local(2026, 1, 7), request_info, actor=official, question="Xin gửi ảnh chụp hiện trạng.")
    await s.submit("I", local(2026, 2, 2), "phan_anh", "moi_truong")
    await s.act("I", local(2026, 2, 3), accept_item, actor=official)
    await s.submit("K", local(2026, 2, 9), "kien_nghi", "dat_dai")
    await s.act("K", local(2026, 2, 10), answer_item, actor=official, text="Đã kiểm tra và trả lời kiến nghị.")
    await s.act("K", local(2026, 2, 11), rate_item, rating=5)
    await s.submit("A", local(2026, 2, 12), "phan_anh", "dat_dai")
    await s.submit(
        "B",
        local(2026, 2, 13),
        "to_cao",
        "dat_dai",
        anonymous=False,
        name=CITIZEN_NAME,
        phone=CITIZEN_PHONE,
        consent=True,
    )
    await s.submit("G", local(2026, 2, 23), "phan_anh", "xay_dung")
    await s.submit("J", local(2026, 2, 23, 10), "gop_y", "an_sinh")
    await s.act("G", local(2026, 2, 24), accept_item, actor=official)
    await s.act("J", local(2026, 2, 24, 10), answer_item, actor=official, text="Cảm ơn góp ý của ông/bà.")
    await s.act("J", local(2026, 2, 25), rate_item, rating=3)
    await s.submit("C", local(2026, 3, 2), "phan_anh", "dat_dai")
    await s.submit("F", local(2026, 3, 2, 10), "phan_anh", "giao_thong")
    await s.submit("L", local(2026, 3, 2, 11), "phan_anh", "y_te")
    await s.act("L", local(2026, 3, 2, 14), accept_item, actor=official)
    await s.act("G", local(2026, 3, 2, 15), extend_item, actor=official, reason="Cần thêm thời gian xác minh.")
    await s.act("C", local(2026, 3, 3), accept_item, actor=official)
    await s.submit("D", local(2026, 3, 3, 10), "kien_nghi", "moi_truong")
    await s.act("D", local(2026, 3, 4), answer_item, actor=official, text="Xã đã xử lý điểm xả rác.")
    await s.act("B", local(2026, 3, 4, 10), accept_item, actor=official)
    await s.submit("E", local(2026, 3, 4, 11), "gop_y", "xay_dung")
    await s.act(
        "F", local(2026, 3, 4, 14), transfer_item, actor=official, to_unit=UNIT, reason="Đường liên bản do xã quản lý."
    )
    await s.act("C", local(2026, 3, 5), answer_item, actor=official, text="Xã đã cho san gạt điểm sạt lở.")
    await s.act("D", local(2026, 3, 5, 10), rate_item, rating=2)
    await s.act("I", local(2026, 3, 6), answer_item, actor=official, text="Đã hoàn thành xử lý.")
    await s.act("F", local(2026, 3, 6, 10), accept_item, actor=official)
    await s.act("C", local(2026, 3, 6, 11), rate_item, rating=4)
    await s.act("I", local(2026, 3, 7), rate_item, rating=5)

    async with ctx.sessions.begin() as session:
        session.add(Desk(code="MP01", unit_code=UNIT, commune_code=COMMUNE, name="Bộ phận một cửa xã Mường Phăng"))
        session.add(Desk(code="MP02", unit_code=UNIT, commune_code=COMMUNE, name="Điểm tiếp nhận bản Nà Nhạn"))
        await session.flush()
        ratings = [
            (date(2026, 2, 10), 3),
            (date(2026, 2, 11), 3),
            (date(2026, 2, 25), 3),
            (date(2026, 2, 26), 1),
            (date(2026, 3, 2), 3),
            (date(2026, 3, 3), 3),
            (date(2026, 3, 4), 3),
            (date(2026, 3, 5), 2),
            (date(2026, 3, 6), 1),
        ]
        for index, (day, score) in enumerate(ratings):
            session.add(DeskRating(desk_code="MP01", day=day, score=score, client_hash=f"device-{index}"))
    async with ctx.sessions() as session:
        unit_of = {letter: (await session.get(Item, item_id)).unit_code for letter, item_id in s.ids.items()}  # type: ignore[union-attr]
    assert unit_of.pop("L") == "so_y_te"
    assert set(unit_of.values()) == {UNIT}, unit_of
    return s.codes


async def add_official(
    ctx: Context, role: str, unit_code: str, *, created_at: datetime, locale: str = "vi", active: bool = True
) -> int:
    """An official as an accepted invite leaves it (channel id encrypted, never shown in a digest)."""
    async with ctx.sessions.begin() as session:
        official = Official(
            lookup_hash=f"hash-{role}-{unit_code}-{locale}-{active}",
            enc_channel_id=ctx.vault.encrypt(str(abs(hash((role, unit_code, locale))) % 10**9), "official.channel_id"),
            display_name="Cán bộ thử nghiệm",
            role=role,
            unit_code=unit_code,
            locale=locale,
            active=active,
            created_at=created_at,
        )
        session.add(official)
        await session.flush()
        return official.id
