from bot.context import Context
from bot.digest import IsoWeek, compute_province_digest, week_items, overdue_items
from bot.intake import Draft, submit_item
from bot.tickets import accept_item, answer_item, lock_item, rate_item, transfer_item, extend_item
from tests.conftest import TestClock

D = "Đường liên bản từ Nà Nhạn đi Mường Phăng bị sạt lở, xe máy không đi qua được."

async def test_scratch(ctx: Context, clock: TestClock) -> None:
    clock.set_local(2026, 2, 9, 9)
    ids = []
    for cat in ("dat_dai", "moi_truong", "giao_thong"):
        async with ctx.sessions.begin() as s:
            ids.append((await submit_item(ctx, s, Draft(type="phan_anh", category=cat, commune_code="3325", description=D), channel="web", channel_id="c1")).item.id)
    clock.set_local(2026, 2, 10, 9)
    async with ctx.sessions.begin() as s:
        it = await lock_item(s, ids[0]); await accept_item(ctx, s, it, actor="o:1")
        await extend_item(ctx, s, it, actor="o:1", reason="Cần thêm thời gian xác minh")
    clock.set_local(2026, 2, 11, 9)
    async with ctx.sessions.begin() as s:
        it = await lock_item(s, ids[1]); await answer_item(ctx, s, it, actor="o:1", text="Đã xử lý xong việc này.")
        await rate_item(ctx, s, it, rating=4)
        it = await lock_item(s, ids[2]); await transfer_item(ctx, s, it, actor="o:1", to_unit="ubnd_xa_muong_phang", reason="Không thuộc thẩm quyền")
    async with ctx.sessions() as s:
        pd = await compute_province_digest(ctx, s, IsoWeek(2026, 7))
        d = pd.units["ubnd_xa_muong_phang"]
        print(d)
        print(pd.units["so_xay_dung"])
        print(pd.total.received, pd.ranking[:3])
        print(await week_items(ctx, s, IsoWeek(2026, 7), None))
        pd = await compute_province_digest(ctx, s, IsoWeek(2026, 12))
        print(pd.units["ubnd_xa_muong_phang"].overdue, pd.units["ubnd_xa_muong_phang"].history)
        print(await overdue_items(ctx, s, IsoWeek(2026, 12), None))
