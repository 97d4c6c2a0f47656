"""Fixtures of the trade stream tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from platform_assets.core.db import engine_for
from platform_assets_tests.conftest import POSTGRES_URL, reachable


@pytest.fixture
def missing_database() -> Iterator[tuple[str, sa.Engine]]:
    if not reachable(POSTGRES_URL):
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
    name = f"serving_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    yield name, admin
    url = f"postgresql+psycopg://postgres:s3cret@127.0.0.1:5432/{name}?connect_timeout=3"
    engine_for(url).dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def serving_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty serving database on each supported backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'serving.db'}"
    source = request.getfixturevalue("postgres_source" if request.param == "postgresql" else "mariadb_source")
    if request.param == "postgresql":
        # the fixture's schema first on the search path: the unqualified tables are created there
        return f"{source.url}?options=-csearch_path%3D{source.schema}"
    return source.url
