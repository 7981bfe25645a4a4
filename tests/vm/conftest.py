"""Fixtures for the fault-injection suite: the booted test-bed VM, the fake GitHub, a
registered runner, and `pytest checks` run as a user runs it (tests/testbed/harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_health.runner import newest_log_command
from tests.testbed.fake_github import FakeGitHub
from tests.testbed.fake_github.server import ORPHAN_SESSION_SECONDS
from tests.testbed.fixtures import testbed_vm, testbed_vm_running  # noqa: F401
from tests.testbed.harness import (
    RUNNER_DIR,
    RUNNER_NAME,
    TIME_SCALE,
    Suite,
    register,
    wait_online,
)
from tests.testbed.vm import TestbedVM


@pytest.fixture(scope="session")
def fake_github() -> Iterator[FakeGitHub]:
    orphan = ORPHAN_SESSION_SECONDS * TIME_SCALE  # scaled like the VM runner's windows
    with FakeGitHub(timeout_hold=15, orphan_session_seconds=orphan) as fake:
        yield fake


@pytest.fixture(scope="session")
def registered_runner(testbed_vm: TestbedVM, fake_github: FakeGitHub) -> None:
    """The runner configured against the fake GitHub and running as its systemd service."""
    done = register(testbed_vm, fake_github, fake_github.create_registration_token())
    assert done.returncode == 0, done.stdout + done.stderr
    testbed_vm.ssh(f"cd {RUNNER_DIR} && ./svc.sh install github-runner && ./svc.sh start")
    wait_online(fake_github)


@pytest.fixture(scope="session")
def suite(
    testbed_vm: TestbedVM, fake_github: FakeGitHub, tmp_path_factory: pytest.TempPathFactory
) -> Suite:
    """The suite most fault tests share. Its fix budget is out of reach: a fault test's outcome
    must not depend on how many fixes earlier tests ran within the hour (the budget's own
    tests, test_memory.py, give theirs a small one)."""
    workdir = tmp_path_factory.mktemp("suite")
    return Suite(testbed_vm, fake_github, workdir, remediation="max_attempts = 100")


@pytest.fixture
def healthy(
    testbed_vm_running: TestbedVM, registered_runner: None, fake_github: FakeGitHub, suite: Suite
) -> TestbedVM:
    """Each fault starts from a healthy runner (healing leftovers of a failed earlier test)."""
    fake_github.fail_with(None)
    runner = fake_github.runner(RUNNER_NAME)
    if not runner or runner["status"] != "online" or runner["busy"]:
        outcome = suite.run()
        assert outcome.returncode in (0, 7), "could not get a healthy runner to start from"
    wait_online(fake_github)
    return testbed_vm_running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.vm)


# What the runner on the VM was doing when a test failed, in the test's report: CI keeps only
# the output, and the VM is gone by the time anyone reads it.
RUNNER_STATE = f"""
u=$(cat {RUNNER_DIR}/.service 2>/dev/null)
echo "== .service: $u"; systemctl status --no-pager -n 0 "$u" 2>&1 | head -n 12
echo "== processes"; pgrep -a 'Runner\\.|runsvc|run\\.sh' || echo none
echo "== journal (last 40 lines)"; journalctl -u "$u" --no-pager -o short-precise -n 40 2>&1
echo "== _diag"; ls -lt --time-style=+%FT%T {RUNNER_DIR}/_diag | head -n 12
{newest_log_command(RUNNER_DIR)}
echo "== $f (last 40 lines: the log runner-health reads)"; [ -z "$f" ] || tail -n 40 "$f"
"""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    vm = getattr(item, "funcargs", {}).get("testbed_vm")
    if report.failed and isinstance(vm, TestbedVM):
        try:
            state = vm.ssh(RUNNER_STATE, check=False, timeout=60).stdout
        except Exception as exc:  # the VM may be what failed
            state = f"could not read it: {exc}"
        report.sections.append((f"the runner on the VM ({report.when})", state))
    return report
