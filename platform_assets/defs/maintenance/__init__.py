"""Table maintenance of every Delta table the platform writes: the ``table_maintenance_job`` and its daily
schedule (the work itself is in :mod:`platform_assets.core.lake.maintenance`)."""
