"""Every command the checks run on the VM, for one ``targets.prefetch`` per healthy pass.

>>> read(target, settings, runner_install)  # one round trip: targets.prefetch(commands(...))

Each check reads through its usual reader (``disk.usage``, ``clock.time_daemon``,
``RunnerInstall.unit`` ...); ``targets.run`` answers those exact commands from the prefetch.
A reading not listed here still works: it is its own round trip (and makes the readings
after it fresh too).
"""

from __future__ import annotations

from testinfra.host import Host

from runner_health import bpf_lsm, clock, disk, jobs, oom, os_updates, release, targets
from runner_health.config import Settings
from runner_health.runner import LISTENER, RunnerInstall


def commands(settings: Settings, install: RunnerInstall) -> tuple[list[str], list[str]]:
    """(commands run as given, commands run as root) that a healthy pass runs on the VM."""
    directory = settings.runner.directory
    plain = [
        *clock.COMMANDS,
        *bpf_lsm.COMMANDS,
        *os_updates.COMMANDS,
        *(c for path in ("/", f"{directory}/_work", directory) for c in disk.commands(path)),
        LISTENER,
        jobs.COMMAND,
    ]
    return plain, [*install.prefetch_commands(), oom.COMMAND, *release.prefetch_commands(install)]


def read(
    target: Host, settings: Settings, install: RunnerInstall, *, timeout: float = 60
) -> targets.Prefetch:
    """Take every fact of a healthy pass in one round trip (``targets.prefetch``)."""
    plain, root = commands(settings, install)
    return targets.prefetch(target, plain, root=root, timeout=timeout)
