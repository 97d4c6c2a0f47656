"""Ingestion_Metrics gains the window's dead-lettered and held counts; a table made before those columns
existed gets them from ServingStore.setup(), on every supported backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from platform_assets.core.trades.serving import ServingStore, metrics_table

DAY = datetime(2024, 3, 1, tzinfo=UTC)
NEW_COLUMNS = ("dead_lettered_rows", "held_rows")


def _older_metrics_table() -> sa.Table:
    """Ingestion_Metrics as an older version created it: without the new columns."""
    older = sa.MetaData()
    columns = [c.copy() for c in metrics_table.columns if c.name not in NEW_COLUMNS]
    constraint = sa.UniqueConstraint("ingestion_table", "window_start", "window_end", name="uq_old_metrics")
    return sa.Table(metrics_table.name, older, *columns, constraint)


def test_setup_adds_the_new_columns_to_an_older_table_and_keeps_its_rows(serving_url: str):
    engine = sa.create_engine(serving_url)
    older = _older_metrics_table()
    try:
        with engine.begin() as conn:
            older.create(conn)
            conn.execute(
                older.insert().values(
                    window_start=datetime(2024, 2, 29), window_end=datetime(2024, 3, 1),
                    ingestion_table="Enriched_Trades", total_rows=100, delta_rows=100, threshold=10,
                    alerted=False, recorded_at=datetime(2024, 3, 1),
                )
            )  # fmt: skip
        store = ServingStore(serving_url)
        store.setup()
        ServingStore(serving_url).setup()  # again, from another store: nothing left to add
        with engine.connect() as conn:
            names = {c["name"] for c in sa.inspect(conn).get_columns(metrics_table.name)}
        assert set(NEW_COLUMNS) <= names

        (old,) = store.metrics()
        assert (old.total_rows, old.dead_lettered_rows, old.held_rows) == (100, None, None)
        row = store.append_metrics(
            DAY,
            DAY + timedelta(hours=24),
            "Enriched_Trades",
            160,
            threshold=10,
            dead_lettered_rows=3,
            held_rows=60,
        )
        assert (row.delta_rows, row.dead_lettered_rows, row.held_rows) == (60, 3, 60)
        assert [(m.dead_lettered_rows, m.held_rows) for m in store.metrics()] == [(None, None), (3, 60)]
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"DROP TABLE IF EXISTS {engine.dialect.identifier_preparer.quote(metrics_table.name)}"
                )
            )
        engine.dispose()


def test_a_new_table_has_the_columns_and_they_default_to_null(serving_url: str):
    store = ServingStore(serving_url)
    first = store.append_metrics(DAY, DAY + timedelta(hours=24), "Enriched_Trades", 5, threshold=1)
    assert (first.dead_lettered_rows, first.held_rows) == (None, None)
    second = store.append_metrics(
        DAY + timedelta(hours=24), DAY + timedelta(hours=48), "Enriched_Trades", 9, threshold=1,
        dead_lettered_rows=0, held_rows=2,
    )  # fmt: skip
    assert (second.delta_rows, second.dead_lettered_rows, second.held_rows) == (4, 0, 2)
