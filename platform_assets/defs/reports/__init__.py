"""Reports: assets of your own on top of silver and gold, reading the lake through dagster-deltalake
(:mod:`platform_assets.lib.delta_tables`). One example over the sample's tables,
``reports/daily_plays_per_track``; copy its pattern for yours."""
