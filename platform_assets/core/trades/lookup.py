"""The trade symbol lookup: fetched from a REST API, flattened to one row per tradable symbol, landed as Parquet.

Beside it, :data:`STATUS_FILE_NAME` lists the symbols the API lists but not as TRADING (symbol and status),
so enrichment can tell a symbol that is not tradable (its trades are filtered) from one the lookup does not
know (its trades are held until a later lookup knows it).

The API answers with the exchange-info shape ``{"symbols": [{"symbol", "status", "baseAsset",
"quoteAsset", "filters": [{"filterType": ...}, ...], ...}]}``. Enrichment only needs scalar columns, so
the nested filters are unrolled into typed columns (:data:`FILTER_COLUMNS`) and everything else nested
(order types, permissions...) is left out: no JSON reaches the table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from upath import UPath

from platform_assets.core.errors import LookupApiError
from platform_assets.core.lake.locations import is_url, write_atomically
from platform_assets.core.redaction import redact_text
from platform_assets.core.rest.countries import as_number, excerpt, session_with_retries

FILE_NAME = "trade_symbols.parquet"
STATUS_FILE_NAME = "trade_symbols_not_trading.parquet"
TRADING = "TRADING"
STATUS_SCHEMA = pl.Schema({"symbol": pl.String, "status": pl.String})

# (filterType, field) -> column. Every column exists in every file (null where a symbol lacks the
# filter) so the Parquet schema does not change with the symbols the exchange happens to list.
# MIN_NOTIONAL is the older spelling of NOTIONAL's minimum: whichever a symbol carries fills min_notional.
FILTER_COLUMNS: dict[tuple[str, str], str] = {
    ("PRICE_FILTER", "minPrice"): "min_price",
    ("PRICE_FILTER", "maxPrice"): "max_price",
    ("PRICE_FILTER", "tickSize"): "tick_size",
    ("LOT_SIZE", "minQty"): "min_qty",
    ("LOT_SIZE", "maxQty"): "max_qty",
    ("LOT_SIZE", "stepSize"): "step_size",
    ("MIN_NOTIONAL", "minNotional"): "min_notional",
    ("NOTIONAL", "minNotional"): "min_notional",
    ("NOTIONAL", "maxNotional"): "max_notional",
}

SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "status": pl.String,
        "base_asset": pl.String,
        "quote_asset": pl.String,
        "base_asset_precision": pl.Int64,
        "quote_asset_precision": pl.Int64,
        **{column: pl.Float64 for column in dict.fromkeys(FILTER_COLUMNS.values())},
    }
)


def fetch_lookup(url: str, *, timeout: float = 10, attempts: int = 4) -> list[dict]:
    """GET ``url`` and return its ``symbols`` list.

    Connection errors, timeouts and HTTP 500/502/503/504 are retried with exponential backoff (up to
    ``attempts`` tries, see :func:`platform_assets.core.rest.countries.session_with_retries`). A 4xx, a 5xx
    once retries are spent, and a body that is not ``{"symbols": [{"symbol": ..., "status": ...}, ...]}``
    raise :class:`LookupApiError` with an excerpt of the body. A network failure after the last try
    propagates as ``requests.RequestException``.
    """
    shown = redact_text(url)  # a key in the query string must not reach logs
    with session_with_retries(attempts) as session:
        response = session.get(url, timeout=timeout)
    if response.status_code >= 400:
        raise LookupApiError(
            shown, f"HTTP {response.status_code}: {excerpt(response.content)}", response.status_code
        )
    return parse_lookup(response.content, shown)


def parse_lookup(body: str | bytes, url: str = "response") -> list[dict]:
    """The ``symbols`` of a lookup response body, or :class:`LookupApiError` naming what is wrong."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LookupApiError(
            url, f"malformed response (not JSON: {exc.__class__.__name__}): {excerpt(body)}"
        ) from None
    if not isinstance(document, Mapping) or not isinstance(document.get("symbols"), list):
        raise LookupApiError(
            url, f'malformed response (expected an object with a "symbols" list): {excerpt(body)}'
        )
    for i, entry in enumerate(document["symbols"]):
        if not (
            isinstance(entry, Mapping)
            and isinstance(entry.get("symbol"), str)
            and entry["symbol"]
            and isinstance(entry.get("status"), str)
        ):
            raise LookupApiError(
                url, f'malformed response (symbol {i} has no "symbol" and "status" strings): {excerpt(body)}'
            )
    return document["symbols"]


def _filters(entry: Mapping[str, Any]) -> dict[str, float | None]:
    values: dict[str, float | None] = dict.fromkeys(FILTER_COLUMNS.values())
    for item in entry.get("filters") or []:
        if not isinstance(item, Mapping):
            continue
        for (kind, field), column in FILTER_COLUMNS.items():
            if item.get("filterType") == kind and values[column] is None:
                values[column] = as_number(item.get(field), float)
    return values


def flatten(symbols: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """One row per TRADING symbol, sorted by symbol, with the columns of :data:`SCHEMA`.

    Filter values (decimal strings on the wire) become Float64; a symbol listed twice is an error,
    since it would double every one of its trades in the join.
    """
    rows = [
        {
            "symbol": entry.get("symbol"),
            "status": entry.get("status"),
            "base_asset": entry.get("baseAsset"),
            "quote_asset": entry.get("quoteAsset"),
            "base_asset_precision": as_number(entry.get("baseAssetPrecision"), int),
            "quote_asset_precision": as_number(entry.get("quoteAssetPrecision"), int),
            **_filters(entry),
        }
        for entry in symbols
        if entry.get("status") == TRADING
    ]
    frame = pl.DataFrame(rows, schema=SCHEMA).sort("symbol")
    repeated = frame.filter(pl.col("symbol").is_duplicated())["symbol"].unique().sort().to_list()
    if repeated:
        raise ValueError(f"the lookup lists these TRADING symbols more than once: {', '.join(repeated)}")
    return frame


def _folder(folder: UPath | Path | str) -> UPath | Path:
    """A lake location as given, or a local folder named by a string."""
    return folder if isinstance(folder, UPath | Path) else Path(folder)


def write_lookup(frame: pl.DataFrame, folder: UPath | Path | str) -> UPath | Path:
    """Write ``frame`` to ``<folder>/trade_symbols.parquet`` atomically; the file's path.

    Readers (the enrichment of a running micro-batch) see the previous lookup or the new one, never a
    half-written file: the data goes to a hidden temp file first and is then published under its name.
    """
    final = _folder(folder) / FILE_NAME
    write_atomically(final, frame.write_parquet)
    return final


def not_trading(symbols: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """The listed symbols whose status is not TRADING (columns symbol, status), sorted by symbol; a symbol
    listed twice keeps its first status."""
    rows = [
        {"symbol": entry.get("symbol"), "status": entry.get("status")}
        for entry in symbols
        if entry.get("status") != TRADING
    ]
    return (
        pl.DataFrame(rows, schema=STATUS_SCHEMA)
        .unique("symbol", keep="first", maintain_order=True)
        .sort("symbol")
    )


def write_not_trading(frame: pl.DataFrame, folder: UPath | Path | str) -> UPath | Path:
    """Write ``frame`` (:func:`not_trading`) to ``<folder>/trade_symbols_not_trading.parquet`` atomically."""
    final = _folder(folder) / STATUS_FILE_NAME
    write_atomically(final, frame.write_parquet)
    return final


def read_not_trading(folder: Path | Any) -> pl.DataFrame | None:
    """The listed symbols that are not TRADING, or None when the lookup was written without that list (by
    an older version): then every symbol missing from the lookup counts as unknown, and its trades are held."""
    path = folder / STATUS_FILE_NAME
    if not path.exists():
        return None
    return pl.read_parquet(str(path) if is_url(str(path)) else Path(str(path))).cast(STATUS_SCHEMA)


def publish(
    symbols: Sequence[Mapping[str, Any]], folder: UPath | Path | str
) -> tuple[pl.DataFrame, UPath | Path]:
    """Flatten a pulled lookup and write both its files to ``folder``: the TRADING symbols and, beside
    them, the listed symbols that are not tradable (enrichment filters their trades and holds the trades
    of symbols not listed at all). The tradable frame and its file."""
    frame = flatten(symbols)
    write_not_trading(not_trading(symbols), folder)
    return frame, write_lookup(frame, folder)
