"""No job for this runner's labels waits longer than the threshold (reported, not fixed here)."""

import pytest

from runner_health.queue import stuck_jobs


@pytest.mark.github
def test_no_job_queued_too_long(github, settings):
    waiting = stuck_jobs(
        github.queued_jobs(),
        github.runner(settings.runner.name),
        settings.runner.labels,
        settings.thresholds.max_queue_wait_minutes,
    )
    assert not waiting, (
        f"{len(waiting)} job(s) wait for runner {settings.runner.name!r}:\n" + "\n".join(waiting)
    )
