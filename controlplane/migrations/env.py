"""Alembic environment: runs against the engine the caller passes in (or the settings')."""

from alembic import context

from controlplane.db import make_engine
from controlplane.models import Base
from controlplane.settings import Settings

engine = context.config.attributes.get("engine") or make_engine(Settings())

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
