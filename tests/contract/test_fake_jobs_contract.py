"""Contract: a job GitHub ended without telling its runner (``FakeGitHub.finish_job``, the hung
job's fault) validates against GitHub's own Job model, and the product's client reads it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from runner_health import jobs
from tests.integration.conftest import github_at
from tests.testbed.fake_github import FakeGitHub
from tests.testbed.fake_github.runner_protocol import api

models = pytest.importorskip("githubkit_schemas.v2022_11_28.models")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


def test_a_job_github_ended_validates_and_reads_as_over(github: FakeGitHub) -> None:
    job = github.queue_job(["self-hosted"], duration=600)
    github.finish_job(job["id"], "cancelled", ago=60)
    served = api(github, "GET", f"/repos/acme/kernel-ci/actions/jobs/{job['id']}").json()
    parsed = models.Job.model_validate(served)
    assert (parsed.status, parsed.conclusion) == ("completed", "cancelled")
    read = github_at(github.url, github.admin_token).job("acme/kernel-ci", job["id"])
    assert read == served
    assert jobs.ended(read, datetime.now(timezone.utc))
