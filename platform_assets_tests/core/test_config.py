"""tables.yaml validation: the shipped list, hostile identifiers and every structural rule."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from platform_assets.core.medallion.config import (
    ConfigError,
    identifier,
    load_tables,
    parse_table,
    parse_tables,
)

SHIPPED = Path(__file__).resolve().parents[2] / "platform_assets" / "tables.yaml"


def entry(**overrides):
    base = {"table": "DimUser", "key": ["user_id"], "cdc_col": "updated_at"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


# ----------------------------------------------------------------------------------------------------
# the shipped list


@pytest.fixture(scope="module")
def shipped():
    return {t.table: t for t in load_tables(SHIPPED)}


def test_shipped_list_has_five_tables(shipped):
    assert list(shipped) == ["DimUser", "DimArtist", "DimTrack", "DimDate", "FactStream"]
    assert [t.name for t in shipped.values()] == ["dimuser", "dimartist", "dimtrack", "dimdate", "factstream"]


def test_shipped_keys_and_change_columns(shipped):
    expected = {
        "DimUser": (("user_id",), "updated_at"),
        "DimArtist": (("artist_id",), "updated_at"),
        "DimTrack": (("track_id",), "updated_at"),
        "DimDate": (("date_key",), None),
        "FactStream": (("stream_id",), "stream_timestamp"),
    }
    assert {name: (t.keys, t.cdc_col) for name, t in shipped.items()} == expected
    assert shipped["DimDate"].full_reload
    assert not shipped["DimUser"].full_reload
    assert all(t.schema is None and t.from_date is None for t in shipped.values())


def test_shipped_partitioning_and_scd(shipped):
    assert shipped["FactStream"].partitioned
    assert shipped["FactStream"].partition == "daily"
    assert shipped["FactStream"].partition_by == ("stream_date",)
    assert [n for n, t in shipped.items() if t.partitioned] == ["FactStream"]
    assert shipped["DimUser"].partition_by == ()
    assert {n: t.scd_type for n, t in shipped.items()} == {
        "DimUser": 2,
        "DimArtist": 2,
        "DimTrack": 2,
        "DimDate": 1,
        "FactStream": 1,
    }


def test_shipped_derived_rules(shipped):
    assert dict(shipped["DimUser"].derived) == {"user_name": "UPPER(user_name)"}
    track = dict(shipped["DimTrack"].derived)
    assert track["track_name"] == "REPLACE(track_name, '-', ' ')"
    assert "duration_sec < 150" in track["duration_flag"]
    assert "duration_sec < 300" in track["duration_flag"]
    assert set(track) == {"track_name", "duration_flag"}
    assert not shipped["DimArtist"].derived and not shipped["FactStream"].derived


def test_shipped_expectations(shipped):
    by_table = {n: {e.name: e.action for e in t.expectations} for n, t in shipped.items()}
    assert by_table["DimUser"] == {"known_subscription_type": "warn", "user_name_present": "drop"}
    assert by_table["DimDate"] == {"valid_month": "fail"}
    assert by_table["FactStream"] == {"non_negative_listen_duration": "drop", "user_present": "warn"}


def test_system_expectations_are_added(shipped):
    user = shipped["DimUser"]
    names = [e.name for e in user.all_expectations]
    assert names[:2] == ["key_not_null", "cdc_not_null"]
    assert names[2:] == [e.name for e in user.expectations]
    system = {e.name: e for e in user.system_expectations}
    assert system["key_not_null"].expr == '"user_id" IS NOT NULL'
    assert system["key_not_null"].action == "drop"
    assert system["cdc_not_null"].expr == '"updated_at" IS NOT NULL'
    assert system["cdc_not_null"].action == "drop"
    # a full-reload table has no change column, so only the key rule
    assert [e.name for e in shipped["DimDate"].system_expectations] == ["key_not_null"]


def test_composite_key_system_expectation():
    config = parse_table(entry(key=["a", "b"]))
    assert config.keys == ("a", "b")
    assert config.system_expectations[0].expr == '"a" IS NOT NULL AND "b" IS NOT NULL'


@pytest.mark.parametrize("column", ["order", "select", "user", "date", "Month"])
def test_system_expectations_work_with_reserved_word_columns(column):
    import polars as pl

    config = parse_table({"table": "T", "key": [column, "id"], "cdc_col": column})
    frame = pl.DataFrame({column: [1, None, 3], "id": [1, 2, None]})
    results = [frame.select(e.predicate()).to_series().to_list() for e in config.system_expectations]
    assert results == [[True, False, False], [True, False, True]]


def test_single_key_string_is_accepted():
    assert parse_table(entry(key="user_id")).keys == ("user_id",)


def test_defaults():
    config = parse_table({"table": "T", "key": "id"})
    assert config.cdc_col is None and config.full_reload
    assert config.scd_type == 1 and config.track_history_except == ()
    assert config.expectations == () and dict(config.derived) == {}


# ----------------------------------------------------------------------------------------------------
# hostile identifiers


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"table": "DimUser; DROP TABLE x"}, "table"),
        ({"schema": "../etc"}, "DimUser.schema"),
        ({"key": ["user_id", 'user"id']}, "DimUser.key"),
        ({"key": ["user'id"]}, "DimUser.key"),
        ({"cdc_col": "updated at"}, "DimUser.cdc_col"),
        ({"derived": {"bad col": "UPPER(x)"}}, "DimUser.derived"),
        ({"gold": {"scd_type": 2, "track_history_except": ["x;y"]}}, "DimUser.gold.track_history_except"),
        ({"expectations": [{"name": "a b", "expr": "x > 0"}]}, "DimUser.expectations.name"),
    ],
)
def test_hostile_identifiers_are_rejected(overrides, field):
    with pytest.raises(ConfigError) as info:
        parse_table(entry(**overrides))
    message = str(info.value)
    assert message.startswith(f"{field}:")
    assert "not a valid identifier" in message


@pytest.mark.parametrize(
    "value", ["../../etc", "", "1abc", "a-b", "a.b", "x" * 64, None, 5, "ünïcode", "a\nb", "a b"]
)
def test_identifier_rejects(value):
    with pytest.raises(ConfigError, match="what"):
        identifier(value, "what")


@pytest.mark.parametrize("value", ["a", "_x", "DimUser", "user_id2", "x" * 63])
def test_identifier_accepts(value):
    assert identifier(value, "what") == value


def test_hostile_table_name_message_quotes_the_value():
    with pytest.raises(ConfigError, match=r"table: 'DimUser; DROP TABLE x'"):
        parse_table(entry(table="DimUser; DROP TABLE x"))


# ----------------------------------------------------------------------------------------------------
# structural rules


def test_unknown_top_level_field():
    with pytest.raises(ConfigError, match=r"DimUser: unknown field\(s\) \['scd_type', 'watermark'\]"):
        parse_table(entry(scd_type=2, watermark="x"))


def test_unknown_gold_field():
    # a typo must not silently fall back to SCD type 1
    with pytest.raises(ConfigError, match=r"DimUser.gold: unknown field\(s\) \['scd_typ'\]"):
        parse_table(entry(gold={"scd_typ": 2}))


def test_unknown_expectation_field():
    # a typo in "action" must not silently downgrade a drop rule to warn
    with pytest.raises(ConfigError, match=r"DimUser.expectations.r: unknown field\(s\) \['acton'\]"):
        parse_table(entry(expectations=[{"name": "r", "expr": "x > 0", "acton": "drop"}]))


def test_entry_must_be_mapping():
    with pytest.raises(ConfigError, match="mapping"):
        parse_table(["DimUser"])


def test_missing_key():
    with pytest.raises(ConfigError, match="DimUser: at least one key column"):
        parse_table(entry(key=...))
    with pytest.raises(ConfigError, match="DimUser: at least one key column"):
        parse_table(entry(key=[]))


def test_bad_action():
    with pytest.raises(ConfigError, match=r"DimUser.expectations.r: action must be one of"):
        parse_table(entry(expectations=[{"name": "r", "expr": "x > 0", "action": "explode"}]))


def test_action_defaults_to_warn():
    config = parse_table(entry(expectations=[{"name": "r", "expr": "x > 0"}]))
    assert config.expectations[0].action == "warn"


@pytest.mark.parametrize("scd", [0, 3, "2", None, True, 2.0])
def test_bad_scd_type(scd):
    with pytest.raises(ConfigError, match=r"DimUser.gold.scd_type must be 1 or 2"):
        parse_table(entry(gold={"scd_type": scd}))


def test_scd2_needs_cdc_col():
    with pytest.raises(ConfigError, match="DimUser: SCD type 2 needs a cdc_col"):
        parse_table(entry(cdc_col=None, gold={"scd_type": 2}))
    assert parse_table(entry(cdc_col=None, gold={"scd_type": 1})).scd_type == 1


def test_track_history_except():
    config = parse_table(entry(gold={"scd_type": 2, "track_history_except": ["last_login", "plays"]}))
    assert config.track_history_except == ("last_login", "plays")


def test_partition_needs_cdc_col():
    with pytest.raises(ConfigError, match="DimUser: a partitioned table needs a cdc_col"):
        parse_table(entry(cdc_col=None, partition="daily"))


def test_only_daily_partition():
    with pytest.raises(ConfigError, match=r"DimUser.partition: only 'daily'"):
        parse_table(entry(partition="hourly"))


def test_duplicate_tables_case_insensitive():
    with pytest.raises(ConfigError, match=r"duplicate table names: \['dimuser'\]"):
        parse_tables([entry(), entry(table="DIMUSER")])
    assert len(parse_tables([entry(), entry(table="DimUser2")])) == 2


def test_duplicate_expectation_names():
    rules = [{"name": "r", "expr": "x > 0"}, {"name": "r", "expr": "x < 10", "action": "drop"}]
    with pytest.raises(ConfigError, match="DimUser: expectation names must be unique"):
        parse_table(entry(expectations=rules))


def test_expectation_name_clashing_with_system_rule():
    with pytest.raises(ConfigError, match="expectation names must be unique"):
        parse_table(entry(expectations=[{"name": "key_not_null", "expr": "x > 0"}]))


@pytest.mark.parametrize("expr", ["UPPER(", "CASE WHEN THEN END", "", "   ", 42, None])
def test_bad_sql_in_derived(expr):
    with pytest.raises(ConfigError, match=r"DimUser.derived.user_name: "):
        parse_table(entry(derived={"user_name": expr}))


@pytest.mark.parametrize("expr", ["x >", "x IN (", "", None])
def test_bad_sql_in_expectation(expr):
    with pytest.raises(ConfigError, match=r"DimUser.expectations.r: "):
        parse_table(entry(expectations=[{"name": "r", "expr": expr, "action": "drop"}]))


def test_expectation_must_be_mapping():
    with pytest.raises(ConfigError, match="DimUser.expectations: each rule must be a mapping"):
        parse_table(entry(expectations=["x > 0"]))


# ----------------------------------------------------------------------------------------------------
# from_date


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
        (date(2024, 3, 1), datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-03-01T10:30:00", datetime(2024, 3, 1, 10, 30, tzinfo=UTC)),
        ("2024-03-01T10:30:00+02:00", datetime(2024, 3, 1, 8, 30, tzinfo=UTC)),
        ("2024-03-01T01:00:00-03:00", datetime(2024, 3, 1, 4, 0, tzinfo=UTC)),
        (datetime(2024, 3, 1, 12), datetime(2024, 3, 1, 12, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_from_date_is_utc(value, expected):
    parsed = parse_table(entry(from_date=value)).from_date
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset().total_seconds() == 0


def test_from_date_invalid():
    with pytest.raises(ConfigError, match=r"DimUser.from_date: 'yesterday' is not an ISO date"):
        parse_table(entry(from_date="yesterday"))


def test_from_date_through_yaml(tmp_path):
    # unquoted YAML dates arrive as text (no implicit timestamps), datetimes with an offset too
    path = tmp_path / "tables.yaml"
    path.write_text(
        "tables:\n"
        "  - {table: A, key: id, cdc_col: ts, from_date: 2024-03-01}\n"
        "  - {table: B, key: id, cdc_col: ts, from_date: '2024-03-01 23:00:00-02:00'}\n"
    )
    a, b = load_tables(path)
    assert a.from_date == datetime(2024, 3, 1, tzinfo=UTC)
    assert b.from_date == datetime(2024, 3, 2, 1, 0, tzinfo=UTC)


# ----------------------------------------------------------------------------------------------------
# the file itself


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_tables(tmp_path / "nope.yaml")


@pytest.mark.parametrize("document", [{"tables": {"a": 1}}, {"other": []}, ["x"], None])
def test_file_without_table_list(tmp_path, document):
    path = tmp_path / "tables.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match="expected a mapping with a 'tables' list"):
        load_tables(path)


def test_hostile_entry_in_file_is_rejected(tmp_path):
    path = tmp_path / "tables.yaml"
    path.write_text(yaml.safe_dump({"tables": [entry(), entry(table="x", schema="../etc")]}))
    with pytest.raises(ConfigError, match=r"x.schema: '../etc'"):
        load_tables(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tables:\n  - {table: DimUser, key: id, cdc_col: ts, from_date: 2025-13-45}\n",
            r"^{path}: DimUser\.from_date: '2025-13-45' is not an ISO date \(month must be in 1\.\.12\)$",
        ),
        (
            "tables:\n  - table: DimUser\n    key: [id\n  - table: B\n",
            r"^{path}, line 4, column 10: not valid YAML: expected .,. or .\]., but got .:.$",
        ),
        (
            "tables:\n  - {table: DimUser, key: id, cdc_col: ts, lag: soon}\n",
            r"^{path}: DimUser\.lag: 'soon' is not a duration",
        ),
    ],
)
def test_config_errors_name_file_table_and_field(tmp_path, text, message):
    path = tmp_path / "tables.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.format(path=re.escape(str(path)))):
        load_tables(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # the second `key:` would silently replace the first
        (
            "tables:\n  - table: DimUser\n    key: user_id\n    cdc_col: updated_at\n    key: id\n",
            "line 5: duplicate key 'key' (first on line 3)",
        ),
        (
            "tables:\n  - {table: DimUser, key: id, gold: {scd_type: 2, scd_type: 1}}\n",
            "line 2: duplicate key 'scd_type' (first on line 2)",
        ),
        # a second list would silently replace the first one, tables and all
        (
            "tables:\n  - {table: A, key: id}\n\ntables:\n  - {table: B, key: id}\n",
            "line 4: duplicate key 'tables' (first on line 1)",
        ),
        # an impossible date under an explicit tag: a marked error, not a traceback
        (
            "tables:\n  - {table: A, key: id, cdc_col: ts, from_date: !!timestamp 2025-02-30}\n",
            "line 2, column 49: not valid YAML: '2025-02-30' is not a valid timestamp (day is out of range for month)",
        ),
    ],
)
def test_a_key_given_twice_is_refused_naming_file_line_and_key(tmp_path, text, message):
    path = tmp_path / "tables.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_tables(path)
    assert str(error.value) == f"{path}, {message}"


def test_a_merge_key_may_still_be_overridden(tmp_path):
    path = tmp_path / "tables.yaml"
    path.write_text(
        "base: &base {key: id, cdc_col: ts}\n"
        "tables:\n"
        "  - {<<: *base, table: A}\n"
        "  - {<<: *base, table: B, cdc_col: changed_at}\n"
    )
    a, b = load_tables(path)
    assert (a.keys, a.cdc_col, b.keys, b.cdc_col) == (("id",), "ts", ("id",), "changed_at")


def test_an_unreadable_table_list_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=rf"^cannot read table list {re.escape(str(tmp_path))}: "):
        load_tables(tmp_path)  # a folder


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["DimUser", "DimUser_quarantine"], r"^DimUser_quarantine: collides with DimUser's quarantine table"),
        (["dimuser_QUARANTINE", "DimUser"], r"^dimuser_QUARANTINE: collides with DimUser's quarantine table"),
        (["_set_aside"], r"^_set_aside: names starting with '_' are reserved"),
    ],
)
def test_names_that_collide_with_derived_tables_are_rejected(names, message):
    with pytest.raises(ConfigError, match=message):
        parse_tables([entry(table=n) for n in names])


def test_expectation_predicate_treats_null_as_violation():
    import polars as pl

    rule = parse_table(entry(expectations=[{"name": "r", "expr": "x > 0"}])).expectations[0]
    frame = pl.DataFrame({"x": [1, -1, None]})
    assert frame.select(rule.predicate()).to_series().to_list() == [True, False, False]


def test_fields_are_spelled_as_in_the_file_only():
    # the model's own name for `schema:` is not a second spelling of it
    with pytest.raises(ConfigError, match=r"^DimUser: unknown field\(s\) \['source_schema'\]$"):
        parse_table(entry(source_schema="src"))
    assert parse_table(entry(schema="src")).schema == "src"


def test_a_files_table_resolves_to_the_same_table_config():
    from platform_assets.core.medallion.config import SnapshotTime, TableConfig

    config = parse_table(
        {
            "table": "Prices",
            "key": "sku",
            "source": "files",
            "format": "csv",
            "columns": {"sku": "string", "price": "float64", "exported_at": "timestamp"},
            "snapshot_time": {"column": "exported_at"},
            "expectations": [{"name": "priced", "expr": "price > 0", "action": "drop"}],
        }
    )
    assert isinstance(config, TableConfig)
    assert (config.keys, config.format, config.on_duplicate_key) == (("sku",), "csv", "quarantine")
    assert dict(config.columns) == {"sku": "string", "price": "float64", "exported_at": "timestamp"}
    assert config.snapshot_time == SnapshotTime("column", column="exported_at")
    assert [(e.name, e.expr, e.action) for e in config.expectations] == [("priced", "price > 0", "drop")]
    assert config.full_reload and config.from_files and config.partition_by == ()
