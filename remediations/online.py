"""The runner is offline at GitHub: find out why, then run the one fix that matches.

Diagnosis reads the facts (is the listener running? is the clock off? does GitHub still
know the runner?) and the runner's own log lines (_diag and the journal), newest cause first.
"""

import pytest

from remediations.clock import sync
from remediations.registration import reconfigure
from remediations.service import ensure_running
from runner_health import clock
from runner_health.runner import diagnose
from runner_health.steps import RemediationFailed, RemediationRefused


@pytest.fixture
def diagnose_offline(target, github, runner_install, settings, steps, free_disk):
    name = settings.runner.name

    def online() -> bool:
        runner = github.runner(name)
        return runner is not None and runner.get("status") == "online"

    def fix() -> None:
        causes = [finding.cause for finding in diagnose(runner_install.recent_log())]
        steps.note("runner log shows: " + (", ".join(causes) if causes else "no known cause"))
        offset = clock.offset_seconds(target, github)
        if github.runner(name) is None or causes[-1:] == ["registration_gone"]:
            steps.note("diagnosis: the registration is gone at GitHub")
            reconfigure(github, runner_install, settings, steps)
            return
        if abs(offset) > settings.thresholds.max_clock_offset_seconds or causes[-1:] == ["clock"]:
            steps.note(f"diagnosis: clock skew (VM is {offset:+.0f}s off GitHub)")
            sync(target, github, runner_install, settings, steps)
        elif causes[-1:] == ["deprecated"]:
            raise RemediationRefused(
                "the runner version is deprecated: update actions/runner (see the version check)"
            )
        elif causes[-1:] == ["session_conflict"]:
            raise RemediationRefused(
                "another runner holds this registration's session (a cloned VM?)"
            )
        elif causes[-1:] == ["disk_full"]:
            steps.note("diagnosis: the disk is full")
            free_disk()
        if runner_install.listener_running():
            try:
                steps.wait_until(online, f"GitHub shows {name!r} online", timeout=30)
                return
            except RemediationFailed:
                steps.note("the listener runs but GitHub still shows the runner offline")
        ensure_running(runner_install, settings, steps, why="bring the listener back to GitHub")
        steps.wait_until(
            online,
            f"GitHub shows {name!r} online",
            timeout=settings.remediation.online_wait_seconds,
        )

    return fix
