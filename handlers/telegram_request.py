"""python-telegram-bot transport on aiohttp.

PTB's default transport (httpx) spends about 3 ms of CPU per request when many requests are in flight;
aiohttp, which the service already depends on, spends a fraction of that. :class:`AiohttpRequest` is a drop-in
:class:`telegram.request.BaseRequest`::

    application = (
        ApplicationBuilder()
        .token(token)
        .request(AiohttpRequest(connection_pool_size=256))
        .get_updates_request(AiohttpRequest(connection_pool_size=2))
        .build()
    )

The constructor takes the same timeouts as :class:`telegram.request.HTTPXRequest` and they mean the same
thing, with one difference that aiohttp imposes: it has no per-write timeout, so ``write_timeout`` (or
``media_write_timeout`` for uploads) plus ``read_timeout`` bound the time from sending the request until the
response headers arrive.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.logging import get_logger
from telegram._utils.types import JSONDict, ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData
from yarl import URL

__all__ = ["AiohttpRequest"]

_LOGGER = get_logger(__name__, "AiohttpRequest")

_POOL_TIMEOUT_MESSAGE = (
    "Pool timeout: All connections in the connection pool are occupied. Request was *not* sent to Telegram. "
    "Consider adjusting the connection pool size or the pool timeout."
)


_JSON_HEADERS = {"Content-Type": "application/json"}


def _resolve(value: ODVInput[float], default: float | None) -> float | None:
    """A timeout argument, or this instance's default when it was not passed (any ``DefaultValue``)."""
    if isinstance(value, DefaultValue):
        return default
    return None if value is None else float(value)


class AiohttpRequest(BaseRequest):
    """:class:`~telegram.request.BaseRequest` on one :class:`aiohttp.ClientSession`.

    Args:
        connection_pool_size: maximum number of simultaneous connections (and requests in flight).
        read_timeout: seconds to wait for data from the server (per read). Default 5.
        write_timeout: seconds allowed for sending a request without files, see the module docstring. Default 5.
        connect_timeout: seconds to wait for a new connection to be established. Default 5.
        pool_timeout: seconds to wait for a free connection slot when ``connection_pool_size`` requests are
            in flight; then :class:`telegram.error.TimedOut` is raised and the request is *not* sent. Default 1.
        media_write_timeout: like ``write_timeout``, for requests that upload files. Default 20.
        proxy: URL of an HTTP proxy for all requests.
        trust_env: honour ``HTTP(S)_PROXY``/``NO_PROXY`` from the environment, as httpx (and so PTB's default
            transport) does. Like httpx, the environment is read once (per server origin), not on every
            request: aiohttp's own ``trust_env`` would look the proxy and ``~/.netrc`` up in a worker thread on
            every request, two thread hand-offs that cost more CPU than the rest of a request. Default ``True``.
        session_kwargs: extra keyword arguments for :class:`aiohttp.ClientSession` (they override the
            defaults set here, except the connector).
        connector_kwargs: extra keyword arguments for :class:`aiohttp.TCPConnector`.

    The session is created by :meth:`initialize` (or on first use, inside the running event loop) and closed
    by :meth:`shutdown`; after shutdown, :meth:`initialize` creates a new one.
    """

    __slots__ = (
        "_connect_timeout",
        "_connection_pool_size",
        "_connector_kwargs",
        "_env_proxies",
        "_media_write_timeout",
        "_pool_timeout",
        "_proxy",
        "_read_timeout",
        "_semaphore",
        "_session",
        "_session_kwargs",
        "_shut_down",
        "_timeouts",
        "_trust_env",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
        *,
        proxy: str | None = None,
        trust_env: bool = True,
        session_kwargs: dict[str, Any] | None = None,
        connector_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._connection_pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._proxy = proxy
        self._trust_env = trust_env
        self._env_proxies: dict[str, tuple[URL, aiohttp.BasicAuth | None] | None] = {}
        self._session_kwargs = dict(session_kwargs or {})
        self._connector_kwargs = dict(connector_kwargs or {})
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._shut_down = False
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    @property
    def read_timeout(self) -> float | None:
        """See :attr:`telegram.request.BaseRequest.read_timeout`."""
        return self._read_timeout

    @property
    def connection_pool_size(self) -> int:
        return self._connection_pool_size

    def _build_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._connection_pool_size,
            limit_per_host=0,
            ttl_dns_cache=300,
            **self._connector_kwargs,
        )
        kwargs: dict[str, Any] = {
            "headers": {"User-Agent": self.USER_AGENT},
            "timeout": aiohttp.ClientTimeout(total=None),
            "trust_env": False,  # the environment's proxy is looked up once per origin (_env_proxy)
            "proxy": self._proxy,
            **self._session_kwargs,
        }
        self._semaphore = asyncio.Semaphore(self._connection_pool_size)
        return aiohttp.ClientSession(connector=connector, **kwargs)

    async def initialize(self) -> None:
        """See :meth:`telegram.request.BaseRequest.initialize`."""
        if self._session is None or self._session.closed:
            self._session = self._build_session()
        self._shut_down = False

    async def shutdown(self) -> None:
        """See :meth:`telegram.request.BaseRequest.shutdown`."""
        self._shut_down = True
        session, self._session = self._session, None
        if session is None or session.closed:
            _LOGGER.debug("This AiohttpRequest is already shut down. Returning.")
            return
        await session.close()

    def _env_proxy(self, url: str) -> tuple[URL, aiohttp.BasicAuth | None] | None:
        """The proxy ``HTTP(S)_PROXY``/``NO_PROXY`` name for the server of ``url``, read once per origin."""
        end = url.find("/", url.find("//") + 2)
        origin = url if end < 0 else url[:end]
        if origin not in self._env_proxies:
            try:
                self._env_proxies[origin] = get_env_proxy_for_url(URL(origin))
            except LookupError:  # no proxy for this scheme, or NO_PROXY names the host
                self._env_proxies[origin] = None
        return self._env_proxies[origin]

    def _client_timeout(self, connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
        key = (connect, read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            # `connect` in aiohttp would also cover waiting for a pooled connection; the pool wait is ours
            # (the semaphore), so only the connection set-up is bounded here.
            timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=connect, sock_read=read)
            self._timeouts[key] = timeout
        return timeout

    @staticmethod
    def parse_json_payload(payload: bytes) -> JSONDict:
        """See :meth:`telegram.request.BaseRequest.parse_json_payload`: the same, with orjson (PTB's own, which
        logs the payload and raises :class:`telegram.error.TelegramError`, for what orjson cannot read)."""
        try:
            parsed: JSONDict = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return BaseRequest.parse_json_payload(payload)
        return parsed

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """See :meth:`telegram.request.BaseRequest.do_request`."""
        session = self._session
        if session is None or session.closed:
            if self._shut_down:
                raise RuntimeError("This AiohttpRequest is not initialized!")
            session = self._session = self._build_session()
        semaphore = self._semaphore
        assert semaphore is not None

        files = request_data.multipart_data if request_data and request_data.contains_files else None
        data: aiohttp.FormData | bytes | None = None
        headers = None
        if request_data is not None:
            if files:
                form = aiohttp.FormData(quote_fields=False)
                for name, value in request_data.json_parameters.items():
                    form.add_field(name, value)
                for name, (filename, content, mimetype) in files.items():
                    form.add_field(name, content, filename=filename, content_type=mimetype)
                data = form
            elif parameters := request_data.parameters:
                # A JSON body, which the Bot API takes for any method without files: one orjson call, where
                # PTB's form (each value through json.dumps, then urlencode) cost tens of microseconds.
                data = orjson.dumps(parameters)
                headers = _JSON_HEADERS

        read = _resolve(read_timeout, self._read_timeout)
        connect = _resolve(connect_timeout, self._connect_timeout)
        pool = _resolve(pool_timeout, self._pool_timeout)
        write = _resolve(write_timeout, self._media_write_timeout if files else self._write_timeout)

        if semaphore.locked():
            try:
                async with asyncio.timeout(pool):
                    await semaphore.acquire()
            except TimeoutError as err:
                raise TimedOut(message=_POOL_TIMEOUT_MESSAGE) from err
        else:
            await semaphore.acquire()
        try:
            headers_deadline = None if write is None or read is None else write + read
            async with asyncio.timeout(headers_deadline):
                proxy = self._env_proxy(url) if self._trust_env and self._proxy is None else None
                response = await session.request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    timeout=self._client_timeout(connect, read),
                    proxy=proxy[0] if proxy else None,
                    proxy_auth=proxy[1] if proxy else None,
                )
            async with response:
                payload = await response.read()
                return response.status, payload
        except TimeoutError as err:
            # asyncio's deadline and aiohttp's ServerTimeoutError/ConnectionTimeoutError/SocketTimeoutError
            # (which are TimeoutErrors too) end up here.
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err
        except OSError as err:
            raise NetworkError(f"{err.__class__.__name__}: {err}") from err
        finally:
            semaphore.release()
