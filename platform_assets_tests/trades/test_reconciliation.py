"""The trade stream's reconciliation through Dagster: a feed window with a dead letter, resent trades, held
trades and trades of a symbol in BREAK reconciles (offsets = bronze rows + dead letters; tradable =
served + held over distinct trades), per micro-batch on bronze and per window on silver; a bronze row
deleted before silver runs fails the check; the dashboard's stream section shows the numbers."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
from deltalake import DeltaTable

from platform_assets.core.audit import AuditStore
from platform_assets.core.trades.reconcile import TradeTables, reconcile_window
from platform_assets.defs.monitoring.audit import audit_tick
from platform_assets.defs.trades.assets import BRONZE_KEY, SILVER_KEY
from platform_assets.lib.resources import build_resources
from platform_assets.lib.tags import MICRO_BATCH_TAG
from platform_assets_tests.trades import test_stream_assets
from platform_assets_tests.trades.test_stream_assets import Stream
from platform_devkit.loans import LoanStreamDriver, make_events, produce
from platform_devkit.trades_lookup_standin import IN_BREAK
from platform_devkit.trades_standin import TradesStandin, make_trades

# the stream tests' broker, lookup stand-in and settings
broker = test_stream_assets.broker
lookup = test_stream_assets.lookup
stream = test_stream_assets.stream

# BNBUSDT is not in the stand-in lookup (held); LUNAUSDT is listed in BREAK (filtered)
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", IN_BREAK)


def window_trades() -> list[dict]:
    trades = make_trades(80, SYMBOLS)
    trades[9]["p"] = "0"  # an ETHUSDT trade priced 0: the feed produces it, landing dead-letters it
    return trades


def checks(results, name: str = "reconciliation") -> list:
    return [c for r in results for c in r.get_asset_check_evaluations() if c.check_name == name]


def numbers(evaluation) -> dict[str, int]:
    return {k: v.value for k, v in evaluation.metadata.items() if isinstance(v.value, int)}


def cell(page: str, element_id: str) -> str:
    found = re.search(rf'id="{re.escape(element_id)}"[^>]*>([^<]*)<', page)
    assert found, f"no element {element_id}"
    return found.group(1)


def test_a_window_with_dead_letters_resends_held_and_filtered_trades_reconciles(stream, instance):
    runner = Stream(stream, instance)
    # the connection drops after 40 trades and the next one resends the last 3 (ETH, BNB and LUNA trades)
    with TradesStandin(window_trades(), drop_after=40, resend=3) as standin:
        assert runner.feed(standin, max_trades=83).success
    runs = runner.drain()
    assert all(r.success for r in runs)

    bronze_checks = [c for c in checks(runs) if c.asset_key == BRONZE_KEY]
    assert len(bronze_checks) == 3 and all(c.passed for c in bronze_checks)  # 83 messages, 40 per batch
    per_batch = [numbers(c) for c in bronze_checks]
    assert [n["offsets_in_range"] for n in per_batch] == [40, 40, 3]
    assert sum(n["bronze_rows"] for n in per_batch) == 82
    assert sum(n["dead_lettered"] for n in per_batch) == 1
    assert all(n["difference"] == 0 for n in per_batch)

    (window,) = [
        c for c in checks(runs) if c.asset_key == SILVER_KEY and c.metadata["scope"].value == "window"
    ]
    assert window.passed
    got = numbers(window)
    assert {k: got[k] for k in got if k not in ("first_batch", "last_batch")} == {
        "offsets_in_range": 83,
        "bronze_rows": 82,
        "dead_lettered": 1,
        "silver_quarantined": 0,
        "resent_duplicates": 3,  # 79 distinct trades
        "filtered": 20,  # LUNAUSDT
        "tradable": 59,
        "served": 39,  # 20 BTCUSDT + 19 ETHUSDT
        "held": 20,  # BNBUSDT
        "landing_difference": 0,
        "trades_difference": 0,
        "difference": 0,
    }
    assert (got["first_batch"], got["last_batch"]) == (0, 2)
    served = runner.serving().trades()
    assert served.height == 39 and set(served["symbol"]) == {"BTCUSDT", "ETHUSDT"}
    (metrics,) = runner.serving().metrics()
    assert (metrics.delta_rows, metrics.dead_lettered_rows, metrics.held_rows) == (
        39,
        1,
        21,
    )  # held: messages, one resent

    landings = [m.metadata for r in runs for m in r.asset_materializations_for_node("bronze__trades")]
    assert landings[-1]["consumer_lag"].value == 0 and landings[0]["consumer_lag"].value == 43

    html = dashboard_page(runs[-1])
    assert cell(html, "stream-trades-last-batch") == "2"
    assert cell(html, "stream-trades-consumer-lag") == "0"
    assert cell(html, "stream-trades-reconciliation") == "ok"
    assert cell(html, "stream-trades-reconciliation-difference") == "0"
    assert cell(html, "stream-trades-held") == "21"  # messages, as the held_trades check counts them
    assert cell(html, "stream-trades-dead-letters") == "1"
    assert cell(html, "stream-trades-volume") == "39"
    assert cell(html, "stream-trades-threshold") == "10"
    assert cell(html, "stream-trades-freshness").endswith(" s ago")
    assert 'id="stream-loan-applications"' not in html  # the loan stream never landed here


def dashboard_page(result) -> str:
    silver = result.asset_materializations_for_node("silver__trades_enriched")[0].metadata
    return Path(silver["dashboard"].value).read_text()


def test_a_bronze_row_deleted_before_enrichment_fails_the_check(stream, instance):
    runner = Stream(stream, instance)
    with TradesStandin(make_trades(30, SYMBOLS[:2])) as standin:
        feed = runner.feed(standin, max_trades=30)
    assert feed.success
    ends = feed.asset_materializations_for_node("kafka__trades")[0].metadata["end_offsets"].value
    assert isinstance(ends, dict)
    _, requests = runner.tick()
    job = runner.defs.resolve_job_def(runner.job_name)
    landed = job.execute_in_process(
        run_config=requests[0].run_config, instance=instance, asset_selection=[BRONZE_KEY]
    )
    assert all(c.passed for c in checks([landed]))
    bronze = runner.path("bronze", "trades")
    DeltaTable(bronze).delete("kafka_partition = 0 AND kafka_offset = 1")

    enriched = job.execute_in_process(instance=instance, asset_selection=[SILVER_KEY], raise_on_error=False)
    (window,) = checks([enriched])
    assert not window.passed and window.metadata["scope"].value == "window"
    got = numbers(window)
    assert (got["offsets_in_range"], got["bronze_rows"], got["dead_lettered"]) == (30, 29, 0)
    assert (got["tradable"], got["served"], got["held"]) == (29, 29, 0)
    assert got["landing_difference"] == 1 and got["difference"] == 1
    assert "off by 1" in (window.description or "")
    html = dashboard_page(enriched)
    assert cell(html, "stream-trades-reconciliation") == "FAILED"
    assert cell(html, "stream-trades-reconciliation-difference") == "1"

    # the same window counted in core: the deleted row is the one missing
    tables = TradeTables(
        bronze,
        runner.path("bronze", "trades_quarantine"),
        runner.path("silver", "trades_enriched_quarantine"),
        runner.path("silver", "trades_held"),
    )
    symbols = pl.read_parquet(Path(runner.path("raw", "trade_symbols")) / "trade_symbols.parquet")
    counted = reconcile_window(
        tables,
        runner.serving(),
        symbols,
        None,
        epoch=0,
        end_offsets={int(p): int(o) for p, o in ends.items()},
        start_offsets=None,
        batches=(0, None),
    )
    assert counted.landing_difference == 1 and not counted.ok


def test_the_reconciliation_numbers_reach_the_audit(stream, instance):
    """Every evaluation of a check named reconciliation is a run parameter of the audit: the bronze
    check's per-batch numbers and the window's, in Process_Parameter_Metadata."""
    runner = Stream(stream, instance)
    with TradesStandin(window_trades(), drop_after=40, resend=3) as standin:
        assert runner.feed(standin, max_trades=83).success
    runs = runner.drain()
    audit_tick(instance, build_resources(stream)["audit"], None, log=lambda _: None)
    store = AuditStore(stream.audit_url)

    landed = [r for r in runs if r.asset_materializations_for_node("bronze__trades")]
    offsets = 0
    for run in landed:
        params = store.parameters(run.dagster_run.run_id)
        assert params["reconciliation.bronze/trades.passed"] == "true"
        assert params["reconciliation.bronze/trades.difference"] == "0"
        offsets += int(params["reconciliation.bronze/trades.offsets_in_range"])
        rows = int(params["reconciliation.bronze/trades.bronze_rows"])
        dead = int(params["reconciliation.bronze/trades.dead_lettered"])
        assert rows + dead == int(params["reconciliation.bronze/trades.offsets_in_range"])
    assert offsets == 83

    (window_run,) = [
        r
        for r in runs
        for c in checks([r])
        if c.asset_key == SILVER_KEY and c.metadata["scope"].value == "window"
    ]
    params = store.parameters(window_run.dagster_run.run_id)
    prefix = "reconciliation.silver/trades_enriched."
    assert {k: params[prefix + k] for k in ("tradable", "served", "held", "filtered", "difference")} == {
        "tradable": "59",
        "served": "39",
        "held": "20",
        "filtered": "20",
        "difference": "0",
    }


def test_the_dashboard_shows_the_loan_stream_beside_the_trades(stream, instance):
    """Both streams in one lake: the page regenerated by a trade batch has the loan stream's row too, its
    last batch, lag, reconciliation and dead letters read from its own tables and state."""
    produced = make_events(30, poison_every=10)
    loans = LoanStreamDriver(stream, instance, max_batch_rows=40)
    total = produce(loans.resources["loan_stream"].producer_conf(), "loanApplications", produced.messages)
    loan_runs = loans.drain()
    assert loan_runs and all(r.success for r in loan_runs)
    loan_checks = checks(loan_runs)
    assert loan_checks and all(c.passed for c in loan_checks)
    assert sum(numbers(c)["offsets_in_range"] for c in loan_checks) == total
    last_loan_batch = max(int(r.dagster_run.tags[MICRO_BATCH_TAG]) for r in loan_runs)

    runner = Stream(stream, instance)
    with TradesStandin(make_trades(20, SYMBOLS[:2])) as standin:
        assert runner.feed(standin, max_trades=20).success
    runs = runner.drain()
    html = dashboard_page(
        [r for r in runs if r.asset_materializations_for_node("silver__trades_enriched")][-1]
    )
    assert cell(html, "stream-loan-applications-last-batch") == str(last_loan_batch)
    assert cell(html, "stream-loan-applications-consumer-lag") == "0"
    assert cell(html, "stream-loan-applications-reconciliation") == "ok"
    assert cell(html, "stream-loan-applications-reconciliation-difference") == "0"
    assert cell(html, "stream-loan-applications-dead-letters") == str(produced.poison)
    assert cell(html, "stream-loan-applications-held") == "—"
    assert cell(html, "stream-trades-dead-letters") == "0"
    assert cell(html, "stream-trades-volume") == "20"
