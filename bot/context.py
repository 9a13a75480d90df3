"""Everything a service needs, built once by the composition root (``bot.app``) and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.calendar import WorkingCalendar
from bot.privacy import Keys, Vault
from config import Province, Settings
from models.tables import utcnow


@dataclass
class Context:
    settings: Settings
    province: Province
    calendar: WorkingCalendar
    keys: Keys
    vault: Vault
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Callable[[], datetime] = field(default=utcnow)

    def now(self) -> datetime:
        return self.clock()

    def local_date(self, moment: datetime | None = None) -> date:
        """The calendar day in the province's time zone, the day the law counts in."""
        return (moment or self.now()).astimezone(self.province.timezone).date()
