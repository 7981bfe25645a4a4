"""Full reconfigure: fresh registration token, remove the local config, register, install, start.

Safety: identity is never rewritten on a guess: a VM registered under another name than the
config's is refused unless remediation.reconcile_identity = true (a missing ``.runner``, or
one naming the config's runner, is re-registered). The registration token is fetched before
anything is touched, so when GitHub can't be reached (or refuses) nothing changes; a busy
runner is never reconfigured. The token reaches config.sh on stdin as
ACTIONS_RUNNER_INPUT_TOKEN, never in argv. config.sh runs as the runner user; the service is
removed and installed by runner_health.unit (systemctl), never by the runner's svc.sh, which
any job can rewrite (nor needs it: a missing svc.sh changes nothing here).

The runner's environment is kept: config.sh sources env.sh, which rewrites ``.path`` with the
PATH of whoever runs it (here sudo's secure_path, not the runner user's login PATH) and
appends variables to ``.env``; runsvc.sh makes ``.path`` the service's PATH. Both are read
before and written back after, exactly as they were, so a PATH entry added by hand (say
~/.cargo/bin) survives a re-registration.
"""

import base64
import re
import shlex

import pytest

from runner_health.config import Settings
from runner_health.github import GitHub, GitHubError
from runner_health.runner import RunnerInstall
from runner_health.steps import RemediationFailed, RemediationRefused, Steps
from runner_health.targets import as_user, run
from runner_health.unit import install_unit, lost_unit, uninstall_unit

KEPT = (".path", ".env")  # what config.sh's env.sh rewrites or appends to
KEPT_MAX = 64 * 1024  # bytes; a larger file is not kept (env.sh only appends to .env)


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
    lost = lost_unit(install)
    if lost is None:
        install.unit()  # a .service naming anything but this runner's unit: refused (UnsafeUnit)
    else:  # its unit file is gone: systemd may still run it (not loaded: exit 5, nothing ran)
        steps.run(
            f"systemctl stop {shlex.quote(lost)}",
            why=f"{lost}'s unit file is gone: stop what systemd still runs of it",
            check=False,
        )
    for unit in install.installed_units():  # the one .service names, and any it lost track of
        uninstall_unit(install, unit, steps)
    kept = saved_environment(install, steps)
    try:
        register(install, settings, steps, token)
    finally:
        restore_environment(install, kept, steps)
    unit = install_unit(install, settings, steps, why="install the service")
    steps.run(f"systemctl start {shlex.quote(unit)}", why="start the runner")

    def online() -> bool:
        runner = github.runner(name)
        return runner is not None and runner.get("status") == "online"

    steps.wait_until(
        online, f"GitHub shows {name!r} online", timeout=settings.remediation.online_wait_seconds
    )


def register(install: RunnerInstall, settings: Settings, steps: Steps, token: str) -> None:
    """``config.sh remove --local`` if configured, then ``config.sh`` with ``token`` on stdin,
    both as the runner user."""
    directory = shlex.quote(install.directory)
    if install.registration() is not None:
        steps.run(
            as_user(install.user, f"cd {directory} && ./config.sh remove --local"),
            why="drop the stale local registration",
        )
    name = settings.runner.name
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


def saved_environment(install: RunnerInstall, steps: Steps) -> dict[str, tuple[str, str]]:
    """{file: (mode, base64 of its bytes)} for each of KEPT that is a regular file of at most
    KEPT_MAX bytes, read by the runner user (the files are theirs: root reads nothing of a
    job's choosing, a link included)."""
    kept: dict[str, tuple[str, str]] = {}
    for name in KEPT:
        path = shlex.quote(name)
        read = (
            f"cd {shlex.quote(install.directory)} && {{ [ -e {path} ] || [ -L {path} ] || exit 10; }} && "
            f"[ -f {path} ] && [ ! -L {path} ] && size=$(wc -c < {path}) && "
            f'[ "$size" -le {KEPT_MAX} ] && stat -c %a -- {path} && exec base64 -w 0 < {path}'
        )
        found = run(install.host, as_user(install.user, read), timeout=30)
        mode, _, data = found.stdout.partition("\n")
        if found.rc == 0 and re.fullmatch(r"[0-7]{3,4}", mode) and _is_base64(data):
            kept[name] = (mode, data)
        elif found.rc != 10:  # missing: config.sh writes it, nothing to keep
            steps.note(
                f"{install.directory}/{name} is not kept (not a regular file, or over "
                f"{KEPT_MAX // 1024} KiB): config.sh's env.sh rewrites it"
            )
    return kept


def _is_base64(data: str) -> bool:
    try:
        base64.b64decode(data, validate=True)
    except ValueError:
        return False
    return True


def restore_environment(
    install: RunnerInstall, kept: dict[str, tuple[str, str]], steps: Steps
) -> None:
    """Write back what saved_environment read, as the runner user: a new file renamed over
    the one config.sh wrote, so never through a link a job left there."""
    for name, (mode, data) in kept.items():
        path = shlex.quote(name)
        write = (
            f"cd {shlex.quote(install.directory)} && t=$(mktemp {shlex.quote(name + '.XXXXXX')}) && "
            f'{{ base64 -d > "$t" && chmod {mode} "$t" && mv -f -T "$t" {path} || '
            f'{{ rm -f "$t"; exit 1; }}; }}'
        )
        steps.run(
            as_user(install.user, write),
            why=f"keep the runner's {name} as it was (config.sh's env.sh rewrote it)",
            stdin=data,
        )


@pytest.fixture
def reconfigure_runner(github, runner_install, settings, steps):
    return lambda: reconfigure(github, runner_install, settings, steps)
