from __future__ import annotations

import logging

from alembic import context

from pullthrough.catalog.models import Base

log = logging.getLogger(__name__)
engine = context.config.attributes["engine"]
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch migrations rebuild a table (copy, DROP, rename): with foreign keys enforced,
        # the DROP's implicit DELETE fires ON DELETE SET NULL / RESTRICT on the rows that
        # refer to it (every repository's remote cleared; a RESTRICT stops the upgrade). The
        # pragma is a no-op inside a transaction: set on the bare connection, before one.
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        context.configure(
            connection=connection, target_metadata=Base.metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite and (broken := connection.exec_driver_sql("PRAGMA foreign_key_check").all()):
                log.warning("the catalog has %d rows whose references are gone", len(broken))
        connection.commit()
    finally:
        if sqlite:  # the connection goes back to the pool: as every other one, enforcing
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")
