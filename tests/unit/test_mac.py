"""The Mac's sleep policy from pmset's output: real outputs (the stand-in's, see
tests/testbed/macos/pmset) and malformed or hostile ones, which are CannotObserve, never a
guess either way."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from runner_health.mac import FIX, policy_of, sleep_policy
from runner_health.observe import CannotObserve
from runner_health.targets import target

MACOS = Path(__file__).resolve().parents[1] / "testbed" / "macos"


def pmset(mac: str) -> str:
    """What `pmset -g && pmset -g custom` prints on ``mac``."""
    env = {**os.environ, "RUNNER_HEALTH_TESTBED_PMSET": mac}
    out = [
        subprocess.run(
            [MACOS / "pmset", *args], env=env, capture_output=True, text=True, check=True
        ).stdout
        for args in (["-g"], ["-g", "custom"])
    ]
    return "".join(out)


def test_a_mac_mini_with_the_default_policy_sleeps_on_ac_power():
    policy = policy_of(pmset("mini-sleeps"))
    assert policy.sleeps and policy.ac_sleep_minutes == 1
    assert policy.prevented_by == "sleep prevented by powerd, runningboardd"
    assert not policy.has_battery


def test_a_mac_mini_set_never_to_sleep_does_not():
    policy = policy_of(pmset("mini-never"))
    assert not policy.sleeps and policy.ac_sleep_minutes == 0 and policy.prevented_by is None


def test_a_laptop_on_battery_is_judged_by_its_ac_power_settings():
    text = pmset("laptop-battery")
    policy = policy_of(text)
    assert policy.sleeps and policy.has_battery
    # what a Mac says only for its power source in use does not count: AC Power does
    assert not policy_of(
        text.replace(
            " sleep                1\n tcpkeepalive", " sleep                0\n tcpkeepalive"
        )
    ).sleeps


def test_sleep_disabled_system_wide_never_sleeps_whatever_the_timer():
    policy = policy_of(pmset("sleep-disabled"))
    assert policy.sleep_disabled and policy.ac_sleep_minutes == 1 and not policy.sleeps


def test_the_fix_is_the_command_a_user_runs():
    assert FIX == "sudo pmset -c sleep 0"


def test_reads_pmset_on_the_workstation(monkeypatch):
    monkeypatch.setenv("PATH", f"{MACOS}:{os.environ['PATH']}")
    monkeypatch.setenv("RUNNER_HEALTH_TESTBED_PMSET", "mini-sleeps")
    assert sleep_policy(target("local://")).ac_sleep_minutes == 1


def test_a_failing_pmset_is_cannot_observe(monkeypatch):
    monkeypatch.setenv("PATH", f"{MACOS}:{os.environ['PATH']}")
    monkeypatch.setenv("RUNNER_HEALTH_TESTBED_PMSET", "no-such-mac")
    with pytest.raises(CannotObserve, match="exited 1"):
        sleep_policy(target("local://"))


@pytest.mark.parametrize(
    ("output", "why"),
    [
        ("", "no AC Power sleep setting"),
        ("pmset: command not found\n", "no AC Power sleep setting"),
        # the Battery Power timer is not the AC one
        ("Battery Power:\n sleep                0\n", "no AC Power sleep setting"),
        # a sleep line outside any section
        (" sleep                0\nAC Power:\n displaysleep 10\n", "no AC Power sleep setting"),
        ("AC Power:\n sleep                never\n", "'never', not a number of minutes"),
        ("AC Power:\n sleep                -1\n", "not a number of minutes"),
        ("AC Power:\n sleep                99999999999999999999\n", "not a number of minutes"),
        ("AC Power:\n sleep                \uff10\n", "not a number of minutes"),  # not ASCII
        ("AC Power:\n sleep 0\n" + "x" * 70_000, "characters: not pmset's settings"),
    ],
)
def test_malformed_or_hostile_output_is_cannot_observe(output, why):
    with pytest.raises(CannotObserve, match=why):
        policy_of(output)


def test_a_line_that_is_no_setting_changes_nothing():
    text = (
        "AC Power:\n sleep                0\n"
        " sleep                0; sudo pmset -c sleep 1\n"  # no such line: ignored, not parsed
        "\x1b[2Jsleep 5\n"
    )
    assert policy_of(text).ac_sleep_minutes == 0
