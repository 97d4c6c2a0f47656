"""Keeping the Dagster instance's own storage bounded: a daily job prunes finished runs from the run
history (the trade stream starts one run per micro-batch); schedule and sensor ticks are purged by the
daemon itself (``retention:`` in the top-level dagster.yaml)."""
