"""Alembic environment of the case store: migrations run on the connection the store hands in.

The store (``mammosearch.index.store._migrate``) passes an open connection in
``config.attributes["connection"]``; for PostgreSQL its ``search_path`` is the index's schema,
so the same unqualified migrations serve both backends.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
