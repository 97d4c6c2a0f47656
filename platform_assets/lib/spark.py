"""The Spark session of the Spark engine, from dagster-pyspark, created only when a step needs it.

``LazyPySparkResource`` starts no JVM until a step asks for the session, so runs of polars tables never pay
for Spark. This subclass adds what the platform needs around it: a one-line error when Java is missing, the
workers running this environment's Python, Spark Connect (``PLATFORM_SPARK_REMOTE``), and the session
stopped when the run ends (the JVM would otherwise outlive it). With every table on Spark the session starts
with the run (``eager``), so its start is timed and logged once instead of hiding in the first step.

Importing this module needs the ``spark`` extra (pyspark, dagster-pyspark).
"""

from __future__ import annotations

import json
import time
from typing import Any

from dagster import EnvVar, InitResourceContext
from dagster_pyspark import LazyPySparkResource

from platform_assets.core.spark.session import BASE_CONF, build_session
from platform_assets.lib.resources import secret
from platform_assets.settings import Settings


class SparkResource(LazyPySparkResource):
    """``spark_config`` holds ``spark.master`` and the platform's defaults; ``extra_conf`` (the JSON of
    ``PLATFORM_SPARK_CONF``, resolved from the environment at run time so the UI never shows it) goes over
    them; ``remote`` (Spark Connect) wins over the master when set."""

    remote: str | None = None
    extra_conf: str | None = None
    # Start the session when the run starts (every silver and gold table is on Spark): once per run, in
    # the run's setup, timed and logged on its own instead of inside the first step's time. False when
    # only some tables use Spark, so runs of the others never start a JVM.
    eager: bool = False

    def setup_for_execution(self, context: InitResourceContext) -> None:
        if self.eager and self._spark_session is None:
            started = time.perf_counter()
            self._init_session()
            if context.log is not None:
                context.log.info(f"Spark session started in {time.perf_counter() - started:.2f} s")

    def _init_session(self) -> None:
        if self._spark_session is None:
            conf = {**self.spark_config, **(json.loads(self.extra_conf) if self.extra_conf else {})}
            master = conf.pop("spark.master", None)
            self._spark_session = build_session(master=master, remote=self.remote, conf=conf)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._spark_session is not None:
            self._spark_session.stop()
            self._spark_session = None


def spark_resource(settings: Settings) -> SparkResource:
    """Settings were validated when loaded; secrets reach the resource as ``EnvVar``s."""
    config: dict[str, Any] = {**BASE_CONF, "spark.master": settings.spark_master}
    extra_conf = secret(settings, "spark_conf")
    if not isinstance(extra_conf, EnvVar):  # a value given in code: JSON text, as the variable holds it
        extra_conf = json.dumps(dict(extra_conf)) if extra_conf else None
    return SparkResource(
        spark_config=config,
        remote=secret(settings, "spark_remote"),
        extra_conf=extra_conf,
        eager=settings.engine == "spark",
    )
