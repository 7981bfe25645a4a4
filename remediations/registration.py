"""Full reconfigure: fresh registration token, remove the local config, register, install, start.

Safety: identity is never rewritten on a guess: a VM registered under another name than the
config's is refused unless remediation.reconcile_identity = true (a missing ``.runner``, or
one naming the config's runner, is re-registered). The registration token is fetched before
anything is touched, so when GitHub can't be reached (or refuses) nothing changes; a busy
runner is never reconfigured. The token reaches config.sh on stdin as
ACTIONS_RUNNER_INPUT_TOKEN, never in argv. config.sh runs as the runner user; the service is
removed and installed by runner_health.unit (systemctl), never by the runner's svc.sh, which
any job can rewrite.
"""

import shlex

import pytest

from runner_health.config import Settings
from runner_health.github import GitHub, GitHubError
from runner_health.runner import RunnerInstall
from runner_health.steps import RemediationFailed, RemediationRefused, Steps
from runner_health.targets import as_user, run
from runner_health.unit import install_unit, uninstall_unit


def check_identity(install: RunnerInstall, settings: Settings) -> None:
    """RemediationRefused when ``.runner`` names another runner than the config does.

    A typo in runner.name must not stop a working runner and register a second one: the
    name is only changed when the config says so (remediation.reconcile_identity).
    """
    held = (install.registration() or {}).get("agentName")
    name = settings.runner.name
    if isinstance(held, str) and held != name and not settings.remediation.reconcile_identity:
        raise RemediationRefused(
            f"config says {name!r}, this VM is registered as {held[:100]!r}: fix runner.name, or set "
            f"remediation.reconcile_identity = true to re-register this VM as {name!r}"
        )


def reconfigure(github: GitHub, install: RunnerInstall, settings: Settings, steps: Steps) -> None:
    name = settings.runner.name
    check_identity(install, settings)
    try:
        token = github.registration_token()
        at_github = github.runner(name)
    except GitHubError as exc:
        raise RemediationRefused(f"{exc}: the registration is left as it is") from None
    if (at_github and at_github.get("busy")) or install.job_running():
        raise RemediationRefused(f"runner {name!r} is running a job: not reconfiguring it now")
    directory = shlex.quote(install.directory)
    if run(install.host, f"test -x {directory}/config.sh", timeout=30).rc != 0:
        raise RemediationFailed(
            f"no runner at {install.directory} (config.sh missing): run provision/setup.sh"
        )
    install.unit()  # a .service naming anything but this runner's unit: refused (UnsafeUnit)
    for unit in install.installed_units():  # the one .service names, and any it lost track of
        uninstall_unit(install, unit, steps)
    if install.registration() is not None:
        steps.run(
            as_user(install.user, f"cd {directory} && ./config.sh remove --local"),
            why="drop the stale local registration",
        )
    configure = (
        f"cd {directory} && IFS= read -r ACTIONS_RUNNER_INPUT_TOKEN && export ACTIONS_RUNNER_INPUT_TOKEN && "
        f"exec ./config.sh --unattended --replace --url {shlex.quote(settings.github.runner_url)} "
        f"--name {shlex.quote(name)} --labels {shlex.quote(','.join(settings.runner.labels))} --work _work"
    )
    steps.run(
        as_user(install.user, configure),
        why="register with a fresh token (on stdin)",
        stdin=token + "\n",
    )
    unit = install_unit(install, settings, steps, why="install the service")
    steps.run(f"systemctl start {shlex.quote(unit)}", why="start the runner")

    def online() -> bool:
        runner = github.runner(name)
        return runner is not None and runner.get("status") == "online"

    steps.wait_until(
        online, f"GitHub shows {name!r} online", timeout=settings.remediation.online_wait_seconds
    )


@pytest.fixture
def reconfigure_runner(github, runner_install, settings, steps):
    return lambda: reconfigure(github, runner_install, settings, steps)
