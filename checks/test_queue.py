"""No job for this runner's labels waits longer than the threshold (reported, not fixed here)."""

import pytest

from runner_health.github import GitHubUnavailable
from runner_health.observe import CannotObserve
from runner_health.queue import oldest_minutes, stuck_jobs


@pytest.mark.github
def test_no_job_queued_too_long(github, settings, record_property):
    if not github.queue_repositories():
        raise CannotObserve(
            "organisation runner: list the repositories whose jobs it runs in github.repositories"
        )
    queued = github.queued_jobs()
    record_property("oldest_queued_minutes", oldest_minutes(queued.jobs))
    waiting = stuck_jobs(
        queued.jobs,
        github.runner(settings.runner.name),
        settings.runner.labels,
        settings.thresholds.max_queue_wait_minutes,
    )
    assert not waiting, (
        f"{len(waiting)} job(s) wait for runner {settings.runner.name!r}:\n"
        + "\n".join(waiting + queued.unread)
    )
    if queued.unread:  # what was read waits for nobody; what wasn't, nobody knows
        raise GitHubUnavailable("the queue was read only in part: " + "; ".join(queued.unread))
