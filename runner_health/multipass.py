"""The Multipass CLI on the workstation (a Mac, usually), and its daemon.

>>> state(workstation, "assay-bpf-runner", timeout=30)
'Running'

What canonical/multipass does when things go wrong (v1.16.3 and main 9b0af2e), which the vm
check and its fix rely on:
- multipassd not answering: every command prints "cannot connect to the multipass socket" and
  exits 2 (include/multipass/cli/command.h), or, when the daemon is wedged, never returns.
- ``info`` fetches a Running instance's load, disks and IPs over SSH and fails when SSH does
  (src/daemon/daemon.cpp populate_instance_info, issue #3252); ``--no-runtime-information``
  (since 1.12) reads only the state, so an unreachable VM still shows "Running".
- ``exec`` on a Running VM whose guest doesn't answer fails ("exec failed: ssh connection
  failed: 'Connection refused'", src/ssh/plain_ssh_session.cpp) or hangs (issue #4532).
- ``restart`` reboots over SSH (daemon.cpp ``reboot_vm``/``ssh_reboot``): it fails on exactly
  the VM that needs it, and on Unknown says "Try to stop and start it instead". ``stop
  --force`` kills the VM's process in any state but Stopped (qemu_virtual_machine.cpp
  ``shutdown``, Poweroff), and ``start`` boots it again.
"""

from __future__ import annotations

import json
import shlex

from testinfra.host import Host

from runner_health.observe import CannotObserve
from runner_health.targets import CommandTimeout, run

# What `multipass info` can say (format_utils.cpp; Unavailable is on main only).
STATES = frozenset(
    (
        "Running",
        "Stopped",
        "Deleted",
        "Starting",
        "Restarting",
        "Delayed Shutdown",
        "Suspending",
        "Suspended",
        "Unknown",
        "Unavailable",
    )
)
NO_SOCKET = "cannot connect to the multipass socket"  # include/multipass/cli/command.h
# How multipassd is restarted where it runs as a service: the launchd job of the macOS
# installer (packaging/macos/com.canonical.multipassd.plist.in, KeepAlive: -k restarts it at
# once) and the snap (snap/snapcraft.yaml). Both need root.
DAEMON_RESTART = {
    "darwin": "launchctl kickstart -k system/com.canonical.multipassd",
    "linux": "snap restart multipass",
}


class MultipassError(CannotObserve):
    """multipass failed or said something else than a state: the VM's state is unknown."""


class DaemonDown(MultipassError):
    """multipassd does not answer (no socket, or no reply in time): nothing about the VM is
    known, but this is a fact about the daemon, which the vm check reports as a failure."""


def state(workstation: Host, name: str, *, timeout: float) -> str:
    """The instance's state as Multipass names it: Running, Stopped, Suspended, ...

    Read without SSH into the VM (``--no-runtime-information``): an unreachable VM is still
    reported in its state, and the read stays quick."""
    command = f"multipass info {shlex.quote(name)} --format json --no-runtime-information"
    try:
        result = run(workstation, command, timeout=timeout)
    except CommandTimeout:
        raise DaemonDown(f"`multipass info` did not answer within {timeout:g} s") from None
    stderr = " ".join(result.stderr.split())[:300]
    if result.rc == 127:
        raise MultipassError("the multipass CLI is not installed on this machine")
    if NO_SOCKET in stderr:
        raise DaemonDown(stderr)
    if result.rc != 0:
        raise MultipassError(f"multipass info {name} exited {result.rc}: {stderr}")
    try:
        found = json.loads(result.stdout)["info"][name]["state"]
    except (ValueError, LookupError, TypeError) as exc:
        raise MultipassError(f"multipass info {name}: unexpected output ({exc})") from None
    if not isinstance(found, str) or found not in STATES:
        raise MultipassError(f"multipass info {name}: unknown state {found!r}")
    return found


def no_answer(timeout: float) -> str:
    return f"does not answer `multipass exec` within {timeout:g} s"


def unreachable(vm: Host, *, timeout: float) -> str | None:
    """Why the VM does not answer a command (``multipass exec`` on this target) within
    ``timeout`` seconds; None when it answers."""
    try:
        result = run(vm, "true", timeout=timeout)
    except CommandTimeout:
        return no_answer(timeout)
    if result.rc == 0:
        return None
    return f"`multipass exec` exited {result.rc}: {' '.join(result.stderr.split())[:300]}"


def daemon_restart_command(workstation: Host) -> str:
    """The command that restarts multipassd on this workstation (macOS or Linux)."""
    system = workstation.system_info.type
    if system not in DAEMON_RESTART:
        raise MultipassError(f"no known way to restart multipassd on {system!r}")
    return DAEMON_RESTART[system]
