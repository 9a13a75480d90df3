"""AiohttpRequest (handlers/telegram_request.py): PTB's transport contract, against the fake Bot API server."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from telegram import Bot, InputFile
from telegram.error import BadRequest, NetworkError, TelegramError, TimedOut
from telegram.request import BaseRequest, RequestData
from telegram.request._requestparameter import RequestParameter

from handlers.telegram_request import AiohttpRequest
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeBotAPI

TOKEN = DEFAULT_TOKEN


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(token=TOKEN) as server:
        yield server


def make_bot(fake: FakeBotAPI, request: AiohttpRequest | None = None) -> Bot:
    return Bot(
        TOKEN,
        base_url=f"{fake.url}/bot",
        base_file_url=f"{fake.url}/file/bot",
        request=request or AiohttpRequest(),
        get_updates_request=AiohttpRequest(),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_defaults_match_httpx_request() -> None:
    request = AiohttpRequest()
    assert isinstance(request, BaseRequest)
    assert request.read_timeout == 5.0
    assert request.connection_pool_size == 256
    assert AiohttpRequest(read_timeout=None).read_timeout is None
    with pytest.raises(ValueError):
        AiohttpRequest(connection_pool_size=0)


async def test_bot_round_trip_with_user_agent_and_json_body(fake: FakeBotAPI) -> None:
    async with make_bot(fake) as bot:
        assert (await bot.get_me()).username == "pakn_test_bot"
        message = await bot.send_message(42, "Phản ánh đã được tiếp nhận", disable_notification=True)
    assert message.text == "Phản ánh đã được tiếp nhận"
    call = fake.calls_of("sendMessage")[0]
    assert call.headers["User-Agent"] == BaseRequest.USER_AGENT
    assert call.headers["Content-Type"] == "application/json"
    assert call.params == {"chat_id": 42, "text": "Phản ánh đã được tiếp nhận", "disable_notification": True}


async def test_files_go_as_multipart(fake: FakeBotAPI, tmp_path: Path) -> None:
    path = tmp_path / "ảnh hiện trường.txt"
    path.write_bytes(b"x" * 300_000)
    async with make_bot(fake) as bot:
        with path.open("rb") as handle:
            # read_file_handle=False: PTB passes the open file itself, which aiohttp streams.
            message = await bot.send_document(
                42, InputFile(handle, read_file_handle=False), caption="Hiện trường", protect_content=True
            )
    assert message.document is not None and message.document.file_size == 300_000
    assert message.document.file_name == "ảnh hiện trường.txt"
    call = fake.calls_of("sendDocument")[0]
    assert call.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert call.params["caption"] == "Hiện trường" and call.params["protect_content"] is True
    assert call.params["document"].data == b"x" * 300_000


async def test_retrieve_downloads_files(fake: FakeBotAPI) -> None:
    payload = bytes(range(256)) * 100
    fake.add_file("blob", payload)
    async with make_bot(fake) as bot:
        file = await bot.get_file("blob")
        assert bytes(await file.download_as_bytearray()) == payload
    assert fake.calls_of("file")[0].headers["User-Agent"] == BaseRequest.USER_AGENT


async def test_errors_are_passed_to_ptb(fake: FakeBotAPI) -> None:
    async with make_bot(fake) as bot:
        with pytest.raises(BadRequest, match="Message text is empty"):
            await bot.send_message(42, " ")
        fake.fail_next("getMe", status=502)
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.get_me()


async def test_read_timeout_becomes_timed_out(fake: FakeBotAPI) -> None:
    async with make_bot(fake, AiohttpRequest(read_timeout=0.1)) as bot:
        fake.delay = 0.5
        started = time.monotonic()
        with pytest.raises(TimedOut):
            await bot.send_message(42, "x")
        assert time.monotonic() - started < 0.45
        # A timeout passed to the method overrides the default of the request object.
        assert (await bot.send_message(42, "y", read_timeout=2)).text == "y"


async def test_long_poll_extends_the_read_timeout(fake: FakeBotAPI) -> None:
    # PTB adds the long-poll timeout to the read timeout, so a poll longer than read_timeout is fine.
    async with Bot(
        TOKEN,
        base_url=f"{fake.url}/bot",
        request=AiohttpRequest(),
        get_updates_request=AiohttpRequest(read_timeout=0.2),
    ) as bot:
        started = time.monotonic()
        assert await bot.get_updates(timeout=1) == ()
        assert time.monotonic() - started >= 0.9


async def test_connection_refused_becomes_network_error() -> None:
    async with AiohttpRequest(connect_timeout=2) as request:
        bot = Bot(TOKEN, base_url=f"http://127.0.0.1:{free_port()}/bot", request=request)
        with pytest.raises(NetworkError, match=r"aiohttp\.ClientConnectorError") as excinfo:
            await bot.get_me()
        assert not isinstance(excinfo.value, TimedOut)


async def test_dropped_connection_becomes_network_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with AiohttpRequest() as request:
            with pytest.raises(NetworkError, match=r"aiohttp\.ServerDisconnectedError"):
                await request.post(f"http://127.0.0.1:{port}/bot{TOKEN}/getMe")
    finally:
        server.close()
        await server.wait_closed()


async def test_answers_orjson_cannot_read_go_to_ptbs_parser() -> None:
    """What is not JSON (a proxy's page) is PTB's "Invalid server response"; bytes that are not UTF-8 are
    replaced, as PTB's own parser does; a JSON answer is read whatever its characters."""
    bodies = iter(
        [b"<html>502</html>", b'{"ok": true, "result": "\xff\xfe"}', '{"ok":true,"result":"Điện Biên"}'.encode()]
    )

    async def answer(_request: web.Request) -> web.Response:
        return web.Response(body=next(bodies), content_type="application/json")

    app = web.Application()
    app.router.add_post(f"/bot{TOKEN}/getMe", answer)
    async with TestServer(app, host="127.0.0.1") as server, AiohttpRequest() as request:
        url = str(server.make_url(f"/bot{TOKEN}/getMe"))
        with pytest.raises(TelegramError, match="Invalid server response"):
            await request.post(url)
        assert await request.post(url) == "\ufffd\ufffd"
        assert await request.post(url) == "Điện Biên"


async def test_pool_timeout_when_every_connection_is_busy(fake: FakeBotAPI) -> None:
    async with make_bot(fake, AiohttpRequest(connection_pool_size=1, pool_timeout=0.05)) as bot:
        fake.delay = 0.5
        results = await asyncio.gather(bot.get_chat(42), bot.get_chat(43), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], TimedOut) and "Pool timeout" in errors[0].message
    assert len(fake.calls_of("getChat")) == 1, "a request that timed out in the pool is never sent"


async def test_many_concurrent_requests(fake: FakeBotAPI) -> None:
    fake.delay = 0.05
    async with make_bot(fake, AiohttpRequest(connection_pool_size=64, pool_timeout=10)) as bot:
        started = time.monotonic()
        messages = await asyncio.gather(*(bot.send_message(1000 + i, f"tin {i}") for i in range(300)))
        elapsed = time.monotonic() - started
    assert [m.text for m in messages] == [f"tin {i}" for i in range(300)]
    assert elapsed < 5, "requests run concurrently up to the pool size"


async def test_shutdown_and_initialize_again(fake: FakeBotAPI) -> None:
    request = AiohttpRequest()
    url = f"{fake.url}/bot{TOKEN}/getMe"
    # Used without initialize(): the session is created on first use.
    assert (await request.post(url))["id"] == 123456789  # type: ignore[index,call-overload]
    await request.shutdown()
    await request.shutdown()  # idempotent
    with pytest.raises(NetworkError, match="not initialized"):
        await request.post(url)
    await request.initialize()
    status, payload = await request.do_request(url, "POST")
    assert status == 200 and payload.startswith(b'{"ok":true')
    await request.shutdown()


async def test_do_request_sends_parameters_as_one_json_body(fake: FakeBotAPI) -> None:
    data = RequestData(
        [
            RequestParameter("chat_id", 42, None),
            RequestParameter("text", "Xin chào", None),
            RequestParameter("reply_markup", {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}, None),
        ]
    )
    async with AiohttpRequest() as request:
        status, payload = await request.do_request(f"{fake.url}/bot{TOKEN}/sendMessage", "POST", data)
    assert status == 200
    assert request.parse_json_payload(payload)["result"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "A"
    assert fake.calls_of("sendMessage")[0].params["reply_markup"] == {
        "inline_keyboard": [[{"text": "A", "callback_data": "a"}]]
    }
