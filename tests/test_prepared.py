"""Prepared statements: on SQLite they run straight on the driver's connection, and must write and read exactly what
SQLAlchemy would, in the caller's transaction, with SQLAlchemy's errors; on PostgreSQL they go through SQLAlchemy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, event, select, text, tuple_
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from models.db import Prepared, begin, run_statements_inline
from models.tables import AuditEvent

_EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]


class _Boom(Exception):
    pass


async def _events(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return list(await connection.execute(select(_EVENTS).order_by(_EVENTS.c.id)))


async def test_a_prepared_insert_writes_what_sqlalchemy_would(engine: AsyncEngine) -> None:
    """Python-side defaults (``data`` = {}, ``public`` = False, ``created_at`` = now), JSON and dates are stored as
    SQLAlchemy stores them."""
    insert = Prepared(_EVENTS.insert())
    when = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
    async with begin(engine) as connection:
        run_statements_inline(connection)
        await insert.execute(connection, {"action": "submit", "actor": "citizen"})
        await connection.execute(_EVENTS.insert(), {"action": "submit", "actor": "citizen"})
        given = {"action": "note", "actor": "official:7", "data": {"số": [1, "hai"]}, "public": True}
        given["created_at"] = when
        await insert.execute(connection, given)
        await connection.execute(_EVENTS.insert(), given)
    prepared, plain, prepared_given, plain_given = await _events(engine)
    assert prepared.data == {} and prepared.public is False
    assert abs(prepared.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert prepared_given.data == {"số": [1, "hai"]} and prepared_given.public is True
    assert prepared_given.created_at == when
    for ours, theirs in ((prepared, plain), (prepared_given, plain_given)):
        assert {**ours._mapping, "id": 0, "created_at": None} == {**theirs._mapping, "id": 0, "created_at": None}
    if engine.dialect.name == "sqlite":  # the very text in the file, which other readers (the CLI, sqlite3) see
        async with engine.connect() as connection:
            query = text("SELECT data, public, created_at FROM audit_events ORDER BY id")
            stored = list(await connection.execute(query))
        assert stored[2] == stored[3]
        assert (stored[0][0], stored[0][1]) == (stored[1][0], stored[1][1])
        assert len(stored[0][2]) == len(stored[1][2])


async def test_a_prepared_statement_is_part_of_the_callers_transaction(engine: AsyncEngine) -> None:
    insert = Prepared(_EVENTS.insert())
    with pytest.raises(_Boom):
        async with begin(engine) as connection:
            run_statements_inline(connection)
            await insert.execute(connection, {"action": "submit", "actor": "citizen"})  # the transaction's first
            raise _Boom
    assert await _events(engine) == []
    async with begin(engine) as connection:
        await insert.execute(connection, {"action": "submit", "actor": "citizen"})
    assert [row.action for row in await _events(engine)] == ["submit"]


async def test_a_prepared_statement_raises_sqlalchemys_errors(engine: AsyncEngine) -> None:
    """The conversation retries on SQLAlchemy's ``IntegrityError``; a driver's own error would escape it."""
    insert = Prepared(_EVENTS.insert())
    with pytest.raises(IntegrityError):
        async with begin(engine) as connection:
            run_statements_inline(connection)
            await insert.execute(connection, {"action": "a", "actor": "x", "seq": 1})
            await insert.execute(connection, {"action": "b", "actor": "x", "seq": 1})
    assert await _events(engine) == []


async def test_a_prepared_select_expands_a_fixed_list_and_converts_what_it_reads(engine: AsyncEngine) -> None:
    when = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
    async with begin(engine) as connection:
        await connection.execute(
            _EVENTS.insert(),
            [
                {"action": action, "actor": actor, "public": public, "created_at": when}
                for action, actor, public in (
                    ("submit", "x", True),
                    ("note", "x", False),
                    ("rate", "x", True),
                    ("submit", "y", True),
                )
            ],
        )
    query = Prepared(
        select(_EVENTS.c.action, _EVENTS.c.public, _EVENTS.c.created_at)
        .where(_EVENTS.c.action.in_(("submit", "note")), _EVENTS.c.actor == bindparam("who"))
        .order_by(_EVENTS.c.id)
    )
    async with begin(engine) as connection:
        run_statements_inline(connection)
        found = await query.execute(connection, {"who": "x"})
    assert found.rows == [("submit", True, when), ("note", False, when)]
    assert found.first() == ("submit", True, when) and found.scalar() == "submit"


async def test_several_rows_with_returning_come_back_in_order(engine: AsyncEngine) -> None:
    insert = Prepared(_EVENTS.insert().returning(_EVENTS.c.id, _EVENTS.c.actor, sort_by_parameter_order=True))
    async with begin(engine) as connection:
        run_statements_inline(connection)
        one = await insert.execute(connection, [{"action": "a", "actor": "first"}])
        three = await insert.execute(connection, [{"action": "a", "actor": name} for name in ("b", "c", "d")])
    assert [actor for _, actor in one.rows + three.rows] == ["first", "b", "c", "d"]
    assert [row_id for row_id, _ in one.rows + three.rows] == [row.id for row in await _events(engine)]


async def test_an_update_tells_how_many_rows_it_changed(engine: AsyncEngine) -> None:
    async with begin(engine) as connection:
        await connection.execute(_EVENTS.insert(), [{"action": "a", "actor": "x"}, {"action": "a", "actor": "y"}])
    rename = Prepared(_EVENTS.update().where(_EVENTS.c.actor == bindparam("who")))
    async with begin(engine) as connection:
        run_statements_inline(connection)
        assert (await rename.execute(connection, {"who": "x", "action": "b"})).rowcount == 1
        assert (await rename.execute(connection, {"who": "nobody", "action": "b"})).rowcount == 0
    assert [row.action for row in await _events(engine)] == ["b", "a"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_list_given_at_run_time_is_refused(engine: AsyncEngine) -> None:
    """Its expansion would differ from run to run, and the form is compiled once."""
    query = Prepared(select(_EVENTS.c.id).where(_EVENTS.c.id.in_(bindparam("ids", expanding=True))))
    async with begin(engine) as connection:
        with pytest.raises(TypeError, match="ids"):
            await query.execute(connection, {"ids": [1, 2]})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_on_sqlite_a_prepared_statement_skips_sqlalchemys_execution(engine: AsyncEngine) -> None:
    """What makes it worth having: SQLAlchemy's execution never sees it (nor, then, its cursor events)."""
    seen: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with begin(engine) as connection:
            await Prepared(_EVENTS.insert()).execute(connection, {"action": "a", "actor": "x"})
        assert seen == []
        async with begin(engine) as connection:
            await connection.execute(_EVENTS.insert(), {"action": "a", "actor": "x"})
        assert len(seen) == 1
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_a_missing_parameter_is_refused_before_anything_runs(engine: AsyncEngine) -> None:
    """Not bound as NULL, which would quietly match nothing."""
    rename = Prepared(_EVENTS.update().where(_EVENTS.c.actor == bindparam("who")))
    async with begin(engine) as connection:
        run_statements_inline(connection)
        with pytest.raises(StatementError, match="who"):
            await rename.execute(connection, {"action": "b"})


def _shout(context: Any) -> str:
    return f"{context.get_current_parameters()['word']}!"


_DEFAULTS = Table(
    "prepared_defaults",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("word", String(20)),
    Column("shout", String(20), default=_shout),
    Column("kind", String(20), default="plain"),
)


async def test_column_defaults_that_read_the_parameters_and_rows_that_differ(engine: AsyncEngine) -> None:
    """A context-sensitive default sees the row's parameters; rows of one list that give different columns are
    written as SQLAlchemy writes them."""
    async with engine.begin() as connection:
        await connection.run_sync(_DEFAULTS.metadata.create_all)
    insert = Prepared(_DEFAULTS.insert())
    rows = [{"word": "a"}, {"word": "b", "kind": "given"}]
    async with begin(engine) as connection:
        run_statements_inline(connection)
        await insert.execute(connection, {"word": "hi"})
        await insert.execute(connection, rows)
        await connection.execute(_DEFAULTS.insert(), rows)
    async with engine.connect() as connection:
        stored = [tuple(row) for row in await connection.execute(select(_DEFAULTS).order_by(_DEFAULTS.c.id))]
    assert stored[0] == (1, "hi", "hi!", "plain")
    assert [row[1:] for row in stored[1:3]] == [row[1:] for row in stored[3:5]]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_statements_whose_text_would_change_are_refused(engine: AsyncEngine) -> None:
    """A value rendered into the SQL, or a list of tuples, would need a new text per run; the form is compiled
    once."""
    rendered = Prepared(select(_EVENTS.c.id).where(_EVENTS.c.actor == bindparam("who", literal_execute=True)))
    pairs = Prepared(select(_EVENTS.c.id).where(tuple_(_EVENTS.c.action, _EVENTS.c.actor).in_([("a", "x")])))
    async with begin(engine) as connection:
        with pytest.raises(TypeError, match="who"):
            await rendered.execute(connection, {"who": "x"})
        with pytest.raises(TypeError, match="tuples"):
            await pairs.execute(connection, {})
