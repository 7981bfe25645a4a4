"""Step the VM clock back into line with GitHub's, then bring back a runner that gave up."""

import pytest

from remediations.service import ensure_running
from runner_health import clock
from runner_health.config import Settings
from runner_health.github import GitHub
from runner_health.runner import RunnerInstall
from runner_health.steps import RemediationFailed, Steps


def sync(target, github: GitHub, install: RunnerInstall, settings: Settings, steps: Steps) -> None:
    """makestep (or a timesyncd restart); if the time source is unreachable, GitHub's clock."""
    limit = settings.thresholds.max_clock_offset_seconds
    daemon = clock.time_daemon(target)
    if daemon is None:
        daemon = "chrony" if target.exists("chronyc") else "systemd-timesyncd"
        steps.run(f"systemctl start {daemon}", why="no time daemon is running")
    if daemon.startswith("chrony"):
        steps.run("chronyc makestep", why="step the clock now instead of slewing for hours")
    else:
        steps.run("systemctl restart systemd-timesyncd", why="timesyncd steps the clock on start")

    def in_line() -> bool:
        return abs(clock.offset_seconds(target, github)) <= limit

    try:
        steps.wait_until(in_line, "the VM clock is within the limit of GitHub's", timeout=20)
    except RemediationFailed:
        # makestep answers OK and changes nothing when no source is reachable. GitHub's clock
        # is the one that judges the runner's tokens, so set the clock from it.
        steps.note(f"{daemon} did not fix the offset (time source unreachable?)")
        epoch = github.server_time().timestamp()
        steps.run(f"date -u -s @{epoch:.0f}", why="set the clock from GitHub's Date header")
        steps.wait_until(in_line, "the VM clock is within the limit of GitHub's", timeout=10)
    if install.unit() and install.registration() is not None and not install.listener_running():
        ensure_running(install, settings, steps, why="the runner gave up while the clock was off")
    # After a boot or a step, the daemon needs a few polls before it calls itself synchronised.
    steps.wait_until(
        lambda: clock.synchronised(target, daemon), f"{daemon} is synchronised", timeout=60
    )


@pytest.fixture
def sync_clock(target, github, runner_install, steps, settings):
    return lambda: sync(target, github, runner_install, settings, steps)
