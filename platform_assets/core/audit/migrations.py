"""The audit schema's versions and the steps that bring an older database to the current one.

The version is kept in ``Audit_Schema_Version``. Each step brings any earlier layout to its version and
is a no-op where the database is already there: step 1 creates the *current* tables of a fresh
database, so later steps find their work done, and MySQL commits DDL implicitly, so a step interrupted
half way must be safe to run again. Callers serialise concurrent upgrades (see ``AuditStore.setup``).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from platform_assets.core.audit.tables import job_table, metadata, task_table, version_table
from platform_assets.core.sql.engines import utc_now

SCHEMA_VERSION = 3


def _create_tables(conn: sa.Connection) -> None:
    """Version 1: the tables (at their current layout for a fresh database)."""
    metadata.create_all(conn, checkfirst=True)


def _add_lineage_columns(conn: sa.Connection) -> None:
    """Version 2: ``parent_run_id`` (a run started by another run) and ``ui_url`` on Job_Metadata."""
    _add_missing_columns(conn, job_table, ["parent_run_id", "ui_url"])


def _add_table_name(conn: sa.Connection) -> None:
    """Version 3: ``table_name`` on Task_Metadata, the three-part name of the table a task wrote."""
    _add_missing_columns(conn, task_table, ["table_name"])


MIGRATIONS: list[tuple[int, Callable[[sa.Connection], None]]] = [
    (1, _create_tables),
    (2, _add_lineage_columns),
    (3, _add_table_name),
]
assert [v for v, _ in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1)), "one step per version, in order"


def upgrade(conn: sa.Connection) -> int:
    """Apply the steps above the database's version, stamping each; the version reached.

    A database at a newer version than this code is left alone.
    """
    version = schema_version(conn)
    for target, step in MIGRATIONS:
        if target > version:
            step(conn)
            _stamp(conn, target)
            version = target
    return version


def schema_version(conn: sa.Connection) -> int:
    """The database's schema version; 0 for a database without audit tables."""
    if not sa.inspect(conn).has_table(version_table.name):
        return 0
    return conn.execute(sa.select(sa.func.max(version_table.c.version))).scalar() or 0


def _stamp(conn: sa.Connection, version: int) -> None:
    conn.execute(version_table.delete())
    conn.execute(version_table.insert().values(version=version, applied_at=utc_now()))


def _add_missing_columns(conn: sa.Connection, table: sa.Table, names: list[str]) -> None:
    """``ALTER TABLE ADD COLUMN`` for each named column of ``table`` the database lacks (nullable only)."""
    present = {column["name"].lower() for column in sa.inspect(conn).get_columns(table.name)}
    preparer = conn.dialect.identifier_preparer
    for name in names:
        if name.lower() in present:
            continue
        column = table.c[name]
        column_type = column.type.compile(dialect=conn.dialect)
        conn.execute(
            sa.text(
                f"ALTER TABLE {preparer.format_table(table)} "
                f"ADD {'' if conn.dialect.name == 'mssql' else 'COLUMN '}"
                f"{preparer.format_column(column)} {column_type}"
            )
        )
