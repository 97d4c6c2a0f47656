"""Every command in one place: each console script of pyproject.toml runs a ``main`` of
:mod:`platform_assets.cli`, and the trade feed's old address (``python -m platform_assets.trades.feed``,
in the CONTRACT) still runs the same command."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import platform_assets.cli
from platform_assets.cli import trades_feed
from platform_assets.trades import feed

REPO = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


def scripts() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def test_every_command_of_the_cli_package_has_one_console_script():
    commands = sorted(
        p.stem for p in Path(platform_assets.cli.__file__).parent.glob("*.py") if p.stem != "__init__"
    )
    targets = sorted(scripts().values())
    assert targets == sorted(f"platform_assets.cli.{c}:main" for c in commands)
    assert sorted(scripts()) == sorted(f"platform-{c.replace('_', '-')}" for c in commands)
    for target in targets:
        module, _, attribute = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attribute)), target


def test_the_feed_shim_runs_the_cli_command():
    assert feed.main is trades_feed.main
    old = subprocess.run(
        [sys.executable, "-m", "platform_assets.trades.feed", "--help"], capture_output=True, text=True
    )
    new = subprocess.run(
        [sys.executable, "-m", "platform_assets.cli.trades_feed", "--help"], capture_output=True, text=True
    )
    assert old.returncode == new.returncode == 0, old.stderr
    assert "--seconds" in old.stdout and "--max-trades" in old.stdout
    # the same parser: only the program name in the usage line differs
    assert old.stdout.splitlines()[1:] == new.stdout.splitlines()[1:]


def test_the_console_scripts_are_installed():
    """``make install`` reinstalls when pyproject.toml changes, so the scripts are on the venv's PATH."""
    out = subprocess.run([BIN / "platform-check-config", "--help"], capture_output=True, text=True)
    module = subprocess.run(
        [sys.executable, "-m", "platform_assets.cli.check_config", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "--offline" in out.stdout
    assert out.stdout == module.stdout
