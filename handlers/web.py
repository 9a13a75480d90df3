"""The web chat: the citizen's dialog in a browser, at ``/chat``.

For people without Telegram, and the way a newcomer tries the service with no bot token. The page is one
HTML file, a small script and a style sheet, all served from here (it must work inside a government network
with no internet). The browser keeps an HttpOnly, SameSite session cookie holding a random session id,
which is the "chat id" of the web channel; every action is a JSON POST, so a cross-site form cannot forge
one.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from sqlalchemy import select

from bot.context import Context
from bot.dialog import MAX_PAYLOAD_BYTES, Event
from bot.i18n import gettext, normalise_locale
from bot.outbox import take_for_web
from bot.privacy import lookup_hash
from bot.receipts import example_code
from handlers.http import CONTEXT, CONVERSATIONS
from models.tables import Citizen

CHANNEL = "web"
COOKIE = "pakn_chat"
MAX_BODY = 64 * 1024
MAX_TEXT = 8000
EVENT_KINDS = {"text", "button", "command", "location"}
HERE = Path(__file__).parent

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


def page_locale(request: web.Request) -> str:
    """``?lang=``, else the browser's first language if we have it, else Vietnamese."""
    wanted = request.query.get("lang") or request.headers.get("Accept-Language", "vi")[:2]
    return normalise_locale(wanted.lower())


def render_page(request: web.Request, name: str, **context: Any) -> web.Response:
    locale = context.pop("locale", None) or page_locale(request)
    html = templates.get_template(name).render(
        locale=locale, _=lambda key, **params: gettext(locale, key, **params), **context
    )
    return web.Response(
        text=html,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def _session_id(request: web.Request) -> str | None:
    value = request.cookies.get(COOKIE, "")
    return value if 20 <= len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum() else None


def _set_cookie(request: web.Request, response: web.StreamResponse, session_id: str) -> None:
    ctx = request.app[CONTEXT]
    response.set_cookie(
        COOKIE,
        session_id,
        httponly=True,
        samesite="Lax",
        path="/",
        secure=ctx.settings.public_url.startswith("https://"),
        max_age=60 * 60 * 24 * 180,
    )


async def chat_page(request: web.Request) -> web.Response:
    desk = request.query.get("desk", "")
    if len(desk) > 64:
        desk = ""
    response = render_page(
        request, "chat.html", desk=desk, example=example_code(request.app[CONTEXT].province.receipt_prefix)
    )
    if _session_id(request) is None:
        _set_cookie(request, response, secrets.token_urlsafe(24))
    return response


def _parse_event(body: Any, locale: str) -> Event:
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    kind = body.get("kind")
    if kind not in EVENT_KINDS:
        raise web.HTTPBadRequest(text="unknown event kind")
    text = body.get("text", "")
    payload = body.get("payload", "")
    if not isinstance(text, str) or not isinstance(payload, str) or len(text) > MAX_TEXT:
        raise web.HTTPBadRequest(text="bad text or payload")
    if len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise web.HTTPBadRequest(text="payload too long")
    if kind == "command":  # an unknown one is the dialog's to answer ("no such command"), as on Telegram
        command, args = body.get("command", ""), body.get("args", "")
        if not isinstance(command, str) or not isinstance(args, str) or len(command) > MAX_TEXT or len(args) > MAX_TEXT:
            raise web.HTTPBadRequest(text="bad command")
        name = command.split("@", 1)[0].lower()[:64]  # "/start@bot" as Telegram writes it; a long word is no command
        return Event(kind="command", command=name, args=args, language=locale, files=False)
    if kind == "location":
        try:
            latitude, longitude = float(body["latitude"]), float(body["longitude"])
        except (KeyError, TypeError, ValueError):
            raise web.HTTPBadRequest(text="bad location") from None
        return Event(kind="location", latitude=latitude, longitude=longitude, language=locale, files=False)
    return Event(kind=kind, text=text, payload=payload, language=locale, files=False)


async def _pending(ctx: Context, session_id: str) -> list[dict[str, Any]]:
    async with ctx.sessions.begin() as session:
        key = lookup_hash(ctx.keys, CHANNEL, session_id)
        citizen_id = await session.scalar(select(Citizen.id).where(Citizen.lookup_hash == key))
        if citizen_id is None:
            return []
        return await take_for_web(ctx, session, citizen_id)


async def chat_event(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    conversations = request.app[CONVERSATIONS]
    session_id = _session_id(request)
    if session_id is None:
        raise web.HTTPForbidden(text="no chat session: open /chat first")
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send application/json")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(raw))
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise web.HTTPBadRequest(text="malformed JSON") from None
    language = body.get("language") if isinstance(body, dict) else None
    event = _parse_event(body, normalise_locale(language) if isinstance(language, str) else page_locale(request))
    rendered = await conversations.handle(CHANNEL, session_id, event)
    replies = rendered.replies + await _pending(ctx, session_id)
    return web.json_response({"locale": rendered.locale, "replies": replies})


async def chat_poll(request: web.Request) -> web.Response:
    """Messages that arrived since the last request (an official's answer, a receipt)."""
    session_id = _session_id(request)
    if session_id is None:
        raise web.HTTPForbidden(text="no chat session")
    return web.json_response({"replies": await _pending(request.app[CONTEXT], session_id)})


def setup(app: web.Application) -> None:
    app.router.add_get("/chat", chat_page)
    app.router.add_post("/chat/api/event", chat_event)
    app.router.add_get("/chat/api/poll", chat_poll)
    app.router.add_static("/static/", HERE / "static", append_version=True)
