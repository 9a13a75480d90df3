"""Shared fixtures. Every database test runs against SQLite and against PostgreSQL.

PostgreSQL is the server at 127.0.0.1:5432 (user postgres, database test), or PAKN_TEST_POSTGRES_URL.
Each test gets its own schema. When the server is unreachable the PostgreSQL cases skip, unless
PAKN_REQUIRE_POSTGRES=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.calendar import WorkingCalendar
from bot.context import Context
from bot.privacy import Keys, Vault
from bot.units import sync_units
from config import Province, Settings, load_province
from config.settings import BUNDLED_PROVINCE_DIR
from models import Base, create_engine, make_session_factory

POSTGRES_URL = os.environ.get("PAKN_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("PAKN_REQUIRE_POSTGRES") == "1"

VN = ZoneInfo("Asia/Ho_Chi_Minh")

_postgres_reachable: bool | None = None


async def _check_postgres() -> bool:
    global _postgres_reachable
    if _postgres_reachable is None:
        engine = create_engine(POSTGRES_URL)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("select 1"))
            _postgres_reachable = True
        except (OSError, Exception):
            _postgres_reachable = False
        finally:
            await engine.dispose()
    return _postgres_reachable


def require_postgres_or_skip(reachable: bool) -> None:
    if reachable:
        return
    message = f"PostgreSQL is not reachable at {POSTGRES_URL}"
    if REQUIRE_POSTGRES:
        pytest.fail(message + " and PAKN_REQUIRE_POSTGRES=1")
    pytest.skip(message)


@pytest.fixture(scope="session")
def province() -> Province:
    return load_province(BUNDLED_PROVINCE_DIR)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str | None]]:
    """A fresh, empty database: (url, schema). The schema is only set on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'pakn.db'}", None
        return
    require_postgres_or_skip(await _check_postgres())
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    async with admin.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield POSTGRES_URL, schema
    finally:
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
async def engine(database_url: tuple[str, str | None]) -> AsyncIterator[AsyncEngine]:
    url, schema = database_url
    engine = create_engine(url, schema=schema)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_session_factory(engine)


class TestClock:
    """A controlled clock for services: starts at a fixed moment, moves only when told."""

    __test__ = False

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def set_local(self, year: int, month: int, day: int, hour: int = 9, minute: int = 0) -> None:
        self.current = datetime(year, month, day, hour, minute, tzinfo=VN).astimezone(UTC)

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@pytest.fixture
def clock() -> TestClock:
    return TestClock(datetime(2026, 2, 12, 9, 0, tzinfo=VN).astimezone(UTC))


@pytest.fixture
def keys() -> Keys:
    return Keys.from_master(bytes(range(32)))


@pytest.fixture
async def ctx(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    province: Province,
    keys: Keys,
    clock: TestClock,
    tmp_path: Path,
) -> Context:
    settings = Settings(data_dir=tmp_path / "data", database_url=str(engine.url))
    context = Context(
        settings=settings,
        province=province,
        calendar=WorkingCalendar(province.calendar),
        keys=keys,
        vault=Vault(keys),
        engine=engine,
        sessions=sessions,
        clock=clock,
    )
    async with sessions.begin() as session:
        await sync_units(session, province)
    return context


@pytest.fixture
async def web_url(ctx: Context) -> AsyncIterator[str]:
    """The whole HTTP application on a free port of 127.0.0.1."""
    from aiohttp.test_utils import TestServer

    from bot.conversation import Conversations
    from handlers.http import create_web_app

    server = TestServer(create_web_app(ctx, Conversations(ctx)), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()
