"""Typed domain errors. Each carries a catalog key, so it reads in Vietnamese and in English."""

from __future__ import annotations

from typing import Any

from bot.i18n import Msg


class DomainError(Exception):
    """A rule of the domain was broken by the input; safe to show to the user who sent it."""

    key = "error.generic"

    def __init__(self, key: str | None = None, **params: Any) -> None:
        self.key = key or self.key
        self.params = params
        super().__init__(self.message("en"))

    def message(self, locale: str | None) -> str:
        return self.as_msg().render(locale)

    def as_msg(self) -> Msg:
        return Msg(self.key, self.params)

    @property
    def vi(self) -> str:
        return self.message("vi")

    @property
    def en(self) -> str:
        return self.message("en")


class ValidationError(DomainError):
    key = "error.invalid"


class NotFound(DomainError):
    key = "error.not_found"


class IllegalTransition(DomainError):
    key = "error.illegal_transition"


class NotAllowed(DomainError):
    key = "error.not_allowed"


class ExtensionLimitReached(DomainError):
    key = "error.extension_limit"


class ConcurrentChange(DomainError):
    key = "error.concurrent_change"
