"""The Spark engine: Spark distributes the medallion's silver and gold folds, the core polars functions
do the per-key work inside its executors, so both engines write the same Delta tables.

* :func:`platform_assets.core.spark.session.build_session`: the session (local or Spark Connect);
* :func:`platform_assets.core.spark.scd.apply_changes_spark`: ``apply_changes`` on Spark;
* :func:`platform_assets.core.spark.silver.clean_batch_spark`: silver's cleaning, rules and dedupe on Spark.

Importing these modules needs no pyspark: it is imported when a function runs (the ``spark`` extra).
"""
