"""The serving database: enriched trades for dashboards, and one ingestion metrics row per window.

Both writes are idempotent, because a micro-batch run may be retried or killed and re-run: trades are
upserted on (symbol, trade_id) with the dialect's own insert-on-conflict, and a window's metrics row is
written once per (ingestion_table, window_start, window_end). A database that is down raises
:class:`ServingUnavailable` and nothing half-written needs undoing: the caller sends the same rows again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql, sqlite

from platform_assets.core.audit.tables import Timestamp
from platform_assets.core.audit.values import as_utc
from platform_assets.core.errors import ServingUnavailable
from platform_assets.core.sql.engines import fail_fast_engine, redacted_url, unavailable_as, utc_now
from platform_assets.core.trades.enrich import COLUMNS, KEYS, SCHEMA
from platform_assets.core.volume import below_floor

# Rows per INSERT: bounds statement size and parameter count (PostgreSQL caps a statement at 65535
# parameters; 8 columns x 1000 rows stays well below) and keeps each transaction's locks short.
CHUNK_ROWS = 1000
_SETUP_ATTEMPTS = 3

metadata = sa.MetaData()

trades_table = sa.Table(
    "Enriched_Trades",
    metadata,
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("trade_id", sa.BigInteger, nullable=False, autoincrement=False),
    sa.Column("base_asset", sa.String(32)),
    sa.Column("quote_asset", sa.String(32)),
    sa.Column("price", sa.Double),
    sa.Column("quantity", sa.Double),
    sa.Column("trade_time", Timestamp),  # naive UTC, as every platform SQL table
    sa.Column("micro_batch_id", sa.BigInteger),
    sa.PrimaryKeyConstraint("symbol", "trade_id", name="pk_enriched_trades"),
)

metrics_table = sa.Table(
    "Ingestion_Metrics",
    metadata,
    sa.Column("metric_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("window_start", Timestamp, nullable=False),
    sa.Column("window_end", Timestamp, nullable=False),
    sa.Column("ingestion_table", sa.String(200), nullable=False),
    sa.Column("total_rows", sa.BigInteger, nullable=False),
    sa.Column("delta_rows", sa.BigInteger, nullable=False),
    sa.Column("threshold", sa.BigInteger, nullable=False),
    sa.Column("alerted", sa.Boolean, nullable=False),
    sa.Column("recorded_at", Timestamp, nullable=False),
    # Added later (setup() adds them to an older table): the window's messages dead-lettered (landing's
    # and silver's quarantines) and held for the lookup when the row was written. Null: not counted.
    sa.Column("dead_lettered_rows", sa.BigInteger, nullable=True),
    sa.Column("held_rows", sa.BigInteger, nullable=True),
    # The micro-batches the window's messages landed in (first and last). The next window's count starts
    # reading bronze at this window's first batch, so counting a window never reads older history.
    sa.Column("first_micro_batch", sa.BigInteger, nullable=True),
    sa.Column("last_micro_batch", sa.BigInteger, nullable=True),
    sa.UniqueConstraint(
        "ingestion_table", "window_start", "window_end", name="uq_ingestion_metrics_table_window"
    ),
)

assert tuple(trades_table.c.keys()) == COLUMNS, "Enriched_Trades has the columns of the enriched frame"


@dataclass(frozen=True)
class MetricsRow:
    """One ``Ingestion_Metrics`` row (times naive UTC)."""

    metric_id: int
    window_start: datetime
    window_end: datetime
    ingestion_table: str
    total_rows: int
    delta_rows: int
    threshold: int
    alerted: bool
    recorded_at: datetime
    dead_lettered_rows: int | None = None
    held_rows: int | None = None
    first_micro_batch: int | None = None
    last_micro_batch: int | None = None


def _unavailable_as_error(url: str):
    """:class:`ServingUnavailable` for a server that is down, unknown, refusing us or dropped the connection."""
    return unavailable_as(ServingUnavailable, "serving database", url)


def _upsert_statement(dialect: str) -> Any:
    """INSERT ... ON CONFLICT for ``dialect``: a new key is inserted; a present key takes the incoming
    values only when they come from the same or a lower micro_batch_id, so a resent trade never
    replaces the first copy (the rule silver applies) while a retried batch rewrites its own rows."""
    values = [c for c in COLUMNS if c not in KEYS]
    stored = trades_table.c.micro_batch_id
    if dialect in ("mysql", "mariadb"):
        statement = mysql.insert(trades_table)
        incoming = statement.inserted.micro_batch_id
        # MySQL applies the assignments left to right, each seeing the ones before: micro_batch_id goes
        # last so every other column is decided against the stored value.
        keep = incoming <= stored
        return statement.on_duplicate_key_update(
            [(name, sa.case((keep, statement.inserted[name]), else_=trades_table.c[name])) for name in values]
        )
    module = {"postgresql": postgresql, "sqlite": sqlite}.get(dialect)
    if module is None:
        raise ValueError(f"the serving store supports SQLite, PostgreSQL and MySQL/MariaDB, not {dialect}")
    statement = module.insert(trades_table)
    return statement.on_conflict_do_update(
        index_elements=list(KEYS),
        set_={name: statement.excluded[name] for name in values},
        where=statement.excluded.micro_batch_id <= stored,
    )


def _rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"trades to serve lack column(s) {', '.join(missing)}")
    rows = frame.select(COLUMNS).to_dicts()
    for row in rows:
        if row["trade_time"] is not None:
            row["trade_time"] = as_utc(row["trade_time"])
    return rows


def _missing_columns(conn: sa.Connection) -> list[tuple[sa.Table, sa.Column]]:
    inspector = sa.inspect(conn)
    missing = []
    for table in metadata.sorted_tables:
        present = {c["name"].lower() for c in inspector.get_columns(table.name, schema=table.schema)}
        missing.extend((table, c) for c in table.columns if c.name.lower() not in present)
    return missing


def _add_missing_columns(engine: sa.Engine) -> None:
    """ALTER TABLE ... ADD COLUMN for each declared column an existing table lacks (a table made by an
    older version; such columns are nullable, so existing rows need no value). Identifiers are quoted by
    the dialect. Another process adding the same column first is fine."""
    with engine.connect() as conn:
        missing = _missing_columns(conn)
    for table, column in missing:
        if not column.nullable:
            raise RuntimeError(f"{table.name} lacks the required column {column.name}: migrate it by hand")
        preparer = engine.dialect.identifier_preparer
        statement = (
            f"ALTER TABLE {preparer.format_table(table)} "
            f"ADD COLUMN {preparer.format_column(column)} {column.type.compile(dialect=engine.dialect)}"
        )
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(statement))
        except sa_exc.DBAPIError:
            with engine.connect() as conn:
                still = {(t.name, c.name) for t, c in _missing_columns(conn)}
            if (table.name, column.name) in still:
                raise


class ServingStore:
    """``Enriched_Trades`` and ``Ingestion_Metrics`` in the database at ``url`` (any SQLAlchemy URL of
    SQLite, PostgreSQL or MySQL/MariaDB). Writes run :meth:`setup` first, once per store, so a store
    made while the database was down starts working when it is back."""

    def __init__(self, url: str):
        self.url = url
        # a connect timeout on server drivers: an outage fails the write fast instead of stalling the run
        self.engine = fail_fast_engine(url)
        self._ready = False

    def __repr__(self) -> str:
        return f"ServingStore({redacted_url(self.url)!r})"

    def setup(self) -> None:
        """Create the tables that are missing, and add the columns a table made by an older version lacks.
        Safe to run twice or from several processes at once."""
        with _unavailable_as_error(self.url):
            for attempt in range(1, _SETUP_ATTEMPTS + 1):
                try:
                    with self.engine.begin() as conn:
                        metadata.create_all(conn, checkfirst=True)
                    _add_missing_columns(self.engine)
                except (sa_exc.ProgrammingError, sa_exc.IntegrityError):
                    # another process created a table between our check and our CREATE: check again
                    if attempt == _SETUP_ATTEMPTS:
                        raise
                    time.sleep(0.05 * attempt)
                else:
                    self._ready = True
                    return

    def _ensure_setup(self) -> None:
        if not self._ready:
            self.setup()

    def upsert_trades(self, frame: pl.DataFrame) -> int:
        """Insert or update ``frame``'s rows (columns of the enriched frame) in ``Enriched_Trades``; the
        number of rows sent. Sending the same rows again leaves the table as it was.

        Rows go in chunks of :data:`CHUNK_ROWS`, each in its own transaction: when the database fails
        half way, the chunks already written are simply written again on the retry.
        """
        rows = _rows(frame)
        with _unavailable_as_error(self.url):
            self._ensure_setup()
            statement = _upsert_statement(self.engine.dialect.name)
            for start in range(0, len(rows), CHUNK_ROWS):
                with self.engine.begin() as conn:
                    conn.execute(statement, rows[start : start + CHUNK_ROWS])
        return len(rows)

    def append_metrics(
        self,
        window_start: Any,
        window_end: Any,
        table: str,
        total_rows: int,
        threshold: int,
        *,
        dead_lettered_rows: int | None = None,
        held_rows: int | None = None,
        delta_rows: int | None = None,
        micro_batches: tuple[int, int] | None = None,
    ) -> MetricsRow:
        """Record the window's row count for ``table``; the window's ``Ingestion_Metrics`` row.

        ``dead_lettered_rows`` and ``held_rows``: the window's messages dead-lettered and held (for the
        lookup) when it is recorded; None leaves them null. ``micro_batches``: the first and last
        micro-batch its messages landed in (None: null, e.g. a window with no message).

        ``delta_rows``, unless given (the stream gives it per epoch), is ``total_rows`` minus the total of
        the table's previous window (the latest one starting before this window), or ``total_rows`` for
        its first window; ``alerted``: ``delta_rows`` below the ``threshold`` (the volume judge's
        fixed floor, ``core.volume.below_floor``). A window already recorded is returned as stored, unchanged, so a
        retried run neither adds a row nor alerts twice from a recomputed delta.
        """
        if not table or len(table) > 200:
            raise ValueError(f"table must have 1 to 200 characters, got {table!r}")
        start, end = as_utc(window_start), as_utc(window_end)
        if end < start:
            raise ValueError(f"window_end {end} is before window_start {start}")
        total_rows, threshold = int(total_rows), int(threshold)
        with _unavailable_as_error(self.url):
            self._ensure_setup()
            existing = self._metrics_row(table, start, end)
            if existing is not None:
                return existing
            if delta_rows is None:
                previous = self._previous_total(table, start)
                delta_rows = total_rows if previous is None else total_rows - previous
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        metrics_table.insert().values(
                            window_start=start,
                            window_end=end,
                            ingestion_table=table,
                            total_rows=total_rows,
                            delta_rows=delta_rows,
                            threshold=threshold,
                            alerted=below_floor(delta_rows, threshold),
                            recorded_at=utc_now(),
                            dead_lettered_rows=None
                            if dead_lettered_rows is None
                            else int(dead_lettered_rows),
                            held_rows=None if held_rows is None else int(held_rows),
                            first_micro_batch=None if micro_batches is None else int(micro_batches[0]),
                            last_micro_batch=None if micro_batches is None else int(micro_batches[1]),
                        )
                    )
            except sa_exc.IntegrityError:
                pass  # a concurrent run recorded this window first: theirs is the row
            row = self._metrics_row(table, start, end)
        assert row is not None, "the window's row was just written"
        return row

    def previous_total(self, table: str, window_start: Any) -> int | None:
        """``total_rows`` of the table's latest window starting before ``window_start`` (None: none)."""
        with _unavailable_as_error(self.url):
            self._ensure_setup()
            return self._previous_total(table, as_utc(window_start))

    def _previous_total(self, table: str, start: datetime) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(metrics_table.c.total_rows)
                .where(metrics_table.c.ingestion_table == table, metrics_table.c.window_start < start)
                .order_by(metrics_table.c.window_start.desc(), metrics_table.c.metric_id.desc())
                .limit(1)
            ).scalar()

    def _metrics_row(self, table: str, start: datetime, end: datetime) -> MetricsRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(metrics_table).where(
                    metrics_table.c.ingestion_table == table,
                    metrics_table.c.window_start == start,
                    metrics_table.c.window_end == end,
                )
            ).first()
        return None if row is None else MetricsRow(**{**row._mapping, "alerted": bool(row.alerted)})

    # -- reads --

    def trades(self) -> pl.DataFrame:
        """``Enriched_Trades`` sorted by key, with the enriched frame's columns."""
        query = sa.select(trades_table).order_by(*(trades_table.c[k] for k in KEYS))
        with _unavailable_as_error(self.url):
            self._ensure_setup()
            with self.engine.connect() as conn:
                rows = [dict(row._mapping) for row in conn.execute(query)]
        stored = {**SCHEMA, "trade_time": pl.Datetime("us")}  # the database holds naive UTC
        frame = pl.DataFrame(rows, schema=stored)
        return frame.with_columns(pl.col("trade_time").dt.replace_time_zone("UTC"))

    def served_keys(self, keys: pl.DataFrame) -> pl.DataFrame:
        """Which of the trade ``keys`` (symbol, trade_id) ``Enriched_Trades`` holds. One query per symbol
        and :data:`CHUNK_ROWS` ids, each a primary-key lookup: the cost follows the keys asked for, never
        the table's size."""
        found: list[tuple[str, int]] = []
        t = trades_table.c
        query = sa.select(t.symbol, t.trade_id).where(
            t.symbol == sa.bindparam("symbol"), t.trade_id.in_(sa.bindparam("ids", expanding=True))
        )
        with _unavailable_as_error(self.url):
            self._ensure_setup()
            with self.engine.connect() as conn:
                for (symbol,), ids in keys.select(KEYS).unique().group_by("symbol"):
                    id_list = ids["trade_id"].to_list()
                    for i in range(0, len(id_list), CHUNK_ROWS):
                        chunk = id_list[i : i + CHUNK_ROWS]
                        found += conn.execute(query, {"symbol": symbol, "ids": chunk}).tuples().all()
        return pl.DataFrame(found, schema={"symbol": pl.String, "trade_id": pl.Int64}, orient="row")

    def metrics(self, table: str | None = None, *, since: Any = None) -> list[MetricsRow]:
        """The ``Ingestion_Metrics`` rows (of ``table``, when given; of windows ending at or after
        ``since``, when given) in the order they were recorded."""
        query = sa.select(metrics_table).order_by(metrics_table.c.metric_id)
        if table is not None:
            query = query.where(metrics_table.c.ingestion_table == table)
        if since is not None:
            query = query.where(metrics_table.c.window_end >= as_utc(since))
        with _unavailable_as_error(self.url):
            self._ensure_setup()
            with self.engine.connect() as conn:
                return [
                    MetricsRow(**{**row._mapping, "alerted": bool(row.alerted)})
                    for row in conn.execute(query)
                ]

    def trades_per_minute(self, hours: float) -> pl.DataFrame:
        """Trades per (symbol, minute of ``trade_time``) over the ``hours`` before the newest trade, with the
        price of each minute's last trade: columns symbol, minute (UTC), trades, last_price, sorted.

        The database aggregates, so a dashboard reads a few rows per minute however many trades there
        are; only the truncation to the minute is spelt per dialect (the window functions are standard).
        """
        t, dialect = trades_table.c, self.engine.dialect.name
        if dialect == "sqlite":
            minute = sa.func.strftime("%Y-%m-%d %H:%M:00", t.trade_time)
        elif dialect == "postgresql":
            minute = sa.func.date_trunc("minute", t.trade_time)
        elif dialect in ("mysql", "mariadb"):
            minute = sa.func.date_format(t.trade_time, "%Y-%m-%d %H:%i:00")
        else:
            raise ValueError(f"no truncation to the minute for the {dialect} dialect")
        timed = (
            sa.select(t.symbol, t.trade_id, t.trade_time, t.price, minute.label("minute"))
            .where(t.trade_time >= sa.bindparam("since", type_=Timestamp))
            .subquery("timed")
        )
        key = (timed.c.symbol, timed.c.minute)
        latest_first = (timed.c.trade_time.desc(), timed.c.trade_id.desc())
        ranked = sa.select(
            *key,
            sa.func.count().over(partition_by=key).label("trades"),
            timed.c.price.label("last_price"),
            sa.func.row_number().over(partition_by=key, order_by=latest_first).label("recency"),
        ).subquery("ranked")
        query = (
            sa.select(ranked.c.symbol, ranked.c.minute, ranked.c.trades, ranked.c.last_price)
            .where(ranked.c.recency == 1)
            .order_by(ranked.c.symbol, ranked.c.minute)
        )
        rows = []
        with _unavailable_as_error(self.url):
            self._ensure_setup()
            with self.engine.connect() as conn:
                newest = conn.execute(sa.select(sa.func.max(t.trade_time))).scalar()
                if newest is not None:
                    since = as_utc(newest) - timedelta(hours=hours)
                    # SQLite and MySQL format the minute as text, PostgreSQL keeps a timestamp
                    rows = [(s, as_utc(m), n, p) for s, m, n, p in conn.execute(query, {"since": since})]
        schema = {
            "symbol": pl.String,
            "minute": pl.Datetime("us"),
            "trades": pl.Int64,
            "last_price": pl.Float64,
        }
        frame = pl.DataFrame(rows, schema=schema, orient="row")
        return frame.with_columns(pl.col("minute").dt.replace_time_zone("UTC"))
