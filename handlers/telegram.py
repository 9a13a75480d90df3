"""The Telegram channel (python-telegram-bot 22): updates in, replies out.

Input half: in polling mode PTB's updater long-polls ``getUpdates``; in webhook mode Telegram POSTs to
``/telegram/webhook`` on our aiohttp server, which checks ``X-Telegram-Bot-Api-Secret-Token`` in constant time
and handles the update before answering, so that the last message of a citizen's reply can ride the answer
(``WebhookReply``). Updates are read from the Bot API's JSON (``handlers.telegram_update``) into a
channel-neutral ``Event`` for the dialog; a repeated ``update_id`` is processed once. Updates are processed
concurrently; the conversation runner serialises those of one chat.

Output half: a reply becomes an HTML message (every piece of user text escaped, split at 4,096 characters)
with an inline keyboard, or a reply keyboard when it asks for the contact or the location. Sends go through
PTB (``do_api_request`` where only the message id is needed) and its ``AIORateLimiter`` (30 messages/s per
bot, 20 per minute per group by default).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import io
import logging
import os
import warnings
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from telegram import (
    BotCommand,
    InputFile,
    Update,
)
from telegram.constants import MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes, TypeHandler
from telegram.warnings import PTBUserWarning

from bot.app import StartupError
from bot.context import Context
from bot.conversation import Conversations
from bot.dialog import Event
from bot.i18n import gettext
from bot.official_desk import DeskReply, OfficialDesk
from bot.officials import CITIZEN_CHANNEL, INVITE_PREFIX
from bot.outbox import RetryLater, Undeliverable
from handlers.telegram_request import AiohttpRequest
from handlers.telegram_update import Incoming, attachment_of, event_from_incoming

log = logging.getLogger(__name__)

# Opt in now to python-telegram-bot's announced behaviour: time periods (RetryAfter.retry_after) as timedelta.
os.environ.setdefault("PTB_TIMEDELTA", "1")
# do_api_request is used on purpose for sends whose result is only a message id: PTB then skips building a
# Message object, which cost as much as the rest of the send. PTB suggests its typed method instead.
warnings.filterwarnings("ignore", message="Please use .Bot\\.", category=PTBUserWarning)

CHANNEL = CITIZEN_CHANNEL
HOTLINE = "hotline"
WEBHOOK_PATH = "/telegram/webhook"
MAX_WEBHOOK_BODY = 1024 * 1024
COMMANDS = ("start", "track", "cancel", "help", "lang")
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]


class TelegramStartupError(StartupError):
    """Telegram could not be reached or refused the token; the message says which."""


def split_text(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Split Telegram HTML at line breaks so each piece fits one message. A single overlong line is cut at its
    last space before the limit (else at the limit), never inside an entity (``&amp;``) or a tag, which Telegram
    would refuse to parse; the formatting we add wraps short labels, never a line that long."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                pieces.append(current)
                current = ""
            cut = _safe_cut(line, limit)
            pieces.append(line[:cut])
            line = line[cut:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current or not pieces:
        pieces.append(current)
    return pieces


def _safe_cut(line: str, limit: int) -> int:
    """Where to cut an overlong line of Telegram HTML: after its last space within the limit if there is one in
    the last quarter, else at the limit; moved back out of an entity or a tag it would split."""
    space = line.rfind(" ", limit * 3 // 4, limit)
    cut = space + 1 if space >= 0 else limit
    for opening, closing in (("&", ";"), ("<", ">")):
        start = line.rfind(opening, 0, cut)
        if start > 0 and line.rfind(closing, start, cut) < 0:
            cut = start
    return cut


def reply_markup(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The Bot API ``reply_markup`` of a rendered reply: an inline keyboard, or a one-time reply keyboard when it
    asks for the contact or the location. Plain Bot API JSON: building PTB's keyboard objects for every message
    cost more than the rest of the send."""
    rows = payload.get("buttons") or []
    for kind in ("request_contact", "request_location"):
        if payload.get(kind):
            keys: list[list[dict[str, Any]]] = [[{"text": payload[kind], kind: True}]]
            keys += [[{"text": button["label"]} for button in row] for row in rows]
            return {"keyboard": keys, "resize_keyboard": True, "one_time_keyboard": True}
    if not rows:
        return None
    return {"inline_keyboard": [[{"text": b["label"], "callback_data": b["payload"]} for b in row] for row in rows]}


def message_calls(chat_id: int, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``sendMessage`` parameters for a rendered reply: one message per 4,096-character piece, the keyboard on
    the last one."""
    pieces = split_text(payload["text"])
    markup = reply_markup(payload)
    calls = []
    for index, piece in enumerate(pieces):
        params: dict[str, Any] = {"chat_id": chat_id, "text": piece, "parse_mode": ParseMode.HTML.value}
        if markup is not None and index == len(pieces) - 1:
            params["reply_markup"] = markup
        calls.append(params)
    return calls


class WebhookReply:
    """The one Bot API call an update may be answered with in the webhook's HTTP response.

    Telegram performs a method named in the response to its POST ("reply to the webhook"), so the last message
    of a citizen's answer costs no request of ours; its result cannot be known, so only messages whose loss a
    retry would not mend anyway (dialog steps, never the outbox's receipts) go this way.
    """

    def __init__(self) -> None:
        self.call: dict[str, Any] | None = None

    def hold(self, chat_id: int, payload: dict[str, Any]) -> bool:
        """Keep ``payload`` for the response if it is one plain message and nothing is held yet."""
        if self.call is not None or payload.get("attachments") or payload.get("documents"):
            return False
        calls = message_calls(chat_id, payload)
        if len(calls) != 1:
            return False
        self.call = {"method": "sendMessage", **calls[0]}
        return True


class TelegramSender:
    """Sends rendered payloads to one chat; maps Telegram's errors onto the outbox's retry rules.

    Outbox messages to one chat are kept to about one per second (Telegram's per-chat limit) by a token
    bucket that allows a short burst (an official's answer with its attachments, say); a message due too soon
    is handed back to the outbox with ``retry_after``, so other chats are not held up.
    """

    PER_CHAT_RATE = 1.0
    PER_CHAT_BURST = 3.0

    def __init__(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        self.application = application
        self._buckets: dict[int, tuple[float, float]] = {}

    def _take_token(self, chat_id: int) -> float:
        """Seconds to wait before this chat may receive another message (0: take a token now)."""
        now = asyncio.get_running_loop().time()
        tokens, since = self._buckets.get(chat_id, (self.PER_CHAT_BURST, now))
        tokens = min(self.PER_CHAT_BURST, tokens + (now - since) * self.PER_CHAT_RATE)
        if tokens < 1:
            self._buckets[chat_id] = (tokens, now)
            return (1 - tokens) / self.PER_CHAT_RATE
        self._buckets[chat_id] = (tokens - 1, now)
        return 0.0

    async def send(self, chat_id: str, payload: dict[str, Any]) -> int | None:
        target = int(chat_id)
        wait = self._take_token(target)
        if wait > 0:
            raise RetryLater("about one message per second per chat", retry_after=wait)
        try:
            if payload.get("edit_message_id"):
                return await self._edit(target, payload)
            messages = await self.send_now(target, payload)
            await self._send_files(target, payload)
        except RetryAfter as exc:
            retry_after = exc.retry_after
            seconds = retry_after.total_seconds() if hasattr(retry_after, "total_seconds") else float(retry_after)
            raise RetryLater("rate limited by Telegram", retry_after=seconds) from exc
        except (Forbidden, BadRequest) as exc:
            raise Undeliverable(exc.message) from exc
        except NetworkError as exc:
            raise RetryLater(str(exc)) from exc
        return messages[0] if messages else None

    async def _edit(self, chat_id: int, payload: dict[str, Any]) -> int | None:
        params = message_calls(chat_id, payload)[0]
        params["message_id"] = int(payload["edit_message_id"])
        if "inline_keyboard" not in params.get("reply_markup", {}):  # only an inline keyboard can be edited in
            params.pop("reply_markup", None)
        try:
            await self.application.bot.do_api_request("editMessageText", api_kwargs=params)
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                raise
        return int(payload["edit_message_id"])

    async def _send_files(self, chat_id: int, payload: dict[str, Any]) -> None:
        """Attachments are re-sent by Telegram file id; generated files (digests) are uploaded."""
        bot = self.application.bot
        for attachment in payload.get("attachments") or []:
            file_id = attachment.get("file_id")
            if not file_id:
                continue
            caption = (attachment.get("caption") or "")[:1024] or None
            kind = attachment.get("kind")
            if kind == "photo":
                await bot.send_photo(chat_id, file_id, caption=caption)
            elif kind == "voice":
                await bot.send_voice(chat_id, file_id, caption=caption)
            elif kind == "video":
                await bot.send_video(chat_id, file_id, caption=caption)
            elif kind == "audio":
                await bot.send_audio(chat_id, file_id, caption=caption)
            else:
                await bot.send_document(chat_id, file_id, caption=caption)
        for document in payload.get("documents") or []:
            data = base64.b64decode(document["data_b64"])
            await bot.send_document(
                chat_id, InputFile(io.BytesIO(data), filename=document["filename"]), caption=document.get("caption")
            )

    async def send_now(self, chat_id: int, payload: dict[str, Any]) -> list[int]:
        """Send a rendered reply now; the ids of the messages sent. The returned ``Message`` is not parsed into
        PTB's objects (``do_api_request`` without a return type): only its id is used."""
        bot = self.application.bot
        sent = []
        for params in message_calls(chat_id, payload):
            message = await bot.do_api_request("sendMessage", api_kwargs=params)
            sent.append(int(message["message_id"]))
        return sent


class TelegramChannel:
    """Builds the PTB application for our token and API server, and connects it to the conversations."""

    def __init__(self, ctx: Context, conversations: Conversations) -> None:
        self.ctx = ctx
        self.conversations = conversations
        settings = ctx.settings
        api = settings.telegram_api_url.rstrip("/")
        self.requests = (
            AiohttpRequest(connection_pool_size=256),
            AiohttpRequest(connection_pool_size=2, read_timeout=40.0),
        )
        builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = (
            ApplicationBuilder()
            .token(settings.telegram_token)
            .base_url(f"{api}/bot")
            .base_file_url(f"{api}/file/bot")
            .request(self.requests[0])
            .get_updates_request(self.requests[1])
            .concurrent_updates(256)
        )
        if settings.telegram_max_rate > 0:
            builder = builder.rate_limiter(AIORateLimiter(overall_max_rate=settings.telegram_max_rate))
        if settings.telegram_mode == "webhook":
            builder = builder.updater(None)
        self.application = builder.build()
        self.application.add_handler(TypeHandler(Update, self._on_update))
        self.application.add_error_handler(self._on_error)
        self.sender = TelegramSender(self.application)
        self.desk = OfficialDesk(ctx)
        self._answering: set[asyncio.Future[None]] = set()  # button presses being answered in the background

    # ----------------------------------------------------------------- lifecycle

    def setup(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self.webhook)

    async def start(self) -> None:
        settings = self.ctx.settings
        try:
            await self.application.initialize()
        except (InvalidToken, NetworkError) as exc:
            for request in self.requests:  # PTB leaves them open when initialize() fails
                await request.shutdown()
            if isinstance(exc, InvalidToken):
                raise TelegramStartupError("Telegram refused PAKN_TELEGRAM_TOKEN (invalid token)") from None
            raise TelegramStartupError(f"cannot reach the Bot API at {settings.telegram_api_url}: {exc}") from None
        await self._register_commands()
        await self.application.start()
        if settings.telegram_mode == "webhook":
            url = f"{settings.public_url.rstrip('/')}{WEBHOOK_PATH}"
            await self.application.bot.set_webhook(
                url, secret_token=settings.telegram_webhook_secret or None, allowed_updates=ALLOWED_UPDATES
            )
            log.info("Telegram webhook registered at %s", url)
        else:
            assert self.application.updater is not None
            await self.application.bot.delete_webhook()
            await self.application.updater.start_polling(allowed_updates=ALLOWED_UPDATES, timeout=30)
            log.info("Telegram polling %s", settings.telegram_api_url)

    async def stop_receiving(self) -> None:
        """No more updates (polling stops); those being handled are finished, button presses answered. The bot can
        still send (the outbox's last sends go through it) until :meth:`shutdown`."""
        if self.application.updater is not None and self.application.updater.running:
            await self.application.updater.stop()
        if self.application.running:
            await self.application.stop()
        if self._answering:  # no new ones now; a spinner left turning would only time out, but let them go out
            await asyncio.wait(self._answering, timeout=5)

    async def shutdown(self) -> None:
        await self.application.shutdown()

    async def stop(self) -> None:
        await self.stop_receiving()
        await self.shutdown()

    async def _register_commands(self) -> None:
        """setMyCommands per language; a failure is logged, not fatal."""
        bot = self.application.bot
        for language in ("vi", "en"):
            commands = [BotCommand(name, gettext(language, f"command.{name}")) for name in COMMANDS]
            try:
                await bot.set_my_commands(commands, language_code=None if language == "vi" else language)
            except TelegramError as exc:
                log.warning("setMyCommands (%s) failed: %s", language, exc)

    # ----------------------------------------------------------------- input half

    async def webhook(self, request: web.Request) -> web.Response:
        expected = self.ctx.settings.telegram_webhook_secret
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise web.HTTPForbidden(text="wrong secret token")
        if request.content_length is not None and request.content_length > MAX_WEBHOOK_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_WEBHOOK_BODY, actual_size=request.content_length)
        raw = await request.content.read(MAX_WEBHOOK_BODY + 1)
        if len(raw) > MAX_WEBHOOK_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_WEBHOOK_BODY, actual_size=len(raw))
        try:
            incoming = Incoming.from_json(orjson.loads(raw))
        except ValueError:  # orjson's JSONDecodeError, bad UTF-8 included
            raise web.HTTPBadRequest(text="malformed update") from None
        # Handled here rather than through PTB's update queue, so that the answer can ride the response.
        reply = WebhookReply()
        try:
            await self._route(incoming, reply)
        except Exception as error:  # what PTB's application does with a handler's error
            await self._report_error(incoming, error)
        if reply.call is not None:
            return web.Response(body=orjson.dumps(reply.call), content_type="application/json")
        return web.Response(text="ok")

    async def _on_update(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """PTB's handler, for updates fetched by polling: back to the Bot API's JSON, as a webhook gets them."""
        await self._route(Incoming.from_json(update.to_dict()), None)

    async def _route(self, incoming: Incoming, webhook_reply: WebhookReply | None) -> None:
        """Route an update: officials' buttons and commands, a hotline call being recorded, or a citizen."""
        chat_id, user_id = incoming.chat_id, incoming.user_id
        if chat_id is None or user_id is None:
            return
        if incoming.edited:
            await self._say(chat_id, "telegram.edited_ignored", incoming)
            return
        private = incoming.private
        button = incoming.callback_id is not None
        if button and incoming.callback_data:
            reply = await self.desk.press(user_id, incoming.callback_data)
            if reply is not None:
                await self._answer_callback(incoming, reply.toast)
                await self._deliver(reply, chat_id, user_id)
                return
        text = incoming.text
        command: str | None = None
        args = ""
        if text and text.startswith("/"):
            command, _, args = text[1:].partition(" ")
            command, args = command.split("@", 1)[0].lower(), args.strip()
            if private and command == "start" and args.startswith(INVITE_PREFIX):
                reply = await self.desk.start_invite(user_id, incoming.user_name, incoming.language, args)
                await self._deliver(reply, chat_id, user_id)
                return
            if not private:
                reply = await self.desk.command(
                    user_id, command, args, chat_id=chat_id, private=False, chat_title=incoming.chat_title
                )
                if reply is not None:
                    await self._deliver(reply, chat_id, user_id)
                return
        if not private:
            return
        # Whether the sender is an official is asked by the citizen's conversation, in its own transaction (for a
        # chat this process wrote last, not even that: becoming an official deletes the chat's citizen state).
        # What follows it runs for active officials only.
        if await self._citizen(
            incoming, channel=CHANNEL, chat_key=str(chat_id), webhook_reply=webhook_reply, unless_official=user_id
        ):
            return
        if command is not None:
            if await self._hotline_command(incoming, command):
                return
            reply = await self.desk.command(
                user_id, command, args, chat_id=chat_id, private=True, chat_title=incoming.chat_title
            )
            if reply is not None:
                await self._deliver(reply, chat_id, user_id)
                return
        operator = await self.desk.hotline_active(user_id)
        if operator is not None:
            await self._citizen(
                incoming,
                channel=HOTLINE,
                chat_key=f"op{operator.id}",
                operator_id=operator.id,
                answer_button=False,  # the official's own button: answered by the first _citizen above
            )
            return
        if button:
            return
        attachment = attachment_of(incoming.message) if incoming.message is not None else None
        reply = await self.desk.message(user_id, text or "", attachment)
        if reply is not None:
            await self._deliver(reply, chat_id, user_id)

    async def _hotline_command(self, incoming: Incoming, command: str) -> bool:
        """``/new`` starts recording a call for an operator (the caller's conversation, from its start); ``/done``
        (or /cancel) ends it (the conversation cancelled, the operator told)."""
        user_id = incoming.user_id
        assert user_id is not None
        starting = command == "new"
        if not starting and command not in ("done", "cancel"):
            return False
        operator = await (self.desk.operator(user_id) if starting else self.desk.hotline_active(user_id))
        if operator is None:
            return False
        await self.desk.set_hotline(user_id, starting)
        await self._citizen(
            incoming,
            channel=HOTLINE,
            chat_key=f"op{operator.id}",
            operator_id=operator.id,
            event=Event(kind="command", command="start" if starting else "cancel"),
        )
        if not starting:
            await self.sender.send_now(user_id, {"text": gettext(operator.locale, "hotline.ended"), "buttons": []})
        return True

    async def _citizen(
        self,
        incoming: Incoming,
        *,
        channel: str,
        chat_key: str,
        operator_id: int | None = None,
        event: Event | None = None,
        webhook_reply: WebhookReply | None = None,
        unless_official: int | None = None,
        answer_button: bool = True,
    ) -> bool:
        """Run the update through the citizen's conversation; False (nothing done) when ``unless_official`` is
        the id of an active official."""
        event = event or event_from_incoming(incoming)
        chat_id = incoming.chat_id
        if event is None or chat_id is None:
            return True
        # The button press is answered (its spinner stopped) in the background, while the update is handled and
        # after: neither the reply nor the webhook's response waits for that Bot API round trip.
        if incoming.callback_id is not None and answer_button:
            answering = asyncio.ensure_future(self._answer_callback(incoming, None))
            self._answering.add(answering)
            answering.add_done_callback(self._answered)
        rendered = await self.conversations.handle(
            channel,
            chat_key,
            event,
            update_id=incoming.update_id,
            operator_id=operator_id,
            unless_official=unless_official,
        )
        if rendered.official:
            return False
        payloads = rendered.replies
        if operator_id is not None:  # the operator types the caller's number; no share-contact key
            payloads = [{**payload, "request_contact": None, "request_location": None} for payload in payloads]
        if payloads and webhook_reply is not None and webhook_reply.hold(chat_id, payloads[-1]):
            payloads = payloads[:-1]  # sent first: the held message answers the webhook, after them
        for payload in payloads:
            await self.sender.send_now(chat_id, payload)
        return True

    async def _deliver(self, reply: DeskReply, chat_id: int, user_id: int) -> None:
        for payload in reply.here:
            await self.sender.send_now(chat_id, payload)
        for payload in reply.private:
            try:
                await self.sender.send_now(user_id, payload)
            except Forbidden:
                log.info("an official has not opened a private chat with the bot")

    async def _answer_callback(self, incoming: Incoming, text: str | None) -> None:
        """Stop a button's spinner (with a toast when ``text``); never raises a Telegram error."""
        assert incoming.callback_id is not None
        try:
            await self.application.bot.answer_callback_query(incoming.callback_id, text)
        except TelegramError as exc:
            log.debug("answerCallbackQuery failed: %s", exc)

    def _answered(self, answering: asyncio.Future[None]) -> None:
        self._answering.discard(answering)
        if not answering.cancelled() and answering.exception() is not None:
            log.warning("answering a button press failed", exc_info=answering.exception())

    async def _say(self, chat_id: int, key: str, incoming: Incoming) -> None:
        """A notice outside the dialog, in the language the chat's dialog speaks; its keyboard is left as it is
        (the phone or location key of the step the citizen is at)."""
        locale = incoming.language
        if incoming.private:
            with contextlib.suppress(SQLAlchemyError, OSError):  # after a database failure: the app's language
                locale = await self.conversations.chat_locale(CHANNEL, str(chat_id), incoming.language)
        await self.application.bot.send_message(chat_id, gettext(locale, key))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        incoming = Incoming.from_json(update.to_dict()) if isinstance(update, Update) else None
        await self._report_error(incoming, context.error)

    async def _report_error(self, incoming: Incoming | None, error: BaseException | None) -> None:
        """Log the failure with its traceback; the user gets a one-line apology, never the traceback."""
        log.error("error while handling a Telegram update", exc_info=error)
        if incoming is not None and incoming.chat_id is not None:
            with contextlib.suppress(TelegramError):
                await self._say(incoming.chat_id, "error.generic", incoming)
