"""Lake locations: a local folder or an object store (``s3://``, ``gs://``, ``abfss://``...), one API.

Locations are ``UPath`` objects (universal-pathlib over fsspec): on a local disk they are plain
``pathlib.Path`` objects, so everything local behaves as before; on an object store the same calls
go to the store. Delta tables are reached by ``str(location)`` (delta-rs and polars take URLs).
Credentials and endpoints for object stores come from the standard variables of each store (e.g.
``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``), which delta-rs, polars and fsspec all read.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, TypeGuard, TypeVar

from upath import UPath

if TYPE_CHECKING:
    from platform_assets.core.medallion.config import TableConfig


Layer = Literal["raw", "bronze", "silver", "gold"]
QUARANTINE_SUFFIX = "_quarantine"


# A location of the kind given (a UPath stays a UPath, a Path a Path).
Location = TypeVar("Location", UPath, Path)


def table_location(lake_root: Location, layer: Layer, table: str) -> Location:
    """``<lake>/<env>/<layer>/<table>``, table names lower case: the one lake layout."""
    return lake_root / layer / table.lower()


LAYERS: tuple[Layer, ...] = ("raw", "bronze", "silver", "gold")
LANDING = "landing"


def landing_location(lake_root: Location, table: str) -> Location:
    """``<lake>/<env>/landing/<table>``: where files for a ``source: files`` table are dropped."""
    return lake_root / LANDING / table.lower()


def catalog_name(env: str, layer: str, table: str) -> str:
    """``<env>.<layer>.<table>``: a table's three-part name (catalog = environment, schema = layer)."""
    return f"{env}.{layer}.{table.lower()}"


def catalog_name_of(env: str | None, asset_key: str) -> str | None:
    """The three-part name of the lake table an asset key ``<layer>/<table>`` stands for; None otherwise."""
    parts = asset_key.split("/")
    if env is None or len(parts) != 2 or parts[0] not in LAYERS:
        return None
    return catalog_name(env, parts[0], parts[1])


def quarantine_name(table: str) -> str:
    """The table that holds the rows a layer's rules set apart: ``<table>_quarantine``."""
    return f"{table.lower()}{QUARANTINE_SUFFIX}"


def partition_dir(table_root: UPath | Path, config: TableConfig, day: date) -> UPath | Path:
    """A day's folder of a partitioned bronze table: ``<table>/<partition column>=<day>/``."""
    return table_root / f"{config.partition_column}={day.isoformat()}"


def is_url(text: str | os.PathLike) -> bool:
    """An object-store URL (``s3://...``) rather than a local path: the one test for "is this remote"."""
    return "://" in str(text)


def child(table: str | os.PathLike, name: str) -> str:
    """``<table>/<name>`` as a string delta-rs and polars take, for a local path or a URL alike."""
    return f"{str(table).rstrip('/')}/{name}" if is_url(table) else os.path.join(str(table), name)


def location(url: str | os.PathLike) -> UPath:
    """A lake location from a URL or a local path (made absolute)."""
    text = str(url)
    return UPath(text) if is_url(text) else UPath(Path(text).resolve())


def is_local(path: UPath | Path) -> TypeGuard[Path]:
    return isinstance(path, Path) and getattr(path, "protocol", "") in ("", "file", "local")


def refresh(folder: UPath | Path) -> None:
    """Drop cached listings of an object store, so files written by other processes are seen."""
    if not is_local(folder) and isinstance(folder, UPath):
        folder.fs.invalidate_cache()


def write_atomically(path: UPath | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a hidden temporary file published by rename: readers see the old file or
    the new one, never half of one, and a reader globbing the real suffix never picks up the temp file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with partial.open("wb") as handle:
            write(handle)
        publish(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def publish(partial: UPath | Path, final: UPath | Path) -> None:
    """Make a completely written file visible under its final name.

    Locally: fsync, then an atomic rename. On an object store an object only appears once fully
    uploaded, so the copy made by ``rename`` exposes complete data only.
    """
    if is_local(partial):
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
    move(partial, final)


# A location is a UPath (an object store's, or a local one from location(), which is a Path too) or a
# plain Path; two locations of one table are always of one kind. The two helpers below say so to the type
# checker: each branch calls the very method the object has.


def move(source: UPath | Path, target: UPath | Path) -> None:
    """``source.rename(target)``: two locations of one kind (a local path and a UPath, or two UPaths)."""
    if isinstance(source, UPath):
        source.rename(target)
    elif isinstance(target, Path):
        source.rename(target)
    else:
        raise TypeError(f"cannot move the local file {source} to {target}, which is not on the local disk")


def relative_to(path: UPath | Path, root: UPath | Path) -> UPath | Path:
    """``path.relative_to(root)`` for two locations of one kind (see :func:`move`)."""
    if isinstance(path, UPath) and isinstance(root, UPath):
        return path.relative_to(root)
    if isinstance(path, Path) and isinstance(root, Path):
        return path.relative_to(root)
    raise TypeError(f"{path} and {root} are not locations of one kind (a local path and an object store's)")
