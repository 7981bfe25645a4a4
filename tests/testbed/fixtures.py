"""pytest fixtures for the test-bed VM (a stand-in for the runner VM), shared by test folders.

A conftest (or test module) imports them::

    from tests.testbed.fixtures import testbed_vm, testbed_vm_running  # noqa: F401

``testbed_vm`` boots one VM per pytest session (first use) and powers it off, with its host
chronyd, when the session ends. However many modules import it, there is one VM: the instance
is a process-wide singleton, so two fixture registrations never boot two VMs.
``testbed_vm_running`` hands a test that VM running on the default kernel command line,
relaunching it if an earlier test stopped it or booted it with another ``lsm=`` list: tests
may ``vm.stop()`` / ``vm.start()`` freely.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from tests.testbed.vm import DEFAULT_LSM, TestbedVM, kill_stale_testbeds, multipass_env

_vm: TestbedVM | None = None
_boot_error: BaseException | None = None


def _sigterm_as_interrupt() -> None:
    """A CI timeout sends SIGTERM: make it an interrupt so pytest's teardown stops the VM."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt("SIGTERM")

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, interrupt)


def _shutdown() -> None:
    global _vm
    if _vm is not None:
        vm, _vm = _vm, None
        vm.shutdown()


def restore_default(vm: TestbedVM) -> TestbedVM:
    """Make sure ``vm`` runs with the boot-time kernel command line (relaunch only if needed)."""
    state = vm.state()
    if vm.is_running() and state.get("current_lsm") != state.get("lsm"):
        vm.stop()
    vm.start()
    return vm


@pytest.fixture(scope="session")
def testbed_vm(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestbedVM]:
    """The booted test-bed VM (one per session, BPF LSM on); shut down at session end."""
    global _vm, _boot_error
    if _boot_error is not None:
        pytest.fail(f"the test-bed VM failed to boot earlier: {_boot_error}")
    if _vm is None:
        kill_stale_testbeds()
        _sigterm_as_interrupt()
        vm = TestbedVM(tmp_path_factory.mktemp("testbed"))
        _vm = vm
        # Config cleanup runs once, after every session fixture's teardown, even on Ctrl-C;
        # vm.py's atexit hook backs it up.
        request.config.add_cleanup(_shutdown)
        try:
            vm.boot(lsm=DEFAULT_LSM)
        except BaseException as exc:
            _boot_error = exc
            raise
    yield _vm


@pytest.fixture
def testbed_vm_running(testbed_vm: TestbedVM) -> TestbedVM:
    """The session VM, running on the default ``lsm=`` list, whatever earlier tests did."""
    return restore_default(testbed_vm)


@pytest.fixture
def testbed_multipass_env(testbed_vm: TestbedVM) -> dict[str, str]:
    """An environment (PATH, RUNNER_HEALTH_TESTBED) where ``multipass`` drives the test bed."""
    return multipass_env(testbed_vm)
