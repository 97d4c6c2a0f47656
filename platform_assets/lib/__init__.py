"""The shared Dagster layer: resources, metadata helpers, run tags and the run launcher.

Every domain under ``defs`` (``medallion``, ``countries``, ``customers``, ``trades``, ``monitoring``...) imports only ``core`` and this
package, never another domain; nothing here imports a domain or ``definitions``.
"""
