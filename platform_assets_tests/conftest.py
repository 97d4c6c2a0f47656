"""Shared fixtures: source databases on SQLite and on the local PostgreSQL and MariaDB servers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from dagster import instance_for_test

from platform_assets.settings import Settings

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
