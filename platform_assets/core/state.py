"""Pipeline state (watermarks, stream offsets, processed files) with compare-and-set updates.

State lives in its own SQL database (``PLATFORM_STATE_URL``), separate from the audit database, so an
audit outage never stops data from flowing. Each state entry carries a version number; an update names
the version it read and fails with :class:`StateConflict` if another run moved the entry meanwhile. That
makes two concurrent runs on one table safe even where the per-table concurrency limit is not enforced.
A statement that fails on a state table that has drifted from its declaration (a column dropped or
retyped) raises :class:`~platform_assets.core.errors.TableDriftError` naming the table and column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from platform_assets.core.errors import StateConflict
from platform_assets.core.sql.drift import drift_as_error, table_drift
from platform_assets.core.sql.engines import engine_for, redact, utc_now

metadata = sa.MetaData()

state_table = sa.Table(
    "platform_state",
    metadata,
    sa.Column("env", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

processed_table = sa.Table(
    "platform_processed_files",
    metadata,
    sa.Column("env", sa.String(16), primary_key=True),
    sa.Column("consumer", sa.String(200), primary_key=True),
    sa.Column("file_name", sa.String(400), primary_key=True),
    sa.Column("processed_at", sa.DateTime, nullable=False),
)


@lru_cache(maxsize=32)
def _create_tables(url: str) -> None:
    """Once per process and database: every asset opens the store, the tables only need creating once."""
    metadata.create_all(engine_for(url), checkfirst=True)


@dataclass(frozen=True)
class StateEntry:
    value: Any
    version: int


class StateStore:
    """Versioned key/value state for one environment."""

    def __init__(self, url: str, env: str):
        self.engine = engine_for(url)
        self.env = env
        self._where = redact(url)
        _create_tables(url)

    def drift(self) -> dict[str, list[str]]:
        """How the state tables in the database differ from their declaration (empty: as declared)."""
        return table_drift(self.engine, metadata.sorted_tables)

    def _drift_as_error(self):
        return drift_as_error(self.engine, "state database", self._where)

    def get(self, name: str) -> StateEntry | None:
        query = sa.select(state_table.c.value, state_table.c.version).where(
            state_table.c.env == self.env, state_table.c.name == name
        )
        with self._drift_as_error(), self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else StateEntry(json.loads(row.value), row.version)

    def compare_and_set(self, name: str, expected: StateEntry | None, value: Any) -> StateEntry:
        """Write ``value`` if the entry is still at ``expected`` (None: must not exist yet)."""
        payload = json.dumps(value, sort_keys=True)
        with self._drift_as_error(), self.engine.begin() as conn:
            if expected is None:
                try:
                    conn.execute(
                        state_table.insert().values(
                            env=self.env, name=name, value=payload, version=1, updated_at=utc_now()
                        )
                    )
                except sa_exc.IntegrityError as exc:
                    raise StateConflict(f"state {name!r} was created by another run") from exc
                return StateEntry(value, 1)
            result = conn.execute(
                state_table.update()
                .where(
                    state_table.c.env == self.env,
                    state_table.c.name == name,
                    state_table.c.version == expected.version,
                )
                .values(value=payload, version=expected.version + 1, updated_at=utc_now())
            )
            if result.rowcount != 1:
                raise StateConflict(
                    f"state {name!r} moved from version {expected.version} while this run was working"
                )
        return StateEntry(value, expected.version + 1)

    def delete(self, name: str) -> None:
        """Forget an entry (a reset); a missing one is fine."""
        with self._drift_as_error(), self.engine.begin() as conn:
            conn.execute(
                state_table.delete().where(state_table.c.env == self.env, state_table.c.name == name)
            )

    def processed(self, consumer: str) -> set[str]:
        query = sa.select(processed_table.c.file_name).where(
            processed_table.c.env == self.env, processed_table.c.consumer == consumer
        )
        with self._drift_as_error(), self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def mark_processed(self, consumer: str, file_names: Iterable[str]) -> None:
        """Record files as consumed; names already recorded are skipped, so a retry is harmless."""
        names = sorted(set(file_names) - self.processed(consumer))
        if not names:
            return
        now = utc_now()
        with self._drift_as_error(), self.engine.begin() as conn:
            conn.execute(
                processed_table.insert(),
                [{"env": self.env, "consumer": consumer, "file_name": n, "processed_at": now} for n in names],
            )
