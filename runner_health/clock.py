"""The runner VM's clock against GitHub's, and the time daemon that should keep it right.

>>> offset_seconds(target, github)
0.4
>>> time_daemon(target), synchronised(target, "chrony")
('chrony', True)
"""

from __future__ import annotations

import time

from testinfra.host import Host

from runner_health.github import GitHub
from runner_health.targets import run

DAEMONS = ("chrony", "chronyd", "systemd-timesyncd")


def offset_seconds(host: Host, github: GitHub) -> float:
    """VM clock minus GitHub's clock, latency-corrected (GitHub's Date has 1 s resolution)."""
    asked = time.time()
    server = github.server_time().timestamp() + 0.5  # Date truncates to the second
    answered = time.time()
    before = time.time()
    vm = float(run(host, "date +%s.%N", timeout=30).stdout.strip())
    after = time.time()
    # Bring GitHub's reading forward to the moment the VM was read.
    return vm - (server + ((before + after) / 2 - (asked + answered) / 2))


def time_daemon(host: Host) -> str | None:
    """The active time daemon's unit name, or None when none runs."""
    for unit in DAEMONS:
        if run(host, f"systemctl is-active --quiet {unit}", timeout=30).rc == 0:
            return unit
    return None


def synchronised(host: Host, daemon: str) -> bool:
    """Whether the daemon says it is synchronised (chrony's Leap status, else timedated)."""
    if daemon.startswith("chrony"):
        tracking = run(host, "chronyc -n tracking", timeout=30).stdout
        return "Leap status" in tracking and "Not synchronised" not in tracking
    answer = run(host, "timedatectl show -p NTPSynchronized --value", timeout=30).stdout
    return answer.strip() == "yes"
