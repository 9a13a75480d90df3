"""Shared pieces of the public HTML pages (desk landing, rating, tracking, statistics).

Every page works without JavaScript and loads nothing from another site. Forms are plain
``application/x-www-form-urlencoded`` POSTs, read here with a hard size limit; errors become short pages in
the visitor's language with the right status code, never a traceback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from bot.context import Context
from bot.i18n import gettext, normalise_locale
from bot.privacy import lookup_hash
from bot.throttle import client_hash
from handlers.http import CONTEXT
from handlers.web import _session_id, page_locale, render_page

MAX_FORM_BYTES = 16 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"
DEVICE_CHANNEL = "desk-web"  # a namespace of its own: device hashes cannot be joined to citizens


def locale_of(request: web.Request, form: dict[str, str] | None = None) -> str:
    """The language a form was filled in (its hidden ``lang``), else the page's."""
    if form is not None and form.get("lang"):
        return normalise_locale(form["lang"])
    return page_locale(request)


def page(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """A page that is never cached (it may carry a per-device form token) nor framed (click-jacking)."""
    ctx = request.app[CONTEXT]
    locale = context.pop("locale", None) or page_locale(request)
    other = "vi" if locale == "en" else "en"
    response = render_page(
        request,
        template,
        locale=locale,
        province=ctx.province,
        lang_q=lang_query(locale),
        other_lang_url=str(request.rel_url.with_query({**request.query, "lang": other})),
        **context,
    )
    response.set_status(status)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] += "; frame-ancestors 'none'; form-action 'self'"
    return response


def message_page(
    request: web.Request, status: int, kind: str, *, locale: str | None = None, **params: Any
) -> web.Response:
    """A short page for refusals: ``kind`` names its catalog keys ``page.<kind>.title`` and ``.text``."""
    locale = locale or page_locale(request)
    return page(
        request,
        "message.html",
        status=status,
        locale=locale,
        title=gettext(locale, f"page.{kind}.title"),
        text=gettext(locale, f"page.{kind}.text", **params),
    )


def client_address(request: web.Request) -> str:
    """The visitor's address; behind a trusted reverse proxy, the nearest untrusted X-Forwarded-For hop."""
    ctx = request.app[CONTEXT]
    remote = request.remote or ""
    trusted = {part.strip() for part in ctx.settings.trusted_proxies.split(",") if part.strip()}
    if remote not in trusted:
        return remote
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote
        if hop not in trusted:
            return hop
    return remote


def network_hash(request: web.Request) -> str:
    return client_hash(request.app[CONTEXT].keys, client_address(request))


def device_id(request: web.Request) -> str | None:
    """The browser's random id (the web chat's cookie, so one cookie serves both), if it has one."""
    return _session_id(request)


def device_hash(ctx: Context, device: str) -> str:
    return lookup_hash(ctx.keys, DEVICE_CHANNEL, device)


def form_token(ctx: Context, device: str, purpose: str) -> str:
    """Binds a form to the browser's cookie: a cross-site form, or a replay without the cookie, is refused."""
    digest = hmac.new(ctx.keys.session, f"form|{purpose}|{device}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode("ascii").rstrip("=")


def token_ok(ctx: Context, device: str | None, purpose: str, token: str) -> bool:
    return device is not None and hmac.compare_digest(form_token(ctx, device, purpose), token or "")


class FormError(Exception):
    """An unreadable or oversized form; ``status`` and ``kind`` pick the refusal page."""

    def __init__(self, status: int, kind: str) -> None:
        super().__init__(kind)
        self.status = status
        self.kind = kind


async def read_form(request: web.Request, max_bytes: int = MAX_FORM_BYTES) -> dict[str, str]:
    """The form's fields (first value of each), read with a hard size limit whatever the headers claim."""
    if request.content_type != FORM_TYPE:
        raise FormError(415, "bad_request")
    if request.content_length is not None and request.content_length > max_bytes:
        raise FormError(413, "too_large")
    raw = await request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise FormError(413, "too_large")
    try:
        text = raw.decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise FormError(400, "bad_request") from None
    return {name: values[0] for name, values in fields.items() if values}


def lang_query(locale: str) -> str:
    return f"?lang={locale}" if locale != "vi" else ""
