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
from runner_health.targets import current_prefetch, run

DAEMONS = ("chrony", "chronyd", "systemd-timesyncd")
DATE = "date +%s.%N"
CHRONY = "chronyc -n tracking"
TIMEDATED = "timedatectl show -p NTPSynchronized --value"
# Everything the clock checks read, for a prefetch.
COMMANDS = (DATE, *(f"systemctl is-active {unit}" for unit in DAEMONS), CHRONY, TIMEDATED)


def offset_seconds(host: Host, github: GitHub) -> float:
    """VM clock minus GitHub's clock, latency-corrected (GitHub's Date has 1 s resolution).
    From a prefetch, the VM's time is placed mid-way through its round trip (within half of
    it: a second or so through Multipass, far below any sane limit).

    GitHubError when GitHub's clock can't be read, CannotObserve when the VM's can't.
    """
    asked = time.time()
    server = github.server_time().timestamp() + 0.5  # Date truncates to the second
    answered = time.time()
    taken = current_prefetch(host)
    before = time.time()
    answer = read(host, DATE)
    after = time.time()
    if taken is not None and DATE in taken.results:  # read then, within its round trip
        before, after = taken.started, taken.finished
    try:
        vm = float(answer)
    except ValueError:
        raise CannotObserve(f"{DATE} printed {answer[:100]!r}, not a time") from None
    # Bring GitHub's reading forward to the moment the VM was read.
    return vm - (server + ((before + after) / 2 - (asked + answered) / 2))


def time_daemon(host: Host) -> str | None:
    """The active time daemon's unit name, or None when none runs.

    Read from what systemctl prints (active, inactive, failed, ...): no answer at all means
    systemd could not be asked, which says nothing about the daemons.
    """
    for unit in DAEMONS:
        result = run(host, f"systemctl is-active {unit}", timeout=30)  # as in COMMANDS
        state = result.stdout.strip()
        if not state:
            raise CannotObserve(f"systemctl is-active {unit}: no answer ({result.stderr.strip()})")
        if state == "active":
            return unit
    return None


def synchronised(host: Host, daemon: str) -> bool:
    """Whether the daemon says it is synchronised (chrony's Leap status, else timedated)."""
    if daemon.startswith("chrony"):
        tracking = read(host, CHRONY)
        return "Leap status" in tracking and "Not synchronised" not in tracking
    return read(host, TIMEDATED).strip() == "yes"
