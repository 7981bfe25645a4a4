"""Kill a hung job's Runner.Worker: opt-in (remediation.kill_hung_worker), and only once GitHub
shows its job completed. Never the listener: the runner then reports the job and takes the
next one (the real listener cancels such a zombie Worker itself only when a new job comes:
JobDispatcher.cs, "Received job request while previous job ... still running on worker").
Never an orphaned Worker (no listener started it: no job GitHub could show over runs in it):
the refusal says how to stop it by hand."""

import pytest
from testinfra.host import Host

from runner_health import jobs
from runner_health.config import Settings
from runner_health.github import GitHub
from runner_health.runner import RunnerInstall
from runner_health.steps import RemediationFailed, RemediationRefused, Steps


@pytest.fixture
def kill_hung_worker(target, runner_install, github, settings, steps):
    return lambda: kill_hung(target, runner_install, github, settings, steps)


def kill_hung(
    target: Host, install: RunnerInstall, github: GitHub, settings: Settings, steps: Steps
) -> None:
    """Kill each hung Worker whose job GitHub shows over; refuse for the others, and for all
    unless the config opts in."""
    limit = settings.thresholds.max_job_minutes
    found = jobs.assess(target, install, github, settings.runner.name, limit)
    hung = [f for f in found if f.hung and not f.orphaned]
    refused = [_why_not(f) for f in found if f.orphaned]
    if not hung and not refused:
        steps.note("no hung Runner.Worker any more")
        return
    if hung and not settings.remediation.kill_hung_worker:
        by_hand = "; ".join(
            f"sudo kill -TERM {f.worker.pid} (then -KILL after {jobs.KILL_GRACE_SECONDS} s)"
            for f in hung
        )
        raise RemediationRefused(
            "; ".join(
                [
                    "not killed automatically: set remediation.kill_hung_worker = true, or, "
                    f"once GitHub shows the job over: {by_hand}",
                    *refused,
                ]
            )
        )
    for finding in (f for f in hung if f.ended):
        result = steps.run(
            jobs.kill_command(finding.worker),
            why=f"GitHub shows its job over: {jobs.describe(finding, limit)}",
            check=False,
        )
        if result is not None and result.rc == jobs.NOT_THE_SAME:
            raise RemediationRefused(f"pid {finding.worker.pid} is another process now")
        if result is not None and result.rc != 0:
            raise RemediationFailed(f"{jobs.WORKER} pid {finding.worker.pid} survived SIGKILL")
    refused += [_why_not(f) for f in hung if not f.ended]
    if refused:
        raise RemediationRefused("; ".join(refused))
    if not steps.dry_run and not install.listener_running():
        raise RemediationFailed(f"{jobs.LISTENER} is gone after the Worker was killed")


def _why_not(finding: jobs.Finding) -> str:
    """Why a hung Worker is left running: GitHub has not said its job is over, or no listener
    started it."""
    pid = finding.worker.pid
    if finding.orphaned:
        return (
            f"pid {pid} not killed: orphaned (parent pid {finding.worker.ppid}, no "
            f"{jobs.LISTENER}): check it (ps -o pid,ppid,lstart,args -p {pid}), then: "
            f"sudo kill -TERM {pid}"
        )
    if finding.foreign:
        return (
            f"pid {pid} not killed: the Worker log names a job that isn't this Worker's "
            f"({finding.foreign})"
        )
    if finding.error:
        return f"pid {pid} not killed: GitHub could not be asked ({finding.error})"
    if finding.status is None:
        return (
            f"pid {pid} not killed: its Worker log gives no job id this runner's GitHub "
            "repository knows, so GitHub can't confirm the job is over"
        )
    if finding.status.get("status") == "completed":
        return f"pid {pid} not killed: its job completed under {jobs.ENDED_GRACE.seconds} s ago"
    return (
        f"pid {pid} not killed: GitHub shows its job {str(finding.status.get('status'))[:20]} "
        "(a self-hosted job may run up to 5 days with timeout-minutes): reported only"
    )
