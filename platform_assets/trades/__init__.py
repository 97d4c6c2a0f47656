"""Only a shim: ``python -m platform_assets.trades.feed`` is a documented command (CONTRACT), kept working
after the commands moved to :mod:`platform_assets.cli`. The trade stream itself lives in
:mod:`platform_assets.core.trades` (Dagster-free) and :mod:`platform_assets.defs.trades` (its assets, jobs
and sensor)."""
