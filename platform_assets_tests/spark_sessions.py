"""Local Spark sessions in a test process (an xdist worker runs many Spark tests one after the other).

pyspark keeps one default session per process and ``SparkSession.builder.getOrCreate()`` hands it back,
master and static settings included, to whoever asks next. So:

* tests of the engine's functions share one ``local[2]`` session per process (:func:`shared_session`),
  built again if something stopped it meanwhile (a medallion run's Spark resource stops the session it
  used when the run ends, and that may be this one);
* a test running the medallion on Spark first stops whatever session is active
  (:func:`stop_active_session`), so each run builds its own session from its settings (a standalone
  cluster's master, say) as a run process does in production, instead of borrowing the shared one.

The JVM itself stays up between sessions: a new session in it takes about a second.
"""

from __future__ import annotations

import sys

SHARED_MASTER = "local[2]"
SHARED_CONF = {"spark.sql.shuffle.partitions": "2"}

_shared = None


def _alive(session) -> bool:
    from pyspark import SparkContext

    context = session._sc
    return context._jsc is not None and SparkContext._active_spark_context is context


def stop_active_session() -> None:
    """Stop this process's local Spark session, if any (never imports pyspark when no test did)."""
    if "pyspark" not in sys.modules:
        return
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    active = SparkSession._instantiatedSession
    if active is not None:
        active.stop()
    if SparkContext._active_spark_context is not None:
        SparkContext._active_spark_context.stop()


def shared_session():
    """This process's ``local[2]`` session for the engine tests, started (again) when none is alive."""
    global _shared
    from platform_assets.core.spark.session import build_session

    if _shared is None or not _alive(_shared):
        stop_active_session()  # another test's session (another master or settings): not this one
        _shared = build_session(SHARED_MASTER, conf=SHARED_CONF)
        _shared.sparkContext.setLogLevel("ERROR")
    return _shared


def stop_shared_session() -> None:
    global _shared
    if _shared is not None and _alive(_shared):
        _shared.stop()
    _shared = None
