"""REST Countries ingestion against real loopback HTTP servers: the stand-in and a scripted one."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
import requests
from dagster import (
    AssetPartitionStatus,
    DefaultScheduleStatus,
    Definitions,
    build_schedule_context,
    materialize,
)
from dagster._utils.schedules import schedule_execution_time_iterator

from platform_assets.core.lake import delta
from platform_assets.core.rest import countries as api
from platform_assets.defs.countries.assets import (
    DEFAULT_COUNTRIES,
    RAW_KEY,
    SILVER_KEY,
    SILVER_SCHEMA,
    CountryApiResource,
    build_raw_countries,
    country_partitions,
    silver_countries,
)
from platform_assets.defs.countries.definitions import (
    CRON,
    JOB_NAME,
    SCHEDULE_NAME,
    TIMEZONE,
    all_countries_tags,
    build_country_definitions,
)
from platform_assets.lib.resources import build_resources
from platform_assets.settings import Settings
from platform_devkit import countries_standin as standin

RECORDED = Path(standin.__file__).with_name("recorded")
INDIA_ROW = {
    "name": "India",
    "official_name": "Republic of India",
    "cca2": "IN",
    "cca3": "IND",
    "region": "Asia",
    "subregion": "Southern Asia",
    "population": 1380004385,
    "area": 3287590.0,
    "capital": "New Delhi",
    "currencies": "INR",
    "languages": "English, Hindi, Tamil",
    "source_file": "india.json",
}
IST = ZoneInfo(TIMEZONE)
# the partitions and raw asset of the default settings (Settings(): the five default countries)
COUNTRY_PARTITIONS = country_partitions(Settings().countries)
raw_countries = build_raw_countries(COUNTRY_PARTITIONS)


# --------------------------------------------------------------------------- servers


class ScriptedApi:
    """REST Countries on loopback whose answers per country can be scripted.

    ``plan[name.lower()]`` is a list of actions used one per request, then the recorded answer:
    an int (that HTTP status), ``"malformed"`` (200 with an HTML body) or ``"hang"`` (no answer).
    """

    def __init__(self, plan: dict[str, list] | None = None):
        self.plan = {k.lower(): list(v) for k, v in (plan or {}).items()}
        self.hits: Counter[str] = Counter()
        self.released = threading.Event()
        scripted = self

        class Handler(standin.StandinHandler):
            def do_GET(self):  # noqa: N802
                name = requests.utils.unquote(self.path.rsplit("/", 1)[-1]).lower()
                scripted.hits[name] += 1
                actions = scripted.plan.get(name) or []
                action = actions.pop(0) if actions else None
                if action is None:
                    return super().do_GET()
                if action == "hang":
                    scripted.released.wait(5)
                    return
                if action == "malformed":
                    return self.send(200, b"<html><body>Gateway says hello</body></html>", "text/html")
                body = (
                    standin.NOT_FOUND if action == 404 else b'{"status":%d,"message":"Unavailable"}' % action
                )
                self.send(action, body)

        self.server = standin.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v3.1"

    def __enter__(self) -> ScriptedApi:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def standin_url():
    server, base_url = standin.serve()
    yield base_url
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def resources(settings: Settings, base_url: str) -> dict:
    return {
        "lakehouse": build_resources(settings)["lakehouse"],
        "country_api": CountryApiResource(base_url=base_url, timeout=2, attempts=3, backoff=0.01),
    }


def run(settings, base_url, instance, assets=(raw_countries, silver_countries), **kwargs):
    kwargs.setdefault("tags", None if "partition_key" in kwargs else all_countries_tags(COUNTRY_PARTITIONS))
    return materialize(
        list(assets),
        resources=resources(settings, base_url),
        instance=instance,
        raise_on_error=False,
        **kwargs,
    )


def raw_file(settings: Settings, name: str) -> Path:
    return settings.table_path("raw", "countries") / api.country_file_name(name)


def silver(settings: Settings) -> str:
    return str(settings.table_path("silver", "countries"))


def materialized(instance) -> set[str]:
    return set(instance.get_materialized_partitions(RAW_KEY))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- end to end


def test_all_countries_written_then_silver_one_row_each(settings, standin_url, instance):
    result = run(settings, standin_url, instance)
    assert result.success
    for name in DEFAULT_COUNTRIES:
        path = raw_file(settings, name)
        assert json.loads(path.read_bytes()) == json.loads((RECORDED / path.name).read_bytes())
    assert not [p for p in raw_file(settings, "India").parent.iterdir() if not p.name.endswith(".json")]

    assert materialized(instance) == set(DEFAULT_COUNTRIES)
    events = result.asset_materializations_for_node("raw__countries")
    assert sorted(e.partition for e in events) == sorted(DEFAULT_COUNTRIES)  # exactly one each
    india = next(e for e in events if e.partition == "India")
    assert india.metadata["matches"].value == 2
    assert india.metadata["url"].value == f"{standin_url}/name/India"
    assert india.metadata["bytes"].value == raw_file(settings, "India").stat().st_size
    assert (
        next(e for e in events if e.partition == "United States")
        .metadata["url"]
        .value.endswith("/name/United%20States")
    )

    table = delta.read(silver(settings))
    assert table.height == 5 and table.get_column("cca3").n_unique() == 5
    assert sorted(table.get_column("cca3")) == ["CHN", "GBR", "IND", "RUS", "USA"]
    assert table.schema == SILVER_SCHEMA
    assert table.filter(pl.col("cca3") == "IND").to_dicts() == [INDIA_ROW]
    usa = table.filter(pl.col("cca3") == "USA").row(0, named=True)
    assert (usa["capital"], usa["currencies"], usa["region"]) == ("Washington D.C.", "USD", "Americas")
    (silver_event,) = result.asset_materializations_for_node("silver__countries")
    assert silver_event.metadata["rows"].value == 5
    assert silver_event.metadata["delta_version"].value == 0
    assert [c.name for c in silver_event.metadata["dagster/column_schema"].schema.columns] == list(
        SILVER_SCHEMA
    )

    version = delta.version(silver(settings))
    again = run(settings, standin_url, instance)
    assert again.success
    assert delta.version(silver(settings)) == version
    (silver_event,) = again.asset_materializations_for_node("silver__countries")
    assert silver_event.metadata["committed"].value is False
    # nothing committed, yet the asset page still shows the table: its version, rows and columns
    assert silver_event.metadata["table_version"].value == version
    assert silver_event.metadata["dagster/row_count"].value == 5
    columns = silver_event.metadata["dagster/column_schema"].schema.columns
    assert [c.name for c in columns] == list(SILVER_SCHEMA)


def test_one_failing_country_fails_the_run_but_not_the_others(settings, instance):
    with ScriptedApi({"China": [404], "Russia": ["malformed"]}) as scripted:
        result = run(settings, scripted.base_url, instance)
        assert not result.success
        (failure,) = result.get_step_failure_events()
        assert failure.step_key == "raw__countries"
        user = failure.step_failure_data.user_failure_data
        assert user.description.startswith("2 of 5 countries failed: ")
        assert "China: HTTP 404" in user.description and "Not Found" in user.description
        assert "Russia: malformed response" in user.description
        assert user.metadata["failed"].value == ["China", "Russia"]
        assert user.metadata["written"].value == ["India", "United States", "United Kingdom"]

        good = {"India", "United States", "United Kingdom"}
        assert materialized(instance) == good
        status = instance.get_status_by_partition(RAW_KEY, list(DEFAULT_COUNTRIES), COUNTRY_PARTITIONS)
        assert {k for k, v in status.items() if v == AssetPartitionStatus.FAILED} == {"China", "Russia"}
        assert all(raw_file(settings, n).exists() for n in good)
        assert not raw_file(settings, "China").exists() and not raw_file(settings, "Russia").exists()
        assert instance.get_latest_materialization_event(SILVER_KEY) is None  # downstream skipped

        # Re-pull just one country (what the UI does for one partition).
        retry = run(settings, scripted.base_url, instance, assets=[raw_countries], partition_key="China")
        assert retry.success
        assert materialized(instance) == good | {"China"}


def test_a_503_is_retried_until_the_api_recovers(settings, instance):
    with ScriptedApi({"India": [503, 503]}) as scripted:
        session = api.session_with_retries(attempts=4, backoff=0.01)
        matches = api.fetch_country(session, scripted.base_url, "India", timeout=2)
        assert [m["cca3"] for m in matches] == ["IOT", "IND"]
        assert scripted.hits["india"] == 3

        scripted.plan["india"] = [503, 502]
        result = run(settings, scripted.base_url, instance, assets=[raw_countries], partition_key="India")
        assert result.success and scripted.hits["india"] == 6


def test_5xx_after_the_last_attempt_is_reported_with_its_status():
    with ScriptedApi({"India": [503, 503, 503]}) as scripted:
        session = api.session_with_retries(attempts=2, backoff=0)
        with pytest.raises(api.CountryApiError, match=r"^India: HTTP 503") as caught:
            api.fetch_country(session, scripted.base_url, "India")
        assert caught.value.status == 503 and scripted.hits["india"] == 2


def test_404_is_not_retried_and_names_the_country():
    with ScriptedApi({}) as scripted:
        session = api.session_with_retries(attempts=4, backoff=0.01)
        with pytest.raises(api.CountryApiError) as caught:
            api.fetch_country(session, scripted.base_url, "Atlantis")
        assert str(caught.value) == 'Atlantis: HTTP 404: {"status": 404, "message": "Not Found"}'
        assert caught.value.status == 404 and scripted.hits["atlantis"] == 1


def test_a_hanging_api_times_out_after_the_retries():
    with ScriptedApi({"India": ["hang", "hang"]}) as scripted:
        session = api.session_with_retries(attempts=2, backoff=0)
        with pytest.raises(requests.RequestException, match="timed out"):
            api.fetch_country(session, scripted.base_url, "India", timeout=0.2)
        assert scripted.hits["india"] == 2


def test_connection_refused_is_retried_then_raised():
    session = api.session_with_retries(attempts=2, backoff=0)
    with pytest.raises(requests.ConnectionError):
        api.fetch_country(session, f"http://127.0.0.1:{free_port()}/v3.1", "India", timeout=1)


@pytest.mark.parametrize(
    "body, why",
    [
        (b"<html>hello</html>", "not JSON"),
        (b"{}", "non-empty list"),
        (b"[]", "non-empty list"),
        (b'{"status": 404, "message": "Not Found"}', "non-empty list"),
        (b'[{"cca3": "IND"}]', "has no 'name' object"),
        (b'[{"name": "India"}]', "has no 'name' object"),
        (b'["India"]', "has no 'name' object"),
    ],
)
def test_malformed_bodies_are_rejected(body, why):
    with pytest.raises(api.CountryApiError, match=r"^India: malformed response") as caught:
        api.parse_response(body, "India")
    assert why in str(caught.value) and caught.value.country == "India"


def test_a_malformed_raw_file_is_skipped_by_silver(settings, standin_url, instance):
    assert run(settings, standin_url, instance).success
    folder = settings.table_path("raw", "countries")
    (folder / "atlantis.json").write_text("not json")
    (folder / "lemuria.json").write_text('[{"cca3": "LEM"}]')
    result = run(settings, standin_url, instance, assets=[silver_countries], tags=None)
    assert result.success
    (event,) = result.asset_materializations_for_node("silver__countries")
    assert event.metadata["files_read"].value == 7
    assert event.metadata["files_skipped"].value == 2
    assert set(event.metadata["skipped"].value) == {"atlantis.json", "lemuria.json"}
    assert event.metadata["committed"].value is False
    assert delta.read(silver(settings)).height == 5


# --------------------------------------------------------------------------- schedule and definitions


def full_definitions(settings: Settings) -> Definitions:
    """The country Definitions plus the lakehouse resource the main Definitions provide."""
    lakehouse = Definitions(resources={"lakehouse": build_resources(settings)["lakehouse"]})
    return Definitions.merge(build_country_definitions(settings), lakehouse)


def test_schedule_ticks_at_midnight_and_noon_india_time(settings):
    schedule = full_definitions(settings).resolve_schedule_def(SCHEDULE_NAME)
    assert (schedule.cron_schedule, schedule.execution_timezone) == (CRON, "Asia/Kolkata")
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    ticks = schedule_execution_time_iterator(datetime(2025, 3, 10, tzinfo=UTC).timestamp(), CRON, TIMEZONE)
    first = [next(ticks) for _ in range(4)]
    assert [t.astimezone(UTC).strftime("%d %H:%M") for t in first] == [
        "10 06:30",
        "10 18:30",
        "11 06:30",
        "11 18:30",
    ]
    assert [t.astimezone(IST).strftime("%H:%M") for t in first] == ["12:00", "00:00", "12:00", "00:00"]


def test_scheduled_run_covers_every_country_in_one_run(settings, standin_url, instance):
    defs = full_definitions(Settings(data_dir=settings.data_dir, country_api_url=standin_url))
    Definitions.validate_loadable(defs)
    tick = build_schedule_context(scheduled_execution_time=datetime(2025, 3, 10, 0, 0, tzinfo=IST))
    (request,) = defs.resolve_schedule_def(SCHEDULE_NAME).evaluate_tick(tick).run_requests
    assert request.partition_key is None
    assert request.tags["dagster/asset_partition_range_start"] == "India"
    assert request.tags["dagster/asset_partition_range_end"] == "Russia"
    result = defs.resolve_job_def(JOB_NAME).execute_in_process(tags=request.tags, instance=instance)
    assert result.success
    assert materialized(instance) == set(DEFAULT_COUNTRIES)
    assert instance.get_latest_materialization_event(SILVER_KEY) is not None
    assert delta.read(silver(settings)).height == 5


def test_definitions_resource_points_at_the_settings_url(settings):
    defs = full_definitions(Settings(data_dir=settings.data_dir, country_api_url="http://127.0.0.1:9/v3.1"))
    assert defs.resources["country_api"].base_url == "http://127.0.0.1:9/v3.1"
    assert "lakehouse" not in build_country_definitions(settings).resources  # the main Definitions bring it
    graph = defs.resolve_asset_graph()
    assert graph.get(RAW_KEY).partitions_def == COUNTRY_PARTITIONS
    assert graph.get(SILVER_KEY).parent_keys == {RAW_KEY}


# --------------------------------------------------------------------------- stand-in


def test_standin_serves_both_paths_and_404s(standin_url):
    root = standin_url.removesuffix("/v3.1")
    for url in (f"{standin_url}/name/United%20Kingdom", f"{root}/name/united kingdom"):
        response = requests.get(url, timeout=5)
        assert response.status_code == 200 and response.json()[0]["cca3"] == "GBR"
    missing = requests.get(f"{standin_url}/name/Atlantis", timeout=5)
    assert (missing.status_code, missing.json()) == (404, {"status": 404, "message": "Not Found"})
    assert requests.get(f"{standin_url}/all", timeout=5).status_code == 404
    assert requests.get(f"{standin_url}/name/..%2F..%2Fsettings", timeout=5).status_code == 404


def test_recorded_responses_have_the_v31_shape():
    files = sorted(p.name for p in RECORDED.glob("*.json"))
    assert files == sorted(api.country_file_name(n) for n in DEFAULT_COUNTRIES)
    for name in DEFAULT_COUNTRIES:
        matches = api.parse_response((RECORDED / api.country_file_name(name)).read_bytes(), name)
        doc = api.pick_match(matches, name)
        assert doc["name"]["common"] == name
        for field in ("official", "nativeName"):
            assert field in doc["name"]
        for field in (
            "cca2",
            "ccn3",
            "cca3",
            "region",
            "subregion",
            "population",
            "area",
            "capital",
            "currencies",
            "languages",
            "latlng",
        ):
            assert field in doc, (name, field)
    india = json.loads((RECORDED / "india.json").read_bytes())
    assert [m["name"]["common"] for m in india] == ["British Indian Ocean Territory", "India"]


# --------------------------------------------------------------------------- unit: names and flatten


@pytest.mark.parametrize(
    "name, file_name",
    [
        ("United States", "united_states.json"),
        ("India", "india.json"),
        ("  Guinea-Bissau ", "guinea-bissau.json"),
        ("Côte d'Ivoire", "côte_d'ivoire.json"),
        ("St. Lucia", "st._lucia.json"),
        ("United   Kingdom", "united_kingdom.json"),
    ],
)
def test_country_file_name(name, file_name):
    assert api.country_file_name(name) == file_name
    assert api.name_from_file(file_name) == " ".join(name.lower().split())


@pytest.mark.parametrize(
    "name", ["", "   ", "../etc/passwd", "India/..", "...", "Ind1a", "a_b", "x\\y", "Bad\nName"]
)
def test_invalid_country_names_are_refused(name):
    with pytest.raises(ValueError):
        api.country_file_name(name)


def test_flatten_picks_the_exact_match_from_a_response():
    india = json.loads((RECORDED / "india.json").read_bytes())
    assert api.flatten(india, name="india", source_file="india.json") == INDIA_ROW
    assert api.flatten(india, name="Republic of India", source_file="india.json") == INDIA_ROW
    assert api.flatten(india, name="Indi")["cca3"] == "IOT"  # no exact match: the first one
    assert api.flatten(india)["cca3"] == "IOT"


def test_flatten_joins_and_sorts_and_tolerates_missing_fields():
    row = api.flatten(
        {
            "name": {"common": "Switzerland", "official": "Swiss Confederation"},
            "cca3": "CHE",
            "capital": ["Bern", "Zürich"],
            "currencies": {"EUR": {}, "CHF": {"name": "Swiss franc"}},
            "languages": {"roh": "Romansh", "fra": "French", "deu": "German", "ita": "Italian"},
            "population": "8654622",
            "area": 41284,
        },
        source_file="switzerland.json",
    )
    assert row == {
        "name": "Switzerland",
        "official_name": "Swiss Confederation",
        "cca2": None,
        "cca3": "CHE",
        "region": None,
        "subregion": None,
        "population": 8654622,
        "area": 41284.0,
        "capital": "Bern, Zürich",
        "currencies": "CHF, EUR",
        "languages": "French, German, Italian, Romansh",
        "source_file": "switzerland.json",
    }
    antarctica = api.flatten(
        {
            "name": {"common": "Antarctica"},
            "cca3": "ATA",
            "capital": [],
            "currencies": {},
            "region": "Antarctic",
            "subregion": "",
        }
    )
    assert (
        antarctica["capital"] is None and antarctica["currencies"] is None and antarctica["languages"] is None
    )
    assert (
        antarctica["subregion"] is None
        and antarctica["population"] is None
        and antarctica["official_name"] is None
    )
    assert tuple(antarctica) == api.COLUMNS == tuple(SILVER_SCHEMA)


def test_write_json_atomic_replaces_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "raw" / "india.json"
    assert api.write_json_atomic(path, [{"name": {"common": "India"}}]) == path.stat().st_size
    api.write_json_atomic(path, [{"name": {"common": "भारत"}}])
    assert json.loads(path.read_text("utf-8")) == [{"name": {"common": "भारत"}}]
    assert [p.name for p in path.parent.iterdir()] == ["india.json"]
