"""Alembic revisions for the store (a package, so the files ship with airisk)."""
