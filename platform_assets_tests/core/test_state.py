"""Versioned compare-and-set state and the processed-file checkpoint, on a real SQLite file."""

from __future__ import annotations

import pytest

from platform_assets.core.state import StateConflict, StateEntry, StateStore


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def store(url):
    return StateStore(url, "dev")


def test_missing_entry_is_none(store):
    assert store.get("watermark/dimuser") is None


def test_create_with_expected_none(store):
    value = {"value": {"timestamp": "2024-01-01T00:00:00+00:00"}, "keys": [[1], [2]]}
    created = store.compare_and_set("watermark/dimuser", None, value)
    assert created == StateEntry(value, 1)
    assert store.get("watermark/dimuser") == StateEntry(value, 1)


def test_second_create_conflicts(store):
    store.compare_and_set("w", None, {"n": 1})
    with pytest.raises(StateConflict, match="'w' was created by another run"):
        store.compare_and_set("w", None, {"n": 2})
    assert store.get("w") == StateEntry({"n": 1}, 1)


def test_update_with_current_version(store):
    first = store.compare_and_set("w", None, {"n": 1})
    second = store.compare_and_set("w", first, {"n": 2})
    assert second == StateEntry({"n": 2}, 2)
    third = store.compare_and_set("w", store.get("w"), [1, "x", None])
    assert third.version == 3
    assert store.get("w") == StateEntry([1, "x", None], 3)


def test_stale_version_conflicts_and_leaves_value(store):
    first = store.compare_and_set("w", None, {"n": 1})
    store.compare_and_set("w", first, {"n": 2})  # another run moves the entry
    with pytest.raises(StateConflict, match="moved from version 1"):
        store.compare_and_set("w", first, {"n": 99})
    assert store.get("w") == StateEntry({"n": 2}, 2)


def test_update_of_missing_entry_conflicts(store):
    with pytest.raises(StateConflict):
        store.compare_and_set("w", StateEntry({"n": 1}, 1), {"n": 2})
    assert store.get("w") is None


def test_two_instances_same_env_share_state(url):
    a, b = StateStore(url, "dev"), StateStore(url, "dev")
    entry = a.compare_and_set("w", None, 1)
    assert b.get("w") == entry
    b.compare_and_set("w", entry, 2)
    with pytest.raises(StateConflict):
        a.compare_and_set("w", entry, 3)  # a's read is stale now
    assert a.get("w") == StateEntry(2, 2)


def test_envs_are_isolated(url):
    dev, prod = StateStore(url, "dev"), StateStore(url, "prod")
    dev.compare_and_set("w", None, "dev-value")
    assert prod.get("w") is None
    prod.compare_and_set("w", None, "prod-value")  # no conflict across envs
    dev.compare_and_set("w", dev.get("w"), "dev-2")
    assert dev.get("w") == StateEntry("dev-2", 2)
    assert prod.get("w") == StateEntry("prod-value", 1)

    dev.mark_processed("silver/dimuser", ["a.parquet"])
    assert prod.processed("silver/dimuser") == set()
    assert dev.processed("silver/dimuser") == {"a.parquet"}


def test_names_are_independent(store):
    store.compare_and_set("a", None, 1)
    store.compare_and_set("b", None, 2)
    assert store.get("a") == StateEntry(1, 1)
    assert store.get("b") == StateEntry(2, 1)


def test_state_survives_a_new_store(url):
    StateStore(url, "dev").compare_and_set("w", None, {"k": [1, 2]})
    assert StateStore(url, "dev").get("w") == StateEntry({"k": [1, 2]}, 1)


def test_processed_empty(store):
    assert store.processed("silver/dimuser") == set()


def test_mark_processed_is_idempotent(store):
    store.mark_processed("silver/dimuser", ["a.parquet", "b.parquet"])
    store.mark_processed("silver/dimuser", ["b.parquet", "a.parquet"])  # a retry
    store.mark_processed("silver/dimuser", ["b.parquet", "c.parquet", "c.parquet"])
    store.mark_processed("silver/dimuser", [])
    assert store.processed("silver/dimuser") == {"a.parquet", "b.parquet", "c.parquet"}


def test_processed_is_per_consumer(store):
    store.mark_processed("silver/dimuser", ["a.parquet"])
    store.mark_processed("silver/dimtrack", ["a.parquet", "t.parquet"])
    assert store.processed("silver/dimuser") == {"a.parquet"}
    assert store.processed("silver/dimtrack") == {"a.parquet", "t.parquet"}
