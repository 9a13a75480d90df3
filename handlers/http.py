"""The one aiohttp server: shared application keys, metrics, ``/healthz`` and ``/metrics``.

Channel modules (``handlers.web``, ``handlers.telegram`` …) add their routes to the application built here.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bot import audit
from bot.context import Context
from bot.conversation import Conversations
from models.db import read_only_session, sqlite_log_bytes
from models.tables import Item, Outbox

log = logging.getLogger(__name__)

# Modules that add routes to the server; each has ``setup(app)``.
ROUTE_MODULES: tuple[str, ...] = ("handlers.web", "handlers.desk_pages", "handlers.public_pages")


class Metrics:
    def __init__(self, *, sqlite: bool = False) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pakn_http_requests", "HTTP requests served", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram("pakn_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry)
        self.items = Gauge("pakn_items", "Items by status", ["status"], registry=self.registry)
        self.outbox = Gauge("pakn_outbox_messages", "Outbox messages by status", ["status"], registry=self.registry)
        self.database_up = Gauge("pakn_database_up", "1 when the database answers", registry=self.registry)
        self.unsealed = Gauge(
            "pakn_audit_unsealed",
            "Audit events committed but not sealed into the chain yet (the sealer runs every second)",
            registry=self.registry,
        )
        self.updates = Counter("pakn_updates", "Chat updates handled", ["channel"], registry=self.registry)
        self.sqlite_log = (
            Gauge(
                "pakn_sqlite_wal_bytes",
                "Size of SQLite's write-ahead log file: steady while pakn serve checkpoints it every second, "
                "growing without end if checkpoints stopped",
                registry=self.registry,
            )
            if sqlite
            else None
        )
        self._by_route: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency; each label set is looked up once (``labels`` costs a lock and a
        key built from the labels on every call)."""
        key = (route, status)
        children = self._by_route.get(key)
        if children is None:
            children = self._by_route[key] = (self.requests.labels(route, str(status)), self.latency.labels(route))
        children[0].inc()
        children[1].observe(seconds)


CONTEXT = web.AppKey("context", Context)
CONVERSATIONS = web.AppKey("conversations", Conversations)
METRICS = web.AppKey("metrics", Metrics)


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    metrics = request.app[METRICS]
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.observe(route, status, time.perf_counter() - started)


@web.middleware
async def lost_connection_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A page read once more when the database dropped the connection it used (a restart, a proxy cutting idle
    connections): with no ping on checkout the first statement on a dead pooled connection fails, SQLAlchemy
    then discards the pool's older connections, and the second try gets a new one. Only ``GET`` and ``HEAD``,
    which change nothing; a citizen's updates are handled again by ``bot.conversation`` itself."""
    try:
        return await handler(request)
    except DBAPIError as error:
        if not error.connection_invalidated or request.method not in ("GET", "HEAD"):
            raise
        log.warning("the database connection was lost; reading %s again", request.path)
        return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    try:
        async with ctx.engine.connect() as connection:
            await connection.execute(text("select 1"))
        database = "ok"
    except (OSError, SQLAlchemyError) as exc:
        log.warning("health check: database unreachable: %s", exc)
        database = "unreachable"
    body = {
        "status": "ok" if database == "ok" else "degraded",
        "database": database,
        "backend": ctx.engine.url.get_backend_name(),
    }
    return web.json_response(body, status=200 if database == "ok" else 503)


async def metrics_endpoint(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    metrics = request.app[METRICS]
    try:
        # Counting a province's items by status scans an index (a quarter of a second at a million items): on a
        # read-only connection of its own, so that on SQLite no citizen's update waits for a scrape.
        async with read_only_session(ctx.engine) as session:
            items = (await session.execute(select(Item.status, func.count()).group_by(Item.status))).all()
            outbox = (await session.execute(select(Outbox.status, func.count()).group_by(Outbox.status))).all()
            unsealed = await audit.count_unsealed(session)
        metrics.items.clear()
        for status, count in items:
            metrics.items.labels(status).set(count)
        metrics.outbox.clear()
        for status, count in outbox:
            metrics.outbox.labels(status).set(count)
        metrics.unsealed.set(unsealed)
        metrics.database_up.set(1)
    except (OSError, SQLAlchemyError):
        metrics.database_up.set(0)
    if metrics.sqlite_log is not None:
        metrics.sqlite_log.set(sqlite_log_bytes(ctx.engine) or 0)
    return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_web_app(ctx: Context, conversations: Conversations) -> web.Application:
    """The application with the core routes and the web chat; other channels add theirs."""
    app = web.Application(middlewares=[metrics_middleware, lost_connection_middleware], client_max_size=1024**2)
    app[CONTEXT] = ctx
    app[CONVERSATIONS] = conversations
    app[METRICS] = Metrics(sqlite=ctx.engine.dialect.name == "sqlite")
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_endpoint)
    for name in ROUTE_MODULES:
        importlib.import_module(name).setup(app)
    return app


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
