"""Shared fixtures. Every database test runs against SQLite and against PostgreSQL.

PostgreSQL is the server at 127.0.0.1:5432 (user postgres, database test), or PAKN_TEST_POSTGRES_URL.
Each test gets its own schema. When the server is unreachable the PostgreSQL cases skip, unless
PAKN_REQUIRE_POSTGRES=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from config import Province, load_province
from config.settings import BUNDLED_PROVINCE_DIR
from models import Base, create_engine, make_session_factory

POSTGRES_URL = os.environ.get("PAKN_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("PAKN_REQUIRE_POSTGRES") == "1"

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
