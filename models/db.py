"""Engines and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite
from sqlalchemy import ClauseElement, Executable, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, InvalidRequestError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import ColumnDefault
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.sqltypes import TupleType

_Outcome = tuple[Any, list[Any], int, int | None]
_T = TypeVar("_T")

log = logging.getLogger(__name__)

# How long an SQLite connection waits for another process's write lock (SQLite's busy handler).
BUSY_TIMEOUT_MS = 30_000
# PostgreSQL connections a process keeps (PAKN_DATABASE_POOL_SIZE); SQLite's pool holds one.
DEFAULT_POOL_SIZE = 20
# The size SQLite's write-ahead log file is cut back to once a checkpoint has emptied it.
WAL_SIZE_LIMIT = 16 * 1024 * 1024
# A statement run in the event loop's thread that takes longer is logged: the whole process waited for it.
SLOW_INLINE_SECONDS = 0.02


def _inline(sql: str, work: Callable[..., _T], *args: Any) -> _T:
    """``work(*args)`` in the event loop's thread, with a warning when it held the loop up."""
    started = time.perf_counter()
    try:
        return work(*args)
    finally:
        took = time.perf_counter() - started
        if took > SLOW_INLINE_SECONDS:
            log.warning(
                "an SQLite statement held the event loop for %.0f ms: %s", took * 1000, " ".join(sql.split())[:100]
            )


class _LockTaken(Exception):
    """``BEGIN IMMEDIATE`` found SQLite's write lock held by another process; nothing was done."""


def _without_waiting(connection: sqlite3.Connection, work: Callable[..., _T], *args: Any) -> _T:
    """``work(connection, *args)``, a whole transaction or its start, here and now: when another process holds
    the write lock, :class:`_LockTaken` at once (the transaction rolled back) instead of the busy handler's wait,
    which would stop the calling thread — the event loop's, when the caller runs statements inline."""
    connection.execute("PRAGMA busy_timeout=0")
    try:
        return work(connection, *args)
    except sqlite3.OperationalError as error:
        if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # SQLITE_BUSY_RECOVERY and the like too
            raise
        if connection.in_transaction:
            connection.rollback()
        raise _LockTaken from error
    finally:
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


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
        raw = connection._conn
        begin, connection.begin_pending = connection.begin_pending, False
        commit, connection.commit_after_next = connection.commit_after_next, False
        outcome: _Outcome | None = None
        if connection.inline and begin:
            with contextlib.suppress(_LockTaken):  # if another process writes, wait in the connection's thread
                outcome = _inline(sql, _without_waiting, raw, _run, sql, parameters, many, begin, commit)
        elif connection.inline and raw.in_transaction:  # the write lock is held: nothing to wait for
            outcome = _inline(sql, _run, raw, sql, parameters, many, begin, commit)
        if outcome is None:
            outcome = await connection._execute(_run, raw, sql, parameters, many, begin, commit)
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
    outside the connection's thread, never races a statement, and a transaction may run in the event loop's
    thread instead (``inline``, see :func:`run_statements_inline`).
    """

    begin_pending = False
    commit_after_next = False
    inline = False

    def cursor(self) -> _OneTripCursor:  # type: ignore[override]
        return _OneTripCursor(self)

    async def commit(self) -> None:
        inline = self.inline
        self.begin_pending = self.commit_after_next = self.inline = False
        if self._conn.in_transaction:
            if inline:
                _inline("COMMIT", self._conn.commit)
            else:
                await super().commit()

    async def rollback(self) -> None:
        inline = self.inline
        self.begin_pending = self.commit_after_next = self.inline = False
        if self._conn.in_transaction:
            if inline:
                self._conn.rollback()
            else:
                await super().rollback()


def _one_trip(connection: AsyncConnection) -> _OneTripConnection | None:
    """The SQLite connection of ours under ``connection``; None on other databases, or when it is closed or
    invalidated (``sync.connection`` would open a new one then)."""
    sync = connection.sync_connection
    if sync is None or sync.closed or sync.invalidated:
        return None
    driver = sync.connection.driver_connection
    return driver if isinstance(driver, _OneTripConnection) else None


def commit_with_next_statement(connection: AsyncConnection) -> None:
    """On SQLite, commit the transaction in the same trip as the next statement, which must be its last: the
    transaction's own commit then costs nothing, and the write lock is held for one trip instead of two. If that
    statement fails, nothing is committed. Elsewhere (PostgreSQL) nothing changes."""
    driver = _one_trip(connection)
    if driver is not None:
        driver.commit_after_next = True


def run_statements_inline(connection: AsyncConnection) -> None:
    """On SQLite, run this transaction in the event loop's own thread, from its ``BEGIN IMMEDIATE`` to its
    ``COMMIT``; elsewhere (PostgreSQL) nothing changes. Only for transactions of a few short, indexed statements
    (a citizen's update, a filing): such a statement takes microseconds, less than a hand-off to the connection's
    thread, and the transaction holds the connection (the only one in the pool) for that long instead of a turn
    of the busy event loop per statement. The loop never waits for a lock: when another process holds the write
    lock, the first statement goes to the connection's thread and waits there, and once the lock is taken no
    statement waits. A long query here would stop the whole process while it runs; so would a ``COMMIT`` that
    checkpoints the WAL, which is why ``pakn serve`` checkpoints in the background (:class:`WalCheckpointer`)."""
    driver = _one_trip(connection)
    if driver is not None:
        driver.inline = True


def _returns_without_waiting(connection: AsyncConnection) -> bool:
    """Whether giving ``connection`` back to the pool is sure to wait for nothing: an SQLite connection of ours
    with no transaction open (its reset is a rollback that costs no trip, see :class:`_OneTripConnection`)."""
    driver = _one_trip(connection)
    return driver is not None and not driver._conn.in_transaction


async def _release(connection: AsyncConnection) -> None:
    """Close ``connection``, in the calling task when that cannot wait for anything.

    SQLAlchemy closes the connection of ``async with engine.begin()`` (``connect()``) in a task of its own, so
    that a cancellation cannot cut the close short. Under load that task starts a whole turn of the event loop
    later, and meanwhile the connection stays checked out — on SQLite the pool's only one, which every other
    transaction then waits for. A close that waits for nothing has nothing to cut short; any other is left to
    SQLAlchemy."""
    if _returns_without_waiting(connection):
        await connection.close()
    else:
        await connection.__aexit__(None, None, None)


@contextlib.asynccontextmanager
async def connect(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """``engine.connect()``, its connection given back as :func:`_release` says."""
    connection = await engine.connect()
    try:
        yield connection
    finally:
        await _release(connection)


@contextlib.asynccontextmanager
async def begin(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """``engine.begin()`` — a transaction committed at the end of the block, rolled back if it raises — its
    connection given back as :func:`_release` says."""
    async with connect(engine) as connection, connection.begin():
        yield connection


async def run_on_sqlite_connection(engine: AsyncEngine, work: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run ``work`` with one of ``engine``'s SQLite connections: any number of statements for one call. ``work``
    is one whole, short transaction (``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back if it fails), run in the event
    loop's thread (as :func:`run_statements_inline`), or in the connection's own thread when another process holds
    the write lock. SQLAlchemy sees a connection checked out and returned unused. Only for SQLite engines made
    here."""
    async with connect(engine) as connection:
        driver = _one_trip(connection)
        if driver is None:
            raise TypeError("run_on_sqlite_connection needs an SQLite engine from models.db.create_engine")
        try:
            name = getattr(getattr(work, "func", work), "__name__", "statements")  # a partial's function
            return _inline(name, _without_waiting, driver._conn, work)
        except _LockTaken:
            pass
        try:
            result: _T = await driver._execute(work, driver._conn)
        except asyncio.CancelledError:
            # The thread may still be running ``work``: the pool replaces this connection when it is next taken,
            # closing it (which waits for the thread) instead of using it from the event loop meanwhile.
            (await connection.get_raw_connection()).invalidate(soft=True)
            raise
        return result


@dataclass(frozen=True)
class Executed:
    """What a :class:`Prepared` statement gave back: its rows, as plain tuples, and the number of rows it changed."""

    rows: list[tuple[Any, ...]]
    rowcount: int

    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        """The first column of the first row; None when there is no row."""
        return self.rows[0][0] if self.rows else None


_REQUIRED = object()  # a parameter the statement has no value for: the caller must give one


@dataclass(frozen=True)
class _DefaultContext:
    """What a context-sensitive column default may read (SQLAlchemy's "context-sensitive default functions"): the
    statement's parameters. Anything else it asks of SQLAlchemy's execution context fails loudly."""

    current_parameters: dict[str, Any]

    def get_current_parameters(self, isolate_multiinsert_groups: bool = True) -> dict[str, Any]:
        return self.current_parameters


# How a positional parameter gets its value: its name, its place in an IN list fixed in the statement, the value fixed
# in the statement (or _REQUIRED), the column's Python-side default, and its bind processor (dates, JSON, …).
_Position = tuple[str, int | None, Any, ColumnDefault | None, Callable[[Any], Any] | None]


@dataclass(frozen=True)
class _SqliteForm:
    """A statement compiled for SQLite and one set of parameter names: what a run needs besides the values."""

    sql: str
    positions: tuple[_Position, ...]
    results: tuple[Callable[[Any], Any] | None, ...] | None  # the result columns' processors; None: none has one

    def values(self, given: dict[str, Any]) -> tuple[Any, ...]:
        """The statement's positional values for the parameters ``given``, as SQLAlchemy would bind them."""
        values = []
        for name, index, fixed, default, process in self.positions:
            if name in given:
                value = given[name]
            elif default is not None:
                value = default.arg if default.is_scalar else default.arg(_DefaultContext(given))
            elif fixed is not _REQUIRED:
                value = fixed
            else:
                raise InvalidRequestError(f"a value is required for the parameter {name!r}")
            if index is not None:
                value = value[index]
            values.append(value if process is None else process(value))
        return tuple(values)

    def rows(self, raw: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        results = self.results
        if results is None:
            return raw
        return [
            tuple(value if process is None else process(value) for value, process in zip(row, results, strict=True))
            for row in raw
        ]


class Prepared:
    """A Core statement for the hot path, run straight on SQLite's driver connection in the caller's transaction.

    On SQLite, SQLAlchemy's execution of a short statement — a greenlet hop, an execution context, a result
    object — costs four to eight times the statement itself, and a citizen's filing runs ten of them. Here the
    statement is compiled once for each set of parameter names given, its values pass through the same bind
    processors and Python-side column defaults SQLAlchemy applies, and it runs as the transaction's next statement
    on :class:`_OneTripCursor` (inline, ``BEGIN IMMEDIATE`` and commit-with-next as any other). Errors are
    SQLAlchemy's (``IntegrityError``, ``StatementError``, …), but SQLAlchemy's execution never sees the statement:
    no ``echo``, no ``before_cursor_execute`` or ``handle_error`` event. Elsewhere — PostgreSQL, a connection not
    made here, no transaction begun, several rows with ``RETURNING`` or with different keys — the statement goes
    through SQLAlchemy as usual.

    Result rows are plain tuples, their values converted as SQLAlchemy would (booleans, dates, JSON). Refused when a
    form is compiled (``TypeError``): a list given at run time for ``IN`` or a value rendered into the SQL
    (``literal_execute``), whose text would change from run to run; a list of tuples; a SQL expression or sequence
    as a column default. A context-sensitive default function may read the parameters
    (``context.get_current_parameters()``), nothing else."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._forms: dict[tuple[Dialect, tuple[str, ...], bool], _SqliteForm] = {}

    async def execute(
        self, connection: AsyncConnection, parameters: dict[str, Any] | list[dict[str, Any]] | None = None
    ) -> Executed:
        """Run the statement once, or once per row for a list of several."""
        rows = parameters if isinstance(parameters, list) else [parameters or {}]
        many = len(rows) > 1
        driver = _one_trip(connection)
        if (
            driver is None
            or not rows
            or not connection.in_transaction()
            or (many and (self._returns_rows or any(row.keys() != rows[0].keys() for row in rows)))
        ):
            result = await connection.execute(self.statement, parameters)
            return Executed([tuple(row) for row in result] if result.returns_rows else [], result.rowcount)
        key = (connection.dialect, tuple(rows[0]), many)
        form = self._forms.get(key)
        if form is None:
            form = self._forms[key] = self._compile(connection.dialect, rows[0], many)
        try:
            values = [form.values(row) for row in rows]
        except Exception as error:  # as SQLAlchemy reports a parameter it could not bind
            raise StatementError(
                f"({type(error).__module__}.{type(error).__qualname__}) {error}", form.sql, parameters, error
            ) from error
        bound = values if many else values[0]
        try:
            cursor = await driver.cursor()._go(form.sql, bound, many)
        except sqlite3.Error as error:
            raise DBAPIError.instance(
                form.sql, bound, error, sqlite3.Error, dialect=connection.dialect, ismulti=many
            ) from error
        return Executed(form.rows(await cursor.fetchall()), cursor.rowcount)

    @property
    def _returns_rows(self) -> bool:
        return bool(getattr(self.statement, "exported_columns", None))

    def _compile(self, dialect: Dialect, given: dict[str, Any], many: bool) -> _SqliteForm:
        compiled = cast(ClauseElement, self.statement).compile(
            dialect=dialect, column_keys=sorted(given), for_executemany=many
        )
        assert isinstance(compiled, SQLCompiler)
        if compiled.escaped_bind_names:
            raise TypeError(f"Prepared needs plain parameter names: {compiled}")
        # A value rendered into the statement's text must be the same at every run: fixed in the statement.
        for bind in compiled.literal_execute_params:
            if bind.key in given:
                raise TypeError(f"Prepared cannot render a value given at run time into its SQL: {bind.key}")
        # An IN list fixed in the statement expands the same way every time: into these positions.
        # (The values do not change how it expands; one missing is reported by ``_SqliteForm.values`` at each run.)
        unbound = {name: None for name, bind in compiled.binds.items() if bind.required}
        expanded = compiled.construct_expanded_state({**unbound, **given})
        sources: dict[str, tuple[str, int | None]] = {}
        for name, expanded_names in expanded.parameter_expansion.items():
            if name in given:
                raise TypeError(f"Prepared cannot expand a list given at run time: {name}")
            if isinstance(compiled.binds[name].type, TupleType):
                raise TypeError(f"Prepared cannot expand a list of tuples: {name}")
            sources.update((position, (name, index)) for index, position in enumerate(expanded_names))
        assert expanded.positiontup is not None  # SQLite's parameters are positional
        defaults: dict[str, ColumnDefault] = {}
        for column in (*compiled.insert_prefetch, *compiled.update_prefetch):
            default = column.default if column in compiled.insert_prefetch else column.onupdate
            if not isinstance(default, ColumnDefault) or not (default.is_scalar or default.is_callable):
                raise TypeError(f"Prepared fills in constant and Python function column defaults only: {column}")
            defaults[column.key] = default
        positions: list[_Position] = []
        for position in expanded.positiontup:
            name, index = sources.get(position, (position, None))
            bind = compiled.binds[name]
            if bind.callable is not None:
                raise TypeError(f"Prepared cannot call a parameter's value function: {name}")
            fixed = _REQUIRED if bind.required else bind.value
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            positions.append((name, index, fixed, defaults.get(name), processor))
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in getattr(self.statement, "exported_columns", ())
        )
        return _SqliteForm(expanded.statement, tuple(positions), results if any(results) else None)


class WalCheckpointer:
    """Checkpoints an SQLite database's write-ahead log every ``every`` seconds, from a connection of its own in
    a worker thread, for an engine made with ``checkpoint_in_background=True`` (whose commits never checkpoint).
    A commit that checkpoints copies the log's pages into the database and syncs it: milliseconds, sometimes
    tens of them, that the event loop, where a citizen's transactions commit, would wait. ``PASSIVE``: it never
    waits for, nor stops, the service's reads and writes."""

    def __init__(self, engine: AsyncEngine, every: float = 1.0) -> None:
        database = engine.url.database
        if not database:
            raise ValueError("WalCheckpointer needs an SQLite database file")
        # mode=rw: the database the engine uses, never a new empty one (a path that changed meaning, say).
        self.uri = f"{Path(database).resolve().as_uri()}?mode=rw"
        self.every = every
        self._connection: sqlite3.Connection | None = None
        # One thread: a checkpoint and the connection's close never overlap (closing under a running checkpoint
        # crashes the process).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-checkpoint")

    def checkpoint(self) -> tuple[int, int]:
        """One passive checkpoint, in the checkpointer's thread: (frames in the log, frames now in the
        database)."""
        if self._connection is None:
            self._connection = sqlite3.connect(
                self.uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
            )
        _busy, in_log, copied = self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(in_log), int(copied)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(self._thread, self.checkpoint)
            except Exception:
                log.exception("checkpointing the SQLite log failed; retrying")
            await asyncio.sleep(self.every)

    async def stop(self, task: asyncio.Task[None]) -> None:
        """Cancel the loop, then close the connection once the checkpoint in flight (if any) has finished."""
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown()


# Rows of each index ANALYZE samples when ``PRAGMA optimize`` runs it: SQLite's advice is 100 to 1,000.
ANALYSIS_LIMIT = 400


async def keep_sqlite_statistics(engine: AsyncEngine) -> None:
    """SQLite's advice for a long-lived connection: ``PRAGMA optimize`` every few hours and before it closes. It
    runs ``ANALYZE`` (sampled, :data:`ANALYSIS_LIMIT` rows per index) on the tables this connection's queries
    used that were never analysed or have grown a lot since; usually it does nothing. Without the statistics
    the planner chooses by rule of thumb: at a million items the /stats report read every clock's row instead
    of the covering index. On the pool's one connection, the one whose queries SQLite has watched and whose
    plans the new statistics reach at once; in its own thread (the write lock for milliseconds). Nothing on
    other databases (PostgreSQL's autovacuum analyses)."""
    if engine.dialect.name != "sqlite":
        return
    async with connect(engine) as connection:
        await connection.exec_driver_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        await connection.exec_driver_sql("PRAGMA optimize")
        await connection.commit()


def sqlite_log_bytes(engine: AsyncEngine) -> int | None:
    """The size of an SQLite database's write-ahead log file (0 when there is none); None for other databases."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    try:
        return Path(f"{engine.url.database}-wal").stat().st_size
    except FileNotFoundError:
        return 0


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


def create_engine(
    url: str,
    *,
    schema: str | None = None,
    checkpoint_in_background: bool = False,
    pool_size: int = DEFAULT_POOL_SIZE,
    **kwargs: Any,
) -> AsyncEngine:
    """Create an async engine.

    SQLite runs in WAL mode with foreign keys on, and every transaction starts with ``BEGIN IMMEDIATE``
    so that two writers queue on the busy timeout instead of failing on a lock upgrade. Since every
    transaction takes SQLite's write lock anyway, the pool holds one connection: the transactions of this
    process then wait their turn in the pool's FIFO queue (asynchronously) instead of polling the lock
    inside SQLite's busy handler, which sleeps up to 100 ms between tries. Other processes (a second
    ``pakn serve``, the CLI) still queue on the busy timeout. Each statement is one hand-off to the
    connection's thread (:class:`_OneTripCursor`), or none in a transaction run inline
    (:func:`run_statements_inline`); a long read can have a connection of its own (:func:`read_only_session`).
    ``checkpoint_in_background`` (SQLite only): no commit checkpoints the WAL (``wal_autocheckpoint=0``); a
    :class:`WalCheckpointer` must run (as in ``pakn serve``), or the log is checkpointed when the last connection
    to the database closes.
    ``schema`` (PostgreSQL only) sets the search path, which is how the tests isolate themselves.
    ``pool_size`` (PostgreSQL only): the connections a process keeps open, and the most it opens: a transaction
    beyond them waits for one. (SQLAlchemy's default, 5 and up to 10 more for a burst, each closed when returned
    to a full pool, meant a new connection — a server process, its authentication, asyncpg's type look-ups,
    statements prepared again — every few updates under load.)
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        sqlite_args = {"timeout": BUSY_TIMEOUT_MS / 1000, **kwargs.pop("connect_args", {})}
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
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # After a burst, the log file shrinks back to this once a checkpoint has emptied it (it is reused,
            # never shrunk, otherwise): bounded disk, and a /metrics figure that tells a stopped checkpointer.
            cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            if checkpoint_in_background:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
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
    kwargs.setdefault("pool_size", pool_size)
    kwargs.setdefault("max_overflow", 0)  # at most pool_size connections: processes × size ≤ max_connections
    # No pre-ping: it is a round trip on every checkout (0.45 ms of CPU per citizen update here). A connection the
    # server dropped fails its first statement instead; SQLAlchemy then discards every pooled connection older
    # than that, and the citizen path (bot.conversation) handles the update again on a new one, as the web server
    # reads a page again (handlers.http.lost_connection_middleware).
    return create_async_engine(url, connect_args=connect_args, **kwargs)


@contextlib.asynccontextmanager
async def read_only_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session for a long read — a report, a digest — that leaves ``engine``'s connections to the service.

    On SQLite, whose pool holds the one connection every write queues for, the session has a read-only
    connection of its own (``query_only``), opened for it and closed after; its transaction is a plain (deferred)
    ``BEGIN``, so it reads one snapshot of the database while the service goes on writing (WAL). Elsewhere
    (PostgreSQL) it is a session of ``engine`` whose transaction is ``REPEATABLE READ`` and read-only: one
    snapshot too, and no write."""
    if engine.dialect.name != "sqlite":
        snapshot = engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        async with AsyncSession(snapshot, expire_on_commit=False) as session:
            yield session
        return
    reader = create_async_engine(
        engine.url.render_as_string(hide_password=False),
        poolclass=NullPool,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(reader.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions as below, not the driver's own
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(reader.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")

    try:
        async with AsyncSession(reader, expire_on_commit=False) as session:
            yield session
    finally:
        await reader.dispose()


def upsert_insert(dialect_name: str) -> Any:
    """The dialect's ``insert``, the one with ``on_conflict_do_nothing`` and ``on_conflict_do_update``
    (PostgreSQL's or SQLite's, the two databases PAKN runs on)."""
    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
