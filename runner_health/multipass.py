"""The Multipass CLI on the workstation (a Mac, usually).

>>> state(workstation, "assay-bpf-runner")
'Running'
"""

from __future__ import annotations

import json
import shlex

from testinfra.host import Host

from runner_health.targets import run


class MultipassError(RuntimeError):
    """multipass failed: not installed, daemon down, or no such instance."""


def state(workstation: Host, name: str) -> str:
    """The instance's state as Multipass names it: Running, Stopped, Suspended, ..."""
    result = run(workstation, f"multipass info {shlex.quote(name)} --format json", timeout=60)
    if result.rc == 127:
        raise MultipassError("the multipass CLI is not installed on this machine")
    if result.rc != 0:
        raise MultipassError(f"multipass info {name} exited {result.rc}: {result.stderr.strip()}")
    try:
        return json.loads(result.stdout)["info"][name]["state"]
    except (ValueError, KeyError) as exc:
        raise MultipassError(f"multipass info {name}: unexpected output ({exc})") from None
