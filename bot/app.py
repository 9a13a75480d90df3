"""Composition root: settings → keys → database → context → channels → one HTTP server.

The only module of ``bot`` that knows the channel adapters exist: it wires them to the core and starts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from bot import audit, scheduler
from bot.calendar import WorkingCalendar
from bot.context import Context
from bot.conversation import Conversations
from bot.digest_jobs import send_due_digests
from bot.housekeeping import SqliteStatistics, run_housekeeping
from bot.outbox import Dispatcher, Sender
from bot.privacy import Vault, VaultError, load_keys
from bot.units import sync_units
from config import Settings, load_province
from models.db import WalCheckpointer, create_engine, keep_sqlite_statistics, make_session_factory
from models.migrate import current_heads, current_revision, upgrade
from models.tables import Citizen, Official

log = logging.getLogger("pakn")


class StartupError(Exception):
    """A problem that stops ``pakn serve`` with one clear line."""


async def build_context(settings: Settings, *, checkpoint_in_background: bool = False) -> Context:
    """Load configuration, keys and the database engine; raise StartupError with a one-line reason.
    ``checkpoint_in_background``: see :func:`models.db.create_engine` (the caller runs a ``WalCheckpointer``)."""
    province = load_province(settings.province_dir)
    try:  # the key file and an SQLite database live there
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"PAKN_DATA_DIR {settings.data_dir}: cannot create it: {exc.strerror or exc}") from None
    keys = load_keys(settings.secret_key, settings.key_file)
    try:
        engine = create_engine(
            settings.effective_database_url,
            checkpoint_in_background=checkpoint_in_background,
            pool_size=settings.database_pool_size,
        )
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise StartupError(f"PAKN_DATABASE_URL is not usable: {exc}") from None
    return Context(
        settings=settings,
        province=province,
        calendar=WorkingCalendar(province.calendar),
        keys=keys,
        vault=Vault(keys),
        engine=engine,
        sessions=make_session_factory(engine),
    )


def database_error(ctx: Context, exc: BaseException) -> StartupError:
    """The database's failure as one line: its address (password hidden) and the driver's first line."""
    lines = str(getattr(exc, "orig", None) or exc).splitlines()
    reason = lines[0] if lines else type(exc).__name__  # a timeout has no message
    return StartupError(f"database {ctx.engine.url.render_as_string(hide_password=True)}: {reason}")


async def prepare_database(ctx: Context, *, migrate: bool) -> None:
    """Check the database answers, migrate it when asked, and mirror the configured units into it."""
    try:
        async with ctx.engine.connect() as connection:
            await connection.execute(text("select 1"))
        if migrate:
            await upgrade(ctx.engine)
        else:
            current = await current_revision(ctx.engine)
            if current not in current_heads():
                raise StartupError(
                    f"database schema is at revision {current or 'none'}, this release needs "
                    f"{', '.join(current_heads())}: run `pakn db upgrade` first"
                )
        async with ctx.sessions.begin() as session:
            await sync_units(session, ctx.province)
    except (TimeoutError, OSError, SQLAlchemyError) as exc:
        raise database_error(ctx, exc) from None


# Sealed addresses tried at start: one damaged row must not stop the service (the outbox sets it aside).
KEY_CHECK_SAMPLE = 10


async def check_secret_key(ctx: Context) -> None:
    """The vault's key must open what the database already holds sealed. Started with another key (a lost key
    file regenerated, a typo in PAKN_SECRET_KEY), the service would not recognise a single official nor reach a
    single citizen; it stops instead, with one line, when none of the newest sealed addresses opens. A database
    with nothing sealed yet accepts any key. Only ``pakn serve`` asks: the CLI's reports and ``pakn audit
    verify`` open nothing sealed."""
    async with ctx.sessions() as session:
        sealed = [
            (blob, "citizen.channel_id")
            for blob in await session.scalars(
                select(Citizen.enc_channel_id).order_by(Citizen.id.desc()).limit(KEY_CHECK_SAMPLE)
            )
        ] + [
            (blob, "official.channel_id")
            for blob in await session.scalars(
                select(Official.enc_channel_id).order_by(Official.id.desc()).limit(KEY_CHECK_SAMPLE)
            )
        ]
    for blob, purpose in sealed:
        try:
            ctx.vault.decrypt(blob, purpose)
        except VaultError:
            continue
        return
    if sealed:
        raise StartupError(
            "PAKN_SECRET_KEY does not open the data already in the database (it was sealed with another key): "
            "start with the key it was written with"
        )


def periodic_jobs() -> list[Callable[[Context], Awaitable[object]]]:
    """Work the scheduler runs on every tick besides deadline alarms: the weekly digest, forgetting on time,
    SQLite's query statistics."""
    return [send_due_digests, run_housekeeping, SqliteStatistics()]


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it exists (not on Windows), else asyncio's own (None)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def serve(settings: Settings) -> None:
    """Run the service until SIGTERM or SIGINT (or cancellation), then stop what is running, in order."""
    from handlers.http import create_web_app, start_site

    ctx = await build_context(settings, checkpoint_in_background=True)
    await prepare_database(ctx, migrate=ctx.engine.url.get_backend_name() == "sqlite")
    await check_secret_key(ctx)
    conversations = Conversations(ctx)
    app = create_web_app(ctx, conversations)
    senders: dict[str, Sender] = {}
    telegram = None
    if settings.telegram_token:
        from handlers.telegram import TelegramChannel

        telegram = TelegramChannel(ctx, conversations)
        telegram.setup(app)
        senders["telegram"] = telegram.sender
    dispatcher = Dispatcher(ctx, senders)
    conversations.outbox = dispatcher
    # Everything built so far lives as long as the process: out of the garbage collector's sight, a full
    # collection walks only what requests allocate (about 7 % of a busy server's CPU went to collections).
    gc.collect()
    gc.freeze()
    try:
        runner = await start_site(app, settings.host, settings.port)
    except OSError as exc:
        raise StartupError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
    log.info(
        "PAKN listening on http://%s:%s (database: %s)", settings.host, settings.port, ctx.engine.url.get_backend_name()
    )
    sealer = audit.Sealer(ctx.engine)
    sealing = asyncio.create_task(sealer.run_forever(), name="audit sealer")
    checkpointer = WalCheckpointer(ctx.engine) if ctx.engine.dialect.name == "sqlite" else None
    checkpointing = asyncio.create_task(checkpointer.run_forever(), name="WAL") if checkpointer else None
    tasks = [
        asyncio.create_task(dispatcher.run_forever(), name="outbox"),
        asyncio.create_task(
            scheduler.run_forever(ctx, jobs=periodic_jobs(), wake=dispatcher.wake.set), name="scheduler"
        ),
    ]
    try:
        if telegram is not None:
            await telegram.start()
        else:
            log.info(
                "Telegram is off: set PAKN_TELEGRAM_TOKEN (and PAKN_TELEGRAM_API_URL for a local Bot API "
                "server) to enable the bot. The web chat works now at http://%s:%s/chat",
                settings.host,
                settings.port,
            )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stopping.set)
        await stopping.wait()
        log.info("PAKN stopping")
    finally:  # no new requests or updates, let those in flight finish; then the bot, the tasks, the database
        await runner.cleanup()
        if telegram is not None:  # polling: an update fetched a moment ago may still file an item and send its receipt
            await telegram.stop_receiving()
        with contextlib.suppress(TimeoutError):  # a receipt being sent: its lease would delay it by a minute
            async with asyncio.timeout(10):
                await dispatcher.settle()
        if telegram is not None:
            await telegram.shutdown()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await sealer.stop(sealing)
        except Exception:  # the database gone first: the next start (or `pakn audit verify`) seals them
            log.exception("sealing the last audit events at stop failed")
        finally:
            if checkpointer is not None and checkpointing is not None:
                await checkpointer.stop(checkpointing)
            try:
                await keep_sqlite_statistics(ctx.engine)  # SQLite's advice: before the connection closes
            except Exception:
                log.exception("updating SQLite's query statistics at stop failed")
            await ctx.engine.dispose()
