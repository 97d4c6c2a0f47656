"""Check the table list against the source database: ``python -m platform_assets.cli.check_config``.

Run it after editing ``tables.yaml`` or pointing ``PLATFORM_SOURCE_URL`` elsewhere, before any run: it
checks every medallion instance declared in ``defs/`` (the default one, the settings' table list, and any
further source database) and prints one line per table (``ok ...`` or ``FAIL <table>: <why>``) and exits 0 when every table is usable,
1 when one is not (or the source cannot be reached), 2 when a setting or the table list itself is invalid.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from platform_assets.components.medallion import DEFS_FOLDER, instances_in
from platform_assets.core.errors import ConfigurationError
from platform_assets.core.medallion.check import check_tables, first_line
from platform_assets.core.medallion.config import TableConfig
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


def main(argv: Sequence[str] | None = None, defs_folder: Path = DEFS_FOLDER) -> int:
    """``defs_folder``: where the medallion instances are declared (the package's ``defs/``)."""
    parser = argparse.ArgumentParser(
        prog="python -m platform_assets.cli.check_config",
        description="Check every table of PLATFORM_TABLES_FILE against the source database PLATFORM_SOURCE_URL "
        "(and the tables of every further medallion instance declared in defs/, against its own source).",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="check the settings and the table lists only, without the sources (make dev and make demo "
        "run this first, so a bad setting is one line, not a failed code location)",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        instances = instances_in(settings, defs_folder)
    except (SettingsError, ConfigurationError) as exc:  # a ConfigError of a table list among them
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.offline:
        return 0
    statuses = []
    for instance in instances:
        try:
            url = instance.source_url(settings)
        except ConfigurationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            statuses.append(1)
            continue
        what = f"{settings.tables_file}" if instance.is_default else f"medallion {instance.name!r}"
        statuses.append(check_source(url, instance.tables, what))
    return max(statuses, default=0)


def check_source(url: str, tables: Sequence[TableConfig], what: str) -> int:
    """Check ``tables`` (``what``: where they are declared) against the source at ``url``: 0 when every
    table is usable, 1 otherwise (or when the source cannot be reached)."""
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
    print(f"checking {len(tables)} table(s) of {what} against {redact(url)}")
    results = check_tables(engine_for(url), list(tables))
    for result in results:
        print(result.line)
    failed = sum(not r.ok for r in results)
    if failed:
        print(f"{failed} of {len(results)} table(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
