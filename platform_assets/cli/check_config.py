"""Check the table list against the source database: ``python -m platform_assets.cli.check_config``.

Run it after editing ``tables.yaml`` or pointing ``PLATFORM_SOURCE_URL`` elsewhere, before any run: it
prints one line per table (``ok ...`` or ``FAIL <table>: <why>``) and exits 0 when every table is usable,
1 when one is not (or the source cannot be reached), 2 when a setting or the table list itself is invalid.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from platform_assets.core.medallion.check import check_tables, first_line
from platform_assets.core.medallion.config import ConfigError, load_tables
from platform_assets.core.sql.engines import engine_for, redact
from platform_assets.settings import SettingsError, load_settings


def _missing_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL that does not exist: connecting would create it empty, and every table
    would then be reported missing instead of the one real problem."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_assets.cli.check_config",
        description="Check every table of PLATFORM_TABLES_FILE against the source database PLATFORM_SOURCE_URL.",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="check the settings and the table list only, without the source (make dev and make demo "
        "run this first, so a bad setting is one line, not a failed code location)",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        tables = load_tables(settings.tables_file)
    except (SettingsError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.offline:
        return 0
    url = settings.source_url
    missing = _missing_sqlite_file(url)
    if missing is not None:
        print(
            f"error: source database {missing} does not exist (make demo builds the sample there; "
            "or set PLATFORM_SOURCE_URL)",
            file=sys.stderr,
        )
        return 1
    try:
        with engine_for(url).connect():
            pass
    except sa_exc.DBAPIError as exc:
        print(
            f"error: cannot connect to the source database {redact(url)}: {first_line(exc.orig)}",
            file=sys.stderr,
        )
        return 1
    print(f"checking {len(tables)} table(s) of {settings.tables_file} against {redact(url)}")
    results = check_tables(engine_for(url), tables)
    for result in results:
        print(result.line)
    failed = sum(not r.ok for r in results)
    if failed:
        print(f"{failed} of {len(results)} table(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
