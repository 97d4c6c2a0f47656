"""The trade stream under a real Dagster daemon: the schedule-less feed job launched from the CLI, the
sensor starting micro-batch runs, one of them killed with SIGKILL mid-run and retried by Dagster, and
every trade served exactly once with its window's metrics row and audit rows; then the broker and the
daemon restart and a second window lands in a new epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid

import polars as pl
import pytest
import sqlalchemy as sa
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from platform_assets.core.streaming.kafka import EmbeddedBroker
from platform_assets.core.trades.serving import ServingStore
from platform_assets.defs.trades.sensors import MICRO_BATCH_JOB
from platform_assets.lib.tags import MICRO_BATCH_TAG
from platform_assets.settings import Settings
from platform_assets_tests.processes import BIN, dagster_home, descendants, running_daemon, wait_for
from platform_assets_tests.trades.test_stream_assets import TRADABLE, expected_silver
from platform_devkit.trades_lookup_standin import TradesLookupStandin
from platform_devkit.trades_standin import TradesStandin, make_trades

TRADES = 240


@pytest.mark.slow(110)
def test_the_stream_runs_under_the_daemon_survives_a_killed_micro_batch_and_a_broker_restart(tmp_path):
    home = dagster_home(tmp_path)
    base = {**os.environ, "DAGSTER_HOME": str(home)}
    settings = Settings(data_dir=tmp_path / "data")
    topic = f"trades_{uuid.uuid4().hex[:8]}"
    trades = make_trades(TRADES)
    with (
        EmbeddedBroker() as broker,
        TradesStandin(trades, interval=0.02) as standin,
        TradesLookupStandin(traded=TRADABLE) as lookup,
    ):
        env = {
            **base,
            "PLATFORM_DATA_DIR": str(settings.data_dir),
            "PLATFORM_KAFKA_BOOTSTRAP": broker.bootstrap,
            "PLATFORM_TRADES_TOPIC": topic,
            "PLATFORM_TRADES_WS_URL": standin.url,
            "PLATFORM_TRADES_LOOKUP_URL": lookup.url,
            "PLATFORM_TRADES_MAX_BATCH_ROWS": "60",
            "PLATFORM_TRADES_ALLOWED_LATENCY": "0",
        }
        with running_daemon(env, tmp_path):
            _launch_feed(env, tmp_path, TRADES)
            instance = DagsterInstance.from_config(str(home))

            def micro_batch_step_started():
                for record in instance.get_run_records(RunsFilter(job_name=MICRO_BATCH_JOB)):
                    events = instance.get_records_for_run(
                        record.dagster_run.run_id, of_type=DagsterEventType.STEP_START
                    ).records
                    if events:
                        return record.dagster_run.run_id
                return None

            killed = wait_for(
                "a micro-batch run to start a step", micro_batch_step_started, timeout=120, every=0.2
            )
            start = instance.get_records_for_run(killed, of_type=DagsterEventType.RUN_START).records[0]
            worker = start.event_log_entry.dagster_event.pid
            for pid in [worker, *descendants(worker)]:
                os.kill(pid, signal.SIGKILL)

            serving = ServingStore(settings.serving_url)
            expected = expected_silver(trades)

            def served_and_counted():
                try:
                    rows = serving.trades()
                    metrics = serving.metrics()
                except Exception:
                    return None
                return metrics if rows.height == expected.height and metrics else None

            (metrics,) = wait_for(
                "every trade served and the window counted", served_and_counted, timeout=240
            )
            log = (tmp_path / "daemon.log").read_text()[-4000:]
            assert metrics.total_rows == expected.height and not metrics.alerted, log

            dead = instance.get_run_by_id(killed)
            assert dead.status == DagsterRunStatus.FAILURE
            retries = instance.get_runs(RunsFilter(tags={"dagster/parent_run_id": killed}))
            assert retries and retries[0].tags[MICRO_BATCH_TAG] == dead.tags[MICRO_BATCH_TAG], log

            bronze = pl.read_delta(str(settings.table_path("bronze", "trades")))
            assert bronze.height == TRADES  # every message once: none lost to the kill, none doubled
            assert bronze.select("kafka_partition", "kafka_offset").n_unique() == TRADES
            served = serving.trades().select("symbol", "trade_id").sort("symbol", "trade_id")
            assert served.equals(expected)

            audit = sa.create_engine(settings.audit_url)

            def audited():
                with audit.connect() as conn:
                    return conn.execute(
                        sa.text(
                            "SELECT job_type, streaming_source, status FROM Job_Metadata WHERE run_id = :r"
                        ),
                        {"r": killed},
                    ).first()

            row = wait_for(
                "the killed run's audit row", lambda: (r := audited()) and r.status == "Failed" and r
            )
            assert (row.job_type, row.streaming_source) == ("Streaming", f"Kafka:{topic}")
            audit.dispose()

    # The broker and the daemon restart, as `make dev` after `make demo` does: the new broker's topic is
    # landed from its first offset in a new epoch, with no manual step.
    second = [{**t, "t": t["t"] + 50_000} for t in make_trades(60)]
    with (
        EmbeddedBroker() as broker,
        TradesStandin(second, interval=0.01) as standin,
        TradesLookupStandin(traded=TRADABLE) as lookup,
    ):
        env = {
            **env,
            "PLATFORM_KAFKA_BOOTSTRAP": broker.bootstrap,
            "PLATFORM_TRADES_WS_URL": standin.url,
            "PLATFORM_TRADES_LOOKUP_URL": lookup.url,
        }
        with running_daemon(env, tmp_path):
            _launch_feed(env, tmp_path, len(second))

            def second_window_counted():
                try:
                    rows = serving.metrics()
                except Exception:
                    return None
                return rows if len(rows) == 2 else None

            metrics = wait_for("the second window counted", second_window_counted, timeout=240)
    log = (tmp_path / "daemon.log").read_text()[-4000:]
    bronze = pl.read_delta(str(settings.table_path("bronze", "trades")))
    assert bronze.filter(pl.col("kafka_epoch") == 0).height == TRADES, log
    assert bronze.filter(pl.col("kafka_epoch") == 1).height == len(second), log
    served = serving.trades().select("symbol", "trade_id").sort("symbol", "trade_id")
    both = pl.concat([expected_silver(trades), expected_silver(second)]).sort("symbol", "trade_id")
    assert served.equals(both)
    first_total, second_total = expected_silver(trades).height, expected_silver(second).height
    assert [(m.total_rows, m.delta_rows) for m in metrics] == [
        (first_total, first_total),
        (second_total, second_total),  # counted in its own epoch, from zero
    ], log
    new_epoch = [
        r
        for r in instance.get_runs(RunsFilter(job_name=MICRO_BATCH_JOB))
        if r.run_config.get("ops", {}).get("bronze__trades", {}).get("config", {}).get("new_epoch")
    ]
    assert len(new_epoch) == 1, log


def _launch_feed(env: dict, cwd, max_trades: int) -> None:
    config = {"ops": {"kafka__trades": {"config": {"seconds": 60, "max_trades": max_trades}}}}
    feed = subprocess.run(
        [BIN / "dagster", "job", "launch", "-m", "platform_assets.definitions", "-j", "trades_feed_job"]
        + ["--config-json", json.dumps(config)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    assert feed.returncode == 0, feed.stderr[-3000:]
