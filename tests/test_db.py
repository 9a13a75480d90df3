"""SQLite's one-trip connection: a transaction's last statement may carry its COMMIT, and only that one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from models.db import commit_with_next_statement, create_engine


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
