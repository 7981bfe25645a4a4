"""The runner survives a reboot: its unit is enabled, and every fix leaves it enabled.

RunnerInstall on this machine (testinfra local://) over temp runner and systemd directories;
a fake systemctl on PATH keeps the unit's enablement in a file, as systemd keeps its links.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from remediations.registration import reconfigure
from remediations.service import enable_unit, ensure_running
from runner_health import targets
from runner_health.observe import CannotObserve
from runner_health.steps import RemediationRefused
from tests.scripts.conftest import write_fake
from tests.unit import test_runner_install as runner_tests
from tests.unit.test_runner_install import UNIT, calls, install, steps_on

# The runner directory, systemd directory, config and hostile runner files of the unit tests
# of RunnerInstall, as fixtures here too.
dirs, settings, hostile = runner_tests.dirs, runner_tests.settings, runner_tests.hostile
CHECK = importlib.import_module("checks.test_service").test_runner_service_enabled


@pytest.fixture
def systemd(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(the unit's enablement, the calls log): systemctl answers is-enabled from the first and
    enable/disable change it; every unit is inactive; a listener runs, no job (pgrep)."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    state, log = tmp_path / "enabled", tmp_path / "fake.log"
    state.write_text("disabled\n")
    log.touch()
    write_fake(
        bin_dir,
        "systemctl",
        f"""state={state}
case "$1" in
is-active) exit 3 ;;
is-enabled) cat "$state"; [ "$(cat "$state")" = enabled ] ;;
enable) echo enabled > "$state" ;;
disable) echo disabled > "$state" ;;
esac""",
    )
    write_fake(bin_dir, "pgrep", '[ "$2" = Runner.Listener ]')
    write_fake(
        bin_dir, "sudo", 'while [[ $1 == -* ]]; do [[ $1 == -u ]] && shift; shift; done\nexec "$@"'
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    return state, log


def enablement(log: Path) -> list[str]:
    """The enable/disable calls, in order: the last one is what the next boot does."""
    return [c for c in calls(log, "systemctl") if c.split()[0] in ("enable", "disable")]


@pytest.mark.parametrize(
    "state", ["disabled", "enabled-runtime", "masked", "linked", "static", "indirect"]
)
def test_a_unit_not_enabled_fails_naming_its_state(dirs, systemd, state):
    systemd[0].write_text(state + "\n")
    runner = install(dirs, UNIT + "\n")
    with pytest.raises(AssertionError, match=f"{UNIT} is {state}: the runner will not start at"):
        CHECK(runner)


def test_an_enabled_unit_passes(dirs, systemd):
    systemd[0].write_text("enabled\n")
    CHECK(install(dirs, UNIT + "\n"))


def test_no_answer_from_systemctl_is_unknown_not_a_failure(dirs, systemd):
    systemd[0].write_text("")
    with pytest.raises(CannotObserve, match=f"systemctl is-enabled {UNIT}` printed nothing"):
        CHECK(install(dirs, UNIT + "\n"))


def test_the_state_comes_from_the_one_batched_read(dirs, systemd):
    runner = install(dirs, UNIT + "\n")
    targets.prefetch(runner.host, [], root=runner.prefetch_commands())
    systemd[0].write_text("enabled\n")  # changed after the read: the read's answer stands
    assert runner.unit_file_states() == {UNIT: "disabled"}
    assert targets.current_prefetch(runner.host) is not None  # no command ran since


def test_the_fix_enables_it_and_nothing_else(dirs, systemd):
    runner = install(dirs, UNIT + "\n")
    enable_unit(runner, steps_on(runner))
    assert systemd[0].read_text() == "enabled\n"
    assert [c for c in calls(systemd[1], "systemctl") if not c.startswith("is-")] == [
        f"enable {UNIT}"
    ]
    CHECK(runner)


def test_the_fix_leaves_a_masked_unit_to_whoever_masked_it(dirs, systemd):
    systemd[0].write_text("masked\n")
    runner = install(dirs, UNIT + "\n")
    with pytest.raises(RemediationRefused, match=f"systemctl unmask {UNIT}"):
        enable_unit(runner, steps_on(runner))
    assert enablement(systemd[1]) == []


def test_the_fix_refuses_a_service_file_naming_another_unit(dirs, systemd):
    runner = install(dirs, "ssh.service\n")
    with pytest.raises(RemediationRefused, match=r"'ssh\.service'"):
        enable_unit(runner, steps_on(runner))
    assert "systemctl" not in systemd[1].read_text()


# -- every fix that starts the runner leaves it enabled --------------------------------------


def test_the_service_fix_enables_an_installed_unit_it_restarts(dirs, systemd, settings):
    runner = install(dirs, UNIT + "\n")
    ensure_running(runner, settings, steps_on(runner), why="the runner service is not running")
    assert enablement(systemd[1]) == [f"enable {UNIT}"]
    assert calls(systemd[1], "systemctl")[-1] == f"start {UNIT}"
    assert systemd[0].read_text() == "enabled\n"


def test_the_service_fix_leaves_an_enabled_unit_as_it_is(dirs, systemd, settings):
    systemd[0].write_text("enabled\n")
    runner = install(dirs, UNIT + "\n")
    ensure_running(runner, settings, steps_on(runner), why="the runner service is not running")
    assert enablement(systemd[1]) == []


def test_a_re_registration_leaves_it_enabled(dirs, systemd, settings, hostile):
    systemd[0].write_text("enabled\n")
    runner = install(dirs, UNIT + "\n")
    github = SimpleNamespace(
        registration_token=lambda: "AAAA",
        runner=lambda name: {"busy": False, "status": "online"},
    )
    reconfigure(github, runner, settings, steps_on(runner))
    assert enablement(systemd[1]) == [f"disable {UNIT}", f"enable {UNIT}"]
    assert systemd[0].read_text() == "enabled\n"
