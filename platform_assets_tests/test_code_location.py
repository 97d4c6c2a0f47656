"""The shape of the code location, pinned: asset keys, deps, kinds, owners, checks, pools, partitions,
freshness policies, jobs, schedules and sensors. A change here is a change users see in the UI; update the snapshot on
purpose with ``UPDATE_SNAPSHOTS=1 make test``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from platform_assets.core.freshness import describe
from platform_assets.definitions import build_definitions
from platform_assets.lib.freshness import from_policy
from platform_assets.settings import Settings

SNAPSHOT = Path(__file__).parent / "snapshots" / "code_location.json"


def snapshot(tmp_path) -> dict:
    defs = build_definitions(Settings(data_dir=tmp_path))
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "pools": sorted(node.pools or ()),
            "partitioned": node.partitions_def is not None,
            "checks": sorted(c.name for c in node.check_keys),
            "freshness": _freshness(node),
        }
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
        "schedules": {
            s.name: s.cron_schedule for s in map(defs.resolve_schedule_def, (s.name for s in defs.schedules))
        },
        "sensors": sorted(s.name for s in defs.sensors),
    }


def _freshness(node) -> str | None:
    """``fail 26h, warn 25h``: the asset's freshness policy as the UI shows it."""
    policy = from_policy(node.freshness_policy_or_from_metadata)
    if policy is None:
        return None
    warn = f", warn {describe(policy.warn_after)}" if policy.warn_after else ""
    return f"fail {describe(policy.fail_after)}{warn}"


def test_code_location_matches_its_snapshot(tmp_path):
    current = snapshot(tmp_path)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_the_core_never_imports_dagster():
    core = Path(__file__).parents[1] / "platform_assets" / "core"
    modules = sorted(
        "platform_assets."
        + ".".join(p.relative_to(core.parent).with_suffix("").parts).replace(".__init__", "")
        for p in core.rglob("*.py")
    )
    code = f"import sys; import {', '.join(modules)}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert len(modules) > 20
