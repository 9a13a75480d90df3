"""One `send_due_digests` run in its own process: python -m tests.digest_worker URL SCHEMA NOW.

The exactly-once test starts two of these. Each prints "ready" once it has imported everything and built its
engine, then waits for a line on stdin, so that the test can let both go at the same instant and they race
for the same digests. Prints the number of digests this process claimed.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from bot.calendar import WorkingCalendar
from bot.context import Context
from bot.digest_jobs import send_due_digests
from bot.privacy import Keys, Vault
from config import Settings, load_province
from config.settings import BUNDLED_PROVINCE_DIR
from models import create_engine, make_session_factory


async def main(url: str, schema: str, now_iso: str) -> int:
    province = load_province(BUNDLED_PROVINCE_DIR)
    engine = create_engine(url, schema=schema or None)
    keys = Keys.from_master(bytes(range(32)))
    now = datetime.fromisoformat(now_iso)
    ctx = Context(
        settings=Settings(data_dir=Path(tempfile.gettempdir()), database_url=url),
        province=province,
        calendar=WorkingCalendar(province.calendar),
        keys=keys,
        vault=Vault(keys),
        engine=engine,
        sessions=make_session_factory(engine),
        clock=lambda: now,
    )
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        return await send_due_digests(ctx, now)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    print(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3])))
