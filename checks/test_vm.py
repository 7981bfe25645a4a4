"""The runner VM is running (only when the target is a Multipass VM)."""

import pytest

from runner_health import multipass


@pytest.mark.remediation("start_vm")
def test_vm_is_running(settings, workstation):
    name = settings.multipass_name
    if name is None:
        pytest.skip(f"the target {settings.target} is not a Multipass VM")
    state = multipass.state(workstation, name)
    assert state == "Running", f"Multipass VM {name} is {state}"
