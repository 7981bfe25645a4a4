"""No hung job: no Runner.Worker older than thresholds.max_job_minutes, none alive after GitHub
shows its job completed (a wedged Worker keeps the runner busy, and its jobs queued, for hours:
actions/runner#4418, #4312).

Reported with the job's name, id and age (from the Worker's _diag log). The fix, opt-in
(remediation.kill_hung_worker), kills only a Worker whose job GitHub shows over; one that
is merely old may still be a long job GitHub lets run (timeout-minutes) and is reported. So
is an orphaned Worker (its listener died: the service and online fixes refuse while it runs),
never killed, and a Worker whose log names a job GitHub gives to another runner or started at
another time (a job can write that log): whether its own job is over is not known.
"""

import pytest

from runner_health import jobs
from runner_health.observe import CannotObserve

pytestmark = pytest.mark.needs("vm")


@pytest.mark.remediation("kill_hung_worker")
def test_no_hung_job(target, runner_install, github, settings, record_property):
    limit = settings.thresholds.max_job_minutes
    found = jobs.assess(target, runner_install, github, settings.runner.name, limit)
    record_property(
        "oldest_job_minutes", max((f.worker.age_seconds // 60 for f in found), default=0)
    )
    hung = [f for f in found if f.hung]
    assert not hung, "hung job: " + "\n".join(jobs.describe(f, limit) for f in hung)
    unasked = [f for f in found if f.error or f.foreign]
    if unasked:  # a job runs, and whether GitHub still runs it is not known
        raise CannotObserve("; ".join(jobs.describe(f, limit) for f in unasked))
