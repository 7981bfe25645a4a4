"""Queued jobs that wait for our runner are reported with the reason nobody takes them."""

from datetime import UTC, datetime

import pytest

from runner_health.github import age_minutes
from runner_health.queue import oldest_minutes, stuck_jobs

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RUNNER = {
    "name": "vm1",
    "status": "online",
    "busy": False,
    "labels": [{"name": n} for n in ("self-hosted", "Linux", "X64", "kernel-6.6")],
}


def job(labels, created="2026-11-28T11:00:00Z"):
    return {
        "id": 7,
        "run_id": 3,
        "name": "Kernel Matrix (6.6)",
        "labels": labels,
        "created_at": created,
    }


def test_recent_jobs_are_not_reported():
    assert stuck_jobs([job(["self-hosted"], "2026-11-28T11:55:00Z")], RUNNER, [], 15, NOW) == []


def test_github_hosted_jobs_are_not_ours():
    assert stuck_jobs([job(["ubuntu-latest"])], RUNNER, [], 15, NOW) == []


def test_reasons():
    offline = {**RUNNER, "status": "offline"}
    busy = {**RUNNER, "busy": True}
    assert "offline" in stuck_jobs([job(["self-hosted", "linux"])], offline, [], 15, NOW)[0]
    assert "busy" in stuck_jobs([job(["self-hosted"])], busy, [], 15, NOW)[0]
    assert (
        "lacks kernel-5.15"
        in stuck_jobs([job(["self-hosted", "kernel-5.15"])], RUNNER, [], 15, NOW)[0]
    )
    assert "not registered" in stuck_jobs([job(["self-hosted"])], None, ["self-hosted"], 15, NOW)[0]
    line = stuck_jobs([job(["self-hosted", "KERNEL-6.6"])], RUNNER, [], 15, NOW)[0]
    assert "queued since 2026-11-28T11:00:00Z (60 min)" in line


@pytest.mark.parametrize("garbage", ["yesterday", "", "2026-11-28T11:00:00", None, 1764327600])
def test_a_time_that_is_no_github_timestamp_is_a_value_error(garbage):
    """Not a TypeError or AttributeError deep in the check: zone-less times included."""
    with pytest.raises(ValueError, match="time"):
        age_minutes(garbage, NOW)


def test_the_oldest_self_hosted_job_is_measured():
    jobs = [
        job(["ubuntu-latest"], "2026-11-28T10:00:00Z"),  # GitHub's runners: not ours
        job(["self-hosted"], "2026-11-28T11:20:00Z"),
        job(["Self-Hosted", "gpu"], "2026-11-28T11:50:00Z"),
    ]
    assert oldest_minutes(jobs, NOW) == 40.0
    assert oldest_minutes([], NOW) == 0.0


def test_an_organisation_runners_job_names_its_repository():
    line = stuck_jobs([{**job(["self-hosted"]), "repository": "acme/a"}], RUNNER, [], 15, NOW)[0]
    assert "(acme/a run 3) queued since" in line
