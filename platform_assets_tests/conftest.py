"""Shared fixtures: source databases on SQLite and on the local PostgreSQL and MariaDB servers."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from dagster import instance_for_test

from platform_assets.settings import Settings

# The JVMs tests start (local Spark drivers, the standalone cluster's daemons and executors, the Spark
# Connect server) run tiny batches for seconds to minutes, and two test workers share two cores: with the
# C1 compiler alone and the serial collector they spend about half the CPU (a fifth less for a worker's
# long-lived driver) that C2's warm-up costs, and return the same rows. Set before any test starts a JVM
# (they inherit it); a JAVA_TOOL_OPTIONS of your own wins.
os.environ.setdefault("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")


def _parse_dagsters_migrations_once() -> None:
    """Every Dagster instance a test opens stamps its SQLite storages with alembic: an ephemeral one for each
    ``execute_in_process``/``materialize`` given no instance, a folder for each ``instance_for_test``. For each
    stamp alembic reads and runs all 89 of Dagster's migration scripts again: 30 ms of an ephemeral
    instance's 40 ms of CPU, some five stamps a test. The scripts cannot change while the tests run, so
    each test process reads them once per alembic configuration; what is stamped, checked or migrated is the
    same."""
    from alembic.script import ScriptDirectory

    parse = ScriptDirectory.from_config.__func__
    parsed: dict[tuple, ScriptDirectory] = {}

    def from_config(cls, config):
        options = config.get_section(config.config_ini_section, {})
        key = (cls, config.config_file_name, tuple(sorted(options.items())))
        if key not in parsed:
            parsed[key] = parse(cls, config)
        return parsed[key]

    ScriptDirectory.from_config = classmethod(from_config)


def _temporary_files_in_memory(folder: Path = Path("/dev/shm"), room: int = 4 * 2**30) -> None:
    """Tests write thousands of small files and SQLite commits (lakes, sources, state, Dagster instances),
    each commit synced to disk: on a disk busy with other work, the SQLite scenarios of
    test_change_value_formats took a third longer than with their files in memory. The temporary folders of this run (pytest's ``tmp_path`` and every
    ``tempfile`` folder, in the test processes and the processes they start) go to a memory file system
    when the machine has one with room to spare; a ``TMPDIR`` of your own wins. Files there behave the same,
    only their syncs cost nothing, and they are gone with the machine."""
    if "TMPDIR" in os.environ or not os.access(folder, os.W_OK):
        return
    try:
        free = os.statvfs(folder)
        mounted = {line.split()[1]: line.split()[2] for line in Path("/proc/mounts").read_text().splitlines()}
    except OSError:
        return
    if mounted.get(str(folder)) == "tmpfs" and free.f_bavail * free.f_frsize >= room:
        os.environ["TMPDIR"] = str(folder)
        tempfile.tempdir = None  # found again from TMPDIR at the next use


_parse_dagsters_migrations_once()
_temporary_files_in_memory()

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/"
SHIPPED_TABLES = Path(__file__).parents[1] / "platform_assets" / "tables.yaml"


def reachable(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect():
            return True
    except Exception:
        return False
    finally:
        engine.dispose()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow(seconds): a long test (a daemon, a Spark cluster or server, many runs), started first; "
        "seconds: about how long it takes in a full two-worker run",
    )


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: the shares are cut from what runs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the slow tests (``@pytest.mark.slow(seconds)``) first, spread over the xdist workers.

    ``--dist worksteal`` hands each worker one contiguous share of the collection and later moves tests
    from the end of the longest queue to an idle worker: a slow test near the end of a share starts
    last and is the run's tail. So the slow tests go to the heads of the shares, longest first, each
    to the share with the least slow time so far. Every worker computes the same order (xdist checks
    that their collections match); without xdist the slow tests simply run first.
    """
    slow = [(item.get_closest_marker("slow"), item) for item in items]
    slow = [(marker.args[0] if marker.args else 60, item) for marker, item in slow if marker]
    if not slow:
        return
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    slow.sort(key=lambda s: -s[0])  # stable: equal estimates keep their collection order
    heads: list[list[pytest.Item]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for seconds, item in slow:
        share = loads.index(min(loads))
        heads[share].append(item)
        loads[share] += seconds
    moved = {id(item) for _, item in slow}
    rest = iter([item for item in items if id(item) not in moved])
    # the shares' sizes as worksteal cuts them: each idle worker gets len(pending) // workers_left
    ordered, pending = [], len(items)
    for share in range(workers):
        size = pending // (workers - share)
        pending -= size
        ordered += heads[share]
        ordered += islice(rest, max(0, size - len(heads[share])))
    ordered += list(rest)
    items[:] = ordered


@pytest.fixture
def no_spark_session() -> None:
    """No local Spark session left active in this process by an earlier test: the test's Spark runs
    build their own from their settings, as a run process does (platform_assets_tests/spark_sessions.py)."""
    from platform_assets_tests.spark_sessions import stop_active_session

    stop_active_session()


@dataclass(frozen=True)
class Source:
    backend: str
    url: str
    schema: str | None


@pytest.fixture
def instance():
    """A throwaway Dagster instance (run and event storage in a temporary folder)."""
    with instance_for_test() as dagster_instance:
        yield dagster_instance


@pytest.fixture
def sqlite_source(tmp_path: Path) -> Source:
    return Source("sqlite", f"sqlite:///{tmp_path / 'source.db'}", None)


@pytest.fixture
def postgres_source() -> Iterator[Source]:
    if not reachable(POSTGRES_URL):
        pytest.skip(
            "PostgreSQL not reachable on 127.0.0.1:5432; start it with "
            "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'"
        )
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sa.schema.CreateSchema(schema))
    yield Source("postgresql", POSTGRES_URL, schema)
    with engine.begin() as conn:
        conn.execute(sa.schema.DropSchema(schema, cascade=True))
    engine.dispose()


@pytest.fixture
def mariadb_source() -> Iterator[Source]:
    if not reachable(MARIADB_URL):
        pytest.skip(
            "MariaDB not reachable on 127.0.0.1:3306; start it with "
            "'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd'"
        )
    database = f"t_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(MARIADB_URL)
    with engine.begin() as conn:
        conn.execute(sa.schema.CreateSchema(database))
    yield Source("mariadb", f"{MARIADB_URL}{database}", database)
    with engine.begin() as conn:
        conn.execute(sa.schema.DropSchema(database))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def any_source(request: pytest.FixtureRequest) -> Source:
    return request.getfixturevalue(f"{request.param}_source".replace("postgresql", "postgres"))


def tables_file_for(tmp_path: Path, schema: str | None, edit=None) -> Path:
    """A copy of the shipped table list pointing at ``schema`` (optionally edited by ``edit``)."""
    document = yaml.safe_load(SHIPPED_TABLES.read_text())
    for entry in document["tables"]:
        entry["schema"] = schema
    if edit is not None:
        edit(document)
    path = tmp_path / "tables.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def settings_for(tmp_path: Path, source: Source, **overrides) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        source_url=source.url,
        tables_file=tables_file_for(tmp_path, source.schema),
        **overrides,
    )
