"""The runner survives a reboot (issue 10): a unit someone disabled is enabled again by one
`pytest checks` run, without a restart of the runner (enabling only links the unit). (That a
re-registration leaves the unit it reinstalls enabled is tests/unit/test_enabled.py's: a
--recover run here costs 108 s.)"""

from __future__ import annotations

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.harness import Suite, unit_name
from tests.testbed.vm import TestbedVM
from tests.vm import test_faults


def test_a_disabled_unit_is_enabled_again_and_keeps_running(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub
):
    unit = unit_name(healthy)
    listener = test_faults.listener_pid(healthy)
    healthy.ssh(f"systemctl disable {unit}")
    outcome = suite.run("-k", "test_runner_service")  # the service checks only: cheap
    test_faults.assert_healed(
        outcome, fake_github, "test_runner_service_enabled", "enable_runner_service"
    )
    assert outcome.record("test_runner_service_active")["outcome"] == "passed"
    assert f"systemctl enable {unit}" in outcome.steps()
    assert healthy.ssh(f"systemctl is-enabled {unit}").stdout.strip() == "enabled"
    assert healthy.ssh(f"systemctl is-active {unit}").stdout.strip() == "active"
    assert test_faults.listener_pid(healthy) == listener  # not restarted
