"""No OOM kill of the runner since the last run: Runner.Worker (its job fails), Runner.Listener
(the runner goes offline) or a job's process in the runner's unit (systemd stops the unit).

Reported, not healed: a kill can't be undone. The report names when, which process, and the
job that ran then (its Worker log in _diag), and what keeps it from happening again.
"""

from datetime import datetime, timezone

import pytest

from runner_health import oom
from runner_health.observe import read
from runner_health.runner import UnsafeUnit
from runner_health.targets import as_root

pytestmark = pytest.mark.needs("vm")


def test_no_oom_kills_since_the_last_run(target, runner_install, previous_run_at):
    since = oom.bound(previous_run_at, datetime.now(timezone.utc))
    try:
        unit = runner_install.unit()
    except UnsafeUnit:  # the service check reports it; the runner's processes still count
        unit = None
    kills = oom.runner_kills(oom.parse(read(target, as_root(target, oom.COMMAND))), unit, since)
    when = f"since the last run ({since:%Y-%m-%d %H:%M:%SZ})" if since else "in the last 24 h"
    assert not kills, f"OOM kills of the runner {when}: {oom.describe(kills, runner_install)}"
