"""Shared fixtures. Every database test runs against SQLite and against PostgreSQL.

PostgreSQL is the server at 127.0.0.1:5432 (user postgres, database test), or PAKN_TEST_POSTGRES_URL.
Each test gets its own schema. When the server is unreachable the PostgreSQL cases skip, unless
PAKN_REQUIRE_POSTGRES=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import settings as hypothesis_settings
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


# No per-example time limit: Hypothesis's default deadline (200 ms) is a timed assertion, and on a loaded CI
# machine a first call that loads a year's holidays can exceed it. Speed is measured in bench/, not here.
hypothesis_settings.register_profile("pakn", deadline=None)
hypothesis_settings.load_profile("pakn")


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
    """A controlled clock for services: starts at a chosen moment and runs at real speed from there, so
    retries and leases behave as in production while tests fix the date the law counts from."""

    __test__ = False

    def __init__(self, start: datetime) -> None:
        self._set(start)

    def _set(self, moment: datetime) -> None:
        self.base = moment
        self.started = time.monotonic()

    @property
    def current(self) -> datetime:
        return self.base + timedelta(seconds=time.monotonic() - self.started)

    def __call__(self) -> datetime:
        return self.current

    def set_local(self, year: int, month: int, day: int, hour: int = 9, minute: int = 0) -> None:
        self._set(datetime(year, month, day, hour, minute, tzinfo=VN).astimezone(UTC))

    def advance(self, **delta: float) -> None:
        self._set(self.current + timedelta(**delta))


async def drop_pooled_connections(engine: AsyncEngine) -> None:
    """What a PostgreSQL restart does to a pool: every connection it holds is terminated by the server."""
    async with contextlib.AsyncExitStack() as stack:  # every connection in the pool, checked out at once
        pooled = [await stack.enter_async_context(engine.connect()) for _ in range(engine.pool.checkedin())]
        pids = [await connection.scalar(text("SELECT pg_backend_pid()")) for connection in pooled]
    admin = create_engine(POSTGRES_URL)
    try:
        async with admin.connect() as connection:
            for pid in pids:
                assert await connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await admin.dispose()


def second_process(ctx: Context) -> Context:
    """The same database through a separate engine and pool, as another ``pakn serve`` would see it.
    The caller disposes ``.engine``."""
    import dataclasses

    schema = ctx.engine.dialect.default_schema_name if ctx.engine.url.get_backend_name() == "postgresql" else None
    engine = create_engine(ctx.engine.url.render_as_string(hide_password=False), schema=schema)
    return dataclasses.replace(ctx, engine=engine, sessions=make_session_factory(engine))


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
    context = Context(
        settings=Settings(data_dir=tmp_path / "data", database_url=str(engine.url)),
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


# --- headless Chromium (Playwright) -------------------------------------------------------------------
# One Chromium process serves the whole session; each test connects to it over the DevTools protocol from
# its own event loop (Playwright objects cannot cross the per-test loops that pytest-asyncio gives). The
# browser is Debian's /usr/bin/chromium: nothing is downloaded. Without it the browser tests skip, unless
# PAKN_REQUIRE_BROWSER=1 (set by .ci/run), which turns the skip into a failure.

CHROMIUM = Path(os.environ.get("PAKN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
REQUIRE_BROWSER = os.environ.get("PAKN_REQUIRE_BROWSER") == "1"


def require_browser_or_skip() -> None:
    problem = None
    if not CHROMIUM.exists():
        problem = f"headless Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install -e '.[test]')"
    if problem is None:
        return
    if REQUIRE_BROWSER:
        pytest.fail(problem + " and PAKN_REQUIRE_BROWSER=1")
    pytest.skip(problem)


@pytest.fixture(scope="session")
def chromium_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start one headless Chromium for the session; yield its DevTools address."""
    require_browser_or_skip()
    from aiohttp.test_utils import unused_port

    port = unused_port()
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [
            str(CHROMIUM),
            *CHROMIUM_ARGS,
            f"--remote-debugging-port={port}",
            "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/json/version", timeout=2) as response:
                    response.read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    message = f"Chromium at {CHROMIUM} did not start (exit code {process.poll()})"
                    if REQUIRE_BROWSER:
                        pytest.fail(message)
                    pytest.skip(message)
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def browser(chromium_endpoint: str) -> AsyncIterator[Any]:
    """A Playwright ``Browser`` on the session's Chromium; contexts a test opens are closed after it."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        connected = await playwright.chromium.connect_over_cdp(chromium_endpoint)
        try:
            yield connected
        finally:
            for context in connected.contexts[1:]:  # the first is Chromium's default context
                await context.close()
            await connected.close()
