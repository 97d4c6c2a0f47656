"""``python -m platform_devkit.sample init|advance|customers|days``: build, change or describe the sample
source database.

The URL defaults to the platform's ``source_url`` setting, so the commands act on the database the
pipeline reads. ``init`` builds the days before ``--end`` (default today in UTC: the last day is yesterday);
``advance`` adds the day after the last one stored; ``days`` prints the first and the last day.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import date

from platform_devkit.sample.build import init_timed
from platform_devkit.sample.days import DEFAULT_DAYS, stored_days
from platform_devkit.sample.simulate import advance, set_customer_count

PROG = "python -m platform_devkit.sample"
FALLBACK_URL = "sqlite:///data/source.db"


def default_url() -> str:
    """The platform's configured source URL, or the local SQLite file when the settings cannot be loaded."""
    try:
        from platform_assets.settings import load_settings
    except ImportError:
        return FALLBACK_URL
    return load_settings().source_url


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Build or change the deterministic sample source."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=None, help="SQLAlchemy URL (default: settings source_url)")
        p.add_argument("--schema", default=None, help="schema / database to use")
        p.add_argument("--seed", type=int, default=42)

    p_init = sub.add_parser("init", help="drop, recreate and fill the sample tables")
    common(p_init)
    p_init.add_argument("--scale", type=int, default=1)
    p_init.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"days of streams (default {DEFAULT_DAYS})"
    )
    p_init.add_argument(
        "--end",
        type=date.fromisoformat,
        default=None,
        help="the day after the last day of streams, YYYY-MM-DD (default: today in UTC, so the last day is "
        "yesterday)",
    )
    p_init.add_argument("--customers", type=int, default=None)
    p_init.add_argument(
        "--if-missing", action="store_true", help="do nothing when the source already has the sample tables"
    )
    p_adv = sub.add_parser("advance", help="simulate the next day of changes")
    common(p_adv)
    p_cust = sub.add_parser("customers", help="replace Customers with exactly N rows")
    p_cust.add_argument("n", type=int)
    common(p_cust)
    p_days = sub.add_parser("days", help="print the first and the last day of FactStream")
    p_days.add_argument("--url", default=None, help="SQLAlchemy URL (default: settings source_url)")
    p_days.add_argument("--schema", default=None, help="schema / database to use")
    return parser


def _has_sample(url: str, schema: str | None) -> bool:
    import sqlalchemy as sa

    from platform_assets.core.sql.engines import engine_for

    return sa.inspect(engine_for(url)).has_table("FactStream", schema=schema)


def _print_init_report(report: dict[str, tuple[int, float]], seconds: float) -> None:
    for name, (rows, secs) in report.items():
        rate = rows / secs if secs > 0 else float("inf")
        print(f"{name:<11} {rows:>12,} rows  {secs:8.2f} s  {rate:>12,.0f} rows/s")
    print(f"{'total':<11} {sum(r for r, _ in report.values()):>12,} rows  {seconds:8.2f} s")


def _print_days(url: str, schema: str | None) -> None:
    days = stored_days(url, schema)
    if days is None:
        raise RuntimeError("FactStream is missing or empty: run init first")
    print(f"{'days':<11} {days[0].isoformat()} … {days[1].isoformat()}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    url = args.url or default_url()
    try:
        if args.command == "init" and args.if_missing and _has_sample(url, args.schema):
            days = stored_days(url, args.schema)
            span = f" (days {days[0].isoformat()} … {days[1].isoformat()})" if days else ""
            print(f"source: the sample tables exist, left as they are{span}")
        elif args.command == "init":
            t0 = time.perf_counter()
            report = init_timed(
                url,
                scale=args.scale,
                seed=args.seed,
                schema=args.schema,
                end=args.end,
                days=args.days,
                customers=args.customers,
            )
            _print_init_report(report, time.perf_counter() - t0)
            _print_days(url, args.schema)
        elif args.command == "days":
            _print_days(url, args.schema)
        elif args.command == "advance":
            out = advance(url, seed=args.seed, schema=args.schema)
            for key, value in out.items():
                print(f"{key:<16} {value:>12,}" if "day" not in key else f"{key:<16} {value:>12}")
        else:
            set_customer_count(url, args.n, seed=args.seed, schema=args.schema)
            print(f"{'Customers':<11} {args.n:>12,} rows")
    except (ValueError, RuntimeError) as exc:  # bad arguments or an uninitialised database: no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
