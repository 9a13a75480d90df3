"""Mirror the province's units (config) into the ``units`` table that items and officials refer to."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config import Province
from models.tables import Unit


async def sync_units(session: AsyncSession, province: Province) -> int:
    """Insert or update every configured unit; deactivate units no longer configured. Returns the count."""
    existing = {unit.code: unit for unit in (await session.execute(select(Unit))).scalars()}
    for code, configured in province.units.items():
        row = existing.get(code) or Unit(code=code)
        row.name_vi = configured.name_vi
        row.name_en = configured.name_en
        row.supervisor_code = configured.supervisor
        row.coordinator = configured.coordinator
        row.commune_code = configured.commune_code
        row.active = True
        if code not in existing:
            session.add(row)
    for code, row in existing.items():
        if code not in province.units:
            row.active = False
    await session.flush()
    return len(province.units)
