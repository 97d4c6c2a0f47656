"""A real Spark Connect server on loopback for tests: pyspark's own ``spark-submit`` of the server class
(what ``sbin/start-connect-server.sh --wait`` runs), a local[2] driver whose Python workers run this
environment's Python, stopped by its process group."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from platform_assets_tests.processes import wait_for
from platform_assets_tests.spark_cluster import _free_port, _spark_class, _start, _stop

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
_STARTED = re.compile(r"Spark Connect server started at: 127\.0\.0\.1:(\d+)")

# The server owns what a Connect client may not set (driver, UI, executors' env): loopback only, and the
# engine's BASE_CONF as the server's defaults (each session sets its SQL settings again).
SERVER_CONF = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.shuffle.partitions": "2",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.executorEnv.PYSPARK_PYTHON": sys.executable,
}


def _started(server: subprocess.Popen, log: Path) -> str | None:
    """The port the server says it listens on, once it does (the next free one if its own was taken)."""
    if server.poll() is not None:  # no point in waiting any longer
        raise AssertionError(f"the Spark Connect server exited with {server.returncode}")
    found = _STARTED.search(log.read_text(errors="replace"))
    return found and found.group(1)


def _reason(log: Path) -> str:
    """The log's ERROR lines with the exception after each (shutdown noise follows them), else its end."""
    lines = log.read_text(errors="replace").splitlines()
    errors = [
        f"{line}\n{after}" for line, after in zip(lines, [*lines[1:], ""], strict=True) if " ERROR " in line
    ]
    return "\n".join(errors[:5] or lines[-30:])


@contextlib.contextmanager
def connect_server(workdir: Path, memory: str = "2g") -> Iterator[str]:
    """``sc://127.0.0.1:<port>`` of a Spark Connect server (log: ``workdir/connect.log``); stopped on exit."""
    home, _ = _spark_class()
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,  # the workers import polars and this package
    }
    conf = {
        **SERVER_CONF,
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(_free_port()),
        "spark.connect.grpc.port.maxRetries": "10",  # another process took it meanwhile: the next one
    }
    log = workdir / "connect.log"
    args = [str(home / "bin" / "spark-submit"), "--class", SERVER_CLASS, "--name", "Spark Connect server",
            "--master", "local[2]", "--driver-memory", memory]  # fmt: skip
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    server = _start(args, log, env)
    try:
        try:
            port = wait_for("the Spark Connect server to listen", lambda: _started(server, log), 120)
        except AssertionError as exc:  # the reason is in the server's own log
            raise AssertionError(f"{exc}; from {log}:\n{_reason(log)}") from None
        yield f"sc://127.0.0.1:{port}"
    finally:
        _stop(server)
