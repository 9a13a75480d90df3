"""The citizen's conversation, as a pure state machine over channel-neutral events.

    menu → type → category → commune → location → conduct (→ which unit) → description → attachments
         → identity (→ phone → name → consent) → summary → submit
    menu → track → (add information | rate → reopen)
    menu → rate the desk (when the citizen came from a desk's QR code)

``handle(state, event)`` and ``on_result(state, effect, outcome)`` return a Step: the new state, the replies,
and at most one Effect for the runner to perform. State is plain JSON so it can live in the database.
"""

from __future__ import annotations

import functools
from dataclasses import asdict
from typing import Any

from bot.dialog import (
    AddInfo,
    Button,
    DeskInfo,
    Effect,
    Event,
    Outcome,
    RateDesk,
    RateItem,
    ReopenItem,
    Reply,
    ResolveDesk,
    SetLanguage,
    Step,
    SubmitDraft,
    SubmittedInfo,
    TrackInfo,
    TrackItem,
)
from bot.errors import DomainError
from bot.i18n import LOCALES, Localized, Msg, format_day, format_deadline, normalise_locale, render
from bot.intake import MAX_ATTACHMENTS, MAX_DESCRIPTION, MIN_DESCRIPTION, validate_name
from bot.places import CommuneDirectory, fold
from bot.privacy import normalise_phone, normalise_text
from bot.receipts import example_code, normalise_receipt_code
from config.province import Province

# Button labels are few and fixed (ours, never a citizen's words), so their folded forms are kept.
_folded_label = functools.lru_cache(maxsize=2048)(fold)

TYPE_ORDER = ("phan_anh", "kien_nghi", "gop_y", "khieu_nai", "to_cao")
PAGE_SIZE = 8
MIN_REOPEN_REASON = 5
FLOW = ("type", "category", "commune", "location", "conduct", "description", "attachments", "identity", "summary")
EDITABLE = ("type", "category", "commune", "conduct", "description", "attachments", "identity")
WELCOME = Msg("welcome.text")
DESK_FACES = {1: "😞", 2: "😐", 3: "😊"}
# Steps that only take a choice, where a typed number picks the n-th button (Zalo shows numbered choices).
CHOICE_STEPS = frozenset(
    {
        "menu",
        "type",
        "category",
        "location",
        "conduct",
        "attachments",
        "identity",
        "consent",
        "summary",
        "edit",
        "tracked",
        "desk_rating",
    }
)


def new_state(locale: str | None = None) -> dict[str, Any]:
    return {"step": "menu", "locale": normalise_locale(locale), "draft": {}, "desk": None}


def _b(label: Msg | Localized | str, payload: str) -> Button:
    return Button(label, payload)


def _rows(buttons: list[Button], per_row: int = 1) -> tuple[tuple[Button, ...], ...]:
    return tuple(tuple(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row))


def _copy_state(value: Any) -> Any:
    """A copy of a dialog state, which is JSON data (it is sealed as JSON): dicts and lists are copied, the rest
    is immutable. The dialog never changes the state it is given; this costs a third of ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {key: _copy_state(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_state(item) for item in value]
    return value


class CitizenDialog:
    """The conversation for one province's data; one instance serves every chat."""

    def __init__(self, province: Province) -> None:
        self.province = province
        self.communes = CommuneDirectory(province)
        self.communes_by_name = sorted(province.communes.values(), key=lambda c: fold(c.name))
        self.provincial_units = [u for u in province.units.values() if u.commune_code is None]

    # ----------------------------------------------------------------- entry points

    def handle(self, state: dict[str, Any] | None, event: Event) -> Step:
        state = _copy_state(state) if state else new_state(event.language)
        if not event.files:  # a text-only channel: no attachments step, no prompt offering files
            state["text_only"] = True
        if event.kind == "command":
            return self._command(state, event)
        if event.kind == "text":
            event = self._typed_button(state, event)
        if event.kind == "button":
            if event.payload.startswith("menu:"):
                return self._menu_choice(state, event.payload[5:])
            if event.payload.startswith("lang:"):
                return self._set_language(state, event.payload[5:])
            if event.payload[:3] in ("rt:", "ad:", "ro:"):
                return self._item_button(state, event.payload)
        handler = getattr(self, f"_on_{state['step']}", None)
        if handler is None:
            state["step"] = "menu"
            return self._reprompt(state)
        step: Step = handler(state, event)
        return step

    def on_result(self, state: dict[str, Any], effect: Effect, outcome: Outcome) -> Step:
        state = _copy_state(state)
        if isinstance(effect, ResolveDesk):
            return self._desk_resolved(state, outcome.value)
        if outcome.error is not None:
            return self._effect_failed(state, effect, outcome.error)
        if isinstance(effect, SubmitDraft):
            return self._submitted(state, outcome.value)
        if isinstance(effect, TrackItem):
            return self._tracked(state, outcome.value)
        if isinstance(effect, AddInfo):
            return self._to_menu(state, Msg("track.info_added", {"code": effect.code}))
        if isinstance(effect, RateItem):
            return self._rated(state, effect)
        if isinstance(effect, ReopenItem):
            unit = self._unit_name(str(outcome.value))
            return self._to_menu(state, Msg("track.reopened", {"code": effect.code, "unit": unit}), durable=True)
        if isinstance(effect, RateDesk):
            return self._to_menu(state, Msg("desk.rating_thanks"))
        if isinstance(effect, SetLanguage):
            return Step(state, [self.prompt(state, Msg("lang.changed"))])
        raise TypeError(f"unknown effect {effect!r}")

    def _typed_button(self, state: dict[str, Any], event: Event) -> Event:
        """Typing a button's label (or its number on channels that show numbered choices) presses it."""
        wanted = fold(event.text)
        if not wanted:
            return event
        buttons = [button for row in self.prompt(state).buttons for button in row]
        for index, button in enumerate(buttons, start=1):
            numbered = state["step"] in CHOICE_STEPS and wanted == str(index)
            if numbered or wanted == _folded_label(render(button.label, state["locale"])):
                return Event(kind="button", payload=button.payload, language=event.language)
        return event

    # ----------------------------------------------------------------- commands and menu

    def _command(self, state: dict[str, Any], event: Event) -> Step:
        command, args = event.command.lower(), event.args.strip()
        if command == "start":
            keep_locale, text_only = state.get("locale"), state.get("text_only")
            state = new_state(keep_locale)
            if text_only:
                state["text_only"] = True
            if args:
                return Step(state, effect=ResolveDesk(args))
            return Step(state, [self.prompt(state, WELCOME)])
        if command == "resume":
            if state["step"] == "menu" and not state.get("draft"):
                return Step(state, [self.prompt(state, WELCOME)])
            return Step(state, [self.prompt(state, Msg("dialog.resumed"))])
        if command == "cancel":
            return self._to_menu(self._clear(state), Msg("dialog.cancelled"))
        if command == "help":
            return Step(state, [self.prompt(state, Msg("help.text"))])
        if command == "lang":
            if args.lower() in LOCALES:
                return self._set_language(state, args.lower())
            return Step(state, [self._language_prompt()])
        if command == "track":
            self._clear(state)
            if args:
                return self._track_code(state, args)
            state["step"] = "track_code"
            return Step(state, [self.prompt(state)])
        if command == "menu":
            return self._to_menu(state)
        return self._reprompt(state, Msg("dialog.unknown_command"))

    def _menu_choice(self, state: dict[str, Any], choice: str) -> Step:
        if choice == "file":
            self._clear(state)
            state["draft"] = self._prefilled_draft(state)
            return self._go(state, "type")
        if choice == "track":
            self._clear(state)
            return self._go(state, "track_code")
        if choice == "help":
            return Step(state, [self.prompt(state, Msg("help.text"))])
        if choice == "rate" and state.get("desk"):
            return self._go(state, "desk_rating")
        if choice == "lang":
            return Step(state, [self._language_prompt()])
        return self._to_menu(state)

    def _item_button(self, state: dict[str, Any], payload: str) -> Step:
        """Buttons under a message about one item (an answer, a request for more), pressed at any step."""
        op, _, rest = payload.partition(":")
        code, _, arg = rest.partition(":")
        code = normalise_receipt_code(code, self.province.receipt_prefix) or ""
        if not code:
            return self._reprompt(state)
        self._clear(state)
        state["track"] = code
        if op == "rt" and arg.isdigit():
            return Step(state, effect=RateItem(code, int(arg)))
        if op == "ad":
            return self._go(state, "add_info")
        if op == "ro":
            return self._go(state, "reopen_reason")
        return self._reprompt(state)

    def _set_language(self, state: dict[str, Any], locale: str) -> Step:
        if locale not in LOCALES:
            return self._reprompt(state)
        state["locale"] = locale
        return Step(state, effect=SetLanguage(locale))

    def _language_prompt(self) -> Reply:
        return Reply.of(Msg("lang.prompt"), buttons=((_b("Tiếng Việt", "lang:vi"), _b("English", "lang:en")),))

    def _desk_resolved(self, state: dict[str, Any], desk: DeskInfo | None) -> Step:
        if desk is None:
            return Step(state, [self.prompt(state, Msg("desk.invalid"), WELCOME)])
        state["desk"] = asdict(desk)
        welcome = Msg("desk.welcome", {"desk": desk.name, "unit": self._unit_name(desk.unit_code)})
        return Step(state, [self.prompt(state, welcome)])

    def _prefilled_draft(self, state: dict[str, Any]) -> dict[str, Any]:
        desk = state.get("desk")
        if not desk:
            return {}
        return {"desk_code": desk["code"], "commune_code": desk.get("commune_code"), "from_desk": True}

    # ----------------------------------------------------------------- navigation helpers

    def _clear(self, state: dict[str, Any]) -> dict[str, Any]:
        state["draft"] = {}
        state.pop("editing", None)
        state.pop("track", None)
        state.pop("page", None)
        return state

    def _go(self, state: dict[str, Any], step: str, *notices: Msg) -> Step:
        state["step"] = step
        state.pop("page", None)
        return Step(state, [self.prompt(state, *notices)])

    def _to_menu(self, state: dict[str, Any], *notices: Msg, durable: bool = False) -> Step:
        step = self._go(state, "menu", *notices)
        step.durable = durable
        return step

    def _reprompt(self, state: dict[str, Any], notice: Msg | None = None) -> Step:
        return Step(state, [self.prompt(state, notice or Msg("dialog.unexpected"))])

    def _needs_identity(self, state: dict[str, Any]) -> bool:
        draft = state["draft"]
        rule = self.province.item_types.get(draft.get("type", ""))
        return rule is not None and rule.identity_required and draft.get("anonymous", True)

    def _next(self, state: dict[str, Any], current: str, *notices: Msg) -> Step:
        """Move past ``current``: to the next step of the flow, or back to the summary when editing."""
        if state.get("editing"):
            if self._needs_identity(state) and state["draft"].get("identity_chosen"):
                return self._go(state, "identity", *notices)
            return self._go(state, "summary", *notices)
        draft = state["draft"]
        for step in FLOW[FLOW.index(current) + 1 :]:
            if step == "commune" and draft.get("from_desk") and draft.get("commune_code"):
                continue
            if step == "attachments" and state.get("text_only"):
                continue
            return self._go(state, step, *notices)
        return self._go(state, "summary", *notices)

    # ----------------------------------------------------------------- prompts

    def prompt(self, state: dict[str, Any], *notices: Msg) -> Reply:
        """The current step's question with its buttons, after ``notices``, each followed by a blank line: one
        message per step, so that the answer to the webhook carries it all (a second message would cost a Bot API
        round trip first)."""
        step = state["step"]
        reply: Reply = getattr(self, f"_prompt_{step}")(state)
        return Reply(
            texts=(*(text for notice in notices for text in (notice, "")), *reply.texts),
            buttons=reply.buttons,
            request_contact=reply.request_contact,
            request_location=reply.request_location,
            input_hint=reply.input_hint,
        )

    def _prompt_menu(self, state: dict[str, Any]) -> Reply:
        buttons = [
            _b(Msg("menu.file"), "menu:file"),
            _b(Msg("menu.track"), "menu:track"),
            _b(Msg("menu.help"), "menu:help"),
        ]
        if state.get("desk"):
            buttons.insert(2, _b(Msg("menu.rate_desk"), "menu:rate"))
        other = "en" if state.get("locale") != "en" else "vi"
        buttons.append(_b(Msg("menu.language"), f"lang:{other}"))
        return Reply.of(Msg("menu.prompt"), buttons=_rows(buttons))

    def _prompt_type(self, state: dict[str, Any]) -> Reply:
        lines = [Msg("type.prompt")] + [Msg(f"type.explain.{code}") for code in TYPE_ORDER]
        buttons = [_b(self._type_name(code), f"type:{code}") for code in TYPE_ORDER]
        return Reply(texts=tuple(lines), buttons=_rows(buttons, 2))

    def _prompt_category(self, state: dict[str, Any]) -> Reply:
        buttons = [_b(Localized(c.name_vi, c.name_en), f"cat:{c.code}") for c in self.province.categories.values()]
        return Reply.of(Msg("category.prompt"), buttons=_rows(buttons, 2))

    def _prompt_commune(self, state: dict[str, Any]) -> Reply:
        communes = self.communes_by_name
        page, pages = self._page(state, len(communes))
        chunk = communes[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        rows = list(_rows([_b(c.name, f"com:{c.code}") for c in chunk], 2))
        rows.append(self._pager("comp", page, pages))
        rows.append((_b(Msg("commune.none"), "com:none"),))
        return Reply(
            texts=(Msg("commune.prompt", {"page": page + 1, "pages": pages}),), buttons=tuple(r for r in rows if r)
        )

    def _prompt_location(self, state: dict[str, Any]) -> Reply:
        return Reply.of(
            Msg("location.prompt"),
            buttons=((_b(Msg("button.skip"), "loc:skip"),),),
            request_location=Msg("location.share"),
        )

    def _prompt_conduct(self, state: dict[str, Any]) -> Reply:
        return Reply.of(
            Msg("conduct.prompt"), buttons=((_b(Msg("button.yes"), "cond:y"), _b(Msg("button.no"), "cond:n")),)
        )

    def _prompt_conduct_unit(self, state: dict[str, Any]) -> Reply:
        draft = state["draft"]
        suggested: list[str] = []
        desk = state.get("desk")
        if desk and draft.get("from_desk"):
            suggested.append(desk["unit_code"])
        commune = self.province.communes.get(draft.get("commune_code") or "")
        if commune and commune.unit_code not in suggested:
            suggested.append(commune.unit_code)
        units = [u.code for u in self.provincial_units if u.code not in suggested]
        page, pages = self._page(state, len(units))
        chunk = (
            suggested + units[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
            if page == 0
            else units[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        )
        rows = list(_rows([_b(self._unit_name(code), f"unit:{code}") for code in chunk]))
        rows.append(self._pager("unitp", page, pages))
        rows.append((_b(Msg("button.back"), "cond:back"),))  # "Yes" pressed by mistake: the question again
        return Reply(texts=(Msg("conduct.unit_prompt"),), buttons=tuple(r for r in rows if r))

    def _prompt_description(self, state: dict[str, Any]) -> Reply:
        length = len(self._description(state))
        if length == 0:
            key = "description.prompt_text_only" if state.get("text_only") else "description.prompt"
            return Reply.of(Msg(key, {"min": MIN_DESCRIPTION}))
        return Reply.of(Msg("description.more", {"count": length}), buttons=((_b(Msg("button.done"), "desc:done"),),))

    def _prompt_attachments(self, state: dict[str, Any]) -> Reply:
        count = len(state["draft"].get("attachments", []))
        label = Msg("button.done") if count else Msg("button.skip")
        return Reply.of(
            Msg("attachments.prompt", {"count": count, "max": MAX_ATTACHMENTS}), buttons=((_b(label, "att:done"),),)
        )

    def _prompt_identity(self, state: dict[str, Any]) -> Reply:
        code = state["draft"].get("type", "")
        rule = self.province.item_types.get(code)
        if rule is not None and rule.identity_required:
            return Reply.of(
                Msg("identity.required", {"type": self._type_name(code), "basis": rule.identity_basis or ""}),
                buttons=((_b(Msg("identity.give"), "id:named"),), (_b(Msg("identity.as_report"), "id:as_report"),)),
            )
        return Reply.of(
            Msg("identity.prompt"),
            buttons=((_b(Msg("identity.anonymous"), "id:anon"),), (_b(Msg("identity.give"), "id:named"),)),
        )

    def _prompt_phone(self, state: dict[str, Any]) -> Reply:
        return Reply.of(Msg("phone.prompt"), request_contact=Msg("phone.share"), input_hint="phone")

    def _prompt_name(self, state: dict[str, Any]) -> Reply:
        if state["draft"].get("name"):
            return Reply.of(Msg("name.prompt"), buttons=((_b(Msg("name.keep"), "name:keep"),),), input_hint="name")
        return Reply.of(Msg("name.prompt"), input_hint="name")

    def _prompt_consent(self, state: dict[str, Any]) -> Reply:
        days = self.province.scheduler.identity_retention_days
        return Reply.of(
            Msg("consent.text", {"years": max(1, days // 365)}),
            buttons=((_b(Msg("consent.agree"), "consent:y"), _b(Msg("consent.decline"), "consent:n")),),
        )

    def _prompt_summary(self, state: dict[str, Any]) -> Reply:
        draft = state["draft"]
        commune = self.province.communes.get(draft.get("commune_code") or "")
        about = draft.get("about_unit_code")
        if draft.get("anonymous", True):
            sender: Msg | str = Msg("summary.anonymous")
        else:
            sender = f"{draft.get('name', '')} · {draft.get('phone', '')}"
        lines: list[Msg | Localized | str] = [
            Msg("summary.title"),
            Msg("summary.type", {"value": self._type_name(draft.get("type", ""))}),
            Msg("summary.category", {"value": self._category_name(draft.get("category", ""))}),
            Msg("summary.commune", {"value": commune.name if commune else Msg("commune.none")}),
        ]
        if draft.get("latitude") is not None:
            lines.append(Msg("summary.location"))
        if about:
            lines.append(Msg("summary.about", {"value": self._unit_name(about)}))
        lines.append(Msg("summary.description", {"value": self._description(state)}))
        if not state.get("text_only"):
            lines.append(Msg("summary.attachments", {"count": len(draft.get("attachments", []))}))
        lines.append(Msg("summary.sender", {"value": sender}))
        buttons = (
            (_b(Msg("summary.send"), "sum:send"),),
            (_b(Msg("summary.edit"), "sum:edit"), _b(Msg("summary.cancel"), "sum:cancel")),
        )
        return Reply(texts=tuple(lines), buttons=buttons)

    def _prompt_edit(self, state: dict[str, Any]) -> Reply:
        fields = [field for field in EDITABLE if not (field == "attachments" and state.get("text_only"))]
        buttons = [_b(Msg(f"edit.{field}"), f"edit:{field}") for field in fields]
        buttons.append(_b(Msg("button.back"), "edit:back"))
        return Reply.of(Msg("edit.prompt"), buttons=_rows(buttons, 2))

    def _prompt_track_code(self, state: dict[str, Any]) -> Reply:
        return Reply.of(
            Msg("track.prompt", {"example": example_code(self.province.receipt_prefix)}),
            buttons=((_b(Msg("button.menu"), "menu:menu"),),),
            input_hint="code",
        )

    def _prompt_add_info(self, state: dict[str, Any]) -> Reply:
        key = "track.add_prompt_text_only" if state.get("text_only") else "track.add_prompt"
        return Reply.of(Msg(key, {"code": state.get("track", "")}), buttons=((_b(Msg("button.menu"), "menu:menu"),),))

    def _prompt_reopen_reason(self, state: dict[str, Any]) -> Reply:
        return Reply.of(Msg("track.reopen_prompt"), buttons=((_b(Msg("button.menu"), "menu:menu"),),))

    def _prompt_desk_rating(self, state: dict[str, Any]) -> Reply:
        desk = state.get("desk") or {}
        buttons = tuple(
            _b(Msg(f"desk.face.{score}", {"face": face}), f"desk:{score}") for score, face in DESK_FACES.items()
        )
        return Reply.of(Msg("desk.rating_prompt", {"desk": desk.get("name", "")}), buttons=(buttons,))

    # ----------------------------------------------------------------- steps

    def _on_menu(self, state: dict[str, Any], event: Event) -> Step:
        if event.kind == "text" and normalise_receipt_code(event.text, self.province.receipt_prefix):
            return self._track_code(state, event.text)
        return self._reprompt(state)

    def _on_type(self, state: dict[str, Any], event: Event) -> Step:
        code = self._payload_arg(event, "type")
        if code not in self.province.item_types:
            return self._reprompt(state)
        state["draft"]["type"] = code
        return self._next(state, "type")

    def _on_category(self, state: dict[str, Any], event: Event) -> Step:
        code = self._payload_arg(event, "cat")
        if code not in self.province.categories:
            return self._reprompt(state)
        state["draft"]["category"] = code
        return self._next(state, "category")

    def _on_commune(self, state: dict[str, Any], event: Event) -> Step:
        draft = state["draft"]
        if event.kind == "button" and event.payload.startswith("comp:"):
            return self._turn_page(state, event.payload[5:], len(self.province.communes))
        if event.kind == "button" and event.payload.startswith("com:"):
            code = event.payload[4:]
            if code == "none":
                draft["commune_code"] = None
                draft.pop("from_desk", None)
                return self._next(state, "commune")
            if code in self.province.communes:
                draft["commune_code"] = code
                draft.pop("from_desk", None)
                return self._next(state, "commune")
            return self._reprompt(state)
        if event.kind == "text":
            matches = self.communes.search(event.text)
            if len(matches) == 1:
                match = matches[0]
                draft["commune_code"] = match.commune.code
                draft.pop("from_desk", None)
                notice = (
                    Msg("commune.legacy", {"old": match.via_legacy, "new": match.commune.name})
                    if match.via_legacy
                    else Msg("commune.chosen", {"name": match.commune.name})
                )
                return self._next(state, "commune", notice)
            if matches:
                buttons = [_b(m.commune.name, f"com:{m.commune.code}") for m in matches]
                return Step(state, [Reply(texts=(Msg("commune.several"),), buttons=_rows(buttons, 2))])
            return self._reprompt(state, Msg("commune.not_found", {"text": normalise_text(event.text)[:60]}))
        return self._reprompt(state)

    def _on_location(self, state: dict[str, Any], event: Event) -> Step:
        if (
            event.kind == "location"
            and event.latitude is not None
            and event.longitude is not None
            and -90 <= event.latitude <= 90
            and -180 <= event.longitude <= 180
        ):
            state["draft"].update(latitude=event.latitude, longitude=event.longitude)
            return self._next(state, "location", Msg("location.received"))
        if event.kind == "button" and event.payload == "loc:skip":
            state["draft"].update(latitude=None, longitude=None)
            return self._next(state, "location")
        return self._reprompt(state)

    def _on_conduct(self, state: dict[str, Any], event: Event) -> Step:
        if event.kind == "button" and event.payload == "cond:n":
            state["draft"]["about_unit_code"] = None
            return self._next(state, "conduct")
        if event.kind == "button" and event.payload == "cond:y":
            return self._go(state, "conduct_unit")
        return self._reprompt(state)

    def _on_conduct_unit(self, state: dict[str, Any], event: Event) -> Step:
        if event.kind == "button" and event.payload == "cond:back":
            return self._go(state, "conduct")
        if event.kind == "button" and event.payload.startswith("unitp:"):
            return self._turn_page(state, event.payload[6:], len(self.provincial_units))
        if event.kind == "button" and event.payload.startswith("unit:"):
            code = event.payload[5:]
            if code in self.province.units:
                state["draft"]["about_unit_code"] = code
                return self._next(state, "conduct")
            return self._reprompt(state)
        if event.kind == "text":
            wanted = fold(event.text)
            found = [u for u in self.province.units.values() if wanted and wanted in fold(u.name_vi + " " + u.name_en)]
            if found:
                buttons = [_b(Localized(u.name_vi, u.name_en), f"unit:{u.code}") for u in found[:PAGE_SIZE]]
                return Step(state, [Reply(texts=(Msg("conduct.unit_several"),), buttons=_rows(buttons))])
        return self._reprompt(state)

    def _on_description(self, state: dict[str, Any], event: Event) -> Step:
        draft = state["draft"]
        if event.kind == "text":
            text = normalise_text(event.text)
            if not any(ch.isalnum() for ch in text):
                return self._reprompt(state, Msg("description.empty"))
            so_far = self._description(state)
            if len(so_far) + (1 if so_far else 0) + len(text) > MAX_DESCRIPTION:  # parts join with a line break
                return self._reprompt(state, Msg("error.description_too_long", {"max": MAX_DESCRIPTION}))
            draft.setdefault("description_parts", []).append(text)
            return Step(state, [self.prompt(state)])
        if event.kind == "attachment":
            return self._add_attachment(state, event, stay=True)
        if event.kind == "button" and event.payload == "desc:done":
            if len(self._description(state)) < MIN_DESCRIPTION:
                return self._reprompt(state, Msg("error.description_too_short", {"min": MIN_DESCRIPTION}))
            return self._next(state, "description")
        return self._reprompt(state)

    def _on_attachments(self, state: dict[str, Any], event: Event) -> Step:
        if event.kind == "attachment":
            return self._add_attachment(state, event, stay=False)
        if event.kind == "button" and event.payload == "att:done":
            return self._next(state, "attachments")
        if event.kind == "text":
            return self._reprompt(state, Msg("attachments.text_ignored"))
        return self._reprompt(state)

    def _add_attachment(self, state: dict[str, Any], event: Event, *, stay: bool) -> Step:
        attachments = state["draft"].setdefault("attachments", [])
        if len(attachments) >= MAX_ATTACHMENTS:
            return self._reprompt(state, Msg("error.too_many_attachments", {"max": MAX_ATTACHMENTS}))
        if event.attachment:
            attachments.append(dict(event.attachment))
        return Step(state, [self.prompt(state, Msg("attachments.received", {"count": len(attachments)}))])

    def _on_identity(self, state: dict[str, Any], event: Event) -> Step:
        draft = state["draft"]
        rule = self.province.item_types.get(draft.get("type", ""))
        required = rule is not None and rule.identity_required
        if event.kind != "button":
            return self._reprompt(state)
        if event.payload == "id:anon" and not required:
            draft.update(anonymous=True, name=None, phone=None, consent=False, identity_chosen=True)
            return self._go(state, "summary")
        if event.payload == "id:as_report" and required:
            draft.update(type="phan_anh", anonymous=True, name=None, phone=None, consent=False, identity_chosen=True)
            return self._go(state, "summary", Msg("identity.now_report"))
        if event.payload == "id:named":
            draft["identity_chosen"] = True
            return self._go(state, "phone")
        return self._reprompt(state)

    def _on_phone(self, state: dict[str, Any], event: Event) -> Step:
        draft = state["draft"]
        if event.kind == "contact":
            if not event.contact_is_own:
                return self._reprompt(state, Msg("phone.not_own"))
            raw, name = event.phone, normalise_text(f"{event.first_name} {event.last_name}")
        elif event.kind == "text":
            raw, name = event.text, ""
        else:
            return self._reprompt(state)
        try:
            draft["phone"] = normalise_phone(raw)
        except DomainError as error:
            return self._reprompt(state, Msg(error.key, error.params))
        if name:
            try:
                draft["name"] = validate_name(name)
            except DomainError:
                return self._go(state, "name")
            return self._go(state, "name", Msg("name.confirm", {"name": draft["name"]}))
        return self._go(state, "name")

    def _on_name(self, state: dict[str, Any], event: Event) -> Step:
        draft = state["draft"]
        if event.kind == "button" and event.payload == "name:keep" and draft.get("name"):
            return self._go(state, "consent")
        if event.kind != "text":
            return self._reprompt(state)
        try:
            draft["name"] = validate_name(event.text)
        except DomainError as error:
            return self._reprompt(state, Msg(error.key, error.params))
        return self._go(state, "consent")

    def _on_consent(self, state: dict[str, Any], event: Event) -> Step:
        draft = state["draft"]
        if event.kind == "button" and event.payload == "consent:y":
            draft.update(anonymous=False, consent=True)
            return self._go(state, "summary")
        if event.kind == "button" and event.payload == "consent:n":
            draft.update(anonymous=True, name=None, phone=None, consent=False)
            return self._go(state, "identity", Msg("consent.declined"))
        return self._reprompt(state)

    def _on_summary(self, state: dict[str, Any], event: Event) -> Step:
        if event.kind != "button":
            return self._reprompt(state)
        if event.payload == "sum:send":
            if self._needs_identity(state):
                return self._go(state, "identity")
            return Step(state, effect=SubmitDraft(self._draft_for_submit(state)))
        if event.payload == "sum:edit":
            state["editing"] = True
            return self._go(state, "edit")
        if event.payload == "sum:cancel":
            return self._to_menu(self._clear(state), Msg("dialog.cancelled"))
        return self._reprompt(state)

    def _on_edit(self, state: dict[str, Any], event: Event) -> Step:
        field = self._payload_arg(event, "edit")
        if field == "back":
            return self._go(state, "summary")
        if field not in EDITABLE:
            return self._reprompt(state)
        if field == "description":
            state["draft"]["description_parts"] = []
        if field == "attachments":
            state["draft"]["attachments"] = []
        return self._go(state, field)

    def _on_track_code(self, state: dict[str, Any], event: Event) -> Step:
        if event.kind == "text":
            return self._track_code(state, event.text)
        return self._reprompt(state)

    def _track_code(self, state: dict[str, Any], raw: str) -> Step:
        code = normalise_receipt_code(raw, self.province.receipt_prefix)
        if code is None:
            state["step"] = "track_code"
            return self._reprompt(state, Msg("error.invalid_receipt"))
        return Step(state, effect=TrackItem(code))

    def _on_tracked(self, state: dict[str, Any], event: Event) -> Step:
        code = state.get("track", "")
        if event.kind == "button":
            if event.payload == "trk:add":
                return self._go(state, "add_info")
            if event.payload.startswith("rate:"):
                try:
                    rating = int(event.payload[5:])
                except ValueError:
                    return self._reprompt(state)
                return Step(state, effect=RateItem(code, rating))
            if event.payload == "trk:reopen":
                return self._go(state, "reopen_reason")
        if event.kind == "text" and normalise_receipt_code(event.text, self.province.receipt_prefix):
            return self._track_code(state, event.text)
        return self._to_menu(state)

    def _on_add_info(self, state: dict[str, Any], event: Event) -> Step:
        code = state.get("track", "")
        if event.kind == "text" and normalise_text(event.text):
            return Step(state, effect=AddInfo(code, normalise_text(event.text)))
        if event.kind == "attachment" and event.attachment:
            return Step(state, effect=AddInfo(code, "", (dict(event.attachment),)))
        return self._reprompt(state)

    def _on_reopen_reason(self, state: dict[str, Any], event: Event) -> Step:
        if event.kind == "text" and len(normalise_text(event.text)) >= MIN_REOPEN_REASON:
            return Step(state, effect=ReopenItem(state.get("track", ""), normalise_text(event.text)))
        return self._reprompt(state, Msg("error.reason_required"))

    def _on_desk_rating(self, state: dict[str, Any], event: Event) -> Step:
        desk = state.get("desk")
        arg = self._payload_arg(event, "desk")
        if desk and arg in {str(score) for score in DESK_FACES}:
            return Step(state, effect=RateDesk(desk["code"], int(arg)))
        return self._reprompt(state)

    # ----------------------------------------------------------------- effect results

    def _submitted(self, state: dict[str, Any], info: SubmittedInfo) -> Step:
        locale = state["locale"]
        resolve: Msg | str = Msg("receipt.no_resolve")
        if info.resolve_due is not None and info.resolve_days is not None and info.resolve_unit is not None:
            resolve = format_deadline(locale, info.resolve_days, info.resolve_unit, info.resolve_due)
        receipt = Msg(
            "receipt.text",
            {
                "code": info.receipt_code,
                "unit": self._unit_name(info.unit_code),
                "accept": format_deadline(locale, info.accept_days, info.accept_unit, info.accept_due),
                "resolve": resolve,
            },
        )
        self._clear(state)
        state["step"] = "menu"
        return Step(state, [self.prompt(state, receipt)], durable=True)

    def _tracked(self, state: dict[str, Any], info: TrackInfo | None) -> Step:
        if info is None:
            state["step"] = "track_code"
            return self._reprompt(state, Msg("track.not_found"))
        locale = state["locale"]
        texts: list[Msg | Localized | str] = [
            Msg(
                "track.header",
                {
                    "code": info.receipt_code,
                    "type": self._type_name(info.type),
                    "status": Msg(f"status.{info.status}"),
                    "unit": self._unit_name(info.unit_code),
                },
            )
        ]
        if info.accept_due and info.status in ("submitted", "reopened"):
            texts.append(Msg("track.accept_by", {"date": format_day(locale, info.accept_due)}))
        if info.resolve_due and info.status in ("accepted", "needs_info"):
            texts.append(Msg("track.resolve_by", {"date": format_day(locale, info.resolve_due)}))
        if info.timeline:
            texts.append(Msg("track.timeline"))
            texts += [
                Msg("track.timeline_entry", {"at": entry.at_text, "action": Msg(f"event.{entry.action}")})
                for entry in info.timeline
            ]
        buttons: list[tuple[Button, ...]] = []
        if info.owned:
            if info.answer:
                texts.append(Msg("track.answer", {"answer": info.answer}))
            if info.status in ("submitted", "accepted", "needs_info", "reopened"):
                buttons.append((_b(Msg("track.add"), "trk:add"),))
            if info.status == "answered" or (info.status == "closed" and info.rating is None):
                texts.append(Msg("track.rate_prompt"))
                buttons.append(tuple(_b(str(n), f"rate:{n}") for n in range(1, 6)))
            if info.status in ("answered", "closed") and (info.rating is None or info.rating <= 2):
                buttons.append((_b(Msg("track.reopen"), "trk:reopen"),))
        buttons.append((_b(Msg("button.menu"), "menu:menu"),))
        state["track"] = info.receipt_code
        state["step"] = "tracked"
        return Step(state, [Reply(texts=tuple(texts), buttons=tuple(buttons))])

    def _rated(self, state: dict[str, Any], effect: RateItem) -> Step:
        if effect.rating <= 2:
            state["step"] = "tracked"
            reply = Reply.of(
                Msg("track.rated_low"),
                buttons=((_b(Msg("track.reopen"), "trk:reopen"),), (_b(Msg("button.menu"), "menu:menu"),)),
            )
            return Step(state, [reply])
        return self._to_menu(state, Msg("track.rated"))

    def _effect_failed(self, state: dict[str, Any], effect: Effect, error: Msg) -> Step:
        if isinstance(effect, SubmitDraft):
            state["step"] = "summary"
            return self._reprompt(state, error)
        return self._to_menu(state, error)

    # ----------------------------------------------------------------- small helpers

    def _prompt_tracked(self, state: dict[str, Any]) -> Reply:
        return Reply.of(Msg("track.prompt_again"), buttons=((_b(Msg("button.menu"), "menu:menu"),),))

    def _payload_arg(self, event: Event, op: str) -> str:
        prefix = f"{op}:"
        return event.payload[len(prefix) :] if event.kind == "button" and event.payload.startswith(prefix) else ""

    def _page(self, state: dict[str, Any], total: int) -> tuple[int, int]:
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(max(int(state.get("page", 0)), 0), pages - 1)
        return page, pages

    def _pager(self, op: str, page: int, pages: int) -> tuple[Button, ...]:
        buttons = []
        if page > 0:
            buttons.append(_b("« " + str(page), f"{op}:{page - 1}"))
        if page < pages - 1:
            buttons.append(_b(str(page + 2) + " »", f"{op}:{page + 1}"))
        return tuple(buttons)

    def _turn_page(self, state: dict[str, Any], arg: str, total: int) -> Step:
        try:
            state["page"] = int(arg)
        except ValueError:
            return self._reprompt(state)
        state["page"], _ = self._page(state, total)
        return Step(state, [self.prompt(state)])

    def _description(self, state: dict[str, Any]) -> str:
        return "\n".join(state["draft"].get("description_parts", []))

    def _draft_for_submit(self, state: dict[str, Any]) -> dict[str, Any]:
        draft = state["draft"]
        return {
            "type": draft.get("type"),
            "category": draft.get("category"),
            "commune_code": draft.get("commune_code"),
            "about_unit_code": draft.get("about_unit_code"),
            "description": self._description(state),
            "attachments": list(draft.get("attachments", [])),
            "anonymous": draft.get("anonymous", True),
            "name": draft.get("name"),
            "phone": draft.get("phone"),
            "consent": draft.get("consent", False),
            "latitude": draft.get("latitude"),
            "longitude": draft.get("longitude"),
            "desk_code": draft.get("desk_code") if draft.get("from_desk") else None,
        }

    def _type_name(self, code: str) -> Localized:
        rule = self.province.item_types.get(code)
        return Localized(rule.name_vi, rule.name_en) if rule else Localized(code, code)

    def _category_name(self, code: str) -> Localized:
        category = self.province.categories.get(code)
        return Localized(category.name_vi, category.name_en) if category else Localized(code, code)

    def _unit_name(self, code: str) -> Localized:
        unit = self.province.units.get(code)
        return Localized(unit.name_vi, unit.name_en) if unit else Localized(code, code)
