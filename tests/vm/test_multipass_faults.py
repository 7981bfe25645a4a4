"""Multipass trouble after the Mac slept, on the test-bed VM through the multipass stand-in:
a Running VM that doesn't answer (its sshd stopped), an Unknown one (paused, the daemon lost
track of it), and a multipassd that doesn't answer. Each is one clear failure of the vm check,
the checks that need the VM are "unknown" at once (not a dozen timeouts), and the fix brings
it back (the daemon only when configured to: else it says the command)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_health.plugin import VM_DOWN
from tests.testbed.fake_github import FakeGitHub
from tests.testbed.harness import RUNNER_NAME, Outcome, Suite
from tests.testbed.vm import TestbedVM
from tests.vm.test_faults import assert_healed


def answers(vm: TestbedVM) -> bool:
    with contextlib.suppress(subprocess.TimeoutExpired):
        return vm.ssh("true", check=False, timeout=15).returncode == 0
    return False


@pytest.fixture
def own_suite(healthy: TestbedVM, fake_github: FakeGitHub, tmp_path: Path) -> Suite:
    """A suite with its own state file: these fixes' attempts don't count against the
    session suite's start_vm (held after a few in an hour), nor its against them."""
    return Suite(healthy, fake_github, tmp_path)


@pytest.fixture
def vm(healthy: TestbedVM) -> Iterator[TestbedVM]:
    """The healthy VM; a fault a failed test leaves is ended (the next test boots it again)."""
    yield healthy
    healthy.set_daemon(None)
    if healthy.state().get("phase") != "running" or not answers(healthy):
        healthy.stop(force=True)


def assert_power_cycled(outcome: Outcome, failure: str, vm: TestbedVM, fake: FakeGitHub) -> None:
    assert_healed(outcome, fake, "test_vm_is_running", "start_vm")
    record = outcome.record("test_vm_is_running")
    assert record["failure"] == failure, record
    steps = "\n".join(record["steps"])
    assert f"multipass stop --force {RUNNER_NAME}" in steps
    assert f"multipass start {RUNNER_NAME}" in steps
    assert f"ok: {RUNNER_NAME} answers `multipass exec`" in steps
    assert answers(vm)


def test_running_but_sshd_stopped_is_power_cycled(
    vm: TestbedVM, own_suite: Suite, fake_github: FakeGitHub
):
    vm.ssh("systemctl stop ssh.service ssh.socket", check=False)
    vm._close_ssh_masters()  # a fresh connection, as each `multipass exec` makes, is refused
    assert not answers(vm)
    outcome = own_suite.run()
    assert_power_cycled(
        outcome,
        f"Multipass VM {RUNNER_NAME} is Running but `multipass exec` exited 2: "
        "exec failed: ssh connection failed: 'Connection refused' (after the Mac slept?)",
        vm,
        fake_github,
    )


def test_unknown_after_a_pause_is_power_cycled(
    vm: TestbedVM, own_suite: Suite, fake_github: FakeGitHub
):
    vm.pause()
    vm.lose_track()
    outcome = own_suite.run()
    assert_power_cycled(
        outcome,
        f"Multipass VM {RUNNER_NAME} is Unknown (multipassd lost track of it: after the Mac slept?)",
        vm,
        fake_github,
    )


def test_daemon_down_is_named_and_restarted_only_when_configured(
    vm: TestbedVM, own_suite: Suite, fake_github: FakeGitHub, tmp_path: Path
):
    vm.set_daemon("down")
    refused = own_suite.run()
    assert refused.returncode != 0
    record = refused.record("test_vm_is_running")
    assert record["outcome"] == "failed", record
    assert record["failure"].startswith(
        "multipassd does not answer: cannot connect to the multipass socket"
    ), record
    assert record["fix_result"] == "refused", record
    said = record["steps"][-1]
    assert said.startswith("refused, nothing changed: multipassd does not answer"), said
    assert "run `snap restart multipass`" in said  # root here: no sudo -n
    behind = [c for c in refused.summary["checks"] if c["condition"] in ("disk", "service")]
    assert behind and all(c["outcome"] == "unknown" for c in behind), behind
    assert all(c["failure"] == VM_DOWN["failed"] for c in behind), behind
    assert all(c["duration_seconds"] < 5 for c in behind), behind  # no timeouts

    (tmp_path / "opted-in").mkdir()
    opted_in = Suite(vm, fake_github, tmp_path / "opted-in", multipass="restart_daemon = true")
    healed = opted_in.run()
    assert_healed(healed, fake_github, "test_vm_is_running", "start_vm")
    record = healed.record("test_vm_is_running")
    steps = "\n".join(record["steps"])
    assert "$ snap restart multipass  (multipassd does not answer) -> exit 0" in steps
    assert "multipass stop" not in steps  # the VM was fine all along
