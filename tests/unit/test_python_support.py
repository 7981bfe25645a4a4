"""Python 3.10 (Ubuntu 22.04) runs runner-health: proven statically, since Debian 12 has no 3.10.

Three parts: vermin reads the runtime code for the oldest Python it needs; every pinned runtime
dependency declares that it supports 3.10; and the one 3.11-only module (tomllib) has its
3.10 stand-in pinned with a marker.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_CODE = ["runner_health", "remediations", "checks", "conftest.py"]
OLDEST = "3.10"


def _vermin(*paths: str | Path) -> subprocess.CompletedProcess[str]:
    vermin = shutil.which("vermin", path=str(Path(sys.executable).parent))
    assert vermin, "vermin is not installed (requirements-dev.lock)"
    return subprocess.run(
        [vermin, "--quiet", "--no-tips", "--violations", "--eval-annotations", f"-t={OLDEST}-"]
        + [str(p) for p in paths],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_the_runtime_code_needs_nothing_newer_than_3_10() -> None:
    result = _vermin(*RUNTIME_CODE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_checker_sees_what_3_10_lacks(tmp_path: Path) -> None:
    sample = tmp_path / "new.py"
    sample.write_text("import tomllib\nfrom datetime import UTC\n")
    result = _vermin(sample)
    assert result.returncode != 0
    assert "tomllib" in result.stdout and "datetime.UTC" in result.stdout


def _pins() -> list[Requirement]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("pin", _pins(), ids=str)
def test_every_pinned_dependency_supports_3_10(pin: Requirement) -> None:
    if pin.marker is not None and not pin.marker.evaluate({"python_version": sys.version[:4]}):
        pytest.skip(f"{pin.name} is installed only on older Pythons: checked by the next test")
    requires = importlib.metadata.metadata(pin.name).get("Requires-Python") or ""
    assert SpecifierSet(requires).contains(OLDEST + ".0"), f"{pin} requires Python {requires}"


def test_tomllib_has_its_3_10_stand_in_pinned() -> None:
    (tomli,) = [pin for pin in _pins() if pin.name == "tomli"]
    assert tomli.marker is not None
    assert tomli.marker.evaluate({"python_version": "3.10"})
    assert not tomli.marker.evaluate({"python_version": "3.11"})
    assert re.fullmatch(r"==\d+(\.\d+)*", str(tomli.specifier))


def test_the_project_declares_3_10() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^requires-python = ">=3\.10"', text, re.M)


def test_github_timestamps_parse_the_way_3_10_can() -> None:
    from runner_health.github import parse_time

    assert parse_time("2026-11-28T10:00:00Z").utcoffset().total_seconds() == 0
