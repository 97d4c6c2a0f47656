"""A SQL source table's columns as the last successful bronze run saw them, and what changed since.

Bronze reflects the source table before it reads a row; the columns and their types are compared with
those the state store recorded for the table (``source_schema/<table>``) at the end of the last
successful run. Types compare by kind of value, as the platform's own SQL tables do
(:func:`platform_assets.core.sql.drift.value_kind`): a longer ``VARCHAR`` or ``INT`` becoming ``BIGINT``
holds the same values and is no change; ``INT`` becoming ``VARCHAR`` is. The table's
``on_schema_change`` (tables.yaml) decides what a change does: ``block`` stops the step before anything is
read (until a run accepts it), ``warn`` reads and reports it, ``ignore`` only records it.

The new columns become the baseline only once the step succeeded (its files are durable, its watermark
moved), so a blocked or failed run leaves the old baseline and the next run reports the change again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from platform_assets.core.errors import DriftError, StateConflict
from platform_assets.core.medallion.config import SchemaChangeRule, TableConfig
from platform_assets.core.medallion.source_table import SourceTable
from platform_assets.core.sql.drift import sql_type, value_kind
from platform_assets.core.state import StateEntry, StateStore


@dataclass(frozen=True)
class Column:
    """A source column: its name, its type as the database spells it, and the kind of value it holds."""

    name: str
    type: str
    kind: str

    def describe(self) -> str:
        return f"{self.name} {self.type}"


def columns_of(source: SourceTable, dialect: sa.Dialect) -> tuple[Column, ...]:
    """The reflected columns of ``source`` (under their configured names), in table order."""
    out = []
    for column in source.table.columns:
        spelled = sql_type(column.type, dialect)
        # a type SQLAlchemy cannot name (SQLite's free-form type names) compares by its spelling
        out.append(Column(column.name, spelled, value_kind(column.type) or f"other: {spelled}"))
    return tuple(out)


@dataclass(frozen=True)
class SchemaChange:
    """The source table's columns now (``current``) against the last successful run's (``previous``;
    None on the first run, which records the baseline), and what ``rule`` makes of a difference."""

    table: str
    current: tuple[Column, ...]
    previous: tuple[Column, ...] | None
    rule: SchemaChangeRule = "warn"
    accepted: bool = False  # the run was told to accept a change (run config accept_schema_change)

    @property
    def baseline(self) -> bool:
        """No earlier run recorded the table's columns: this run's become the baseline."""
        return self.previous is None

    def _before(self) -> dict[str, Column]:
        return {c.name: c for c in self.previous or ()}

    @property
    def added(self) -> list[Column]:
        before = self._before()
        return [] if self.previous is None else [c for c in self.current if c.name not in before]

    @property
    def dropped(self) -> list[Column]:
        now = {c.name for c in self.current}
        return [c for c in self.previous or () if c.name not in now]

    @property
    def retyped(self) -> list[tuple[Column, Column]]:
        before = self._before()
        return [
            (before[c.name], c) for c in self.current if c.name in before and before[c.name].kind != c.kind
        ]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.dropped or self.retyped)

    @property
    def blocks(self) -> bool:
        """The step must stop before reading: a change under ``block`` that no run accepted."""
        return self.changed and self.rule == "block" and not self.accepted

    @property
    def passed(self) -> bool:
        """The check's verdict: no change, or one that is ignored or accepted. A change under ``warn``
        fails (WARN severity); one under ``block`` never gets this far unless accepted."""
        return not self.changed or self.rule == "ignore" or self.accepted

    def describe(self) -> str:
        """``added: a TEXT; dropped: b INTEGER; retyped: c INTEGER -> VARCHAR(20)`` (empty: no change)."""
        parts = []
        if self.added:
            parts.append("added: " + ", ".join(c.describe() for c in self.added))
        if self.dropped:
            parts.append("dropped: " + ", ".join(c.describe() for c in self.dropped))
        if self.retyped:
            parts.append(
                "retyped: " + ", ".join(f"{old.name} {old.type} -> {new.type}" for old, new in self.retyped)
            )
        return "; ".join(parts)

    def summary(self) -> dict[str, Any]:
        """The change as plain values (metadata, an error's details)."""
        return {
            "added": [c.describe() for c in self.added],
            "dropped": [c.describe() for c in self.dropped],
            "retyped": [f"{old.name} {old.type} -> {new.type}" for old, new in self.retyped],
        }


class SourceSchemaChanged(DriftError, ValueError):
    """A source table's columns changed since the last successful bronze run and the table's
    ``on_schema_change`` is ``block``: nothing was read, the watermark did not move. Not retryable: the
    same run stops the same way until someone accepts the change (run config ``accept_schema_change:
    true``) or restores the source."""

    def __init__(self, change: SchemaChange):
        self.change = change
        super().__init__(
            f"{change.table}: the source table's columns changed since the last successful run "
            f"({change.describe()}); nothing was read (on_schema_change: block). Once downstream is "
            "ready for it, accept the change with the run config accept_schema_change: true"
        )

    def __reduce__(self):  # the message is built from the change: rebuild it from it
        return type(self), (self.change,)

    def details(self) -> dict[str, Any]:
        return {"table": self.change.table, **self.change.summary()}


def state_name(config: TableConfig) -> str:
    return f"source_schema/{config.name}"


def _to_json(columns: tuple[Column, ...]) -> dict[str, Any]:
    return {"columns": [[c.name, c.type, c.kind] for c in columns]}


def _from_json(value: dict[str, Any]) -> tuple[Column, ...]:
    return tuple(Column(name, type_, kind) for name, type_, kind in value["columns"])


@dataclass(frozen=True)
class SchemaBaseline:
    """What the state store holds for the table, read before the step (kept to compare-and-set after)."""

    entry: StateEntry | None

    @classmethod
    def load(cls, state: StateStore, config: TableConfig) -> SchemaBaseline:
        return cls(state.get(state_name(config)))

    @property
    def columns(self) -> tuple[Column, ...] | None:
        return None if self.entry is None else _from_json(self.entry.value)

    def compare(
        self, config: TableConfig, current: tuple[Column, ...], accepted: bool = False
    ) -> SchemaChange:
        return SchemaChange(config.table, current, self.columns, config.on_schema_change, accepted)

    def record(self, state: StateStore, config: TableConfig, current: tuple[Column, ...]) -> None:
        """Make ``current`` the baseline, after a successful step. A concurrent run that recorded the same
        columns is no conflict; one that recorded others raises :class:`StateConflict` (retryable: the
        retry compares against what that run saw)."""
        if self.columns == current:
            return
        try:
            state.compare_and_set(state_name(config), self.entry, _to_json(current))
        except StateConflict:
            now = SchemaBaseline.load(state, config).columns
            if now != current:
                raise
