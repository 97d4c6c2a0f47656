"""A real Spark standalone cluster on loopback for tests: one master and one worker, started with pyspark's
own ``spark-class`` and stopped by their process groups."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from platform_assets_tests.processes import wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_class() -> tuple[Path, Path]:
    import pyspark

    home = Path(pyspark.__file__).parent
    return home, home / "bin" / "spark-class"


def _start(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        args, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def standalone_cluster(workdir: Path, cores: int = 2, memory: str = "2g") -> Iterator[str]:
    """``spark://127.0.0.1:<port>`` of a master with one registered worker; both stopped on exit."""
    home, spark_class = _spark_class()
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
    }
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    master_log, worker_log = workdir / "master.log", workdir / "worker.log"
    master = _start(
        [str(spark_class), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
         "--port", str(port), "--webui-port", str(_free_port())],
        master_log,
        env,
    )  # fmt: skip
    worker = None
    try:
        wait_for("the Spark master", lambda: "ALIVE" in master_log.read_text(), timeout=90)
        worker = _start(
            [str(spark_class), "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
             "--webui-port", str(_free_port()), "--cores", str(cores), "--memory", memory,
             "--work-dir", str(workdir / "work")],
            worker_log,
            env,
        )  # fmt: skip
        wait_for("a Spark worker to register", lambda: "Registering worker" in master_log.read_text(), 90)
        yield url
    finally:
        if worker is not None:
            _stop(worker)
        _stop(master)
