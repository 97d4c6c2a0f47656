"""The code location as a dg project: ``dg list defs`` sees exactly what the code location serves (one
assembly path, ``load_from_defs_folder`` over ``defs/``), and ``dg`` and workspace.yaml name the location
the same, so ``dg dev`` and ``make dev`` keep schedules' and sensors' state under one name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from platform_assets.definitions import build_definitions
from platform_assets.settings import Settings

REPO = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


def test_dg_and_the_workspace_name_the_same_location():
    dg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    [entry] = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    module = entry["python_module"]
    assert dg["code_location_target_module"] == module["module_name"] == "platform_assets.definitions"
    assert dg["code_location_name"] == module["location_name"] == "platform_assets.definitions:defs"
    assert dg["defs_module"] == "platform_assets.defs"


def test_dg_lists_what_the_code_location_serves(tmp_path):
    settings = Settings(data_dir=tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env |= {"PLATFORM_DATA_DIR": str(tmp_path), "VIRTUAL_ENV": str(BIN.parent), "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [BIN / "dg", "list", "defs", "--json"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    listed = json.loads(out.stdout)

    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    assert sorted(a["asset_key"] for a in listed["assets"]) == sorted(
        k.to_user_string() for k in graph.get_all_asset_keys()
    )
    assert sorted(j["name"] for j in listed["jobs"]) == sorted(
        j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")
    )
    assert {s["name"]: s["cron_schedule"] for s in listed["schedules"]} == {
        s.name: s.cron_schedule for s in map(defs.resolve_schedule_def, (s.name for s in defs.schedules))
    }
    assert sorted(s["name"] for s in listed["sensors"]) == sorted(s.name for s in defs.sensors)
    assert "reports/daily_plays_per_track" in {a["asset_key"] for a in listed["assets"]}
