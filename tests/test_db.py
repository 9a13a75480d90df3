"""SQLite's one-trip connection: a transaction's last statement may carry its COMMIT, and only that one; a
transaction may run its statements after the first in the event loop's thread, and only that transaction."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.context import Context
from models.db import (
    WalCheckpointer,
    begin,
    commit_with_next_statement,
    create_engine,
    read_only_session,
    run_on_sqlite_connection,
    run_statements_inline,
)


def _value(path: Path) -> int:
    """What another process would read now."""
    with sqlite3.connect(path) as other:
        row = other.execute("SELECT v FROM t").fetchone()
    return int(row[0])


async def test_the_last_statement_carries_the_commit(tmp_path: Path) -> None:
    path = tmp_path / "one-trip.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (v INTEGER NOT NULL)"))
            await connection.execute(text("INSERT INTO t VALUES (1)"))

        async with engine.begin() as connection:
            commit_with_next_statement(connection)
            await connection.execute(text("UPDATE t SET v = 2"))
            assert _value(path) == 2  # committed with the statement, before the block's own commit

        async with engine.begin() as connection:
            await connection.execute(text("UPDATE t SET v = 3"))
            assert _value(path) == 2  # an ordinary statement waits for the commit
        assert _value(path) == 3

        with pytest.raises(OperationalError):
            async with engine.begin() as connection:
                await connection.execute(text("UPDATE t SET v = 4"))
                commit_with_next_statement(connection)
                await connection.execute(text("UPDATE no_such_table SET v = 5"))
        assert _value(path) == 3  # the failed last statement committed nothing, the earlier one rolled back

        with pytest.raises(RuntimeError):
            async with engine.begin() as connection:
                commit_with_next_statement(connection)
                raise RuntimeError("the statement never ran")
        async with engine.begin() as connection:  # the unused request does not leak into the next transaction
            await connection.execute(text("UPDATE t SET v = 6"))
            assert _value(path) == 3
        assert _value(path) == 6
    finally:
        await engine.dispose()


async def _thread_of_statement(connection: AsyncConnection) -> int:
    """The thread that ran this statement (SQLite calls the function where the statement runs)."""
    return int((await connection.execute(text("SELECT thread_of_statement()"))).scalar_one())


async def _engine_with_table(path: Path, **kwargs: Any) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{path}", **kwargs)
    async with engine.begin() as connection:
        raw = await connection.get_raw_connection()
        raw.driver_connection._conn.create_function("thread_of_statement", 0, threading.get_ident)
        await connection.execute(text("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)"))
        await connection.execute(text("INSERT INTO t VALUES (1)"))
    return engine


async def test_statements_run_inline_only_in_the_transaction_that_asks(tmp_path: Path) -> None:
    path = tmp_path / "inline.db"
    engine = await _engine_with_table(path)
    here = threading.get_ident()
    try:
        async with engine.begin() as connection:
            run_statements_inline(connection)
            assert await _thread_of_statement(connection) == here  # BEGIN IMMEDIATE with it: the lock was free
            await connection.execute(text("UPDATE t SET v = 2"))
            assert await _thread_of_statement(connection) == here
            assert _value(path) == 1  # inline or not, nothing is seen before the commit
        assert _value(path) == 2

        async with engine.begin() as connection:  # the next transaction is back in the connection's thread
            assert await _thread_of_statement(connection) != here
            assert await _thread_of_statement(connection) != here

        with pytest.raises(IntegrityError):
            async with engine.begin() as connection:
                run_statements_inline(connection)
                await connection.execute(text("UPDATE t SET v = 3"))
                await connection.execute(text("INSERT INTO t VALUES (3)"))  # fails inline: all rolled back
        assert _value(path) == 2
        async with engine.begin() as connection:  # and a rollback ends the request too
            assert await _thread_of_statement(connection) != here
    finally:
        await engine.dispose()


async def test_an_inline_transaction_waits_for_another_process_off_the_event_loop(tmp_path: Path) -> None:
    """Another process holds the write lock: the transaction waits for it in the connection's thread while the
    event loop goes on (this test's own steps run), then commits; a group of statements run as one
    (run_on_sqlite_connection) likewise."""
    path = tmp_path / "locked.db"
    engine = await _engine_with_table(path)
    here = threading.get_ident()
    other = sqlite3.connect(path, isolation_level=None)

    async def update(value: int) -> int:
        async with engine.begin() as connection:
            run_statements_inline(connection)
            first = await _thread_of_statement(connection)
            await connection.execute(text("UPDATE t SET v = :v"), {"v": value})
            assert await _thread_of_statement(connection) == here  # the lock is held now: back inline
        return first

    def write_many(connection: sqlite3.Connection) -> int:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("UPDATE t SET v = v + 10")
        connection.execute("COMMIT")
        return threading.get_ident()

    try:
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.ensure_future(update(2))
        await asyncio.sleep(0.2)  # runs: the loop is not stuck in SQLite's busy handler
        assert not waiting.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(waiting, 10) != here
        assert _value(path) == 2

        other.execute("BEGIN IMMEDIATE")
        grouped = asyncio.ensure_future(run_on_sqlite_connection(engine, write_many))
        await asyncio.sleep(0.2)
        assert not grouped.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(grouped, 10) != here
        assert _value(path) == 12
        assert await run_on_sqlite_connection(engine, write_many) == here  # the lock free: in the loop's thread
        assert await update(5) == here
        assert _value(path) == 5
    finally:
        other.close()
        await engine.dispose()


async def test_the_log_is_checkpointed_in_the_background_not_by_commits(tmp_path: Path) -> None:
    """With ``checkpoint_in_background``, a commit leaves its pages in the WAL (the database file alone does not
    have them) until the WalCheckpointer copies them in."""
    path = tmp_path / "wal.db"
    engine = await _engine_with_table(path, checkpoint_in_background=True)

    def in_database_file() -> int | None:
        """What the database file holds without its log (None: not even the table)."""
        copy = tmp_path / "copy.db"
        shutil.copyfile(path, copy)
        try:
            with sqlite3.connect(copy) as connection:
                row = connection.execute("SELECT v FROM t").fetchone()
        except sqlite3.DatabaseError:  # no table yet, or a copy torn by a checkpoint writing meanwhile
            row = None
        copy.unlink()
        return int(row[0]) if row else None

    checkpointer = WalCheckpointer(engine, every=0.05)
    try:
        for _ in range(1200):  # a page each: more than the 1,000 at which a commit would checkpoint by itself
            async with engine.begin() as connection:
                run_statements_inline(connection)
                await connection.execute(text("UPDATE t SET v = v + 1"))
        assert _value(path) == 1201
        assert in_database_file() is None  # not even the table: every commit so far is in the log only
        running = asyncio.ensure_future(checkpointer.run_forever())
        for _ in range(100):
            if in_database_file() == 1201:
                break
            await asyncio.sleep(0.05)
        assert in_database_file() == 1201
        await checkpointer.stop(running)
    finally:
        await engine.dispose()


async def test_a_group_write_cancelled_while_waiting_for_the_lock_leaves_no_busy_connection(tmp_path: Path) -> None:
    """Cancelled while its thread waits for another process's lock, the write's connection is replaced: the next
    transaction waits for that thread without stopping the event loop, then runs on a new connection."""
    path = tmp_path / "cancelled.db"
    engine = await _engine_with_table(path)
    other = sqlite3.connect(path, isolation_level=None)

    def add_ten(connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("UPDATE t SET v = v + 10")
        connection.execute("COMMIT")

    async def triple() -> None:
        async with begin(engine) as connection:
            run_statements_inline(connection)
            await connection.execute(text("UPDATE t SET v = v * 3"))

    try:
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.ensure_future(run_on_sqlite_connection(engine, add_ten))
        await asyncio.sleep(0.2)
        write.cancel()
        with pytest.raises(asyncio.CancelledError):
            await write
        following = asyncio.ensure_future(triple())  # while the cancelled write's thread still waits
        await asyncio.sleep(0.2)  # runs: the loop is not stuck behind that thread
        assert not following.done()
        other.execute("COMMIT")
        await asyncio.wait_for(following, 10)
        await run_on_sqlite_connection(engine, add_ten)
        assert _value(path) == 43  # (1 + 10) × 3 + 10: the cancelled write's thread went on, and came first
    finally:
        other.close()
        await engine.dispose()


async def test_stopping_the_checkpointer_during_a_checkpoint(tmp_path: Path) -> None:
    """A stop that comes while a long checkpoint runs waits for it (closing its connection under it would crash
    the process), and the log is in the database file then."""
    path = tmp_path / "big.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE blobs (b BLOB)")
    writer.execute("BEGIN")
    writer.executemany("INSERT INTO blobs VALUES (randomblob(4000))", [()] * 10_000)  # a log of about 40 MB
    writer.execute("COMMIT")
    engine = create_engine(f"sqlite+aiosqlite:///{path}", checkpoint_in_background=True)
    checkpointer = WalCheckpointer(engine, every=0.01)
    try:
        running = asyncio.ensure_future(checkpointer.run_forever())
        await asyncio.sleep(0.01)
        await checkpointer.stop(running)
        in_log, copied = checkpointer.checkpoint()  # a new connection: the last one was closed
        assert in_log == copied
    finally:
        writer.close()
        await engine.dispose()


async def test_a_busy_process_keeps_its_connections(database_url: tuple[str, str | None]) -> None:
    """Twenty requests at a time, five rounds each: on PostgreSQL they share the pool's 20 connections (a pool
    smaller than the load would open and close connections all along); on SQLite, one."""
    url, schema = database_url
    engine = create_engine(url, schema=schema)
    postgresql = engine.dialect.name == "postgresql"
    used: set[int] = set()

    async def request() -> None:
        for _ in range(5):
            async with engine.connect() as connection:
                if postgresql:
                    used.add(int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()))
                else:
                    await connection.execute(text("SELECT 1"))
                    used.add(id((await connection.get_raw_connection()).driver_connection))
                await asyncio.sleep(0.01)

    try:
        await asyncio.gather(*(request() for _ in range(20)))
    finally:
        await engine.dispose()
    assert len(used) == (20 if postgresql else 1)


async def test_an_inline_transaction_cancelled_while_waiting_for_the_lock_leaves_no_busy_connection(
    tmp_path: Path,
) -> None:
    """The first statement of an inline transaction waits in the connection's thread for another process's lock;
    cancelled there (the service stopping, a client gone), the next transaction neither stops the event loop nor
    finds a transaction left open on its connection."""
    path = tmp_path / "cancelled-inline.db"
    engine = await _engine_with_table(path)
    other = sqlite3.connect(path, isolation_level=None)

    async def change(statement: str) -> None:
        async with begin(engine) as connection:
            run_statements_inline(connection)
            await connection.execute(text(statement))

    try:
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.ensure_future(change("UPDATE t SET v = v + 10"))
        await asyncio.sleep(0.2)
        waiting.cancel()
        following = asyncio.ensure_future(change("UPDATE t SET v = v * 3"))
        await asyncio.sleep(0.2)  # runs: the loop is not stuck behind the cancelled statement's thread
        assert not following.done()
        other.execute("COMMIT")
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 10)
        await asyncio.wait_for(following, 10)
        assert _value(path) == 3  # the cancelled change was never committed
    finally:
        other.close()
        await engine.dispose()


async def test_a_transaction_gives_its_connection_back_before_anything_else_runs(tmp_path: Path) -> None:
    """SQLite's pool has one connection, which every citizen's transaction needs: the moment a transaction ends,
    the next one can have it. (SQLAlchemy's ``engine.begin()`` gives it back a whole turn of the event loop
    later — under load, the time every other ready task takes — and the other transactions wait that long.)"""
    path = tmp_path / "release.db"
    engine = await _engine_with_table(path, pool_size=1)
    loop = asyncio.get_running_loop()
    seen: list[int] = []

    def look() -> None:  # what a task that runs next finds
        seen.append(engine.pool.checkedout())  # type: ignore[attr-defined]

    try:
        async with begin(engine) as connection:
            run_statements_inline(connection)
            await connection.execute(text("UPDATE t SET v = v + 1"))
            loop.call_soon(look)
        assert seen == [], "nothing else ran before the transaction was over"
        with pytest.raises(IntegrityError):  # rolled back
            async with begin(engine) as connection:
                run_statements_inline(connection)
                loop.call_soon(look)
                await connection.execute(text("INSERT INTO t VALUES (2)"))
        assert seen == []
        await asyncio.sleep(0)
        assert seen == [0, 0]
        assert _value(path) == 2
    finally:
        await engine.dispose()


async def test_a_slow_statement_run_inline_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The event loop waits for an inline statement; one that takes long (here a function that sleeps 50 ms) is
    named in a warning for the operator, a quick one is not."""
    engine = await _engine_with_table(tmp_path / "slow.db")
    try:
        async with engine.begin() as connection:
            raw = await connection.get_raw_connection()
            raw.driver_connection._conn.create_function("pause", 1, lambda ms: time.sleep(ms / 1000) or ms)
            run_statements_inline(connection)
            with caplog.at_level(logging.WARNING, logger="models.db"):
                await connection.execute(text("SELECT v FROM t"))
                assert not caplog.records
                await connection.execute(text("SELECT pause(:ms)"), {"ms": 50})
        assert [record.getMessage()[:44] for record in caplog.records] == [
            "an SQLite statement held the event loop for "
        ]
        assert caplog.records[0].getMessage().endswith("ms: SELECT pause(?)")  # the statement, never its values
    finally:
        await engine.dispose()


async def test_a_long_read_has_a_connection_of_its_own(database_url: tuple[str, str | None]) -> None:
    """A report's session reads what is committed while a write transaction holds the service's connection (on
    SQLite the only one), without waiting for it, and it cannot write."""
    url, schema = database_url
    engine = create_engine(url, schema=schema)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (v INTEGER NOT NULL)"))
            await connection.execute(text("INSERT INTO t VALUES (1)"))
        async with engine.begin() as writing:
            await writing.execute(text("UPDATE t SET v = 2"))

            async def read() -> int:
                async with read_only_session(engine) as session:
                    return int((await session.execute(text("SELECT v FROM t"))).scalar_one())

            assert await asyncio.wait_for(read(), 10) == 1  # the snapshot before the open write
        assert await read() == 2
        with pytest.raises(DBAPIError, match=r"read-?only"):
            async with read_only_session(engine) as session:
                await session.execute(text("UPDATE t SET v = 3"))
    finally:
        await engine.dispose()


async def test_a_metrics_scrape_does_not_wait_for_the_services_writes(ctx: Context, web_url: str) -> None:
    """/metrics counts items by status (an index scan at a province's size) on a connection of its own: while a
    write holds the service's connection (on SQLite its only one), a scrape still answers."""
    async with ctx.engine.begin() as writing:
        await writing.execute(text("SELECT 1"))  # the write transaction is open (on SQLite: BEGIN IMMEDIATE)

        async def scrape() -> str:
            async with aiohttp.ClientSession() as http, http.get(f"{web_url}/metrics") as response:
                assert response.status == 200
                return await response.text()

        body = await asyncio.wait_for(scrape(), 10)
    assert "pakn_database_up 1.0" in body.splitlines()


async def test_metrics_show_the_size_of_sqlites_log(ctx: Context, web_url: str) -> None:
    """An operator can see SQLite's write-ahead log grow (checkpoints stopped); PostgreSQL has no such line."""
    sqlite = ctx.engine.dialect.name == "sqlite"
    if sqlite:
        async with ctx.engine.begin() as connection:
            await connection.execute(text("CREATE TABLE filler (b BLOB)"))
            await connection.execute(text("INSERT INTO filler VALUES (zeroblob(100000))"))
    async with aiohttp.ClientSession() as http, http.get(f"{web_url}/metrics") as response:
        lines = [line for line in (await response.text()).splitlines() if line.startswith("pakn_sqlite_wal_bytes ")]
    if not sqlite:
        assert lines == []
        return
    log_file = Path(f"{ctx.engine.url.database}-wal")
    assert log_file.stat().st_size > 100_000
    assert lines == [f"pakn_sqlite_wal_bytes {float(log_file.stat().st_size)}"]
