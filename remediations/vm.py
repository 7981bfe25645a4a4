"""Start a stopped Multipass VM and wait until commands run in it."""

import shlex

import pytest

from runner_health.targets import run


@pytest.fixture
def start_vm(settings, workstation, target, steps):
    def fix() -> None:
        name = settings.multipass_name
        steps.run(
            f"multipass start {shlex.quote(name)}",
            why="the VM is not running",
            host=workstation,
            root=False,
            timeout=360,
        )
        steps.wait_until(
            lambda: run(target, "true", timeout=60).rc == 0, f"commands run in {name}", timeout=180
        )

    return fix
