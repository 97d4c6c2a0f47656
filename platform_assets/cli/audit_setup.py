"""Create or migrate the audit database: ``python -m platform_assets.cli.audit_setup [--url URL]``.

Run it once per environment before the first job (and after upgrading the platform); jobs also run the
same idempotent setup on their first audit write, so this is the place to see it fail loudly instead.
The URL defaults to ``PLATFORM_AUDIT_URL`` (or the SQLite file under the data directory); prefer the
variable to ``--url`` for a URL with a password, which would otherwise show in the process list.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from platform_assets.core.audit import TABLE_NAMES, AuditStore, AuditUnavailable
from platform_assets.core.sql.engines import redact
from platform_assets.settings import SettingsError, database_url, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_assets.cli.audit_setup",
        description="Create the audit tables and migrate them to the current schema version.",
    )
    parser.add_argument("--url", help="SQLAlchemy URL of the audit database (default: PLATFORM_AUDIT_URL)")
    args = parser.parse_args(argv)
    try:
        # --url is checked like the variable, so a typo gets one line instead of SQLAlchemy's traceback
        url = database_url(args.url, "--url") if args.url else load_settings().audit_url
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = AuditStore(url)
    try:
        version = store.setup()
        drift = store.drift()
    except AuditUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"audit schema version {version} at {redact(url)}")
    for name in TABLE_NAMES:
        print(f"  {name}" + (f": DRIFT: {'; '.join(drift[name])}" if name in drift else ""))
    if drift:
        print(f"error: {len(drift)} audit table(s) differ from their declaration", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
