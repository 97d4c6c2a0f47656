"""Tests for the deterministic sample source database (platform_devkit.sample)."""

from __future__ import annotations

import sys
import uuid
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.schema import DropSchema

from platform_devkit import sample
from platform_devkit.sample.__main__ import FALLBACK_URL, default_url, main

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/"
START = date(2025, 1, 1)


def _url(tmp_path, name: str = "source.db") -> str:
    return f"sqlite:///{tmp_path / name}"


def _tables(schema: str | None = None):
    return {t.name: t for t in sample.sample_tables(schema).tables.values()}


def _dump(url: str, schema: str | None = None) -> dict[str, list[tuple]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
                for name, t in _tables(schema).items()
            }
    finally:
        engine.dispose()


def _counts(url: str, schema: str | None = None) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for name, t in _tables(schema).items()
            }
    finally:
        engine.dispose()


def _by_id(rows: list[tuple]) -> dict:
    return {r[0]: r for r in rows}


# --------------------------------------------------------------------------- init


@pytest.mark.parametrize("scale", [1, 2])
def test_row_counts_scale_linearly(tmp_path, scale):
    url = _url(tmp_path)
    counts = sample.init(url, scale=scale, days=2, end=date(2025, 1, 3))
    expected = {
        "DimUser": 50 * scale,
        "DimArtist": 20 * scale,
        "DimTrack": 100 * scale,
        "DimDate": 730,  # 2025 + 2026
        "FactStream": 1000 * scale * 2,
        "Customers": 100 * scale,
        "Products": 50 * scale,
    }
    assert counts == expected
    assert _counts(url) == expected
    assert sample.sizes(scale, 2, end=date(2025, 1, 3)) == expected


def test_init_customers_override_and_reinit_replaces(tmp_path):
    url = _url(tmp_path)
    sample.init(url, days=1, customers=7)
    sample.init(url, days=1, customers=13)  # drops and recreates
    counts = _counts(url)
    assert counts["Customers"] == 13
    assert counts["FactStream"] == 1000


def test_generated_content_is_plausible(tmp_path):
    url = _url(tmp_path)
    sample.init(url, days=3, end=date(2025, 1, 4))
    d = _dump(url)
    start_dt = datetime(2025, 1, 1)

    users = d["DimUser"]
    assert {u[3] for u in users} <= set(sample.SUBSCRIPTIONS)
    assert all(u[4] < START and (u[5] is None or u[4] <= u[5] < START) for u in users)
    assert any(u[5] is not None for u in users) or len(users) < 20
    for table in ("DimUser", "DimArtist", "DimTrack", "Products"):
        assert all(r[-1] <= start_dt for r in d[table]), table

    tracks = d["DimTrack"]
    durations = [t[4] for t in tracks]
    assert any(x < 150 for x in durations)
    assert any(150 <= x < 300 for x in durations)
    assert any(x >= 300 for x in durations)
    assert any("-" in t[1] for t in tracks)
    artist_ids = {a[0] for a in d["DimArtist"]}
    assert {t[2] for t in tracks} <= artist_ids

    dates = _by_id(d["DimDate"])
    assert len(dates) == 730 and min(dates) == 20250101 and max(dates) == 20261231
    assert dates[20250106][1:] == (date(2025, 1, 6), 6, 1, 2025, "Monday")
    assert dates[20260101][5] == "Thursday"

    streams = d["FactStream"]
    assert [s[0] for s in streams] == list(range(1, 3001))
    user_ids = {u[0] for u in users}
    track_len = {t[0]: t[4] for t in tracks}
    for _sid, uid, tid, key, listen, device, ts in streams:
        assert uid in user_ids and tid in track_len
        assert 1 <= listen <= track_len[tid]
        assert device in sample.DEVICES
        assert key == ts.year * 10_000 + ts.month * 100 + ts.day
        assert START <= ts.date() < START + timedelta(days=3)
    assert {s[3] for s in streams} == {20250101, 20250102, 20250103}
    stamps = [s[6] for s in streams]
    assert len(set(stamps)) < len(stamps)  # a few rows share the exact same timestamp
    assert len(set(stamps)) > 0.95 * len(stamps)  # ... but only a few
    assert stamps == sorted(stamps)
    assert {s[5] for s in streams} == set(sample.DEVICES)

    customers = d["Customers"]
    assert len({c[2] for c in customers}) == len(customers)  # unique e-mails
    assert all(c[4] < start_dt for c in customers)
    assert all(p[3] > 0 for p in d["Products"])


# --------------------------------------------------------------------------- determinism


def _scenario(url: str, seed: int = 42) -> None:
    sample.init(url, seed=seed, days=2, end=date(2025, 1, 3))
    sample.advance(url, seed=seed)
    sample.set_customer_count(url, 550, seed=seed)
    sample.advance(url, seed=seed)


def test_same_seed_same_sequence_gives_identical_databases(tmp_path):
    a, b, c = _url(tmp_path, "a.db"), _url(tmp_path, "b.db"), _url(tmp_path, "c.db")
    _scenario(a)
    _scenario(b)
    _scenario(c, seed=7)
    dump_a, dump_b, dump_c = _dump(a), _dump(b), _dump(c)
    assert dump_a == dump_b
    assert dump_a["DimUser"] != dump_c["DimUser"]
    assert dump_a["FactStream"] != dump_c["FactStream"]
    assert dump_a["DimDate"] == dump_c["DimDate"]


def test_rows_are_prefix_stable_across_scales(tmp_path):
    small, big = _url(tmp_path, "s.db"), _url(tmp_path, "b.db")
    sample.init(small, scale=1, days=1, end=date(2025, 1, 2))
    sample.init(big, scale=2, days=1, end=date(2025, 1, 2))
    ds, db = _dump(small), _dump(big)
    for table in ("DimUser", "DimArtist", "Customers", "Products"):
        assert db[table][: len(ds[table])] == ds[table], table


# --------------------------------------------------------------------------- advance


def test_advance_adds_a_day_of_changes(tmp_path):
    url = _url(tmp_path)
    sample.init(url, days=3, end=date(2025, 1, 4))
    before = _dump(url)
    out = sample.advance(url)
    after = _dump(url)

    new_day = date(2025, 1, 4)
    day_start, day_end = datetime(2025, 1, 4), datetime(2025, 1, 5)
    assert out["day"] == 20250104 and out["late_day"] == 20250103

    # -- users: ~5% updated with a strictly later updated_at inside the new day
    old_users, new_users = _by_id(before["DimUser"]), _by_id(after["DimUser"])
    max_old = max(u[6] for u in old_users.values())
    changed = [uid for uid in old_users if new_users[uid] != old_users[uid]]
    assert len(changed) == out["updated_users"] >= 1
    for uid in changed:
        old, new = old_users[uid], new_users[uid]
        assert (old[2], old[3]) != (new[2], new[3])  # country and/or subscription changed
        assert new[3] in sample.SUBSCRIPTIONS
        assert day_start <= new[6] < day_end
        assert new[6] > max_old
    added = sorted(set(new_users) - set(old_users))
    assert len(added) == out["new_users"] >= 1
    assert added[0] == max(old_users) + 1
    for uid in added:
        assert new_users[uid][4] == new_day and new_users[uid][5] is None
        assert day_start <= new_users[uid][6] < day_end

    # -- tracks and artists
    for table, key in (("DimTrack", "updated_tracks"), ("DimArtist", "updated_artists")):
        old, new = _by_id(before[table]), _by_id(after[table])
        max_old_upd = max(r[-1] for r in old.values())
        upd = [k for k in old if new[k] != old[k]]
        assert len(upd) == out[key] >= 1, table
        assert all(max_old_upd < new[k][-1] < day_end and new[k][-1] >= day_start for k in upd), table
        assert len(set(new) - set(old)) == out[key.replace("updated", "new")] >= 1
    old_tracks, new_tracks = _by_id(before["DimTrack"]), _by_id(after["DimTrack"])
    for tid in old_tracks:
        if new_tracks[tid] != old_tracks[tid]:
            assert new_tracks[tid][1:4:2] != old_tracks[tid][1:4:2]  # name or album changed

    # -- streams: the new day + late streams on the previous day, all with new ids
    old_streams = _by_id(before["FactStream"])
    added_streams = [s for s in after["FactStream"] if s[0] not in old_streams]
    assert all(s in after["FactStream"] for s in before["FactStream"])
    assert min(s[0] for s in added_streams) == max(old_streams) + 1
    on_day = [s for s in added_streams if s[3] == 20250104]
    late = [s for s in added_streams if s[3] == 20250103]
    assert len(on_day) == out["new_streams"] == 1000
    assert len(late) == out["late_streams"] >= 3
    assert len(on_day) + len(late) == len(added_streams)
    assert all(s[6].date() == date(2025, 1, 3) for s in late)
    assert all(s[6].date() == new_day for s in on_day)
    assert max(s[0] for s in late) > max(s[0] for s in on_day)
    all_users = set(new_users)
    all_tracks = set(new_tracks)
    assert all(s[1] in all_users and s[2] in all_tracks for s in added_streams)

    # -- repeatable: the next call simulates the following day
    out2 = sample.advance(url)
    assert out2["day"] == 20250105 and out2["late_day"] == 20250104
    final = _dump(url)
    assert sum(1 for s in final["FactStream"] if s[3] == 20250105) == 1000
    assert sum(1 for s in final["FactStream"] if s[3] == 20250104) == 1000 + out2["late_streams"]
    assert min(u[6] for u in final["DimUser"] if u not in after["DimUser"]) > max(
        u[6] for u in after["DimUser"]
    )


def test_advance_extends_calendar_past_generated_years(tmp_path):
    url = _url(tmp_path)
    sample.init(url, end=date(2026, 1, 1), days=1)  # 2025-12-31
    assert _counts(url)["DimDate"] == 365 + 365  # 2025 + 2026
    assert sample.advance(url)["new_dates"] == 0  # 2026-01-01 already present
    dim_date = _tables()["DimDate"]
    engine = create_engine(url)
    with engine.begin() as conn:  # simulate a calendar that ends before the new day
        conn.execute(dim_date.delete().where(dim_date.c.year == 2026))
    engine.dispose()
    out = sample.advance(url)
    assert out["day"] == 20260102 and out["new_dates"] == 365
    keys = [r[0] for r in _dump(url)["DimDate"]]
    assert len(keys) == 730 and keys[-1] == 20261231


def test_advance_requires_init(tmp_path):
    url = _url(tmp_path)
    engine = create_engine(url)
    sample.sample_tables().create_all(engine)
    engine.dispose()
    with pytest.raises(RuntimeError, match="init"):
        sample.advance(url)


def _built_today(build) -> tuple[set[date], object]:
    """What ``build()`` returns, and the days it may have taken for today (two across midnight UTC)."""
    before = sample.today_utc()
    result = build()
    return {before, sample.today_utc()}, result


def test_by_default_the_sample_ends_yesterday_and_advance_moves_on_from_its_last_day(tmp_path):
    url = _url(tmp_path)
    todays, _ = _built_today(lambda: sample.init(url, days=3))
    first, last = sample.stored_days(url)
    today = last + timedelta(days=1)
    assert today in todays  # the last day of streams is yesterday (UTC)
    assert first == today - timedelta(days=3)
    assert {r[3] for r in _dump(url)["FactStream"]} == {
        int((first + timedelta(days=i)).strftime("%Y%m%d")) for i in range(3)
    }
    # advance goes on from the last day stored, one day per call, whatever today is
    assert sample.advance(url)["day"] == int(today.strftime("%Y%m%d"))
    assert sample.advance(url)["day"] == int((today + timedelta(days=1)).strftime("%Y%m%d"))
    assert sample.stored_days(url) == (first, today + timedelta(days=1))


def test_an_explicit_end_gives_the_same_rows_whenever_it_is_built(tmp_path):
    a, b = _url(tmp_path, "a.db"), _url(tmp_path, "b.db")
    sample.init(a, days=2, end=date(2030, 6, 1))
    sample.init(b, days=2, end=date(2030, 6, 1))
    assert sample.stored_days(a) == (date(2030, 5, 30), date(2030, 5, 31))
    assert _dump(a) == _dump(b)
    other = _url(tmp_path, "c.db")
    sample.init(other, days=2, end=date(2030, 6, 2))  # other days, other streams
    assert _dump(other)["FactStream"] != _dump(a)["FactStream"]


def test_daily_partitions_start_at_the_sample_first_day_unless_set(tmp_path):
    url = _url(tmp_path)
    config = tmp_path / "config"
    config.mkdir()
    (config / "dev.yaml").write_text("late_days: 1\n")
    env = {
        "PLATFORM_SOURCE_URL": url,
        "PLATFORM_DATA_DIR": str(tmp_path / "data"),
        "PLATFORM_CONFIG_DIR": str(config),
    }
    assert sample.sample_partition_start(env) is None  # no sample yet
    sample.init(url, days=3, end=date(2026, 3, 1))
    assert sample.sample_partition_start(env) == date(2026, 2, 26)
    # a start set in the environment or in the environment's config file wins
    assert sample.sample_partition_start({**env, "PLATFORM_PARTITION_START": "2024-01-01"}) is None
    (config / "dev.yaml").write_text("partition_start: 2024-01-01\n")
    assert sample.sample_partition_start(env) is None


def test_the_days_command_prints_the_first_and_last_day(tmp_path, capsys):
    url = _url(tmp_path)
    assert main(["days", "--url", url]) == 2  # nothing built yet: one line, no traceback
    assert "FactStream is missing or empty" in capsys.readouterr().err
    sample.init(url, days=2, end=date(2025, 3, 1))
    assert main(["days", "--url", url]) == 0
    assert capsys.readouterr().out.strip() == "days        2025-02-27 … 2025-02-28"


# --------------------------------------------------------------------------- customers


def test_set_customer_count_exact_and_deterministic(tmp_path):
    url = _url(tmp_path)
    sample.init(url, days=1)
    init_customers = _dump(url)["Customers"]
    dumps = {}
    for n in (400, 550, 650, 550):
        sample.set_customer_count(url, n)
        assert _counts(url)["Customers"] == n
        dumps[n] = _dump(url)["Customers"]
    assert [c[0] for c in dumps[650]] == list(range(1, 651))
    assert dumps[650][:550] == dumps[550]
    assert dumps[550][:400] == dumps[400]
    sample.set_customer_count(url, 100)
    assert _dump(url)["Customers"] == init_customers
    sample.set_customer_count(url, 0)
    assert _counts(url)["Customers"] == 0
    with pytest.raises(ValueError):
        sample.set_customer_count(url, -1)


# --------------------------------------------------------------------------- validation & CLI


@pytest.mark.parametrize(
    "schema",
    ["", "1abc", "bad-name", "x; DROP TABLE DimUser", 'a"b', "a b", "a" * 64, "s\n", "ü"],
)
def test_hostile_schema_rejected(tmp_path, schema):
    url = _url(tmp_path)
    with pytest.raises(ValueError, match="schema"):
        sample.sample_tables(schema)
    with pytest.raises(ValueError, match="schema"):
        sample.init(url, schema=schema)
    with pytest.raises(ValueError, match="schema"):
        sample.advance(url, schema=schema)
    with pytest.raises(ValueError, match="schema"):
        sample.set_customer_count(url, 5, schema=schema)
    assert not (tmp_path / "source.db").exists()


def test_valid_schema_names_accepted():
    for schema in ("raw", "_x", "A" * 63, "src_2025"):
        md = sample.sample_tables(schema)
        assert all(t.schema == schema for t in md.tables.values())
        assert sorted(t.name for t in md.tables.values()) == sorted(sample.TABLE_NAMES)


def test_cli(tmp_path, capsys):
    url = _url(tmp_path, "cli.db")
    assert (
        main(["init", "--url", url, "--scale", "1", "--seed", "3", "--days", "1", "--end", "2025-01-02"]) == 0
    )
    out = capsys.readouterr().out
    for name in sample.TABLE_NAMES:
        assert any(line.startswith(name) for line in out.splitlines()), name
    assert "days        2025-01-01 … 2025-01-01" in out
    assert main(["advance", "--url", url, "--seed", "3"]) == 0
    assert "20250102" in capsys.readouterr().out
    assert main(["customers", "650", "--url", url]) == 0
    assert _counts(url)["Customers"] == 650
    assert main(["init", "--url", url, "--schema", "bad;name"]) == 2
    assert "schema: 'bad;name' is not a valid identifier" in capsys.readouterr().err


def test_default_url_falls_back_without_settings(monkeypatch):
    monkeypatch.setitem(sys.modules, "platform_assets.settings", None)  # import -> ImportError
    assert default_url() == FALLBACK_URL == "sqlite:///data/source.db"


# --------------------------------------------------------------------------- real servers


def _server_engine(url: str, label: str):
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            pass
    except Exception as exc:  # noqa: BLE001 - any connection failure means "skip"
        engine.dispose()
        pytest.skip(f"{label} not reachable at {url}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    return engine


@pytest.mark.parametrize(("url", "label"), [(PG_URL, "PostgreSQL"), (MARIADB_URL, "MariaDB")])
def test_server_backends_match_sqlite(tmp_path, url, label):
    engine = _server_engine(url, label)
    schema = f"smp_{uuid.uuid4().hex[:12]}"
    is_pg = engine.dialect.name == "postgresql"
    try:
        # init creates the fresh schema (PostgreSQL) / database (MariaDB)
        counts = sample.init(url, schema=schema, days=2, end=date(2025, 1, 3))
        assert counts == sample.sizes(1, 2, end=date(2025, 1, 3))
        out = sample.advance(url, schema=schema)
        assert out["day"] == 20250103 and out["late_streams"] >= 3
        sample.set_customer_count(url, 550, schema=schema)
        assert _counts(url, schema)["Customers"] == 550
        server = _dump(url, schema)
    finally:
        with engine.begin() as conn:
            conn.execute(
                DropSchema(schema, cascade=True, if_exists=True)
                if is_pg
                else DropSchema(schema, if_exists=True)
            )
        engine.dispose()

    ref_url = _url(tmp_path, "ref.db")
    sample.init(ref_url, days=2, end=date(2025, 1, 3))
    sample.advance(ref_url)
    sample.set_customer_count(ref_url, 550)
    assert server == _dump(ref_url)


def test_init_if_missing_leaves_an_existing_source_alone(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    assert main(["init", "--if-missing", "--url", url, "--days", "1"]) == 0  # built: nothing was there
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM DimUser WHERE user_id = 1")
        users = conn.exec_driver_sql("SELECT COUNT(*) FROM DimUser").scalar_one()
    capsys.readouterr()
    assert main(["init", "--if-missing", "--url", url]) == 0
    assert "the sample tables exist, left as they are" in capsys.readouterr().out
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM DimUser").scalar_one() == users > 0
