"""checks/test_mac_sleep.py in a real `pytest checks` run, on the workstation, against the pmset
stand-in (tests/testbed/macos/pmset): a Mac that sleeps on AC power fails with the command that
changes it and no fix; one that doesn't passes; elsewhere the check skips, saying why."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.plugin.test_healing import CONFIG
from tests.scripts.conftest import ROOT

pytest_plugins = ["pytester"]
MACOS = ROOT / "tests" / "testbed" / "macos"


def run_check(pytester: pytest.Pytester, monkeypatch, *, mac: str | None, target: str) -> dict:
    """The check's record in summary.json, after one run (``mac``: the stand-in's Mac, or
    None for a machine without pmset)."""
    pytester.makeini("[pytest]\n")
    pytester.makeconftest('pytest_plugins = ["runner_health.plugin"]\n')
    (pytester.path / "checks").mkdir()
    shutil.copy(ROOT / "checks" / "test_mac_sleep.py", pytester.path / "checks")
    config = CONFIG.format(lock=pytester.path / "lock", reports=pytester.path / "reports")
    (pytester.path / "runner-health.toml").write_text(
        config.replace('target = "local://"', f'target = "{target}"')
    )
    monkeypatch.setenv("GITHUB_TOKEN", "test-token-not-real-0123456789")
    monkeypatch.delenv("RUNNER_HEALTH_CONFIG", raising=False)
    if mac is not None:
        monkeypatch.setenv("PATH", f"{MACOS}:{os.environ['PATH']}")
        monkeypatch.setenv("RUNNER_HEALTH_TESTBED_PMSET", mac)
    result = pytester.runpytest_subprocess("checks")
    (found,) = (pytester.path / "reports").glob("*/summary.json")
    (record,) = json.loads(found.read_text())["checks"]
    record["exit"] = result.ret
    return record


def test_a_mac_that_sleeps_on_ac_power_fails_with_the_command_and_no_fix(pytester, monkeypatch):
    record = run_check(pytester, monkeypatch, mac="mini-sleeps", target="multipass://vm1")
    assert record["exit"] == 1, record
    assert record["condition"] == "mac_sleep"
    assert record["outcome"] == "failed" and record["remediation"] is None, record
    assert record["failure"] == (
        "this Mac sleeps after 1 min idle on AC power (for now sleep prevented by powerd, "
        "runningboardd, only while it runs): the runner VM and these checks stop with it; "
        "run `sudo pmset -c sleep 0`"
    )


def test_a_laptop_is_told_about_its_lid(pytester, monkeypatch):
    record = run_check(pytester, monkeypatch, mac="laptop-battery", target="local://")
    assert record["outcome"] == "failed", record
    assert record["failure"].endswith(
        "run `sudo pmset -c sleep 0`; a MacBook also sleeps when its lid closes"
    )


@pytest.mark.parametrize("mac", ["mini-never", "sleep-disabled"])
def test_a_mac_that_never_sleeps_passes(pytester, monkeypatch, mac):
    record = run_check(pytester, monkeypatch, mac=mac, target="multipass://vm1")
    assert record["exit"] == 0 and record["outcome"] == "passed", record


@pytest.mark.parametrize(
    ("mac", "target", "why"),
    [
        (None, "multipass://vm1", "no pmset here: runner-health does not run on a Mac"),
        (
            "mini-sleeps",
            "ssh://runner@vm.example",
            "the runner (ssh://runner@vm.example) is not on this Mac",
        ),
    ],
)
def test_elsewhere_it_skips_saying_why(pytester, monkeypatch, mac, target, why):
    record = run_check(pytester, monkeypatch, mac=mac, target=target)
    assert record["outcome"] == "skipped" and record["failure"] == why, record
