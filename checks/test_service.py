"""The runner's systemd service is active and its Runner.Listener process runs."""

import pytest

from runner_health.runner import UnsafeUnit

pytestmark = pytest.mark.needs("vm")


@pytest.mark.remediation("start_runner_service")
def test_runner_service_active(target, runner_install):
    try:
        unit = runner_install.unit()
    except UnsafeUnit as exc:  # a hostile .service: the fix refuses it too
        pytest.fail(str(exc), pytrace=False)
    assert unit, (
        f"{runner_install.directory}/.service is missing: the runner service is not installed"
    )
    assert unit in runner_install.active_units(), f"{unit} is not active"
    assert runner_install.listener_running(), f"{unit} is active but Runner.Listener is not running"
