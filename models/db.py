"""Engines and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

_Outcome = tuple[Any, list[Any], int, int | None]
_T = TypeVar("_T")


def _run(connection: sqlite3.Connection, sql: str, parameters: Any, many: bool, begin: bool, commit: bool) -> _Outcome:
    """One statement, start to finish, in the connection's thread (after ``BEGIN IMMEDIATE``, and followed by
    ``COMMIT``, if asked)."""
    cursor = connection.cursor()
    try:
        if begin:
            cursor.execute("BEGIN IMMEDIATE")
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        outcome = (cursor.description, rows, cursor.rowcount, cursor.lastrowid)
        if commit and connection.in_transaction:
            connection.execute("COMMIT")  # on its own cursor: this one's row count is the statement's
        return outcome
    finally:
        cursor.close()


class _OneTripCursor:
    """An aiosqlite cursor that executes a statement and fetches its rows in one trip to the connection's thread.

    aiosqlite runs every call (create cursor, execute, fetch, close) as a separate hand-off to its thread, and
    SQLAlchemy makes four of them per statement; each costs tens of microseconds of event-loop CPU. Here a
    statement is one hand-off and the rows are read from memory afterwards — what SQLAlchemy does anyway for
    every statement that is not streamed (it fetches all rows right after ``execute``).
    """

    arraysize = 1

    def __init__(self, connection: _OneTripConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: deque[Any] = deque()

    async def __aenter__(self) -> _OneTripCursor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _go(self, sql: str, parameters: Any, many: bool) -> _OneTripCursor:
        connection = self._connection
        begin, connection.begin_pending = connection.begin_pending, False
        commit, connection.commit_after_next = connection.commit_after_next, False
        if connection.inline and not begin and not commit and connection._conn.in_transaction:
            outcome: _Outcome = _run(connection._conn, sql, parameters, many, begin, commit)
        else:
            outcome = await connection._execute(_run, connection._conn, sql, parameters, many, begin, commit)
        self.description, rows, self.rowcount, self.lastrowid = outcome
        self._rows = deque(rows)
        return self

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] | None = None) -> _OneTripCursor:
        return await self._go(sql, () if parameters is None else parameters, False)

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> _OneTripCursor:
        return await self._go(sql, list(parameters), True)

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = min(len(self._rows), size or self.arraysize)
        return [self._rows.popleft() for _ in range(count)]

    async def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        self._rows.clear()


class _OneTripConnection(aiosqlite.Connection):
    """aiosqlite's connection (one thread per connection), with :class:`_OneTripCursor` cursors.

    ``BEGIN IMMEDIATE`` travels with the transaction's first statement (``begin_pending``), ``COMMIT`` with its
    last one when the caller says which that is (:func:`commit_with_next_statement`), and a commit or rollback
    with no transaction open (SQLAlchemy's commit after such a statement, its reset of a connection returned to
    the pool) costs no trip. SQLAlchemy uses a connection for one thing at a time, so reading ``in_transaction`` here,
    outside the connection's thread, never races a statement, and a statement may run in the event loop's thread
    instead (``inline``, see :func:`run_statements_inline`).
    """

    begin_pending = False
    commit_after_next = False
    inline = False

    def cursor(self) -> _OneTripCursor:  # type: ignore[override]
        return _OneTripCursor(self)

    async def commit(self) -> None:
        self.begin_pending = self.commit_after_next = self.inline = False
        if self._conn.in_transaction:
            await super().commit()

    async def rollback(self) -> None:
        self.begin_pending = self.commit_after_next = self.inline = False
        if self._conn.in_transaction:
            await super().rollback()


def commit_with_next_statement(connection: AsyncConnection) -> None:
    """On SQLite, commit the transaction in the same trip as the next statement, which must be its last: the
    transaction's own commit then costs nothing, and the write lock is held for one trip instead of two. If that
    statement fails, nothing is committed. Elsewhere (PostgreSQL) nothing changes."""
    driver = connection.sync_connection.connection.driver_connection if connection.sync_connection else None
    if isinstance(driver, _OneTripConnection):
        driver.commit_after_next = True


def run_statements_inline(connection: AsyncConnection) -> None:
    """On SQLite, run the statements of this transaction after its first one in the event loop's own thread,
    until it ends; elsewhere (PostgreSQL) nothing changes. Only for transactions of a few short, indexed
    statements (a citizen's update, a filing): such a statement takes microseconds, less than the hand-off to the
    connection's thread, and the transaction then holds the connection (the only one in the pool) for that time
    instead of a turn of the event loop per statement. It cannot wait for a lock: ``BEGIN IMMEDIATE`` took the
    write lock on the first statement, which, like ``COMMIT`` (which may checkpoint the WAL), still goes through
    the connection's thread. A long query here would stop the whole process while it runs."""
    driver = connection.sync_connection.connection.driver_connection if connection.sync_connection else None
    if isinstance(driver, _OneTripConnection):
        driver.inline = True


async def run_in_sqlite_thread(engine: AsyncEngine, work: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run ``work`` with one of ``engine``'s SQLite connections, in that connection's thread: any number of
    statements for one hand-off. ``work`` opens and ends its own transaction (``BEGIN IMMEDIATE`` … ``COMMIT``);
    SQLAlchemy sees a connection checked out and returned unused. Only for SQLite engines made here."""
    async with engine.connect() as connection:
        sync = connection.sync_connection
        driver = sync.connection.driver_connection if sync is not None else None
        if not isinstance(driver, _OneTripConnection):
            raise TypeError("run_in_sqlite_thread needs an SQLite engine from models.db.create_engine")
        result: _T = await driver._execute(work, driver._conn)
        return result


def _sqlite_creator(url: str, connect_args: dict[str, Any]) -> Callable[[], _OneTripConnection]:
    """The ``async_creator`` of an SQLite engine: the arguments SQLAlchemy would pass, our connection class."""
    probe = create_async_engine(url)
    args, params = probe.sync_engine.dialect.create_connect_args(probe.sync_engine.url)
    params = {**params, **connect_args}

    connect: Callable[..., sqlite3.Connection] = sqlite3.connect

    def creator() -> _OneTripConnection:
        connection = _OneTripConnection(lambda: connect(*args, **params), 64)
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's threads
        return connection

    return creator


def create_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> AsyncEngine:
    """Create an async engine.

    SQLite runs in WAL mode with foreign keys on, and every transaction starts with ``BEGIN IMMEDIATE``
    so that two writers queue on the busy timeout instead of failing on a lock upgrade. Since every
    transaction takes SQLite's write lock anyway, the pool holds one connection: the transactions of this
    process then wait their turn in the pool's FIFO queue (asynchronously) instead of polling the lock
    inside SQLite's busy handler, which sleeps up to 100 ms between tries. Other processes (a second
    ``pakn serve``, the CLI) still queue on the busy timeout. Each statement is one hand-off to the
    connection's thread (:class:`_OneTripCursor`).
    ``schema`` (PostgreSQL only) sets the search path, which is how the tests isolate themselves.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        sqlite_args = {"timeout": 30, **kwargs.pop("connect_args", {})}
        if parsed.get_driver_name() == "aiosqlite":
            kwargs.setdefault("async_creator", _sqlite_creator(url, sqlite_args))
            if "poolclass" not in kwargs:
                kwargs.setdefault("pool_size", 1)
                kwargs.setdefault("max_overflow", 0)
        engine = create_async_engine(url, connect_args=sqlite_args, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            driver = connection.connection.driver_connection
            if isinstance(driver, _OneTripConnection):
                driver.begin_pending = True  # sent with the first statement
                driver.inline = False  # until the transaction asks (run_statements_inline)
            else:
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args: dict[str, Any] = kwargs.pop("connect_args", {})
    if schema:
        connect_args.setdefault("server_settings", {})["search_path"] = schema
    # No pre-ping: it is a round trip on every checkout (0.45 ms of CPU per citizen update here). A connection the
    # server dropped fails its first statement instead; SQLAlchemy then discards every pooled connection older
    # than that, and the citizen path (bot.conversation) handles the update again on a new one, as the web server
    # reads a page again (handlers.http.lost_connection_middleware).
    return create_async_engine(url, connect_args=connect_args, **kwargs)


def upsert_insert(dialect_name: str) -> Any:
    """The dialect's ``insert``, the one with ``on_conflict_do_nothing`` and ``on_conflict_do_update``
    (PostgreSQL's or SQLite's, the two databases PAKN runs on)."""
    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
