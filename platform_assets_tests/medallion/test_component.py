"""The medallion as a component: a second source database is one more defs.yaml.

The tests load a throwaway dg project whose ``defs/`` folder declares medallion instances, through the
same loader as the code location (``load_from_defs_folder`` with the settings active), so what is
tested is what a user's ``defs/<name>/defs.yaml`` gives.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
import yaml
from dagster import AssetKey, Definitions, load_from_defs_folder
from dagster.components.core.component_tree import ComponentTreeException

from platform_assets.components import MedallionComponent
from platform_assets.core.audit import AuditStore
from platform_assets.core.errors import ConfigurationError
from platform_assets.core.state import state_table
from platform_assets.defs.maintenance import definitions as maintenance_definitions
from platform_assets.defs.medallion.definitions import build_medallion_definitions
from platform_assets.defs.medallion.landing_zone import landing_run_config
from platform_assets.defs.monitoring.audit import audit_tick
from platform_assets.defs.monitoring.job_names import JobCatalog
from platform_assets.lib.active_settings import using_settings
from platform_assets.lib.resources import AuditResource, build_resources
from platform_assets.lib.tags import range_tags
from platform_assets.settings import Settings
from platform_assets_tests.conftest import tables_file_for
from platform_assets_tests.medallion.helpers import lake
from platform_devkit import sample

COMPONENT = "platform_assets.components.MedallionComponent"
DIMENSIONS = ["DimUser", "DimArtist"]
DAY = range_tags("2025-01-01", "2025-01-01")  # a run of the daily schedule's shape
MAINTENANCE = Path(maintenance_definitions.__file__).with_name("defs.yaml")


def dimensions_only(document: dict) -> None:
    document["tables"] = [t for t in document["tables"] if t["table"] in DIMENSIONS]


def project(tmp_path: Path, monkeypatch, folders: dict[str, dict | None]) -> Path:
    """A dg project whose defs folder holds ``folders``: name -> the attributes of a medallion instance
    (None: a plain folder, as another domain's). Returns the package path to load from."""
    module = f"medallion_project_{uuid.uuid4().hex[:10]}"
    root = tmp_path / "project"
    defs = root / module / "defs"
    defs.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\nroot_module = "{module}"\n'
        f'defs_module = "{module}.defs"\n'
    )
    (root / module / "__init__.py").write_text("")
    (defs / "__init__.py").write_text("")
    for folder, attributes in folders.items():
        (defs / folder).mkdir()
        if folder == "maintenance":  # the location's maintenance domain, as defs/maintenance declares it
            (defs / folder / "defs.yaml").write_text(MAINTENANCE.read_text())
            (defs / folder / "definitions.py").write_text(
                "from platform_assets.defs.maintenance.definitions import defs  # noqa: F401\n"
            )
        elif attributes is not None:
            declaration = {"type": COMPONENT, "attributes": attributes}
            (defs / folder / "defs.yaml").write_text(yaml.safe_dump(declaration))
    monkeypatch.syspath_prepend(str(root))
    return root / module


def load(settings: Settings, path: Path) -> Definitions:
    """The project's definitions built from ``settings``, with the location's resources (as
    platform_assets.definitions.build_definitions does for the real one)."""
    try:
        with using_settings(settings):
            loaded = load_from_defs_folder(path_within_project=path)
    except ComponentTreeException as exc:
        raise exc.__cause__ from None  # what the component raised
    return Definitions.merge(loaded, Definitions(resources=build_resources(settings)))


def state_names(settings: Settings) -> set[str]:
    engine = sa.create_engine(settings.state_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(state_table.c.name)).scalars())
    finally:
        engine.dispose()


def source_users(url: str) -> pl.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT user_id, user_name FROM DimUser")).mappings().all()
    finally:
        engine.dispose()
    return pl.DataFrame([dict(r) for r in rows])


def test_a_second_source_database_is_one_more_defs_yaml(tmp_path, monkeypatch, instance):
    first, second = f"sqlite:///{tmp_path / 'first.db'}", f"sqlite:///{tmp_path / 'second.db'}"
    sample.init(first, scale=1, seed=7, days=1, end=date(2025, 1, 2))
    sample.init(second, scale=2, seed=8, days=1, end=date(2025, 1, 2))
    settings = Settings(
        data_dir=tmp_path / "data",
        source_url=first,
        tables_file=tables_file_for(tmp_path, None, dimensions_only),
    )
    path = project(
        tmp_path,
        monkeypatch,
        {
            "medallion": {"name": "medallion"},
            "crm": {"name": "crm", "tables_file": "tables.yaml", "source_url_env": "CRM_SOURCE_URL"},
            "maintenance": None,
        },
    )
    (path / "defs" / "crm" / "tables.yaml").write_text(settings.tables_file.read_text())
    monkeypatch.setenv("CRM_SOURCE_URL", second)
    defs = load(settings, path)

    # the names: the default's as today, the second instance's prefixed
    jobs = {j.name for j in defs.jobs}
    assert jobs == {"medallion_job", "spotify_medallion", "crm_job", "table_maintenance_job"}
    assert {s.name for s in defs.schedules} == {"medallion_daily", "crm_daily", "table_maintenance_daily"}
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    layers = ("bronze", "silver", "gold")
    assert keys == {f"{layer}/{p}{t.lower()}" for layer in layers for p in ("", "crm_") for t in DIMENSIONS}
    crm_user = graph.get(AssetKey(["silver", "crm_dimuser"]))
    assert (crm_user.group_name, crm_user.pools) == ("crm", {"table_crm_dimuser"})
    assert graph.get(AssetKey(["silver", "dimuser"])).group_name == "medallion"

    # each instance's job, end to end
    runs = {}
    for job in ("medallion_job", "crm_job"):
        result = defs.resolve_job_def(job).execute_in_process(instance=instance, tags=DAY)
        assert result.success
        runs[job] = result.run_id

    # each source's rows in its own silver and gold tables
    for name, url in (("dimuser", first), ("crm_dimuser", second)):
        expected = source_users(url).select("user_id", pl.col("user_name").str.to_uppercase())
        silver = lake(settings, "silver", name).select("user_id", "user_name")
        assert silver.sort("user_id").equals(expected.sort("user_id")), name
        gold = lake(settings, "gold", name)
        assert sorted(gold.get_column("user_id").to_list()) == sorted(
            expected.get_column("user_id").to_list()
        )
    assert lake(settings, "silver", "crm_dimuser").height > lake(settings, "silver", "dimuser").height

    # state rows of their own
    names = state_names(settings)
    for table in ("dimuser", "dimartist"):
        assert {f"watermark/{table}", f"watermark/crm_{table}"} <= names
        assert {f"checkpoint/gold/{table}", f"checkpoint/gold/crm_{table}"} <= names
    assert all(n.split("/")[-1].removeprefix("crm_") in ("dimuser", "dimartist") for n in names)

    # maintenance covers both instances' tables: the second's are compacted and vacuumed too
    maintenance = defs.resolve_job_def("table_maintenance_job")
    steps = {node.name for node in maintenance.nodes}
    for layer in ("silver", "gold"):
        for table in ("dimuser", "crm_dimuser", "crm_dimartist"):
            assert {f"{layer}__{table}", f"{layer}__{table}_quarantine"} <= steps
    result = maintenance.execute_in_process(
        instance=instance, op_selection=["silver__crm_dimuser", "gold__crm_dimuser"]
    )
    assert result.success
    for step in ("silver__crm_dimuser", "gold__crm_dimuser"):
        [output] = [e for e in result.events_for_node(step) if e.is_successful_output]
        metadata = output.step_output_data.metadata
        assert "skipped" not in metadata and metadata["files_after"].value >= 1, step

    # the audit records each run under its own job and assets
    audit = AuditResource(audit_url=f"sqlite:///{tmp_path / 'audit.db'}", environment="dev")
    audit_tick(instance, audit, None, log=lambda _: None, jobs=JobCatalog.from_definitions(defs))
    store = AuditStore(audit.audit_url)
    assert store.job(runs["medallion_job"])["job_name"] == "medallion_job"
    assert store.job(runs["crm_job"])["job_name"] == "crm_job"
    assert {t["asset_key"] for t in store.tasks(runs["crm_job"])} == {
        f"{layer}/crm_{t.lower()}" for layer in layers for t in DIMENSIONS
    }
    assert {t["asset_key"] for t in store.tasks(runs["medallion_job"])} == {
        f"{layer}/{t.lower()}" for layer in layers for t in DIMENSIONS
    }


def test_the_default_instance_is_what_the_defs_yaml_declares(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path / "data")
    built = build_medallion_definitions(settings)
    alone = load(settings, project(tmp_path, monkeypatch, {"medallion": {}}))  # every attribute defaulted
    assert {k for a in alone.assets for k in a.keys} == {k for a in built.assets for k in a.keys}
    assert {j.name for j in alone.jobs} == {"medallion_job", "spotify_medallion"}
    assert [s.name for s in alone.schedules] == ["medallion_daily"]
    assert alone.resolve_schedule_def("medallion_daily").cron_schedule == settings.medallion_schedule


def test_a_second_instance_without_its_variable_fails_its_bronze_step_saying_so(
    tmp_path, monkeypatch, instance
):
    url = f"sqlite:///{tmp_path / 'second.db'}"
    sample.init(url, scale=1, seed=8, days=1, end=date(2025, 1, 2))
    settings = Settings(
        data_dir=tmp_path / "data", tables_file=tables_file_for(tmp_path, None, dimensions_only)
    )
    path = project(
        tmp_path,
        monkeypatch,
        {"crm": {"name": "crm", "source_url_env": "CRM_SOURCE_URL", "schedule": "0 5 * * *"}},
    )
    monkeypatch.delenv("CRM_SOURCE_URL", raising=False)
    defs = load(settings, path)  # loading needs no URL: the variable is read when the step runs
    assert defs.resolve_schedule_def("crm_daily").cron_schedule == "0 5 * * *"
    result = defs.resolve_job_def("crm_job").execute_in_process(
        instance=instance, tags=DAY, raise_on_error=False
    )
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "a bronze step fails"
    assert all("CRM_SOURCE_URL is not set" in e.step_failure_data.error.message for e in failures)


@pytest.mark.parametrize(
    ("folders", "message"),
    [
        (
            {"medallion": {}, "crm": {"name": "crm"}, "crm2": {"name": "crm"}},
            "medallion name 'crm' is also the name of",
        ),
        ({"medallion": {}, "other": {"name": "medallion"}}, "medallion name 'medallion' is also the name of"),
        ({"customers": None, "crm": {"name": "customers"}}, "is the name of the domain defs/customers"),
        ({"crm": {"name": "CRM"}}, "name 'CRM' must be lower case"),
        (
            {"crm": {"name": "crm", "source_url_env": "sqlite:///x.db"}},
            "must be the NAME of an environment variable",
        ),
        ({"crm": {"name": "crm", "schedule": "every day"}}, "schedule 'every day' is not a cron expression"),
    ],
)
def test_instances_that_would_collide_are_refused_in_one_line(tmp_path, monkeypatch, folders, message):
    settings = Settings(
        data_dir=tmp_path / "data", tables_file=tables_file_for(tmp_path, None, dimensions_only)
    )
    assert_refused(settings, project(tmp_path, monkeypatch, folders), message)


def test_two_instances_producing_one_table_name_are_refused_in_one_line(tmp_path, monkeypatch):
    def add(document: dict) -> None:  # the default's list gets a table named like crm's DimUser
        dimensions_only(document)
        document["tables"].append({**document["tables"][0], "table": "Crm_DimUser"})

    settings = Settings(data_dir=tmp_path / "data", tables_file=tables_file_for(tmp_path, None, add))
    path = project(tmp_path, monkeypatch, {"medallion": {}, "crm": {"name": "crm"}})
    assert_refused(settings, path, "table 'crm_dimuser' of medallion")


def assert_refused(settings: Settings, path: Path, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load(settings, path)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    assert "defs.yaml" in text  # names the declaration


def test_a_second_instance_with_landing_files_has_its_own_sensor(tmp_path, monkeypatch):
    files_table = {
        "table": "Tracks",
        "source": "files",
        "format": "csv",
        "key": ["track_id"],
        "cdc_col": "updated_at",
        "columns": {"track_id": "int64", "updated_at": "timestamp"},
    }
    crm_tables = tmp_path / "crm_tables.yaml"
    crm_tables.write_text(yaml.safe_dump({"tables": [files_table]}))
    settings = Settings(
        data_dir=tmp_path / "data", tables_file=tables_file_for(tmp_path, None, dimensions_only)
    )
    path = project(
        tmp_path, monkeypatch, {"medallion": {}, "crm": {"name": "crm", "tables_file": str(crm_tables)}}
    )
    defs = load(settings, path)
    assert [s.name for s in defs.sensors] == ["crm_landing_files"]  # the default has no files table
    sensor = defs.resolve_sensor_def("crm_landing_files")
    selected = sensor.asset_selection.resolve(defs.resolve_asset_graph())
    assert {k.to_user_string() for k in selected} == {
        "bronze/crm_tracks",
        "silver/crm_tracks",
        "gold/crm_tracks",
    }
    # the run config the sensor sends names the instance's bronze step
    table = MedallionComponent(name="crm", tables_file=str(crm_tables)).instance(settings, None).tables[0]
    ops = {node.name for node in defs.resolve_job_def("crm_job").graph.node_defs}
    assert set(landing_run_config(table, ["tracks.csv@0"])["ops"]) == {"bronze__crm_tracks"} < ops
