"""The Spark session of the Spark engine: local (a JVM in this process) or Spark Connect.

Workers must run this environment's Python (they import polars and this package), so
``PYSPARK_PYTHON`` is set to it before the session starts: ``spark.pyspark.python`` alone was not
enough for local sessions.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platform_assets.core.errors import ConfigurationError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

BASE_CONF: dict[str, str] = {
    # Delta timestamps are UTC microseconds: Spark reads and writes them the same way on every machine.
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.ui.enabled": "false",
    # The folds shuffle batches, not whole tables: a few partitions beat Spark's 200 tiny ones.
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Spark's 1 GB default driver heap runs out on a day of a few million fact rows; override it with
    # PLATFORM_SPARK_CONF for bigger days (a local session's executors live in the driver's JVM).
    "spark.driver.memory": "2g",
}

# Masters on this machine: the driver then listens on loopback only, never on the machine's address.
_LOCAL_MASTERS = ("local", "spark://127.0.0.1:", "spark://localhost:")

# Settings a Spark Connect client may not change (the server owns them).
_SERVER_ONLY = ("spark.ui.", "spark.executorEnv.", "spark.master", "spark.driver.", "spark.executor.")

JAVA_HINT = "install Java 17 or 21 (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"


class JavaMissingError(ConfigurationError, RuntimeError):
    """No Java runtime: a local Spark session cannot start. Not retryable: install Java or set JAVA_HOME.
    Raised only by this module, so it lives here."""


def require_java() -> str:
    """The ``java`` a local session will use (JAVA_HOME first, then PATH); one-line error if none."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if java.is_file() and os.access(java, os.X_OK):
            return str(java)
        raise JavaMissingError(f"JAVA_HOME={home} has no bin/java: the Spark engine needs Java; {JAVA_HINT}")
    found = shutil.which("java")
    if found is None:
        raise JavaMissingError(f"no java on PATH: the Spark engine needs Java; {JAVA_HINT}")
    return found


def build_session(
    master: str | None = "local[*]", remote: str | None = None, conf: Mapping[str, Any] | None = None
) -> SparkSession:
    """A session with :data:`BASE_CONF` under ``conf``; ``remote`` (``sc://...``) uses Spark Connect."""
    from pyspark.sql import SparkSession

    settings = {**BASE_CONF, **{k: str(v) for k, v in (conf or {}).items()}}
    if remote:
        builder = SparkSession.builder.remote(remote)
        for key, value in settings.items():
            if not key.startswith(_SERVER_ONLY):
                builder = builder.config(key, value)
        return builder.getOrCreate()
    require_java()
    os.environ["PYSPARK_PYTHON"] = sys.executable  # before the JVM starts: its workers inherit it
    master = master or "local[*]"
    builder = SparkSession.builder.master(master)
    if master.startswith(_LOCAL_MASTERS):
        settings = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1", **settings}
    for key, value in {**settings, "spark.executorEnv.PYSPARK_PYTHON": sys.executable}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
