"""SQLite's one-trip connection: a transaction's last statement may carry its COMMIT, and only that one; a
transaction may run its statements after the first in the event loop's thread, and only that transaction."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from models.db import commit_with_next_statement, create_engine, run_statements_inline


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


async def test_statements_run_inline_only_in_the_transaction_that_asks(tmp_path: Path) -> None:
    path = tmp_path / "inline.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    here = threading.get_ident()
    try:
        async with engine.begin() as connection:
            raw = await connection.get_raw_connection()
            raw.driver_connection._conn.create_function("thread_of_statement", 0, threading.get_ident)
            await connection.execute(text("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)"))
            await connection.execute(text("INSERT INTO t VALUES (1)"))

        async with engine.begin() as connection:
            run_statements_inline(connection)
            first = await _thread_of_statement(connection)  # carries BEGIN IMMEDIATE: may wait for the lock
            assert first != here
            assert await _thread_of_statement(connection) == here
            await connection.execute(text("UPDATE t SET v = 2"))
            assert _value(path) == 1  # inline or not, nothing is seen before the commit
        assert _value(path) == 2

        async with engine.begin() as connection:  # the next transaction is back in the connection's thread
            await _thread_of_statement(connection)
            assert await _thread_of_statement(connection) != here

        with pytest.raises(IntegrityError):
            async with engine.begin() as connection:
                run_statements_inline(connection)
                await connection.execute(text("UPDATE t SET v = 3"))
                await connection.execute(text("INSERT INTO t VALUES (3)"))  # fails inline: all rolled back
        assert _value(path) == 2
        async with engine.begin() as connection:  # and a rollback ends the request too
            await _thread_of_statement(connection)
            assert await _thread_of_statement(connection) != here
    finally:
        await engine.dispose()
