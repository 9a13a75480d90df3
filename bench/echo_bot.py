"""The benchmark's baseline: a minimal python-telegram-bot echo bot with stock settings behind an aiohttp webhook.

Modelled on PTB's ``examples/echobot.py`` and ``examples/customwebhookbot``: an ``Application`` without an
updater, an aiohttp server whose ``POST /telegram/webhook`` checks the secret token and puts the update on
``application.update_queue``, and a ``MessageHandler`` that answers every text message with the same text.
Everything else is PTB's default: the httpx transport (``HTTPXRequest``, pool of 256 connections), no rate
limiter, PTB's logging as in its examples (httpx quietened to WARNING). The one option is
``--concurrent-updates``: default 256, since a service handles its users' updates concurrently, as ``pakn
serve`` does; 0 is PTB's default, one update at a time, which is faster on loopback (no contention in httpx's
pool) and waits out every Bot API round trip in turn with a real one (docs/PERFORMANCE-HISTORY.md, runs 21–26). For
reference only, ``--transport aiohttp`` swaps httpx for PAKN's ``handlers.telegram_request.AiohttpRequest``: the
same bot on the transport ``pakn serve`` uses, which shows how much of the difference is the transport.

Run (the webhook benchmark starts it by itself)::

    python bench/echo_bot.py --token T --api-url http://127.0.0.1:8081 --port 8090 --secret S
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import signal

from aiohttp import web
from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

PATH = "/telegram/webhook"

logging.basicConfig(format="%(asctime)s - %(name)s - %(levelname)s - %(message)s", level=logging.INFO)
logging.getLogger("httpx").setLevel(logging.WARNING)


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None and update.message.text is not None
    await update.message.reply_text(update.message.text)


async def run(args: argparse.Namespace) -> None:
    api = args.api_url.rstrip("/")
    builder = Application.builder().token(args.token).base_url(f"{api}/bot").base_file_url(f"{api}/file/bot")
    builder = builder.updater(None)
    if args.transport == "aiohttp":
        from handlers.telegram_request import AiohttpRequest

        builder = builder.request(AiohttpRequest(connection_pool_size=256))
    if args.concurrent_updates > 0:
        builder = builder.concurrent_updates(args.concurrent_updates)
    application = builder.build()
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))

    async def webhook(request: web.Request) -> web.Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), args.secret.encode()):
            raise web.HTTPForbidden()
        update = Update.de_json(json.loads(await request.read()), application.bot)
        await application.update_queue.put(update)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post(PATH, webhook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with application:
        await application.bot.set_webhook(f"http://127.0.0.1:{args.port}{PATH}", secret_token=args.secret)
        await application.start()
        await stop.wait()
        await application.stop()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--token", required=True, help="bot token")
    parser.add_argument("--api-url", required=True, help="Bot API server root, e.g. the fake's URL")
    parser.add_argument("--port", type=int, required=True, help="port of the webhook server on 127.0.0.1")
    parser.add_argument("--secret", required=True, help="expected X-Telegram-Bot-Api-Secret-Token")
    parser.add_argument(
        "--concurrent-updates", type=int, default=256, help="updates processed at once (0: PTB's default, one)"
    )
    parser.add_argument(
        "--transport", choices=("httpx", "aiohttp"), default="httpx", help="httpx: PTB's default (the baseline)"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
