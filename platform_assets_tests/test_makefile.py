"""The Makefile's front door: a bare ``make`` lists every command, one line each, and builds nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAKEFILE = REPO / "Makefile"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def _phony_targets() -> list[str]:
    text = MAKEFILE.read_text()
    targets: list[str] = []
    for match in re.finditer(r"^\.PHONY:(.*)$", text, flags=re.MULTILINE):
        targets += match.group(1).split()
    return targets


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def _listed(output: str) -> dict[str, str]:
    """The commands the help prints: ``  <name>  <what it does>``."""
    rows = {}
    for line in output.splitlines():
        match = re.match(r"^  ([a-z][a-z-]*) +(\S.*)$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_every_phony_target_has_one_help_line():
    phony = _phony_targets()
    assert {"help", "install", "demo", "dev", "test", "reset-stream"} <= set(phony)
    result = _make("help")
    assert result.returncode == 0, result.stderr
    listed = _listed(result.stdout)
    missing = [t for t in phony if t not in listed]
    assert not missing, f"targets without a `## ` help line in the Makefile: {missing}"
    assert all(len(text) > 10 for text in listed.values()), listed
    # and nothing that is not a command: every listed name is a .PHONY target
    assert set(listed) <= set(phony), set(listed) - set(phony)


def test_a_bare_make_prints_the_help_and_builds_nothing():
    bare = _make()
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout == _make("help").stdout
    assert "is up to date" not in bare.stdout + bare.stderr
    assert _listed(bare.stdout)["demo"]
    # make -n shows what would run: only the help's own echo and awk, no install or build step
    dry = _make("-n")
    assert "pip" not in dry.stdout and "venv" not in dry.stdout, dry.stdout
