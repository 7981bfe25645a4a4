"""The GitHub client against the stateful fake: errors classified, tokens masked, 304s free."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from runner_health import redact
from runner_health.github import ETagCache, GitHub, GitHubError, GitHubUnavailable
from tests.integration.conftest import github_at
from tests.testbed.fake_github import FakeGitHub


@pytest.fixture
def fake():
    with FakeGitHub(timeout_hold=5) as server:
        yield server


def client(fake: FakeGitHub, token: str | None = None, timeout: float = 2) -> GitHub:
    assert (fake.owner, fake.repo) == ("acme", "kernel-ci")
    return github_at(fake.url, token or fake.admin_token, timeout)


def test_unknown_runner_is_none_and_the_clock_is_githubs(fake):
    gh = client(fake)
    assert gh.runners() == []
    assert gh.runner("assay-bpf-runner") is None
    assert abs((gh.server_time() - datetime.now(UTC)).total_seconds()) < 3


def test_registration_token_is_registered_as_a_secret(fake):
    token = client(fake).registration_token()
    assert redact.scrub(f"config.sh --token {token}") == "config.sh --token ***"


def test_bad_credentials_are_an_error_not_an_outage(fake):
    with pytest.raises(GitHubError) as error:
        client(fake, token="wrong-token-123").runners()
    assert not isinstance(error.value, GitHubUnavailable)
    assert "401" in str(error.value)


@pytest.mark.parametrize("kind", ["5xx", "timeout", "rate_limit"])
def test_outages_are_unavailable(fake, kind):
    fake.fail_with(kind)
    started = time.monotonic()
    with pytest.raises(GitHubUnavailable):
        client(fake, timeout=1).registration_token()
    assert time.monotonic() - started < 8  # bounded: one retry, each with a timeout


def test_conditional_get_costs_no_rate_limit(fake):
    gh = client(fake)
    gh.runners()
    before = fake.rate_limit_remaining
    gh.runners()
    assert fake.rate_limit_remaining == before
    fake.wait_for(lambda: fake.requests[-1][2] == 304)  # recorded after it is sent


def test_every_page_of_the_queue_is_read_and_revalidated(fake):
    """150 queued runs: two pages linked by the fake's Link header, each with its own ETag."""
    for _ in range(150):
        fake.queue_job(["self-hosted"], datetime.now(UTC) - timedelta(minutes=30))
    gh = client(fake)
    assert len(gh.queued_jobs().jobs) == 150
    calls = 2 + 150  # two pages of runs, then the jobs of each run
    fake.wait_for(lambda: len(fake.requests) == calls)
    before = fake.rate_limit_remaining
    assert len(gh.queued_jobs().jobs) == 150
    assert fake.rate_limit_remaining == before
    fake.wait_for(lambda: len(fake.requests) == 2 * calls)
    assert {status for _, _, status in fake.requests[calls:]} == {304}


def test_queued_jobs_are_listed_with_their_labels(fake):
    fake.queue_job(["self-hosted", "kernel-6.6"], datetime.now(UTC) - timedelta(minutes=30))
    (job,) = client(fake).queued_jobs().jobs
    assert job["labels"] == ["self-hosted", "kernel-6.6"]
    assert job["runner_id"] is None


def test_issue_lifecycle(fake):
    gh = client(fake)
    issue = gh.create_issue("Runner offline", "body", ["runner-health"])
    assert [i["number"] for i in gh.open_issues("runner-health")] == [issue["number"]]
    gh.comment_issue(issue["number"], "still offline")
    gh.close_issue(issue["number"])
    assert gh.open_issues("runner-health") == []


# -- ETags that outlive the process (the state store keeps the dict) -----------------------


def with_etags(fake: FakeGitHub, etags: dict, token: str | None = None) -> GitHub:
    return GitHub(client(fake).settings, token or fake.admin_token, etags=etags)


def pass_requests(gh: GitHub) -> None:
    """What a healthy pass asks GitHub: its clock, the runners, the queue."""
    gh.server_time()
    gh.runner("assay-bpf-runner")
    gh.queued_jobs()


def test_a_new_process_with_the_saved_etags_costs_no_rate_limit(fake):
    fake.queue_job(["self-hosted"], datetime.now(UTC) - timedelta(minutes=5))
    saved: dict = {}
    pass_requests(with_etags(fake, saved))
    loaded = json.loads(json.dumps(saved))  # what the state file gives the next run
    assert fake.admin_token not in json.dumps(saved)
    fake.wait_for(lambda: len(fake.requests) == 4)  # meta, runners, runs, the run's jobs
    before = fake.rate_limit_remaining
    pass_requests(with_etags(fake, loaded))
    assert fake.rate_limit_remaining == before
    fake.wait_for(lambda: len(fake.requests) == 8)
    assert [status for _, _, status in fake.requests[4:]] == [304] * 4


def test_a_cached_body_that_fails_the_checks_is_asked_again(fake):
    saved: dict = {}
    with_etags(fake, saved).runners()
    (url,) = saved
    saved[url]["body"] = {"runners": [{"name": "forged"}]}  # the state file is only data
    gh = with_etags(fake, saved)
    assert gh.runners() == []
    assert saved[url]["body"] == {"total_count": 0, "runners": []}


def test_errors_are_never_cached_and_bad_entries_are_dropped(fake):
    saved: dict = {
        f"{fake.url}/meta": {"etag": 'W/"x"\r\nX-Injected: 1', "body": {}, "next": None},
        "https://elsewhere.example/x": {"etag": '"a"', "body": {}, "next": None},
        f"{fake.url}/y": ["not", "an", "entry"],
    }
    gh = with_etags(fake, saved, "wrong-token-123")
    assert saved == {}
    with pytest.raises(GitHubError):
        gh.runners()
    assert saved == {}


def test_the_cache_is_bounded_in_entries_and_bytes():
    entries: dict = {}
    cache = ETagCache("https://api.example", entries)
    for n in range(ETagCache.MAX_ENTRIES + 10):
        cache.put(f"https://api.example/{n}", f'"{n}"', {"n": n}, None)
    assert len(entries) == ETagCache.MAX_ENTRIES
    assert "https://api.example/0" not in entries  # the oldest went first
    big = "x" * (ETagCache.MAX_ENTRY_BYTES // 2)
    for n in range(20):
        cache.put(f"https://api.example/big{n}", '"b"', big, None)
    assert len(json.dumps(entries)) <= ETagCache.MAX_BYTES
    cache.put("https://api.example/huge", '"h"', "x" * ETagCache.MAX_ENTRY_BYTES, None)
    assert "https://api.example/huge" not in entries
