"""Bring the Multipass VM back until it answers ``multipass exec``.

- multipassd doesn't answer: restart it when ``[multipass] restart_daemon = true`` (root's
  launchd job on macOS, the snap on Linux: ``sudo -n`` unless runner-health runs as root, so a
  sudoers line for that one command is enough), else refuse and print the command.
- Stopped or Suspended (or starting, ...): ``multipass start``.
- Unknown, or Running but not answering: ``multipass stop --force`` then ``multipass start``.
  Not ``multipass restart``: it reboots over SSH, which is what is broken, and refuses an
  Unknown instance ("Try to stop and start it instead"; see runner_health/multipass.py).
A forced stop kills whatever runs in the VM, a daemon restart may stop it (multipassd owns
its process), and the VM can't be asked: GitHub is. A runner GitHub lists as busy, or one
GitHub can't be asked about, is left alone.
"""

import shlex

import pytest
from testinfra.host import Host

from runner_health import multipass
from runner_health.config import Settings
from runner_health.github import GitHub, GitHubError, NoToken
from runner_health.steps import RemediationRefused, Steps
from runner_health.targets import is_root


def not_busy(github: GitHub, settings: Settings, doing: str) -> None:
    """RemediationRefused unless GitHub says the runner runs no job."""
    runner = settings.runner.name
    try:
        found = github.runner(runner)
    except (GitHubError, NoToken) as exc:
        raise RemediationRefused(
            f"GitHub can't say whether runner {runner!r} runs a job ({exc}): not {doing}"
        ) from None
    if found and found.get("busy"):
        raise RemediationRefused(f"GitHub says runner {runner!r} runs a job: not {doing}")


def restart_daemon(
    settings: Settings, workstation: Host, steps: Steps, github: GitHub, why: str
) -> None:
    """Restart multipassd (opt-in) and wait until it answers; else refuse with the command."""
    command = multipass.daemon_restart_command(workstation)
    if not is_root(workstation):
        command = f"sudo -n {command}"
    if not settings.multipass_restart_daemon:
        raise RemediationRefused(
            f"multipassd does not answer ({why}): run `{command}`, or set "
            "[multipass] restart_daemon = true to have runner-health run it"
        )
    not_busy(github, settings, f"restarting multipassd (`{command}`)")
    steps.run(command, why="multipassd does not answer", host=workstation, root=False)
    steps.wait_until(
        lambda: read_state(settings, workstation) is not None, "multipassd answers", timeout=120
    )


def read_state(settings: Settings, workstation: Host) -> str | None:
    """The VM's state, None while multipassd doesn't answer."""
    name = settings.multipass_name
    try:
        return multipass.state(workstation, name, timeout=settings.multipass_exec_timeout_seconds)
    except multipass.DaemonDown:
        return None


def bring_back(
    settings: Settings, workstation: Host, target: Host, steps: Steps, github: GitHub
) -> None:
    name = settings.multipass_name
    bound = settings.multipass_exec_timeout_seconds
    quoted = shlex.quote(name)

    def run(command: str, why: str, timeout: float) -> None:
        steps.run(f"multipass {command}", why=why, host=workstation, root=False, timeout=timeout)

    try:
        state = multipass.state(workstation, name, timeout=bound)
    except multipass.DaemonDown as exc:
        restart_daemon(settings, workstation, steps, github, str(exc))
        state = read_state(settings, workstation) or "Unknown"
    if state == "Unknown" or (
        state == "Running" and multipass.unreachable(target, timeout=bound) is not None
    ):
        cycle = f"multipass stop --force {quoted} && multipass start {quoted}"
        not_busy(github, settings, f"forcing {name} off (`{cycle}`)")
        run(f"stop --force {quoted}", f"the VM is {state} and does not answer", timeout=120)
        state = "Stopped"
    if state != "Running":
        run(f"start {quoted}", f"the VM is {state}", timeout=360)
    steps.wait_until(
        lambda: multipass.unreachable(target, timeout=bound) is None,
        f"{name} answers `multipass exec`",
        timeout=180,
    )


@pytest.fixture
def start_vm(settings, workstation, target, steps, github):
    return lambda: bring_back(settings, workstation, target, steps, github)
