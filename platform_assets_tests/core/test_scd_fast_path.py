"""The first-events shortcut of apply_changes gives exactly what the general fold gives.

Random sequences of batches (first loads, new keys, repeated keys, deletes, late events, partitions)
are folded twice into separate tables, once with the shortcut and once without; after every batch the
targets, their hidden state tables and the reported counts must be equal."""

from __future__ import annotations

import random
from datetime import date

import polars as pl
import pytest

from platform_assets.core.lake import delta
from platform_assets.core.medallion import scd
from platform_assets.core.medallion.scd import (
    END_AT,
    LAST_SEQ_DIR,
    START_AT,
    TOMBSTONES_DIR,
    CdcSpec,
    apply_changes,
)

DAYS = [date(2025, 1, 1), date(2025, 1, 2)]
SPECS = {
    "scd1": CdcSpec(keys=("k",), sequence_by="seq", apply_as_deletes="is_delete"),
    "scd1_no_sequence": CdcSpec(keys=("k",), sequence_by=None, apply_as_deletes="is_delete"),
    "scd1_two_keys": CdcSpec(keys=("k", "k2"), sequence_by="seq"),
    "scd1_partitioned": CdcSpec(keys=("k",), sequence_by="seq", partition_by=("day",)),
    "scd2": CdcSpec(keys=("k",), sequence_by="seq", stored_as_scd_type=2, apply_as_deletes="is_delete"),
    "scd2_untracked": CdcSpec(
        keys=("k",),
        sequence_by="seq",
        stored_as_scd_type=2,
        apply_as_deletes="is_delete",
        except_column_list=("seq",),
        track_history_except_column_list=("note",),
    ),
}


def random_batch(rng: random.Random, spec: CdcSpec, next_key: int, day: date) -> tuple[pl.DataFrame, int]:
    """A batch of fresh keys (the shortcut's case; always the first batch), of fresh keys that repeat,
    or of keys that may repeat, be stored already, arrive late or be deleted (the general fold's case)."""
    size = rng.randint(1, 12)
    kind = 0 if next_key == 0 else rng.randrange(3)
    if kind == 0:
        keys = list(range(next_key, next_key + size))
        next_key += size
        deletes = [False] * size
    elif kind == 1:  # new keys, some more than once: not the shortcut's case
        keys = [next_key + rng.randrange(max(1, size // 2)) for _ in range(size)]
        next_key += size
        deletes = [False] * size
    else:
        keys = [rng.randrange(next_key + 3) for _ in range(size)]
        deletes = [rng.random() < 0.2 for _ in range(size)]
    frame = pl.DataFrame(
        {
            "k": keys,
            "k2": [k % 3 for k in keys],
            "seq": [rng.randint(1, 30) for _ in keys],
            "city": [rng.choice(["Oaxaca", "Tijuana", None]) for _ in keys],
            "note": [rng.choice(["a", "b"]) for _ in keys],
            "day": [day] * size,
            "is_delete": deletes,
        }
    )
    if spec.apply_as_deletes is None:
        frame = frame.filter(~pl.col("is_delete")).drop("is_delete")
    if len(spec.keys) == 1:
        frame = frame.drop("k2")
    return frame, next_key


def table_rows(path: str) -> list[tuple]:
    if not delta.table_exists(path):
        return []
    frame = delta.read(path)
    return sorted(frame.select(sorted(frame.columns)).rows(), key=lambda r: tuple((v is None, v) for v in r))


def snapshot(target: str) -> dict[str, list[tuple]]:
    return {
        name: table_rows(scd.state_path(target, name) if name else target)
        for name in ("", TOMBSTONES_DIR, LAST_SEQ_DIR)
    }


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("seed", range(4))
def test_shortcut_equals_general_fold(tmp_path, monkeypatch, name, seed):
    spec = SPECS[name]
    rng = random.Random(f"{name}/{seed}")
    taken = []
    general_fold = scd._first_versions

    def counted(events, spec):
        taken.append(events.height)
        return general_fold(events, spec)

    monkeypatch.setattr(scd, "_first_versions", counted)
    fast, slow = str(tmp_path / "fast"), str(tmp_path / "slow")
    next_key = 0
    for _ in range(8):
        day = rng.choice(DAYS) if spec.partition_by else DAYS[0]
        batch, next_key = random_batch(rng, spec, next_key, day)
        scope = {"day": [day]} if spec.partition_by else None
        monkeypatch.setattr(scd, "FAST_PATH", True)
        with_shortcut = apply_changes(fast, batch, spec, partition_values=scope)
        monkeypatch.setattr(scd, "FAST_PATH", False)
        without = apply_changes(slow, batch, spec, partition_values=scope)
        assert snapshot(fast) == snapshot(slow)
        counts = ("rows_in", "rows_inserted", "rows_updated", "rows_deleted", "committed")
        assert [getattr(with_shortcut, c) for c in counts] == [getattr(without, c) for c in counts]
        assert delta.read(fast).columns == delta.read(slow).columns  # same column order too
    assert taken, "no batch took the shortcut: the comparison proved nothing"


def test_shortcut_writes_scd2_versions_open_from_their_sequence(tmp_path):
    spec = SPECS["scd2"]
    batch = pl.DataFrame({"k": [1, 2], "seq": [5, 7], "city": ["Oaxaca", None], "is_delete": [False, False]})
    result = apply_changes(str(tmp_path / "t"), batch, spec)
    assert (result.rows_inserted, result.rows_updated) == (2, 0)
    stored = delta.read(str(tmp_path / "t")).sort("k")
    assert stored.columns == ["k", "seq", "city", START_AT, END_AT]
    assert stored.rows() == [(1, 5, "Oaxaca", 5, None), (2, 7, None, 7, None)]
