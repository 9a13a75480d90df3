"""The migrations build exactly the schema the ORM describes, on both backends."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from models import Base, create_engine
from models.migrate import upgrade


async def test_migrations_match_models(database_url: tuple[str, str | None]) -> None:
    url, schema = database_url
    engine = create_engine(url, schema=schema)
    try:
        await upgrade(engine)
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
        assert diff == []
    finally:
        await engine.dispose()
