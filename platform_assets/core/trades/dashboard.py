"""The trade dashboard: one static HTML page over the serving database, regenerated after every batch.

A static page needs nothing but a folder and a browser: no server to run and no internet (plotly.js is
written next to the page instead of being loaded from a CDN). The page reloads itself every few seconds,
so a browser left open shows each batch once the page has been regenerated. The headline numbers and the
metrics table are plain HTML text with stable ids, readable without running a script; each chart is drawn
by plotly.js from its figure JSON, embedded in the page next to the chart's ``div``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl
import sqlalchemy as sa
from plotly.offline import get_plotlyjs, get_plotlyjs_version

from platform_assets.core.errors import ServingUnavailable
from platform_assets.core.lake.locations import write_atomically
from platform_assets.core.sql.engines import unavailable_as, utc_now
from platform_assets.core.trades.serving import MetricsRow, ServingStore, trades_table

# The metrics history grows by a row per window for ever: the page shows the newest windows only.
METRICS_ROWS = 200
PAGE = "index.html"


@dataclass(frozen=True)
class Headline:
    """The numbers at the top of the page, over all of ``Enriched_Trades`` (not only the charted hours)."""

    trades: int
    symbols: int
    last_trade: datetime | None
    last_batch: int | None


@dataclass(frozen=True)
class StreamHealth:
    """One stream's line of the health section, as its caller measured it (None: not known).

    ``reconciliation``: the last reconciliation kept for it (a feed window's for trades, the last
    micro-batch's otherwise), a mapping with at least ``ok`` and ``difference``. ``consumer_lag``: messages
    in the topic not landed yet after the last landing (high watermarks less the landed position).
    """

    name: str
    last_batch: int | None = None
    last_batch_at: datetime | None = None
    consumer_lag: int | None = None
    reconciliation: Mapping[str, Any] | None = None
    held: int | None = None
    dead_letters: int | None = None
    volume: int | None = None
    threshold: int | None = None


def render_dashboard(
    store: ServingStore,
    folder: Path,
    *,
    refresh_seconds: int = 10,
    hours: float = 6.0,
    streams: Sequence[StreamHealth] = (),
) -> Path:
    """Write the dashboard of ``store`` to ``folder/index.html`` and return its path.

    Only the ``hours`` of trades before the newest one are charted, aggregated per minute by the database,
    so the page costs the same however long the stream has run. The page replaces the previous one in a
    single rename: a browser reloading it never reads half a page.
    """
    folder = Path(folder)
    script = _write_plotlyjs(folder)
    per_minute = store.trades_per_minute(hours)
    headline = _headline(store)
    metrics = store.metrics()[-METRICS_ROWS:]
    page = _page(headline, per_minute, metrics, script, refresh_seconds, hours, streams)
    path = folder / PAGE
    write_atomically(path, lambda handle: handle.write(page.encode()))
    return path


def _write_plotlyjs(folder: Path) -> str:
    """The name of the plotly.js bundle next to the page, written once: the name carries its version, so
    an upgrade of plotly writes a new bundle instead of mixing one with figures of another version."""
    name = f"plotly-{get_plotlyjs_version()}.min.js"
    if not (folder / name).exists():
        write_atomically(folder / name, lambda handle: handle.write(get_plotlyjs().encode()))
    return name


def _headline(store: ServingStore) -> Headline:
    t = trades_table.c
    query = sa.select(
        sa.func.count(),
        sa.func.count(sa.distinct(t.symbol)),
        sa.func.max(t.trade_time),
        sa.func.max(t.micro_batch_id),
    )
    with unavailable_as(ServingUnavailable, "serving database", store.url), store.engine.connect() as conn:
        trades, symbols, last_trade, last_batch = conn.execute(query).one()
    return Headline(int(trades), int(symbols), last_trade, last_batch)


def as_naive_utc(value: datetime) -> datetime:
    """``value`` as naive UTC (the serving database's times are naive UTC, the Delta log's aware)."""
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def _when(value: datetime | None) -> str:
    return "—" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


def _minutes(frame: pl.DataFrame) -> list[str]:
    """Minutes as naive UTC text: plotly draws such text as given, whatever the browser's time zone."""
    return frame["minute"].dt.strftime("%Y-%m-%d %H:%M:%S").to_list()


def _layout(figure: go.Figure, title: str, yaxis: str, **more) -> go.Figure:
    return figure.update_layout(
        title=title,
        template="plotly_white",
        height=340,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.15},
        xaxis_title="UTC",
        yaxis_title=yaxis,
        **more,
    )


def _trades_figure(per_minute: pl.DataFrame) -> go.Figure:
    figure = go.Figure()
    for (symbol,), rows in per_minute.group_by("symbol", maintain_order=True):
        figure.add_bar(x=_minutes(rows), y=rows["trades"].to_list(), name=symbol)
    return _layout(figure, "Trades per minute", "trades", barmode="stack")


def _price_figure(per_minute: pl.DataFrame) -> go.Figure:
    """Prices on a log axis: symbols quoted in BTC and in USDT differ by six orders of magnitude."""
    figure = go.Figure()
    for (symbol,), rows in per_minute.group_by("symbol", maintain_order=True):
        figure.add_scatter(
            x=_minutes(rows), y=rows["last_price"].to_list(), name=symbol, mode="lines+markers"
        )
    return _layout(figure, "Last price per minute", "price (log scale)", yaxis_type="log")


def _metrics_figure(metrics: list[MetricsRow]) -> go.Figure:
    """A bar per window, as wide as the window, and the threshold as a step line over the windows."""
    figure = go.Figure()
    for table in dict.fromkeys(row.ingestion_table for row in metrics):
        rows = [row for row in metrics if row.ingestion_table == table]
        starts = [f"{row.window_start:%Y-%m-%d %H:%M:%S}" for row in rows]
        figure.add_bar(
            x=starts,
            y=[row.delta_rows for row in rows],
            width=[(row.window_end - row.window_start).total_seconds() * 1000 for row in rows],
            offset=0,
            name=f"{table} new rows",
            marker={"color": ["#d62728" if row.alerted else "#1f77b4" for row in rows], "line": {"width": 1}},
        )
        figure.add_scatter(
            x=[*starts, f"{rows[-1].window_end:%Y-%m-%d %H:%M:%S}"],
            y=[*(row.threshold for row in rows), rows[-1].threshold],
            name=f"{table} threshold",
            mode="lines",
            line={"shape": "hv", "dash": "dash", "color": "#ff7f0e"},
        )
    return _layout(figure, "New rows per window (red: below the threshold)", "rows")


def _chart(chart_id: str, figure: go.Figure) -> str:
    # plotly's JSON escapes "<", ">" and "/", so data cannot close the script element
    return (
        f'<div id="{chart_id}" class="chart"></div>\n'
        f'<script type="application/json" class="figure" data-chart="{chart_id}">{figure.to_json()}</script>'
    )


def _metrics_table(metrics: list[MetricsRow]) -> str:
    head = "".join(
        f"<th>{name}</th>"
        for name in ("Window start", "Window end", "Table", "Total rows", "New rows", "Threshold", "Status")
    )
    body = []
    for row in reversed(metrics):  # newest first
        status = "ALERT: below threshold" if row.alerted else "ok"
        cells = (_when(row.window_start), _when(row.window_end), row.ingestion_table, row.total_rows)
        cells += (row.delta_rows, row.threshold, status)
        body.append(
            f'<tr class="{"alerted" if row.alerted else "ok"}" data-metric-id="{row.metric_id}">'
            + "".join(f"<td>{escape(str(cell))}</td>" for cell in cells)
            + "</tr>"
        )
    return f'<table id="metrics-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _slug(name: str) -> str:
    """A stream's name as it appears in element ids: lower case, ``-`` for anything else."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _age(seconds: float) -> str:
    """A duration as people read it: 42 s, 7 min 5 s, 3 h 12 min, 2 d 4 h."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def _reconciled(values: Mapping[str, Any] | None) -> tuple[str, str]:
    """The reconciliation's status and difference as shown."""
    if not values:
        return "—", "—"
    return ("ok" if values.get("ok") else "FAILED"), _number(int(values.get("difference") or 0))


def _health_section(streams: Sequence[StreamHealth], now: datetime) -> str:
    """One row per stream; every cell carries a stable id ``stream-<name>-<what>`` (and the freshness its
    age in seconds, ``data-seconds``), so a test or a script reads the numbers without running the page."""
    head = "".join(
        f"<th>{name}</th>"
        for name in (
            "Stream",
            "Last micro-batch",
            "Landed at",
            "Freshness",
            "Consumer lag",
            "Reconciliation",
            "Difference",
            "Held",
            "Dead letters",
            "Last window volume",
            "Threshold",
        )  # fmt: skip
    )
    body = []
    for stream in streams:
        slug = _slug(stream.name)
        status, difference = _reconciled(stream.reconciliation)
        if stream.last_batch_at is None:
            fresh, seconds = "—", ""
        else:
            age = (as_naive_utc(now) - as_naive_utc(stream.last_batch_at)).total_seconds()
            fresh, seconds = f"{_age(age)} ago", f' data-seconds="{max(0, int(age))}"'
        cells = (
            ("last-batch", _number(stream.last_batch), ""),
            ("last-batch-time", _when(stream.last_batch_at), ""),
            ("freshness", fresh, seconds),
            ("consumer-lag", _number(stream.consumer_lag), ""),
            ("reconciliation", status, ""),
            ("reconciliation-difference", difference, ""),
            ("held", _number(stream.held), ""),
            ("dead-letters", _number(stream.dead_letters), ""),
            ("volume", _number(stream.volume), ""),
            ("threshold", _number(stream.threshold), ""),
        )
        failed = status == "FAILED" or (
            stream.volume is not None and stream.threshold is not None and stream.volume < stream.threshold
        )
        body.append(
            f'<tr class="{"alerted" if failed else "ok"}" id="stream-{slug}"><td>{escape(stream.name)}</td>'
            + "".join(f'<td id="stream-{slug}-{key}"{more}>{escape(text)}</td>' for key, text, more in cells)
            + "</tr>"
        )
    return (
        "<h2>Streams</h2>\n"
        f'<table id="stream-health"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { margin: 0 0 .5em; font-size: 1.6em; }
.headline { display: flex; gap: 1em; flex-wrap: wrap; margin-bottom: 1em; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .6em 1em; min-width: 9em; }
.card .label { font-size: .8em; color: #666; }
.card .value { font-size: 1.2em; font-weight: 600; }
.chart { background: #fff; border: 1px solid #ddd; border-radius: 6px; margin-bottom: 1em; }
.empty { padding: 1em; background: #fff; border: 1px dashed #bbb; border-radius: 6px; }
table { border-collapse: collapse; background: #fff; font-size: .85em; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: right; }
tr.alerted td { background: #fde2e2; color: #a00; font-weight: 600; }
"""

# Draws every chart from its figure JSON; runs after plotly.js has loaded.
DRAW = """
for (const data of document.querySelectorAll("script.figure")) {
  const figure = JSON.parse(data.textContent);
  Plotly.newPlot(data.dataset.chart, figure.data, figure.layout, {displaylogo: false, responsive: true});
}
"""


def _page(
    headline: Headline,
    per_minute: pl.DataFrame,
    metrics: list[MetricsRow],
    script: str,
    refresh_seconds: int,
    hours: float,
    streams: Sequence[StreamHealth] = (),
) -> str:
    cards = (
        ("total-trades", "Enriched trades", f"{headline.trades:,}"),
        ("symbol-count", "Symbols", str(headline.symbols)),
        ("last-trade-time", "Last trade", _when(headline.last_trade)),
        (
            "last-batch-id",
            "Last micro-batch",
            "—" if headline.last_batch is None else str(headline.last_batch),
        ),
        ("generated-at", "Generated", _when(utc_now())),
    )
    parts = ['<div class="headline">']
    parts += [
        f'<div class="card"><div class="label">{label}</div><div class="value" id="{key}">{escape(value)}</div></div>'
        for key, label, value in cards
    ]
    parts.append("</div>")
    if streams:
        parts.append(_health_section(streams, utc_now()))
    if per_minute.is_empty():
        parts.append('<p id="no-trades" class="empty">No trades yet.</p>')
    else:
        parts.append(f"<h2>Trades of the last {hours:g} h before the newest trade</h2>")
        parts.append(_chart("trades-per-minute", _trades_figure(per_minute)))
        parts.append(_chart("price-per-minute", _price_figure(per_minute)))
    parts.append("<h2>Ingestion metrics</h2>")
    if metrics:
        parts.append(_chart("ingestion-metrics", _metrics_figure(metrics)))
        parts.append(_metrics_table(metrics))
    else:
        parts.append('<p id="no-metrics" class="empty">No ingestion metrics yet.</p>')
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{int(refresh_seconds)}">
<title>Trades dashboard</title>
<style>{STYLE}</style>
<script src="{escape(script)}"></script>
</head>
<body>
<h1>Trades dashboard</h1>
{chr(10).join(parts)}
<script>{DRAW}</script>
</body>
</html>
"""
