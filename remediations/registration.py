"""Full reconfigure: fresh registration token, remove the local config, register, install, start.

Safety: the registration token is fetched before anything is touched, so when GitHub
can't be reached (or refuses) nothing changes; a busy runner is never reconfigured. The
token reaches config.sh on stdin as ACTIONS_RUNNER_INPUT_TOKEN, never in argv. config.sh runs
as the runner user; the service is removed and installed by runner_health.unit (systemctl),
never by the runner's svc.sh, which any job can rewrite.
"""

import shlex

import pytest

from runner_health.github import GitHub, GitHubError
from runner_health.runner import RunnerInstall
from runner_health.steps import RemediationFailed, RemediationRefused, Steps
from runner_health.targets import as_user, run
from runner_health.unit import install_unit, uninstall_unit


def reconfigure(github: GitHub, install: RunnerInstall, settings, steps: Steps) -> None:
    name = settings.runner.name
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
