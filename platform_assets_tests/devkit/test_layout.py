"""The dev kit stays outside the code location: the code location never imports it, and it ships its data."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import platform_assets
from platform_assets.core.rest.countries import country_file_name
from platform_assets.settings import DEFAULT_COUNTRIES
from platform_devkit import countries_standin

CODE_LOCATION = Path(platform_assets.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_code_location_does_not_import_the_dev_kit():
    offenders = {}
    for path in CODE_LOCATION.rglob("*.py"):
        devkit = sorted(m for m in imported_modules(path) if m.split(".")[0] == "platform_devkit")
        if devkit:
            offenders[str(path.relative_to(CODE_LOCATION))] = devkit
    assert offenders == {}


def test_the_stand_in_has_a_recorded_response_for_every_default_country():
    for name in DEFAULT_COUNTRIES:
        assert (countries_standin.RECORDED / country_file_name(name)).is_file(), name


def test_the_sample_cli_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "platform_devkit.sample", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert all(command in result.stdout for command in ("init", "advance", "customers"))
