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
from runner_health.observe import CannotObserve, read
from runner_health.targets import run

DAEMONS = ("chrony", "chronyd", "systemd-timesyncd")


def offset_seconds(host: Host, github: GitHub) -> float:
    """VM clock minus GitHub's clock, latency-corrected (GitHub's Date has 1 s resolution).

    GitHubError when GitHub's clock can't be read, CannotObserve when the VM's can't.
    """
    asked = time.time()
    server = github.server_time().timestamp() + 0.5  # Date truncates to the second
    answered = time.time()
    before = time.time()
    answer = read(host, "date +%s.%N")
    after = time.time()
    try:
        vm = float(answer)
    except ValueError:
        raise CannotObserve(f"date +%s.%N printed {answer[:100]!r}, not a time") from None
    # Bring GitHub's reading forward to the moment the VM was read.
    return vm - (server + ((before + after) / 2 - (asked + answered) / 2))


def time_daemon(host: Host) -> str | None:
    """The active time daemon's unit name, or None when none runs.

    Read from what systemctl prints (active, inactive, failed, ...): no answer at all means
    systemd could not be asked, which says nothing about the daemons.
    """
    for unit in DAEMONS:
        result = run(host, f"systemctl is-active {unit}", timeout=30)
        state = result.stdout.strip()
        if not state:
            raise CannotObserve(f"systemctl is-active {unit}: no answer ({result.stderr.strip()})")
        if state == "active":
            return unit
    return None


def synchronised(host: Host, daemon: str) -> bool:
    """Whether the daemon says it is synchronised (chrony's Leap status, else timedated)."""
    if daemon.startswith("chrony"):
        tracking = read(host, "chronyc -n tracking")
        return "Leap status" in tracking and "Not synchronised" not in tracking
    return read(host, "timedatectl show -p NTPSynchronized --value").strip() == "yes"
