"""The Multipass CLI on the workstation (a Mac, usually).

>>> state(workstation, "assay-bpf-runner")
'Running'
"""

from __future__ import annotations

import json
import shlex

from testinfra.host import Host

from runner_health.observe import CannotObserve
from runner_health.targets import run

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


class MultipassError(CannotObserve):
    """multipass failed or said something else than a state: the VM's state is unknown."""


def state(workstation: Host, name: str) -> str:
    """The instance's state as Multipass names it: Running, Stopped, Suspended, ..."""
    result = run(workstation, f"multipass info {shlex.quote(name)} --format json", timeout=60)
    if result.rc == 127:
        raise MultipassError("the multipass CLI is not installed on this machine")
    if result.rc != 0:
        raise MultipassError(f"multipass info {name} exited {result.rc}: {result.stderr.strip()}")
    try:
        found = json.loads(result.stdout)["info"][name]["state"]
    except (ValueError, LookupError, TypeError) as exc:
        raise MultipassError(f"multipass info {name}: unexpected output ({exc})") from None
    if not isinstance(found, str) or found not in STATES:
        raise MultipassError(f"multipass info {name}: unknown state {found!r}")
    return found
