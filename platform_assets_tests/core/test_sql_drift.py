"""Drift of the SQL tables (audit, state, serving) on SQLite, PostgreSQL and MariaDB: a column dropped or
retyped after the tables were made is reported by ``make setup`` (one line per table, exit 1) and, at run
time, raises TableDriftError naming table and column instead of "database unavailable"."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import polars as pl
import pytest
import sqlalchemy as sa

from platform_assets.cli import audit_setup, setup
from platform_assets.core.audit import AuditStore
from platform_assets.core.audit import tables as audit_tables
from platform_assets.core.errors import ServingUnavailable, TableDriftError
from platform_assets.core.sql.drift import table_drift
from platform_assets.core.state import StateStore
from platform_assets.core.state import metadata as state_metadata
from platform_assets.core.trades import serving
from platform_assets.core.trades.enrich import SCHEMA
from platform_assets.core.trades.serving import ServingStore
from platform_assets_tests.conftest import MARIADB_URL, POSTGRES_URL, reachable, settings_for
from platform_devkit import sample

RUN = "5c2d8e1a-7b3f-4a6e-9c1d-0e2f3a4b5c6d"


@pytest.fixture(scope="module")
def servers() -> dict[str, bool]:
    return {"postgresql": reachable(POSTGRES_URL), "mariadb": reachable(MARIADB_URL)}


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def url(request: pytest.FixtureRequest, tmp_path, servers) -> Iterator[str]:
    """An empty database on each backend (PostgreSQL: a fresh schema first on the search path)."""
    backend = request.param
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'platform.db'}"
        return
    if not servers[backend]:
        pytest.skip(f"{backend} not reachable at {POSTGRES_URL if backend == 'postgresql' else MARIADB_URL}")
    name = f"drift_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL if backend == "postgresql" else MARIADB_URL)
    with admin.begin() as conn:
        conn.execute(sa.schema.CreateSchema(name))
    if backend == "postgresql":
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{name}"
    else:
        url = f"{MARIADB_URL}{name}"
    yield url
    ServingStore(url).engine.dispose()  # the shared engine: no idle connection may hold the schema
    StateStore(url, "dev").engine.dispose()
    with admin.begin() as conn:
        conn.execute(sa.schema.DropSchema(name, cascade=backend == "postgresql"))
    admin.dispose()


def _drop_column(engine: sa.Engine, table: sa.Table, column: str) -> None:
    quote = engine.dialect.identifier_preparer
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {quote.format_table(table)} DROP COLUMN {quote.quote(column)}"))


def _trade() -> pl.DataFrame:
    row = ("BTCUSDT", 1001, "BTC", "USDT", 62000.01, 0.0015, datetime(2024, 3, 1, 12, tzinfo=UTC), 7)
    return pl.DataFrame([row], schema=SCHEMA, orient="row")


def test_tables_as_made_are_as_declared(url):
    """No false drift: each dialect reflects the declared types under its own names."""
    audit = AuditStore(url)
    audit.setup()
    state = StateStore(url, "dev")
    store = ServingStore(url)
    store.setup()
    assert audit.drift() == {}
    assert state.drift() == {}
    assert table_drift(store.engine, serving.metadata.sorted_tables) == {}


def test_a_missing_or_retyped_column_is_drift(url):
    # Enriched_Trades made by hand: price as text, micro_batch_id missing
    wrong = sa.MetaData()
    sa.Table(
        "Enriched_Trades",
        wrong,
        *[
            sa.Column(c.name, sa.String(40) if c.name == "price" else c.type, primary_key=c.primary_key)
            for c in serving.trades_table.columns
            if c.name != "micro_batch_id"
        ],
    )
    store = ServingStore(url)
    wrong.create_all(store.engine)
    dialect = store.engine.dialect
    double = sa.Double().compile(dialect=dialect)
    assert table_drift(store.engine, [serving.trades_table]) == {
        "Enriched_Trades": [
            f"column price is {sa.String(40).compile(dialect=dialect)}, declared {double}",
            f"column micro_batch_id ({sa.BigInteger().compile(dialect=dialect)}) is missing",
        ]
    }


def test_serving_drift_at_run_time_is_not_an_outage(url):
    store = ServingStore(url)
    store.setup()
    _drop_column(store.engine, serving.trades_table, "micro_batch_id")  # while the store is in use

    with pytest.raises(TableDriftError) as caught:
        store.upsert_trades(_trade())
    assert not isinstance(caught.value, ServingUnavailable)
    message = str(caught.value)
    assert "table Enriched_Trades: column micro_batch_id (BIGINT) is missing" in message
    assert "retrying cannot help" in message and "unavailable" not in message
    assert caught.value.drift == {"Enriched_Trades": ["column micro_batch_id (BIGINT) is missing"]}

    with pytest.raises(TableDriftError, match="column micro_batch_id"):
        store.trades()


def test_audit_and_state_drift_at_run_time(url):
    audit = AuditStore(url)
    audit.upsert_job(RUN, status="Running")
    _drop_column(audit.engine, audit_tables.job_table, "ui_url")
    with pytest.raises(
        TableDriftError, match=r"table Job_Metadata: column ui_url \(VARCHAR\(500\)\) is missing"
    ):
        AuditStore(url).job(RUN)

    state = StateStore(url, "dev")
    first = state.compare_and_set("watermark/x", None, {"n": 1})
    _drop_column(state.engine, state_metadata.tables["platform_state"], "updated_at")
    with pytest.raises(
        TableDriftError, match="table platform_state: column updated_at .* is missing"
    ) as caught:
        state.compare_and_set("watermark/x", first, {"n": 2})
    assert str(caught.value).startswith("state database ")


def test_make_setup_reports_sql_drift_one_line_per_table(tmp_path, sqlite_source, monkeypatch, capsys):
    sample.init(sqlite_source.url, scale=1, seed=9, days=2)
    settings = settings_for(tmp_path, sqlite_source)
    # Enriched_Trades made by hand with price as text (SQLite cannot retype a column in place)
    wrong = sa.MetaData()
    columns = [
        sa.Column(c.name, sa.String(40) if c.name == "price" else c.type)
        for c in serving.trades_table.columns
    ]
    sa.Table("Enriched_Trades", wrong, *columns).create(ServingStore(settings.serving_url).engine)
    setup.set_up(settings, log=lambda _: None)
    _drop_column(AuditStore(settings.audit_url).engine, audit_tables.job_table, "ui_url")
    _drop_column(AuditStore(settings.audit_url).engine, audit_tables.job_table, "parent_run_id")

    for name, value in {"PLATFORM_DATA_DIR": str(settings.data_dir), "PLATFORM_SOURCE_URL": settings.source_url,
                        "PLATFORM_TABLES_FILE": str(settings.tables_file)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    assert setup.main([]) == 1
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert (
        "audit table Job_Metadata: DRIFT: column ui_url (VARCHAR(500)) is missing; "
        "column parent_run_id (VARCHAR(64)) is missing"
    ) in lines
    assert "serving table Enriched_Trades: DRIFT: column price is VARCHAR(40), declared DOUBLE" in lines
    assert "2 table(s) differ from their declaration: Job_Metadata, Enriched_Trades" in out.err

    monkeypatch.setenv("PLATFORM_AUDIT_URL", settings.audit_url)
    assert audit_setup.main([]) == 1
    out = capsys.readouterr()
    assert "  Job_Metadata: DRIFT: column ui_url (VARCHAR(500)) is missing;" in out.out
    assert "1 audit table(s) differ from their declaration" in out.err
