"""The runner's systemd service is active, its Runner.Listener process runs, and it is
enabled: healed now but down after the next reboot is not healed."""

import pytest

from runner_health.observe import CannotObserve
from runner_health.runner import UnsafeUnit

pytestmark = pytest.mark.needs("vm")


def _unit(runner_install) -> str:
    try:
        unit = runner_install.unit()
    except UnsafeUnit as exc:  # a hostile .service: the fix refuses it too
        pytest.fail(str(exc), pytrace=False)
    assert unit, (
        f"{runner_install.directory}/.service is missing: the runner service is not installed"
    )
    return unit


@pytest.mark.remediation("start_runner_service")
def test_runner_service_active(target, runner_install):
    unit = _unit(runner_install)
    assert unit in runner_install.active_units(), f"{unit} is not active"
    assert runner_install.listener_running(), f"{unit} is active but Runner.Listener is not running"


@pytest.mark.remediation("enable_runner_service")
def test_runner_service_enabled(runner_install):
    unit = _unit(runner_install)
    state = runner_install.unit_file_states().get(unit)
    if not state:
        raise CannotObserve(f"`systemctl is-enabled {unit}` printed nothing")
    assert state == "enabled", (
        f"{unit} is {state}: the runner will not start at the next boot (systemctl enable {unit})"
    )
