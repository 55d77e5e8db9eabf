"""Alembic environment: runs migrations on the URL the app hands over (``sqlalchemy.url``)."""

from alembic import context
from sqlalchemy import create_engine, pool

from app.extensions import db
import app.models  # noqa: F401  (registers the tables on the metadata for autogenerate)

config = context.config
target_metadata = db.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            # One migrator at a time: web, hub and worker may all start together.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7300001)")
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
