"""``make demo``'s output: the runs' logs go to the demo's log file, their warnings are counted."""

from __future__ import annotations

from dagster import DagsterInstance, job, op

from platform_assets.lib.tags import console_log_level
from platform_devkit.demo import log_lines, stream_runs_text, warning_count, write_log


@op
def chatty(context) -> None:
    context.log.debug("a debug line")
    context.log.info("read 20 rows")
    context.log.warning("skipped a malformed frame")


@job
def chatty_job():
    chatty()


def test_the_log_file_has_every_runs_log_and_warnings_are_counted(tmp_path, capfd):
    instance = DagsterInstance.ephemeral()
    first = chatty_job.execute_in_process(instance=instance, run_config=console_log_level("ERROR"))
    second = chatty_job.execute_in_process(instance=instance, run_config=console_log_level("ERROR"))
    # the console at ERROR printed none of the op's lines
    printed = capfd.readouterr()
    assert "read 20 rows" not in printed.out + printed.err
    assert "malformed" not in printed.out + printed.err

    runs = [first.run_id, second.run_id]
    assert warning_count(instance, runs) == 2
    assert warning_count(instance, [first.run_id]) == 1

    path = write_log(instance, runs, tmp_path / "demo.log")
    lines = path.read_text().splitlines()
    assert lines == log_lines(instance, runs)
    ours = [
        line for line in lines if line.endswith(("a debug line", "read 20 rows", "skipped a malformed frame"))
    ]
    assert [line.split(" - ")[1:4] for line in ours] == [
        ["DEBUG", "chatty_job", first.run_id],
        ["INFO", "chatty_job", first.run_id],
        ["WARNING", "chatty_job", first.run_id],
        ["DEBUG", "chatty_job", second.run_id],
        ["INFO", "chatty_job", second.run_id],
        ["WARNING", "chatty_job", second.run_id],
    ]
    assert all(" - chatty - " in line for line in ours)  # the step
    # the runs' own events are there too, in order: each run starts, then succeeds
    events = [line.split(" - ")[4] for line in lines if " - RUN_" in line]
    assert events[0] == "RUN_START" and events[-1] == "RUN_SUCCESS"


def test_the_stream_runs_are_counted_as_job_metadata_counts_them():
    # 4 micro-batches and the catch-up run after the window: 5 rows of the micro-batch job in Job_Metadata
    assert stream_runs_text(5, 4) == "5 micro-batch job run(s) (4 micro-batch(es), 1 catch-up)"
    assert stream_runs_text(3, 3) == "3 micro-batch run(s)"
