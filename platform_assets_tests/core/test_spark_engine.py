"""The Spark engine gives the polars engine's results row for row: the same batches through
``apply_changes`` and ``apply_changes_spark`` (and silver's cleaning through polars and
``clean_batch_spark``) must leave identical Delta tables, hidden state tables and counts.

One local Spark session (``local[2]``) serves every test; if its JVM cannot start the tests fail
with the reason (they never skip).
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from platform_assets.core.lake import delta
from platform_assets.core.medallion.config import Expectation, TableConfig, load_tables
from platform_assets.core.medallion.expectations import apply_expectations
from platform_assets.core.medallion.scd import (
    LAST_SEQ_DIR,
    TOMBSTONES_DIR,
    CdcResult,
    CdcSpec,
    apply_changes,
    state_path,
)
from platform_assets.core.medallion.silver import RESCUED, latest_per_key, read_bronze, transform
from platform_assets.core.spark import scd as spark_scd
from platform_assets.core.spark.read import create_dataframe
from platform_assets.core.spark.scd import apply_changes_spark
from platform_assets.core.spark.session import JavaMissingError, require_java
from platform_assets.core.spark.silver import clean_batch_spark, row_wise
from platform_assets_tests.core import test_scd as cases
from platform_assets_tests.spark_sessions import shared_session, stop_shared_session

SHIPPED = Path(__file__).resolve().parents[2] / "platform_assets" / "tables.yaml"


@pytest.fixture(scope="session")
def _spark_lifetime():
    yield
    stop_shared_session()


@pytest.fixture
def spark(_spark_lifetime):
    """The test process's shared ``local[2]`` session, started again if a medallion test in this worker
    stopped it in between (platform_assets_tests/spark_sessions.py)."""
    return shared_session()


# --------------------------------------------------------------------------- comparing the engines


def summary(result: CdcResult) -> tuple:
    rejected = result.rejected
    return (
        result.rows_in,
        result.rows_inserted,
        result.rows_updated,
        result.rows_deleted,
        result.committed,
        result.version,
        rejected.columns,
        sorted(map(repr, rejected.rows())),
    )


def table_state(path: str) -> tuple | None:
    if not delta.table_exists(path):
        return None
    df = delta.read(path)
    rows = df.sort(df.columns, nulls_last=True)
    return delta.version(path), df.schema, rows


def assert_same_tables(polars_target: str, spark_target: str) -> None:
    for name in (None, TOMBSTONES_DIR, LAST_SEQ_DIR):
        a, b = (p if name is None else state_path(p, name) for p in (polars_target, spark_target))
        left, right = table_state(a), table_state(b)
        assert (left is None) == (right is None), f"{name or 'target'}: exists in one engine only"
        if left is not None:
            assert left[:2] == right[:2], f"{name or 'target'}: version/schema differ"
            assert left[2].equals(right[2]), f"{name or 'target'}:\n{left[2]}\n!=\n{right[2]}"


class Twin:
    """One target written by both engines, compared after every batch."""

    def __init__(self, spark, tmp_path: Path, spec: CdcSpec, name: str = "t"):
        self.spark, self.spec = spark, spec
        self.polars, self.spark_target = str(tmp_path / f"{name}_polars"), str(tmp_path / f"{name}_spark")

    def apply(self, batch: pl.DataFrame, partition_values=None, *, as_spark=False, buckets=None) -> CdcResult:
        expected = apply_changes(self.polars, batch, self.spec, partition_values=partition_values)
        given = create_dataframe(self.spark, batch) if as_spark else batch
        got = apply_changes_spark(
            self.spark,
            self.spark_target,
            given,
            self.spec,
            partition_values=partition_values,
            buckets=buckets,
        )
        assert summary(got) == summary(expected)
        assert_same_tables(self.polars, self.spark_target)
        return got


# --------------------------------------------------------------------------- DLT golden example


@pytest.mark.parametrize("case", cases.CASES)
def test_golden_single_batch(spark, tmp_path, case):
    spec, columns, expected = cases.CASES[case]
    twin = Twin(spark, tmp_path, spec)
    twin.apply(cases.events(cases.GOLDEN))
    assert cases.stored(twin.spark_target, columns) == cases.expected_sorted(expected)
    assert not twin.apply(cases.events(cases.GOLDEN)).committed  # replay


GOLDEN_SPLITS = ["reverse_one_by_one", "delete_first", "seed3"]  # the other splits: same paths


@pytest.mark.parametrize("split", GOLDEN_SPLITS)
@pytest.mark.parametrize("case", cases.CASES)
def test_golden_split_in_any_order(spark, tmp_path, case, split):
    spec, columns, expected = cases.CASES[case]
    twin = Twin(spark, tmp_path, spec)
    for chunk in cases.SPLITS[split]:
        twin.apply(cases.events(chunk))
    assert cases.stored(twin.spark_target, columns) == cases.expected_sorted(expected)
    assert not twin.apply(cases.events(cases.GOLDEN)).committed  # a replay commits nothing


def test_golden_scd2_storing_the_sequence_one_key_per_group(spark, tmp_path):
    spec = CdcSpec(
        ("userId",), "sequenceNum", 2, apply_as_deletes="is_delete", except_column_list=("operation",)
    )
    twin = Twin(spark, tmp_path, spec)
    for chunk in cases.SPLITS["seed1"]:
        twin.apply(cases.events(chunk), buckets=0)


# --------------------------------------------------------------------------- scenarios of test_scd


def ts(day: int) -> datetime:
    return datetime(2025, 1, day, 12, tzinfo=UTC)


TS_SCHEMA = {"id": pl.Int64, "status": pl.String, "updated_at": pl.Datetime("us", "UTC")}
TIES1 = [(1, "a", 5), (1, "c", 5), (1, "b", 5), (2, "x", 1), (2, None, 1)]
TIES2 = [
    (1, "a", None, 1, False),
    (1, "b", None, 1, False),
    (1, "c", None, 3, False),
    (1, None, None, 3, True),
    (2, "x", "n1", 1, False),
    (2, "x", "n2", 1, False),
]
NO_SEQ = CdcSpec(keys=("id",), sequence_by=None, apply_as_deletes="gone")
PARTITIONED = CdcSpec(keys=("id",), sequence_by="seq", partition_by=("stream_date",))
FACT = {"id": pl.Int64, "stream_date": pl.Date, "plays": pl.Int64, "seq": pl.Int64}
DAY1, DAY2 = date(2025, 1, 1), date(2025, 1, 2)
LATER = pl.DataFrame({"id": [2], "v": ["b"], "seq": [2], "zip": ["75001"]})

# name -> (spec, [(batch, partition_values)])
SCENARIOS = {
    "scd1_older_event_later": (
        cases.SIMPLE1,
        [cases.scd1_batch([(1, "new", 5)]), cases.scd1_batch([(1, "old", 3)])],
    ),
    "scd1_equal_sequence": (
        cases.SIMPLE1,
        [cases.scd1_batch([(1, "a", 5)]), cases.scd1_batch([(1, "b", 5)])],
    ),
    "scd1_ties": (cases.SIMPLE1, [cases.scd1_batch(TIES1), cases.scd1_batch(TIES1[::-1])]),
    "scd1_no_sequence": (
        NO_SEQ,
        [
            pl.DataFrame({"id": [1, 2, 3], "v": ["a", "b", "c"], "gone": [False, False, False]}),
            pl.DataFrame(
                {"id": [1, 2, 2, 3], "v": ["a", "x", "y", None], "gone": [False, False, False, True]}
            ),
            pl.DataFrame({"id": [2, 2, 4], "v": ["z", "w", "n"], "gone": [False, False, False]}),
        ],
    ),
    "scd2_ties": (cases.SIMPLE2, [cases.scd2_batch(TIES2[::-1]), *[cases.scd2_batch([r]) for r in TIES2]]),
    "scd2_late_event_in_version": (
        cases.SIMPLE2,
        [
            cases.scd2_batch([(1, "a", "first", 1, False), (1, "a", "latest", 5, False)]),
            cases.scd2_batch([(1, "a", "middle", 3, False)]),
            cases.scd2_batch([(1, "b", "split", 3, False)]),
        ],
    ),
    "scd2_late_untracked_without_sequence_column": (
        CdcSpec(
            ("id",),
            "seq",
            2,
            apply_as_deletes="del",
            except_column_list=("seq",),
            track_history_except_column_list=("note",),
        ),
        [
            cases.scd2_batch(
                [(1, "a", "first", 1, False), (1, "a", "latest", 5, False), (2, "x", "n", 2, True)]
            ),
            cases.scd2_batch([(1, "a", "middle", 3, False), (2, "y", "m", 1, False)]),
            cases.scd2_batch([(1, "b", "split", 3, False), (1, None, None, 7, True)]),
        ],
    ),
    "scd2_utc_timestamps": (
        CdcSpec(keys=("id",), sequence_by="updated_at", stored_as_scd_type=2),
        [
            pl.DataFrame([(1, "closed", ts(3))], schema=TS_SCHEMA, orient="row"),
            pl.DataFrame([(1, "open", ts(1))], schema=TS_SCHEMA, orient="row"),
            pl.DataFrame(
                {"id": [1], "status": ["review"], "updated_at": [datetime(2025, 1, 2, 12)]}
            ).with_columns(pl.col("updated_at").cast(pl.Datetime("ns"))),
        ],
    ),
    "rejects": (
        cases.SIMPLE1,
        [
            cases.scd1_batch(
                [(1, "ok", 1), (None, "no key", 2), (2, "no seq", None), (None, "neither", None)]
            ),
            cases.scd1_batch([(None, "x", 1)]),
        ],
    ),
    "new_column_scd1": (cases.SIMPLE1, [cases.scd1_batch([(1, "a", 1), (2, "b", 1)]), LATER]),
    "new_column_scd2": (
        CdcSpec(keys=("id",), sequence_by="seq", stored_as_scd_type=2),
        [cases.scd1_batch([(1, "a", 1)]), LATER.with_columns(pl.lit(1, pl.Int64).alias("id"))],
    ),
    "delete_only_tombstone": (
        cases.SCD1,
        [
            cases.events([cases.GOLDEN[4]]),
            cases.events([cases.GOLDEN[1], cases.GOLDEN[7]]),
            cases.events([(123, "Isabel", "Tulum", "UPDATE", 7)]),
        ],
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenarios(spark, tmp_path, name):
    spec, batches = SCENARIOS[name]
    twin = Twin(spark, tmp_path, spec)
    for batch in batches:
        twin.apply(batch)


def test_partition_values_and_scope(spark, tmp_path):
    twin = Twin(spark, tmp_path, PARTITIONED)
    initial = [(1, DAY1, 10, 1), (2, DAY1, 20, 1), (3, DAY2, 30, 1), (4, DAY2, 40, 1)]
    twin.apply(pl.DataFrame(initial, schema=FACT, orient="row"))
    update = pl.DataFrame([(3, DAY2, 31, 2), (5, DAY2, 50, 2)], schema=FACT, orient="row")
    twin.apply(update, {"stream_date": [DAY2]})
    twin.apply(update, {"stream_date": [DAY2]}, as_spark=True)  # a replay, from a Spark DataFrame
    for batch in (update, create_dataframe(spark, update)):
        with pytest.raises(ValueError, match="outside partition_values"):
            apply_changes_spark(
                spark, twin.spark_target, batch, PARTITIONED, partition_values={"stream_date": [DAY1]}
            )


def test_invalid_inputs_raise_the_core_errors(spark, tmp_path):
    target = str(tmp_path / "t")
    with pytest.raises(ValueError, match="missing column"):
        apply_changes_spark(spark, target, pl.DataFrame({"id": [1]}), cases.SIMPLE1)
    bad = create_dataframe(spark, cases.scd1_batch([(1, "a", 1)]))
    with pytest.raises(ValueError, match="must be Boolean"):
        apply_changes_spark(spark, target, bad, CdcSpec(("id",), "seq", apply_as_deletes="v"))
    empty = apply_changes_spark(spark, target, cases.scd1_batch([]), cases.SIMPLE1)
    assert (empty.rows_in, empty.committed, empty.version) == (0, False, None)


# --------------------------------------------------------------------------- how rows are written


def commits(path: str) -> list[tuple[str, list[dict]]]:
    """(operation, add actions) of every commit of the table, oldest first."""
    out = []
    for log in sorted((Path(path) / "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        operation = next(a["commitInfo"]["operation"] for a in actions if "commitInfo" in a)
        out.append((operation, [a["add"] for a in actions if "add" in a]))
    return out


EXECUTOR_FILE = re.compile(r"part-[0-9a-f]{8}-[0-9a-f]{4}-.*-c000\.snappy\.parquet$")  # write.py's names


def test_rows_that_only_add_are_written_by_the_executors_and_committed_by_delta_rs(spark, tmp_path):
    twin = Twin(spark, tmp_path, PARTITIONED)
    initial = [(1, DAY1, 10, 1), (2, DAY1, 20, 1), (3, DAY2, 30, 1)]
    twin.apply(pl.DataFrame(initial, schema=FACT, orient="row"))
    day3 = date(2025, 1, 3)
    twin.apply(pl.DataFrame([(4, day3, 40, 1), (5, day3, None, 1)], schema=FACT, orient="row"))
    twin.apply(pl.DataFrame([(1, DAY1, 11, 2)], schema=FACT, orient="row"))  # an update: one merge

    target = twin.spark_target
    (create, first), (append, added), (merge, _) = commits(target)
    assert (create, append, merge) == ("CREATE TABLE", "WRITE", "MERGE")
    for add in [*first, *added]:
        assert EXECUTOR_FILE.search(add["path"]), add["path"]
        assert add["path"].startswith(f"stream_date={add['partitionValues']['stream_date']}/")
        assert (Path(target) / add["path"]).stat().st_size == add["size"]
    stats = [json.loads(a["stats"]) for a in added]
    assert sum(s["numRecords"] for s in stats) == 2
    assert stats[0]["nullCount"]["plays"] == 1 and (
        stats[0]["minValues"]["id"],
        stats[0]["maxValues"]["id"],
    ) == (4, 5)
    assert sum(json.loads(a["stats"])["numRecords"] for a in first) == 3
    # Nothing but the log and partition folders in the root (no _SUCCESS, no .crc), change feed on.
    assert {p.name for p in Path(target).iterdir()} == {
        "_delta_log",
        "_change_data",
        "stream_date=2025-01-01",
        "stream_date=2025-01-02",
        "stream_date=2025-01-03",
    }
    assert DeltaTable(target).metadata().configuration == delta.CDF_CONFIGURATION
    changes, _ = delta.read_changes(target, 0)
    assert sorted(changes.get_column("id").to_list()) == [1, 4, 5]  # the append's rows, then the merge's


def test_rows_with_a_partition_value_that_needs_escaping_are_written_on_the_driver(spark, tmp_path):
    spec = CdcSpec(keys=("id",), sequence_by="seq", partition_by=("region",))
    twin = Twin(spark, tmp_path, spec)
    twin.apply(pl.DataFrame({"id": [1, 2], "region": ["a b/c", "d"], "seq": [1, 1]}))
    [(operation, added)] = commits(twin.spark_target)
    assert operation == "WRITE" and not any(EXECUTOR_FILE.search(a["path"]) for a in added)


# --------------------------------------------------------------------------- randomized


def random_batch(rng: random.Random, size: int, partitioned: bool) -> pl.DataFrame:
    rows = []
    for _ in range(size):
        key = rng.randrange(8)
        day = DAY1 + timedelta(days=key % 2)
        is_delete = rng.random() < 0.2
        rows.append(
            {
                "id": None if rng.random() < 0.03 else key,
                "sub": "ab"[key % 3 == 0],
                "day": None if is_delete and rng.random() < 0.5 else day,
                "v": None if is_delete else rng.choice(["x", "y", "z", None]),
                "note": rng.choice(["n1", "n2", None]),
                "seq": None if rng.random() < 0.03 else rng.randrange(10),  # small range: many ties
                "del": is_delete,
            }
        )
    schema = {
        "id": pl.Int64,
        "sub": pl.String,
        "day": pl.Date,
        "v": pl.String,
        "note": pl.String,
        "seq": pl.Int32,
        "del": pl.Boolean,
    }
    frame = pl.DataFrame(rows, schema=schema)
    return frame if partitioned else frame.drop("day")


@pytest.mark.parametrize(
    ("scd_type", "partitioned", "buckets"),
    [(1, False, None), (1, True, 1), (2, False, None), (2, True, 0)],
)
def test_random_rounds(spark, tmp_path, scd_type, partitioned, buckets):
    spec = CdcSpec(
        keys=("id", "sub"),
        sequence_by="seq",
        stored_as_scd_type=scd_type,
        apply_as_deletes="del",
        except_column_list=("seq",) if scd_type == 2 else (),  # SCD2: needs the _cdc_last_seq state
        track_history_except_column_list=("note",) if scd_type == 2 else (),
        partition_by=("day",) if partitioned else (),
    )
    rng = random.Random(f"{scd_type}{partitioned}")
    twin = Twin(spark, tmp_path, spec)
    for round_ in range(4):
        batch = random_batch(rng, rng.randint(5, 40), partitioned)
        scope = None
        if partitioned and round_ % 2:  # one day only, as silver/gold run a partitioned table
            day = DAY1 + timedelta(days=round_ % 4 // 2)
            batch = batch.filter((pl.col("day") == day) | pl.col("day").is_null())
            scope = {"day": [day]}
        twin.apply(batch, scope, as_spark=round_ == 2, buckets=buckets)
    assert delta.read(twin.spark_target).height > 0


@pytest.mark.parametrize("scd_type", [1, 2])
def test_new_keys_from_spark_are_written_without_the_fold_and_repeated_keys_are_folded(
    spark, tmp_path, monkeypatch, scd_type
):
    """A Spark batch of new keys, one event each and no delete, is written as it comes (the fold is never
    called); the same batch with a key repeated is written by nothing until the fold has ordered it. Both
    leave the polars engine's tables."""
    spec = CdcSpec(keys=("id",), sequence_by="seq", stored_as_scd_type=scd_type, partition_by=("day",))
    at = datetime(2025, 1, 1, 8, tzinfo=UTC)
    day1 = [{"id": i, "day": DAY1, "seq": at + timedelta(minutes=i), "v": f"a{i}"} for i in range(50)]
    day2 = [{**row, "day": DAY1 + timedelta(days=1), "id": row["id"] + 100} for row in day1]
    repeated = [*day2, {**day2[7], "seq": at + timedelta(hours=3), "v": "later"}]
    schema = {"id": pl.Int64, "day": pl.Date, "seq": pl.Datetime("us", "UTC"), "v": pl.String}
    folded = []
    real_fold = spark_scd._fold_and_write
    monkeypatch.setattr(
        spark_scd, "_fold_and_write", lambda *a, **k: folded.append(a[1]) or real_fold(*a, **k)
    )
    twin = Twin(spark, tmp_path, spec)
    got = twin.apply(pl.DataFrame(day1, schema=schema), {"day": [DAY1]}, as_spark=True)
    assert (got.rows_inserted, folded) == (50, [])  # first load: no fold
    twin.apply(pl.DataFrame(repeated, schema=schema), {"day": [DAY1 + timedelta(days=1)]}, as_spark=True)
    assert folded == [twin.spark_target]  # id 107 twice: the fold decided
    rows = delta.read(twin.spark_target).filter(pl.col("id") == 107)
    assert rows.get_column("v").to_list() == (["later"] if scd_type == 1 else ["a7", "later"])
    files = DeltaTable(twin.spark_target).file_uris()
    assert len(files) == len(set(files)) and all(Path(f).exists() for f in files)


# --------------------------------------------------------------------------- silver


@pytest.fixture(scope="module")
def shipped():
    return {t.name: t for t in load_tables(SHIPPED)}


def write_bronze(folder: Path, table: str, frames: list[pl.DataFrame]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, frame in enumerate(frames):
        path = folder / f"{table}_2025010{i + 1}T000000000000Z.parquet"
        frame.write_parquet(path)
        files.append(path)
    return files


def track_files(folder: Path) -> list[Path]:
    t = pl.Datetime("us", "UTC")

    def frame(rows, extra=None):
        schema = {"track_id": pl.Int64, "track_name": pl.String, "duration_sec": pl.Int64, "updated_at": t}
        df = pl.DataFrame(rows, schema=schema, orient="row")
        return df.with_columns(**(extra or {}))

    return write_bronze(
        folder,
        "DimTrack",
        [
            frame(
                [
                    (1, "a-b", 100, ts(1)),
                    (2, "c-d", 200, ts(1)),
                    (3, "bad", -5, ts(1)),
                    (None, "nokey", 10, ts(1)),
                ],
                {RESCUED: pl.lit(None, pl.String)},
            ),
            frame([(1, "a-b-2", 400, ts(2)), (2, "old", 250, ts(1)), (4, "x", 10, None), (5, "e", 0, ts(3))]),
            frame([(2, "tie-wins", 260, ts(1)), (6, "f", 301, ts(2))], {"genre": pl.lit("pop")}),
        ],
    )


def polars_silver(files: list[Path], config: TableConfig):
    quality = apply_expectations(transform(read_bronze(files), config), config.all_expectations)
    rows_read = quality.kept.height + quality.quarantined.height
    return latest_per_key(quality.kept, config), quality.quarantined, quality.results, rows_read


def assert_same_silver(spark, files: list[Path], config: TableConfig):
    kept, quarantined, results, rows_read = polars_silver(files, config)
    spark_kept, spark_quarantined, spark_results, spark_rows_read = clean_batch_spark(spark, files, config)
    assert spark_rows_read == rows_read
    got = pl.DataFrame(pl.from_arrow(spark_kept.toArrow()))
    assert got.schema == kept.schema
    assert got.sort(got.columns, nulls_last=True).equals(kept.sort(kept.columns, nulls_last=True))
    assert spark_quarantined.schema == quarantined.schema
    assert sorted(map(repr, spark_quarantined.rows())) == sorted(map(repr, quarantined.rows()))
    assert [(r.name, r.total, r.failed) for r in spark_results] == [
        (r.name, r.total, r.failed) for r in results
    ]
    return kept, spark_kept


def test_shipped_cleaning_is_row_wise(shipped):
    assert all(row_wise(t) for t in shipped.values())
    assert not row_wise(TableConfig("t", ("k",), derived={"d": "x - MIN(x)"}))
    assert not row_wise(TableConfig("t", ("k",), expectations=(Expectation("e", "x > AVG(x)", "warn"),)))


def test_silver_dimtrack_same_rows_and_then_same_silver_table(spark, tmp_path, shipped):
    config = shipped["dimtrack"]
    files = track_files(tmp_path / "bronze")
    kept, spark_kept = assert_same_silver(spark, files, config)
    assert sorted(kept.get_column("track_id").to_list()) == [
        1,
        2,
        6,
    ]  # 3, 5: duration not positive; 4: no cdc

    # silver's fold: the Spark batch through apply_changes_spark, the polars one through apply_changes
    spec = CdcSpec(keys=config.keys, sequence_by=config.cdc_col, partition_by=config.partition_by)
    polars_target, spark_target = str(tmp_path / "silver_polars"), str(tmp_path / "silver_spark")
    expected = apply_changes(polars_target, kept, spec)
    got = apply_changes_spark(spark, spark_target, spark_kept, spec)
    assert summary(got) == summary(expected)
    assert_same_tables(polars_target, spark_target)


def test_silver_partitioned_facts_with_warn_rule(spark, tmp_path, shipped):
    config = shipped["factstream"]
    schema = {
        "stream_id": pl.Int64,
        "user_id": pl.Int64,
        "listen_duration": pl.Int64,
        "stream_timestamp": pl.Datetime("us", "UTC"),
    }
    rng = random.Random(7)
    frames = [
        pl.DataFrame(
            [
                (
                    rng.randrange(30),
                    rng.choice([1, 2, None]),
                    rng.randrange(-5, 50),
                    ts(1) + timedelta(hours=rng.randrange(30)),
                )
                for _ in range(40)
            ],
            schema=schema,
            orient="row",
        )
        for _ in range(3)
    ]
    assert_same_silver(spark, write_bronze(tmp_path / "bronze", "FactStream", frames), config)


def test_silver_not_row_wise_rules_run_over_the_whole_batch(spark, tmp_path, shipped):
    base = shipped["dimtrack"]
    config = TableConfig(
        base.table,
        base.keys,
        base.cdc_col,
        derived={**base.derived, "shortest": "duration_sec - MIN(duration_sec)"},
        expectations=(Expectation("above_average", "duration_sec >= AVG(duration_sec)", "warn"),),
    )
    assert not row_wise(config)
    assert_same_silver(spark, track_files(tmp_path / "bronze"), config)


# --------------------------------------------------------------------------- session


def test_missing_java_is_one_line_saying_what_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaMissingError, match="openjdk-17-jre-headless") as error:
        require_java()
    assert "\n" not in str(error.value)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(JavaMissingError, match="Java 17 or 21"):
        require_java()


def test_session_is_utc_with_this_python(spark):
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    rows = spark.range(2).repartition(2).rdd.map(lambda _: __import__("sys").executable).distinct().collect()
    assert rows == [__import__("sys").executable]
