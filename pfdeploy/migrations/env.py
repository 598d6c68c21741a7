"""Alembic environment of the results store. pfdeploy runs it through `pfdeploy.migrations`
(open_store, `pfdeploy store upgrade`), handing over a connection that already holds the
database's write lock; a developer can also run Alembic's own CLI against a store:

    alembic -c pfdeploy/migrations/alembic.ini -x store=path/to/results.db history
"""
from alembic import context

from pfdeploy.migrations import VERSION_TABLE

config = context.config
conn = config.attributes.get("connection")

if context.is_offline_mode():
    # `pfdeploy store upgrade --dry-run`: the SQL that would run, not run
    context.configure(dialect_name=config.attributes.get("dialect_name", "sqlite"), literal_binds=True,
                      version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()
elif conn is not None:
    context.configure(connection=conn, version_table=VERSION_TABLE)
    with context.begin_transaction():  # a no-op inside the caller's transaction
        context.run_migrations()
else:
    from pfdeploy.store import open_store

    url = context.get_x_argument(as_dictionary=True).get("store")
    store = open_store(url, create=False, migrate=False)
    with store.engine.begin() as connection:
        context.configure(connection=connection, version_table=VERSION_TABLE)
        context.run_migrations()
    store.close()
