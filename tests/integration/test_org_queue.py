"""Issue 11 item 2: an organisation runner's queue is read in every repository the config
lists (same paging and limits as a repository runner's); none listed is "unknown", said so."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from runner_health.github import GitHub
from tests.integration.conftest import TOKEN, github_at, run_github_checks
from tests.integration.hostile_server import Answer, HostileServer
from tests.integration.test_github_hostile import HOUR_AGO, job, runner, serve_pages


def org_client(url: str, repositories: tuple[str, ...]) -> GitHub:
    settings = github_at(url).settings
    return GitHub(
        replace(settings, repository=None, organization="acme", repositories=repositories), TOKEN
    )


def serve_repo(server: HostileServer, repo: str, jobs: list[dict[str, Any]]) -> None:
    runs = f"/repos/{repo}/actions/runs"
    server.on(runs, Answer(body={"workflow_runs": [{"id": 7}]}))
    serve_pages(server, f"{runs}/7/jobs", "jobs", jobs)


def test_every_listed_repository_is_read_to_its_last_page(hostile):
    serve_repo(hostile, "acme/a", [job(n) for n in range(150)])
    serve_repo(hostile, "acme/b", [job(150)])
    queued = org_client(hostile.url, ("acme/a", "acme/b")).queued_jobs()
    assert [(j["repository"], j["name"]) for j in queued.jobs] == [
        *(("acme/a", f"job {n}") for n in range(150)),
        ("acme/b", "job 150"),
    ]
    assert not any(path.startswith("/orgs/") for _, path, _ in hostile.requests)


def test_no_repository_listed_reads_nothing(hostile):
    gh = org_client(hostile.url, ())
    assert gh.queue_repositories() == ()
    assert gh.queued_jobs().jobs == []
    assert hostile.requests == []


def run_queue_check(server: HostileServer, tmp_path: Path, repositories: str) -> tuple[int, Any]:
    github = f'organization = "acme"\n{repositories}api_url = "{server.url}"\n'
    finished, (record,) = run_github_checks(tmp_path, github, "checks/test_queue.py")
    return finished.returncode, record


def test_the_check_for_an_organisation_runner_without_repositories_is_unknown(hostile, tmp_path):
    status, record = run_queue_check(hostile, tmp_path, "")
    assert status == 9 and record["outcome"] == "unknown", record
    assert record["failure"].endswith(
        "organisation runner: list the repositories whose jobs it runs in github.repositories"
    )


def test_the_check_for_an_organisation_runner_reads_its_repositories(hostile, tmp_path):
    hostile.on("/orgs/acme/actions/runners", Answer(body={"runners": [runner(status="offline")]}))
    serve_repo(hostile, "acme/a", [])
    serve_repo(hostile, "acme/b", [job(1, created_at=HOUR_AGO)])
    status, record = run_queue_check(hostile, tmp_path, 'repositories = ["acme/a", "acme/b"]\n')
    assert status == 1 and record["outcome"] == "failed", record
    assert "1 job(s) wait for runner 'vm1'" in record["failure"]
    assert record["measurements"]["oldest_queued_minutes"] >= 59
