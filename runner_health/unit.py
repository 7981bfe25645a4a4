"""The runner's systemd unit, installed and removed by runner-health itself, never by svc.sh.

The runner directory belongs to the runner user, so to every job: its ``svc.sh`` and its
``bin/actions.runner.service.template`` (which sets ``User=`` and ``ExecStart=``) are whatever
the last job left there, and root running or filling in either runs the job's code as root.
So root writes the unit svc.sh would write from its own copy of the template, with the user
from runner-health's config, drives systemctl itself, and leaves the files in the runner
directory (``runsvc.sh``, ``.service``) to the runner user.

>>> install_unit(runner_install, settings, steps, why="the service is not installed")
'actions.runner.acme-kernel-ci.assay-bpf-runner.service'
"""

from __future__ import annotations

import re
import shlex
import zlib
from typing import Any
from urllib.parse import urlsplit

from runner_health.config import Settings
from runner_health.runner import UNIT_NAME, UNIT_NAME_MAX, NotRegularFile, RunnerInstall
from runner_health.steps import RemediationFailed, RemediationRefused, Steps
from runner_health.targets import as_root, as_user, run

# actions/runner src/Misc/layoutbin/actions.runner.service.template (After=network-online.target
# since 334df748, "Only start runner after network is online", #4094; network.target before),
# filled in as svc.sh install does (src/Misc/layoutbin/systemd.svc.sh.template). Read, not
# copied. No Restart=: RunnerService.js decides when the listener runs again. ExecStart runs as
# User=, so a runsvc.sh the runner user rewrote runs with no more than the runner user's rights.
TEMPLATE = """\
[Unit]
Description={description}
After=network-online.target

[Service]
ExecStart={root}/runsvc.sh
User={user}
WorkingDirectory={root}
KillMode=process
KillSignal=SIGTERM
TimeoutStopSec=5min

[Install]
WantedBy=multi-user.target
"""
MAX_SCOPE = 70  # ServiceControlManager.MaxRepoOrgCharacters (Linux)
# A path systemd reads literally in ExecStart= and WorkingDirectory=: no whitespace, quotes,
# backslashes or %-specifiers (svc.sh pastes the directory in as it is).
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9._+@-]+)+")


def scope_of(settings: Settings, registration: dict[str, Any]) -> str:
    """RepoOrOrgName (ConfigurationStore.cs), every character outside [0-9a-zA-Z._-] a "-".

    A runner whose serverUrl is on *.githubusercontent.com (github.com) is named after its
    repository or organisation: the config's, which config.sh registered it with. Otherwise
    (GitHub Enterprise Server: https://ghes/_services/pipelines/...) it is the first segment
    of serverUrl's path, read from ``.runner``: runner-writable, so it only ever picks a name
    of the runner-unit shape (and install_unit never takes over another directory's unit).
    """
    server = registration.get("serverUrl")
    try:
        url = urlsplit(server if isinstance(server, str) else "")
        hosted = (url.hostname or "").endswith(".githubusercontent.com")
    except ValueError:  # not a URL
        url, hosted = urlsplit(""), False
    first = next((part for part in url.path.split("/") if part), "")
    if hosted or not first:
        first = settings.github.repository or settings.github.organization or ""
    return re.sub(r"[^0-9a-zA-Z._-]", "-", first)


def unit_name(scope: str, agent: str) -> str:
    """CalculateServiceName (ServiceControlManager.cs) for SystemdControlManager's pattern.

    A name over 150 characters is cut (the scope to 70, then the runner name) and given a
    -NNNN suffix: random in the runner, derived from the whole name here so that every run
    finds the same one. (svc.sh also turns spaces into "_": neither part can hold one.)
    """
    name = f"actions.runner.{scope}.{agent}.service"
    if len(name) <= UNIT_NAME_MAX:
        return name
    exceeded = len(name) - UNIT_NAME_MAX + 5
    short_scope = scope[:MAX_SCOPE]
    exceeded -= len(scope) - len(short_scope)
    short_agent = agent[: len(agent) - exceeded] if exceeded > 0 else agent
    suffix = 1000 + zlib.crc32(name.encode()) % 8999  # Random.Next(1000, 9999): 1000-9998
    return f"actions.runner.{short_scope}.{short_agent}-{suffix}.service"


def lost_unit(runner: RunnerInstall) -> str | None:
    """The unit ``.service`` names when its unit file is gone; None otherwise.

    Gone: nothing (no file, no link) at its path in the systemd directory and no unit
    installed for this directory, as after ``rm`` of the unit file or an /etc restored without
    it. systemd may still run it (loaded before, until a stop or a reboot), and
    ``systemctl stop`` of it fails once it is not loaded, as svc.sh stop does
    (systemd.svc.sh.template). Only a runner unit's name counts: anything else in ``.service``
    stays RunnerInstall.unit()'s refusal.
    """
    try:
        name = (runner._read(".service", kib=1) or "").strip()
    except NotRegularFile:
        return None
    if len(name) > UNIT_NAME_MAX or not UNIT_NAME.fullmatch(name) or runner.installed_units():
        return None
    path = shlex.quote(f"{runner.systemd_dir}/{name}")
    present = run(runner.host, as_root(runner.host, f"[ -e {path} ] || [ -L {path} ]"), timeout=30)
    return None if present.rc == 0 else name


def install_unit(runner: RunnerInstall, settings: Settings, steps: Steps, why: str) -> str:
    """Install and enable the runner's unit as ``svc.sh install`` would; returns its name.

    The name is that of the unit already installed for this directory (svc.sh's random
    suffix), else unit_name's. The unit file is written whole or not at all (a temp file in
    the systemd directory, renamed: it also gets that directory's SELinux label, which svc.sh
    restores by hand), 0644 root. Does not start it, as svc.sh does not.
    """
    root = runner.directory
    if not _PLAIN_PATH.fullmatch(root):
        raise RemediationRefused(
            f"runner.directory {root!r} has characters a unit file would not read literally "
            "(letters, digits and ._+@- only): install the service by hand"
        )
    agent = settings.runner.name
    named = scope_of(settings, runner.registration() or {})
    installed = runner.installed_units()
    if len(installed) > 1:
        raise RemediationFailed(
            f"several units run {root}: {', '.join(installed)}: remove all but one by hand"
        )
    name = installed[0] if installed else unit_name(named, agent)
    path = f"{runner.systemd_dir}/{name}"
    quoted = shlex.quote(path)
    exists = f"[ -e {quoted} ] || [ -L {quoted} ]"
    if not installed and run(runner.host, as_root(runner.host, exists), timeout=30).rc == 0:
        raise RemediationRefused(
            f"{path} exists and is not {root}'s unit (WorkingDirectory): not overwriting it"
        )
    text = TEMPLATE.format(
        description=f"GitHub Actions Runner ({named}.{agent})", root=root, user=runner.user
    )
    temp = shlex.quote(f"{runner.systemd_dir}/.{name}.XXXXXX")
    steps.run(
        f't=$(mktemp {temp}) && {{ cat > "$t" && chmod 0644 "$t" && mv -f -T "$t" {quoted} '
        f'|| {{ rm -f "$t"; exit 1; }}; }}',
        why=f"{why}: write {name} from runner-health's template (User={runner.user})",
        stdin=text,
    )
    steps.run("systemctl daemon-reload", why="systemd reads the new unit")
    in_runner = f"cd {shlex.quote(root)} && "
    steps.run(
        as_user(runner.user, in_runner + "cp bin/runsvc.sh runsvc.sh && chmod 755 runsvc.sh"),
        why="the unit's ExecStart, copied as svc.sh install does (by the runner user)",
    )
    steps.run(f"systemctl enable {shlex.quote(name)}", why="start the runner at boot")
    steps.run(
        as_user(runner.user, in_runner + f"printf '%s\\n' {shlex.quote(name)} > .service"),
        why="record the unit's name in .service, as svc.sh install does (by the runner user)",
    )
    return name


def uninstall_unit(runner: RunnerInstall, unit: str, steps: Steps) -> None:
    """``svc.sh uninstall``'s steps for ``unit``, a name RunnerInstall.unit() validated."""
    name = shlex.quote(unit)
    steps.run(f"systemctl stop {name}", why="stop the service before reconfiguring")
    steps.run(f"systemctl disable {name}", why="uninstall the service")
    steps.run(
        f"rm -f -- {shlex.quote(f'{runner.systemd_dir}/{unit}')}", why="uninstall the service"
    )
    steps.run("systemctl daemon-reload", why="systemd forgets the unit")
    steps.run(
        as_user(runner.user, f"rm -f -- {shlex.quote(f'{runner.directory}/.service')}"),
        why="the service is no longer installed (by the runner user)",
    )
