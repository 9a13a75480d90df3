"""The Telegram channel (python-telegram-bot 22): updates in, replies out.

Input half: in polling mode PTB's updater long-polls ``getUpdates``; in webhook mode Telegram POSTs to
``/telegram/webhook`` on our aiohttp server, which checks ``X-Telegram-Bot-Api-Secret-Token`` in constant time
and hands the update to PTB's queue. Each update becomes a channel-neutral ``Event`` for the dialog; a
repeated ``update_id`` is processed once. Updates are processed concurrently; the conversation runner
serialises those of one chat.

Output half: a reply becomes an HTML message (every piece of user text escaped, split at 4,096 characters)
with an inline keyboard, or a reply keyboard when it asks for the contact or the location. Sends go through
PTB's ``AIORateLimiter`` (30 messages/s per bot, 20 per minute per group by default).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from typing import Any

from aiohttp import web
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes, TypeHandler

from bot.app import StartupError
from bot.context import Context
from bot.conversation import Conversations
from bot.dialog import Event
from bot.i18n import gettext
from bot.outbox import RetryLater, Undeliverable
from handlers.telegram_request import AiohttpRequest

log = logging.getLogger(__name__)

CHANNEL = "telegram"
WEBHOOK_PATH = "/telegram/webhook"
MAX_WEBHOOK_BODY = 1024 * 1024
COMMANDS = ("start", "track", "cancel", "help", "lang")
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]


class TelegramStartupError(StartupError):
    """Telegram could not be reached or refused the token; the message says which."""


def split_text(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Split at line breaks so each piece fits one message; a single overlong line is cut hard."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current or not pieces:
        pieces.append(current)
    return pieces


def reply_markup(payload: dict[str, Any]) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | None:
    request = payload.get("request_contact") or payload.get("request_location")
    if request:
        keys = [
            [
                KeyboardButton(
                    request,
                    request_contact=bool(payload.get("request_contact")),
                    request_location=bool(payload.get("request_location")),
                )
            ]
        ]
        keys += [[KeyboardButton(button["label"]) for button in row] for row in payload.get("buttons", [])]
        return ReplyKeyboardMarkup(keys, resize_keyboard=True, one_time_keyboard=True)
    rows = payload.get("buttons") or []
    if not rows:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(button["label"], callback_data=button["payload"]) for button in row] for row in rows]
    )


class TelegramSender:
    """Sends rendered replies to one chat; maps Telegram's errors onto the outbox's retry rules."""

    def __init__(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        self.application = application

    async def send(self, chat_id: str, payload: dict[str, Any]) -> None:
        try:
            await self.send_now(int(chat_id), payload)
        except RetryAfter as exc:
            retry_after = exc.retry_after
            seconds = retry_after.total_seconds() if hasattr(retry_after, "total_seconds") else float(retry_after)
            raise RetryLater("rate limited by Telegram", retry_after=seconds) from exc
        except Forbidden as exc:
            raise Undeliverable(exc.message) from exc
        except BadRequest as exc:
            raise Undeliverable(exc.message) from exc
        except NetworkError as exc:
            raise RetryLater(str(exc)) from exc

    async def send_now(self, chat_id: int, payload: dict[str, Any]) -> list[Message]:
        bot = self.application.bot
        pieces = split_text(payload["text"])
        markup = reply_markup(payload)
        sent = []
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            sent.append(
                await bot.send_message(chat_id, piece, parse_mode=ParseMode.HTML, reply_markup=markup if last else None)
            )
        return sent


def event_from_update(update: Update) -> Event | None:
    """The channel-neutral event for a private-chat update, or None when there is nothing to handle."""
    user = update.effective_user
    language = user.language_code if user else None
    query = update.callback_query
    if query is not None:
        return Event(kind="button", payload=query.data or "", language=language)
    message = update.message
    if message is None:
        return None
    if message.contact is not None:
        contact = message.contact
        return Event(
            kind="contact",
            phone=contact.phone_number,
            first_name=contact.first_name or "",
            last_name=contact.last_name or "",
            contact_is_own=user is not None and contact.user_id == user.id,
            language=language,
        )
    if message.location is not None:
        return Event(
            kind="location", latitude=message.location.latitude, longitude=message.location.longitude, language=language
        )
    attachment = _attachment(message)
    if attachment is not None:
        return Event(kind="attachment", attachment=attachment, language=language)
    text = message.text
    if text is None:
        return Event(kind="other", language=language)
    if text.startswith("/"):
        head, _, args = text[1:].partition(" ")
        return Event(kind="command", command=head.split("@", 1)[0].lower(), args=args.strip(), language=language)
    return Event(kind="text", text=text, language=language)


def _attachment(message: Message) -> dict[str, Any] | None:
    """What we keep of a file: Telegram's file id and its metadata (the file stays on Telegram's servers)."""
    caption = message.caption or ""
    if message.photo:
        photo = message.photo[-1]
        return {
            "kind": "photo",
            "file_id": photo.file_id,
            "file_unique_id": photo.file_unique_id,
            "width": photo.width,
            "height": photo.height,
            "size": photo.file_size,
            "caption": caption,
        }
    for kind in ("document", "voice", "video", "audio", "video_note"):
        media = getattr(message, kind)
        if media is not None:
            return {
                "kind": kind,
                "file_id": media.file_id,
                "file_unique_id": media.file_unique_id,
                "mime_type": getattr(media, "mime_type", None),
                "size": media.file_size,
                "name": getattr(media, "file_name", None),
                "duration": getattr(media, "duration", None),
                "caption": caption,
            }
    return None


class TelegramChannel:
    """Builds the PTB application for our token and API server, and connects it to the conversations."""

    def __init__(self, ctx: Context, conversations: Conversations) -> None:
        self.ctx = ctx
        self.conversations = conversations
        settings = ctx.settings
        api = settings.telegram_api_url.rstrip("/")
        builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = (
            ApplicationBuilder()
            .token(settings.telegram_token)
            .base_url(f"{api}/bot")
            .base_file_url(f"{api}/file/bot")
            .request(AiohttpRequest(connection_pool_size=256))
            .get_updates_request(AiohttpRequest(connection_pool_size=2, read_timeout=40.0))
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

    # ----------------------------------------------------------------- lifecycle

    def setup(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self.webhook)

    async def start(self) -> None:
        settings = self.ctx.settings
        try:
            await self.application.initialize()
        except InvalidToken:
            raise TelegramStartupError("Telegram refused PAKN_TELEGRAM_TOKEN (invalid token)") from None
        except NetworkError as exc:
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

    async def stop(self) -> None:
        if self.application.updater is not None and self.application.updater.running:
            await self.application.updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

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
            data = json.loads(raw)
            update = Update.de_json(data, self.application.bot)
        except (UnicodeDecodeError, ValueError, TypeError, KeyError):
            raise web.HTTPBadRequest(text="malformed update") from None
        if update is None:
            raise web.HTTPBadRequest(text="malformed update")
        await self.application.update_queue.put(update)
        return web.Response(text="ok")

    async def _on_update(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        if chat is None:
            return
        if update.edited_message is not None:
            await self._say(chat.id, "telegram.edited_ignored", update)
            return
        if chat.type != chat.PRIVATE:
            message = update.message
            if message is not None and message.text and message.text.startswith("/"):
                await self._say(chat.id, "telegram.private_only", update)
            return
        event = event_from_update(update)
        if event is None:
            return
        if update.callback_query is not None:
            await self._answer_callback(update)
        rendered = await self.conversations.handle(CHANNEL, str(chat.id), event, update_id=update.update_id)
        for payload in rendered.replies:
            await self.sender.send_now(chat.id, payload)

    async def _answer_callback(self, update: Update) -> None:
        query = update.callback_query
        assert query is not None
        try:
            await query.answer()
        except TelegramError as exc:
            log.debug("answerCallbackQuery failed: %s", exc)

    async def _say(self, chat_id: int, key: str, update: Update) -> None:
        user = update.effective_user
        text = gettext(user.language_code if user else None, key)
        await self.application.bot.send_message(chat_id, text, reply_markup=ReplyKeyboardRemove())

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("error while handling a Telegram update", exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None:
            with contextlib.suppress(TelegramError):
                await self._say(update.effective_chat.id, "error.generic", update)
