"""Start (or restart) the runner's service, never under a running job; keep it enabled at boot.

A restart stops the unit first, the way the runner expects to be stopped: ``systemctl stop``
sends runsvc.sh SIGTERM, which becomes SIGINT for the listener (runsvc.sh, RunnerService.js:
31-42), and the listener deletes its session at GitHub before it exits. A listener killed
instead leaves its session behind, and the next one gets "A session for this runner already
exists." for minutes, then gives up and stops the unit (actions/runner#1506). Only what is
still running after that stop is killed.
"""

import shlex

import pytest

from remediations.registration import reconfigure
from runner_health import clock
from runner_health.config import Settings
from runner_health.github import GitHub
from runner_health.runner import REREGISTER, RunnerInstall, diagnose
from runner_health.steps import RemediationRefused, Steps
from runner_health.targets import run
from runner_health.unit import install_unit, lost_unit

# RunnerService.js SIGKILLs the listener 30 s after its SIGINT (RunnerService.js:34-41), so a
# stop that takes longer than this is stuck (the unit's own TimeoutStopSec is 5 min).
STOP_SECONDS = 60


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
    # A unit file deleted under a .service naming it (lost_unit) is installed again, like none,
    # once what systemd may still run of it is stopped (as registration.reconfigure does): a
    # unit installed under another name would otherwise make two listeners.
    lost = lost_unit(install)
    if lost is not None:
        stop_cleanly(lost, settings, steps, why=f"{lost}'s unit file is gone: stop what runs of it")
    unit = None if lost else install.unit()
    if unit is None:
        unit = install_unit(install, settings, steps, why="the service is not installed")
    else:
        enable(install, unit, steps)  # started now but not at the next boot is not healed
    quoted = shlex.quote(unit)
    if run(install.host, f"systemctl is-active --quiet {quoted}", timeout=30).rc == 0:
        stop(install, unit, settings, steps)  # active but not serving: the listener is gone or hung
    steps.run(f"systemctl start {quoted}", why=why)
    steps.wait_until(install.listener_running, "Runner.Listener runs", timeout=60)


def stop(install: RunnerInstall, unit: str, settings: Settings, steps: Steps) -> None:
    """Stop ``unit`` cleanly (the listener deletes its session), then SIGKILL what is left:
    a hung listener, which KillMode=process would leave behind holding its session."""
    why = "stop the runner cleanly: its listener deletes its session at GitHub"
    stop_cleanly(unit, settings, steps, why=why)
    if not install.listener_running():
        return
    steps.run(
        f"systemctl kill --signal=SIGKILL {shlex.quote(unit)}",
        why="the listener did not stop: kill what is left of the unit",
        check=False,
    )
    steps.wait_until(
        lambda: not install.listener_running(fresh=True), "no Runner.Listener runs", 30
    )


def stop_cleanly(unit: str, settings: Settings, steps: Steps, why: str) -> None:
    """``systemctl stop unit``, bounded; its failure (a unit no longer loaded) is no error."""
    seconds = min(STOP_SECONDS, settings.remediation.command_timeout_seconds)
    steps.run(
        f"timeout {seconds:g} systemctl stop {shlex.quote(unit)}",
        why=f"{why} (up to {seconds:g} s)",
        check=False,
        timeout=seconds + 30,
    )


def start_or_reregister(
    github: GitHub, install: RunnerInstall, settings: Settings, steps: Steps, why: str
) -> None:
    """The service fix: a listener that stopped because GitHub refused its credentials (token
    revoked: exit 0; 401 or a non-retryable poll error: exit 1; RunnerService.js then stops the
    unit) would stop again at once: it gets a new registration instead of a restart."""
    findings = [] if install.listener_running() else diagnose(install.recent_log())
    if findings and findings[-1].cause in REREGISTER:
        # a clock far off makes GitHub refuse the runner's tokens too: a new registration
        # would not help (the clock check's fix syncs it, then starts the listener)
        offset = (
            clock.offset_seconds(install.host, github) if findings[-1].cause == "auth_failed" else 0
        )
        if abs(offset) > settings.thresholds.max_clock_offset_seconds:
            raise RemediationRefused(
                f"the VM's clock is {offset:+.0f} s off GitHub's: GitHub refuses the runner's "
                "credentials until it is synced (the clock check's fix); not re-registered"
            )
        steps.note(f"diagnosis: GitHub refused the runner's credentials: {findings[-1].line}")
        reconfigure(github, install, settings, steps)
        return
    ensure_running(install, settings, steps, why=why)


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
    unit = None if lost_unit(install) else install.unit()
    if unit is None:
        raise RemediationRefused(
            "the runner service is not installed: the service fix installs it, enabled"
        )
    enable(install, unit, steps)


@pytest.fixture
def enable_runner_service(runner_install, steps):
    return lambda: enable_unit(runner_install, steps)


@pytest.fixture
def start_runner_service(github, runner_install, settings, steps):
    return lambda: start_or_reregister(
        github, runner_install, settings, steps, why="the runner service is not running"
    )
