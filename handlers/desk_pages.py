"""The page a desk's QR code opens, ``/d/{payload}``, and its forms: rate the desk, comment, report its staff.

Mobile-first, Vietnamese or English, no JavaScript needed and nothing fetched from another site. Each form
is a plain POST answered with a redirect (POST/redirect/GET), so reloading a thank-you page never rates
twice. A forged, truncated or disabled payload gets the same polite 404 page on every route.

Routes::

    GET  /d/{payload}              landing: the desk, three faces, chat links, report link, track box
    POST /d/{payload}/rate         score=1|2|3 [comment] t=<form token>   → 303 /d/{payload}/thanks
    GET  /d/{payload}/thanks       thank-you page, comment box
    POST /d/{payload}/comment      comment, t                             → 303 /d/{payload}/thanks?saved=1
    GET  /d/{payload}/report       report a problem with the desk's staff (anonymous)
    POST /d/{payload}/report       description, t                         → 303 /d/{payload}/report?done=CODE
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot.context import Context
from bot.desks import desk_from_payload, report_desk_staff
from bot.errors import DomainError
from bot.i18n import gettext
from bot.ratings import RatingStatus, comment_on_rating, rate_desk, todays_score
from bot.receipts import example_code, normalise_receipt_code
from bot.routing import supervisor_of
from bot.throttle import Limit, hit
from handlers.http import CONTEXT
from handlers.pages import (
    FormError,
    device_hash,
    device_id,
    form_token,
    lang_query,
    locale_of,
    message_page,
    network_hash,
    page,
    read_form,
    token_ok,
)
from handlers.web import _set_cookie
from models.tables import Desk
from qr.codes import telegram_url

REPORT_NETWORK_LIMIT = Limit(10, timedelta(hours=1))
REPORT_DEVICE_LIMIT = Limit(5, timedelta(hours=1))
_PURPOSE = "desk"


async def _desk(request: web.Request) -> Desk | None:
    ctx = request.app[CONTEXT]
    async with ctx.sessions() as session:
        return await desk_from_payload(ctx, session, request.match_info["payload"])


def _not_found(request: web.Request, locale: str | None = None) -> web.Response:
    return message_page(request, 404, "not_found", locale=locale)


def _unit_name(ctx: Context, desk: Desk, locale: str) -> str:
    unit = ctx.province.units.get(desk.unit_code)
    return unit.name(locale) if unit else desk.unit_code


def _ensure_device(request: web.Request, response: web.StreamResponse, device: str | None) -> None:
    if device is None or device != device_id(request):
        _set_cookie(request, response, device or secrets.token_urlsafe(24))


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


async def landing(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    desk = await _desk(request)
    if desk is None:
        return _not_found(request)
    payload = request.match_info["payload"]
    device = device_id(request) or secrets.token_urlsafe(24)
    locale = locale_of(request)
    username = ctx.settings.telegram_bot_username
    response = page(
        request,
        "desk_landing.html",
        locale=locale,
        desk=desk,
        payload=payload,
        unit_name=_unit_name(ctx, desk, locale),
        token=form_token(ctx, device, _PURPOSE),
        telegram_url=telegram_url(username, payload) if username else "",
        zalo_url=ctx.settings.zalo_url,
        example_code=example_code(ctx.province.receipt_prefix),
    )
    _ensure_device(request, response, device)
    return response


async def _checked_form(request: web.Request) -> tuple[Desk, dict[str, str], str, str] | web.Response:
    """The desk, the form, its language and the device, or the refusal page to send instead."""
    ctx = request.app[CONTEXT]
    desk = await _desk(request)
    if desk is None:
        return _not_found(request)
    try:
        form = await read_form(request)
    except FormError as exc:
        return message_page(request, exc.status, exc.kind)
    locale = locale_of(request, form)
    device = device_id(request)
    if device is None or not token_ok(ctx, device, _PURPOSE, form.get("t", "")):
        return message_page(request, 403, "expired", locale=locale)
    return desk, form, locale, device


def _score(value: str) -> int | None:
    return int(value) if value in ("1", "2", "3") else None


async def rate(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    checked = await _checked_form(request)
    if isinstance(checked, web.Response):
        return checked
    _desk, form, locale, device = checked
    score = _score(form.get("score", ""))
    if score is None:
        return message_page(request, 400, "bad_request", locale=locale)
    try:
        async with ctx.sessions.begin() as session:
            current = await desk_from_payload(ctx, session, request.match_info["payload"])
            if current is None:
                return _not_found(request, locale)
            result = await rate_desk(
                ctx,
                session,
                current,
                score=score,
                device=device_hash(ctx, device),
                network=network_hash(request),
                comment=form.get("comment", ""),
            )
    except DomainError:
        return message_page(request, 400, "bad_request", locale=locale)
    payload = request.match_info["payload"]
    query = {"lang": locale} if locale != "vi" else {}
    query["r"] = result.status.value
    return _redirect(f"/d/{payload}/thanks?" + "&".join(f"{k}={quote(v)}" for k, v in query.items()))


async def thanks(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    desk = await _desk(request)
    if desk is None:
        return _not_found(request)
    locale = locale_of(request)
    device = device_id(request)
    score = None
    if device is not None:
        async with ctx.sessions() as session:
            score = await todays_score(ctx, session, desk.code, device_hash(ctx, device))
    outcome = request.query.get("r", "")
    if outcome not in {status.value for status in RatingStatus}:
        outcome = ""
    return page(
        request,
        "desk_thanks.html",
        locale=locale,
        desk=desk,
        payload=request.match_info["payload"],
        unit_name=_unit_name(ctx, desk, locale),
        score=score,
        score_label=gettext(locale, f"desk.score.{score}") if score else "",
        outcome=outcome,
        saved=request.query.get("saved") == "1",
        error=gettext(locale, "desk.error.no_rating") if request.query.get("err") == "no_rating" else "",
        token=form_token(ctx, device, _PURPOSE) if device else "",
    )


async def comment(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    checked = await _checked_form(request)
    if isinstance(checked, web.Response):
        return checked
    desk, form, locale, device = checked
    payload = request.match_info["payload"]
    base = f"/d/{payload}/thanks{lang_query(locale)}"
    joiner = "&" if "?" in base else "?"
    try:
        async with ctx.sessions.begin() as session:
            saved = await comment_on_rating(
                ctx, session, desk, device=device_hash(ctx, device), comment=form.get("comment", "")
            )
    except DomainError:
        return _redirect(base)
    return _redirect(f"{base}{joiner}saved=1" if saved else f"{base}{joiner}err=no_rating")


def _report_page(
    request: web.Request, desk: Desk, locale: str, device: str, *, status: int = 200, **extra: Any
) -> web.Response:
    ctx = request.app[CONTEXT]
    supervisor = ctx.province.units.get(supervisor_of(ctx.province, desk.unit_code))
    context: dict[str, Any] = {"receipt": "", "error": "", "description": "", **extra}
    return page(
        request,
        "desk_report.html",
        status=status,
        locale=locale,
        desk=desk,
        payload=request.match_info["payload"],
        unit_name=_unit_name(ctx, desk, locale),
        supervisor_name=supervisor.name(locale) if supervisor else "",
        token=form_token(ctx, device, _PURPOSE),
        **context,
    )


async def report_form(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    desk = await _desk(request)
    if desk is None:
        return _not_found(request)
    locale = locale_of(request)
    device = device_id(request) or secrets.token_urlsafe(24)
    done = request.query.get("done", "")
    receipt = normalise_receipt_code(done, ctx.province.receipt_prefix) if 0 < len(done) <= 32 else None
    response = _report_page(request, desk, locale, device, receipt=receipt or "")
    _ensure_device(request, response, device)
    return response


async def report_submit(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    checked = await _checked_form(request)
    if isinstance(checked, web.Response):
        return checked
    desk, form, locale, device = checked
    payload = request.match_info["payload"]
    description = form.get("description", "")
    try:
        # One transaction: a report refused for its content rolls its throttle hits back (the citizen
        # may fix it and retry), while a refusal for volume is committed and counts.
        async with ctx.sessions.begin() as session:
            allowed = await hit(session, "rpn", network_hash(request), REPORT_NETWORK_LIMIT, now=ctx.now())
            allowed &= await hit(session, "rpd", device_hash(ctx, device)[:40], REPORT_DEVICE_LIMIT, now=ctx.now())
            current = await desk_from_payload(ctx, session, payload) if allowed else None
            if allowed and current is not None:
                submitted = await report_desk_staff(
                    ctx, session, current, description=description, channel="web", channel_id=device
                )
                receipt = submitted.item.receipt_code
    except DomainError as exc:
        error = exc.message(locale)
        return _report_page(request, desk, locale, device, status=400, error=error, description=description)
    if not allowed:
        return message_page(request, 429, "too_many", locale=locale, minutes=60)
    if current is None:
        return _not_found(request, locale)
    return _redirect(f"/d/{payload}/report?done={quote(receipt)}" + (f"&lang={locale}" if locale != "vi" else ""))


def setup(app: web.Application) -> None:
    app.router.add_get("/d/{payload}", landing)
    app.router.add_post("/d/{payload}/rate", rate)
    app.router.add_get("/d/{payload}/thanks", thanks)
    app.router.add_post("/d/{payload}/comment", comment)
    app.router.add_get("/d/{payload}/report", report_form)
    app.router.add_post("/d/{payload}/report", report_submit)
