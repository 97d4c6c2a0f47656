"""``python -m platform_assets.cli.check_config``: the table list checked against a real SQLite source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from platform_assets.cli import check_config
from platform_assets.core.medallion.check import check_table
from platform_assets.core.medallion.config import parse_table
from platform_assets_tests.conftest import tables_file_for

try:
    from platform_devkit.sample import init
except ImportError:  # the sample generator before it moved to the dev kit
    from platform_assets.sample import init

OK_LINES = [
    "ok DimUser (7 columns, change column updated_at: timestamp)",
    "ok DimArtist (5 columns, change column updated_at: timestamp)",
    "ok DimTrack (7 columns, change column updated_at: timestamp)",
    "ok DimDate (6 columns, full reload)",
    "ok FactStream (7 columns, change column stream_timestamp: timestamp)",
]


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("source") / "source.db"
    init(f"sqlite:///{path}", scale=1, seed=1, days=1)
    return path


@pytest.fixture
def source(sample_db, tmp_path) -> str:
    """A private copy of the sample source (tests drop tables from it)."""
    copy = tmp_path / "source.db"
    copy.write_bytes(sample_db.read_bytes())
    return f"sqlite:///{copy}"


def run(
    monkeypatch, capsys, source_url: str, tables_file: Path, **environ: str
) -> tuple[int, list[str], str]:
    """Exit status, the per-table lines (after the heading naming file and source) and stderr."""
    for name in [n for n in os.environ if n.startswith("PLATFORM_")]:
        monkeypatch.delenv(name)
    environ = {
        "PLATFORM_DATA_DIR": str(tables_file.parent),
        "PLATFORM_SOURCE_URL": source_url,
        "PLATFORM_TABLES_FILE": str(tables_file),
        **environ,
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    status = check_config.main([])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    if lines:
        assert lines.pop(0) == f"checking {len(OK_LINES)} table(s) of {tables_file} against {source_url}"
    return status, lines, err


def test_a_matching_source_passes_every_table(monkeypatch, capsys, source, tmp_path):
    status, lines, err = run(monkeypatch, capsys, source, tables_file_for(tmp_path, None))
    assert (status, lines, err) == (0, OK_LINES, "")


def test_a_missing_table_fails_that_table_and_names_what_exists(monkeypatch, capsys, source, tmp_path):
    engine = sa.create_engine(source)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE DimArtist"))
    engine.dispose()
    status, lines, err = run(monkeypatch, capsys, source, tables_file_for(tmp_path, None))
    assert status == 1
    assert lines == [
        OK_LINES[0],
        "FAIL DimArtist: source table DimArtist does not exist in schema main "
        "(tables there: Customers, DimDate, DimTrack, DimUser, FactStream, Products)",
        *OK_LINES[2:],
    ]
    assert err == "1 of 5 table(s) failed\n"


def test_a_missing_key_column_fails_that_table(monkeypatch, capsys, source, tmp_path):
    def rename_key(document):
        document["tables"][0]["key"] = ["uid"]

    status, lines, _ = run(monkeypatch, capsys, source, tables_file_for(tmp_path, None, rename_key))
    assert status == 1
    assert lines == ["FAIL DimUser: source table DimUser has no column(s) ['uid']", *OK_LINES[1:]]


def test_an_expectation_naming_a_missing_column_fails_that_table(monkeypatch, capsys, source, tmp_path):
    def add_rule(document):
        document["tables"][3]["expectations"].append(
            {"name": "known_quarter", "expr": "quarter_name IS NOT NULL AND month > 0", "action": "warn"}
        )

    status, lines, _ = run(monkeypatch, capsys, source, tables_file_for(tmp_path, None, add_rule))
    assert status == 1
    assert lines == [
        *OK_LINES[:3],
        "FAIL DimDate: expectation known_quarter (quarter_name IS NOT NULL AND month > 0) references unknown "
        "column(s) quarter_name",
        OK_LINES[4],
    ]


def test_derived_columns_may_use_each_other_and_expectations_see_them(source):
    engine = sa.create_engine(source)
    config = parse_table(
        {
            "table": "DimTrack",
            "key": "track_id",
            "cdc_col": "updated_at",
            "derived": {"minutes": "duration_sec / 60", "long_track": "minutes > 5", "bad": "tempo * 2"},
            "expectations": [
                {"name": "not_too_long", "expr": "long_track = false", "action": "warn"},
                {"name": "bpm", "expr": "bpm > 0", "action": "warn"},
            ],
        }
    )
    result = check_table(engine, config)
    engine.dispose()
    assert result.line == (
        "FAIL DimTrack: derived.bad (tempo * 2) references unknown column(s) tempo; "
        "expectation bpm (bpm > 0) references unknown column(s) bpm"
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"PLATFORM_MAX_CONCURRENT_TABLES": "0"},
            "error: PLATFORM_MAX_CONCURRENT_TABLES must be an integer of 1 or more, got 0",
        ),
        ({"PLATFORM_ENV": "qa"}, "error: PLATFORM_ENV must be one of dev, sit, prod, got 'qa'"),
    ],
)
def test_a_bad_setting_exits_2_with_one_line(monkeypatch, capsys, source, tmp_path, environ, message):
    status, lines, err = run(monkeypatch, capsys, source, tables_file_for(tmp_path, None), **environ)
    assert (status, lines, err) == (2, [], f"{message}\n")


def test_a_bad_table_list_exits_2_with_one_line(monkeypatch, capsys, source, tmp_path):
    tables = tmp_path / "tables.yaml"
    tables.write_text("tables:\n  - {table: DimUser, key: [user_id], gold: {scd_type: 3}}\n")
    status, lines, err = run(monkeypatch, capsys, source, tables)
    assert (status, lines) == (2, [])
    assert err == f"error: {tables}: DimUser.gold.scd_type must be 1 or 2, got 3\n"


def test_the_module_runs_from_the_command_line(source, tmp_path):
    environ = {
        "PATH": "/usr/bin:/bin",
        "PLATFORM_SOURCE_URL": source,
        "PLATFORM_TABLES_FILE": str(tables_file_for(tmp_path, None)),
        "PLATFORM_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "platform_assets.cli.check_config"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout.splitlines()[1:], done.stderr) == (0, OK_LINES, "")
    bad = subprocess.run(
        [sys.executable, "-m", "platform_assets.cli.check_config"],
        env={**environ, "PLATFORM_BATCH_SIZE": "abc"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (bad.returncode, bad.stdout, bad.stderr) == (
        2,
        "",
        "error: PLATFORM_BATCH_SIZE must be an integer of 1 or more, got 'abc'\n",
    )


def test_offline_checks_settings_and_the_table_list_without_the_source(tmp_path):
    """What `make dev` and `make demo` run first: a bad setting is one line, not a failed code location."""
    base = {"PATH": "/usr/bin:/bin", "PLATFORM_DATA_DIR": str(tmp_path / "nowhere")}

    def offline(**environ):
        return subprocess.run(
            [sys.executable, "-m", "platform_assets.cli.check_config", "--offline"],
            env={**base, **environ},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    good = offline()
    assert (good.returncode, good.stdout, good.stderr) == (0, "", "")
    assert not (tmp_path / "nowhere" / "source.db").exists()  # the source is not touched
    bad = offline(PLATFORM_BATCH_SIZE="abc")
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == "error: PLATFORM_BATCH_SIZE must be an integer of 1 or more, got 'abc'\n"


CRON_RULE = "must be a cron expression like '0 2 * * *' (five fields: minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-6)"  # fmt: skip


@pytest.mark.parametrize(
    ("config", "tables", "environ", "message"),
    [
        ("late_days: 1\nlate_days: 2\n", None, {}, "{config}, line 2: duplicate key 'late_days' (first on line 1)"),
        (None, "tables:\n  - table: A\n    key: id\n    key: a_id\n", {},
         "{tables}, line 4: duplicate key 'key' (first on line 3)"),
        ("countries: []\n", None, {},
         "{config}, line 1: countries is an empty list; give at least one value, or leave countries out for the default"),
        ("medallion_schedule: '99 99 * * *'\n", None, {}, f"{{config}}, line 1: medallion_schedule {CRON_RULE}, got '99 99 * * *'"),
        (None, None, {"PLATFORM_COUNTRIES_SCHEDULE": "0 0 31 2 *"},
         f"PLATFORM_COUNTRIES_SCHEDULE {CRON_RULE}, got '0 0 31 2 *'"),
        ("partition_start: 2025-13-01\n", None, {},
         "{config}, line 1: partition_start must be a date like 2024-01-01 (YYYY-MM-DD), got '2025-13-01' "
         "(month must be in 1..12)"),
        ("partition_start: 2025-02-30\n", None, {},
         "{config}, line 1: partition_start must be a date like 2024-01-01 (YYYY-MM-DD), got '2025-02-30' "
         "(day is out of range for month)"),
        ("late_days: 1\nbatch_size: abc\n", None, {}, "{config}, line 2: batch_size must be an integer of 1 or more, got 'abc'"),
        ("batch_size: 500\n", None, {"PLATFORM_BATCH_SIZE": "abc"}, "PLATFORM_BATCH_SIZE must be an integer of 1 or more, got 'abc'"),
        ("source_url: postgresql+psycopg://etl@db/source?sslpassword=s3cr3t-pa55\n", None, {},
         "{config}, line 1: source_url holds a credential in its query parameter 'sslpassword'; set PLATFORM_SOURCE_URL "
         "in the environment instead"),
        ("country_api_url: https://etl:s3cr3t-pa55@countries.example/v3.1\n", None, {},
         "{config}, line 1: country_api_url holds a password; set PLATFORM_COUNTRY_API_URL in the environment instead"),
    ],
)  # fmt: skip
def test_offline_refuses_a_misread_configuration_in_one_line_with_status_2(
    tmp_path, monkeypatch, capsys, config, tables, environ, message
):
    """The refusals of settings and the table list, as the command reports them: one line, no traceback
    (the command itself runs in a process of its own in the test above; here its main, for speed)."""
    folder = tmp_path / "config"
    folder.mkdir()
    config_path = folder / "dev.yaml"
    config_path.write_text(config or "late_days: 1\n")
    tables_path = tmp_path / "tables.yaml"
    tables_path.write_text(tables or "tables:\n  - {table: A, key: id}\n")
    for name in [n for n in os.environ if n.startswith("PLATFORM_")]:
        monkeypatch.delenv(name)
    for name, value in {
        "PLATFORM_DATA_DIR": str(tmp_path / "nowhere"),
        "PLATFORM_CONFIG_DIR": str(folder),
        "PLATFORM_TABLES_FILE": str(tables_path),
        **environ,
    }.items():
        monkeypatch.setenv(name, value)
    status = check_config.main(["--offline"])
    out, err = capsys.readouterr()
    expected = message.format(config=config_path, tables=tables_path)
    assert (status, out, err) == (2, "", f"error: {expected}\n")
    assert "s3cr3t-pa55" not in err


def test_every_medallion_instance_is_checked_against_its_own_source(monkeypatch, capsys, source, tmp_path):
    """A second source database declared in defs/ (docs/components.md) is checked too: its table list
    against the URL in its own variable; a table missing there fails that instance only."""
    defs = tmp_path / "defs"
    for folder, attributes in (("medallion", {"name": "medallion"}), ("crm", {"name": "crm",
            "tables_file": str(tables_file_for(tmp_path, None)), "source_url_env": "CRM_SOURCE_URL"})):  # fmt: skip
        (defs / folder).mkdir(parents=True)
        declaration = {"type": "platform_assets.components.MedallionComponent", "attributes": attributes}
        (defs / folder / "defs.yaml").write_text(yaml.safe_dump(declaration))
    (defs / "reports").mkdir()  # another domain's folder: not a medallion
    (defs / "reports" / "defs.yaml").write_text("type: dagster.DefinitionsComponent\n")
    crm = tmp_path / "crm.db"
    crm.write_bytes(Path(sa.make_url(source).database or "").read_bytes())
    engine = sa.create_engine(f"sqlite:///{crm}")
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE DimTrack"))
    engine.dispose()
    for name in [n for n in os.environ if n.startswith("PLATFORM_")]:
        monkeypatch.delenv(name)
    tables_file = tables_file_for(tmp_path, None)
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PLATFORM_SOURCE_URL", source)
    monkeypatch.setenv("PLATFORM_TABLES_FILE", str(tables_file))
    monkeypatch.setenv("CRM_SOURCE_URL", f"sqlite:///{crm}")

    status = check_config.main([], defs_folder=defs)
    out, err = capsys.readouterr()
    assert status == 1
    lines = out.splitlines()
    assert lines[0] == f"checking 5 table(s) of {tables_file} against {source}"
    assert lines[1:6] == OK_LINES  # the default instance: all good
    assert lines[6] == f"checking 5 table(s) of medallion 'crm' against sqlite:///{crm}"
    assert lines[7:9] == OK_LINES[:2]
    assert lines[9].startswith("FAIL DimTrack: source table DimTrack does not exist")
    assert err == "1 of 5 table(s) failed\n"

    monkeypatch.delenv("CRM_SOURCE_URL")  # its variable unset: that instance fails, naming it
    assert check_config.main([], defs_folder=defs) == 1
    out, err = capsys.readouterr()
    assert "CRM_SOURCE_URL is not set: it names medallion 'crm''s source database" in err
    assert out.splitlines()[1:] == OK_LINES
