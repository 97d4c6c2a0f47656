"""Lake locations: a local folder or an object store (``s3://``, ``gs://``, ``abfss://``...), one API.

Locations are ``UPath`` objects (universal-pathlib over fsspec): on a local disk they are plain
``pathlib.Path`` objects, so everything local behaves as before; on an object store the same calls
go to the store. Delta tables are reached by ``str(location)`` (delta-rs and polars take URLs).
Credentials and endpoints for object stores come from the standard variables of each store (e.g.
``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``), which delta-rs, polars and fsspec all read.
"""

from __future__ import annotations

import os
from pathlib import Path

from upath import UPath


def location(url: str | os.PathLike) -> UPath:
    """A lake location from a URL or a local path (made absolute)."""
    text = str(url)
    return UPath(text) if "://" in text else UPath(Path(text).resolve())


def is_local(path: UPath | Path) -> bool:
    return isinstance(path, Path) and getattr(path, "protocol", "") in ("", "file", "local")


def refresh(folder: UPath | Path) -> None:
    """Drop cached listings of an object store, so files written by other processes are seen."""
    if not is_local(folder) and hasattr(folder, "fs"):
        folder.fs.invalidate_cache()


def publish(partial: UPath | Path, final: UPath | Path) -> None:
    """Make a completely written file visible under its final name.

    Locally: fsync, then an atomic rename. On an object store an object only appears once fully
    uploaded, so the copy made by ``rename`` exposes complete data only.
    """
    if is_local(partial):
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
    partial.rename(final)
