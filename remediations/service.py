"""Start (or restart) the runner's service, never under a running job; keep it enabled at boot."""

import shlex

import pytest

from runner_health.config import Settings
from runner_health.runner import RunnerInstall
from runner_health.steps import RemediationRefused, Steps
from runner_health.targets import run
from runner_health.unit import install_unit


def ensure_running(install: RunnerInstall, settings: Settings, steps: Steps, why: str) -> None:
    """Get Runner.Listener running under its systemd unit; install the unit if it is missing.

    Only systemctl, on the unit RunnerInstall.unit() validated: never the runner's svc.sh,
    which any job can rewrite (runner_health.unit).
    """
    if install.registration() is None:
        raise RemediationRefused(
            "the runner is not configured (.runner missing): the registration fix must run first"
        )
    if install.job_running():
        raise RemediationRefused(
            "a job is running (Runner.Worker): the service is not restarted under it"
        )
    unit = install.unit()
    if unit is None:
        unit = install_unit(install, settings, steps, why="the service is not installed")
    else:
        enable(install, unit, steps)  # started now but not at the next boot is not healed
    if run(install.host, f"systemctl is-active --quiet {shlex.quote(unit)}", timeout=30).rc == 0:
        # Active but not serving (listener gone or hung). KillMode=process would leave a hung
        # listener behind, holding the session; no job runs (checked above), so nothing is lost.
        steps.run(
            f"systemctl kill --signal=SIGKILL {shlex.quote(unit)}",
            why="clear the stuck service's processes",
        )
    steps.run(f"systemctl restart {shlex.quote(unit)}", why=why)
    steps.wait_until(install.listener_running, "Runner.Listener runs", timeout=60)


def enable(install: RunnerInstall, unit: str, steps: Steps) -> None:
    """Enable ``unit`` (one RunnerInstall.unit() validated) unless it already is: enabling only
    links it into multi-user.target.wants, it neither starts nor stops it, so it is safe while
    a job runs. A masked unit is left to whoever masked it (root did, on purpose or not)."""
    state = install.unit_file_states().get(unit, "")
    if state == "enabled":
        return
    if state.startswith("masked"):
        raise RemediationRefused(
            f"{unit} is {state} (systemctl mask): if that was not on purpose, "
            f"run `systemctl unmask {unit}`"
        )
    steps.run(
        f"systemctl enable {shlex.quote(unit)}",
        why=f"start the runner at boot ({unit} is {state or 'not enabled'})",
    )


def enable_unit(install: RunnerInstall, steps: Steps) -> None:
    """The enabled check's fix: the installed unit is enabled (installing it is the service fix's)."""
    unit = install.unit()
    if unit is None:
        raise RemediationRefused(
            "the runner service is not installed: the service fix installs it, enabled"
        )
    enable(install, unit, steps)


@pytest.fixture
def enable_runner_service(runner_install, steps):
    return lambda: enable_unit(runner_install, steps)


@pytest.fixture
def start_runner_service(runner_install, settings, steps):
    return lambda: ensure_running(
        runner_install, settings, steps, why="the runner service is not running"
    )
