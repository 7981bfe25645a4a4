"""The GitHub client against a hostile server (issue 8, items 11-13).

Whatever answers, a call ends in GitHubUnavailable naming the call, the status and a scrubbed
snippet: never a bare exception, never "no runners" read from a page that isn't GitHub's. No
answer holds a call past its deadline. Lists are read to their end through Link, bounded, and
only on api_url: the token goes with every request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runner_health import github
from runner_health.github import GitHub, GitHubError, GitHubUnavailable
from tests.integration.conftest import TOKEN, github_at, run_github_checks
from tests.integration.hostile_server import Answer, HostileServer

REPO = "/repos/acme/kernel-ci"
RUNNERS = f"{REPO}/actions/runners"
RUNS = f"{REPO}/actions/runs"
ISSUES = f"{REPO}/issues"
META = "/meta"
HOUR_AGO = (datetime.now(UTC) - timedelta(hours=1)).isoformat()


def runner(name: str = "vm1", **fields: Any) -> dict[str, Any]:
    labels = [{"id": 1, "name": "self-hosted", "type": "read-only"}]
    return {"id": 1, "name": name, "status": "online", "busy": False, "labels": labels} | fields


def job(number: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": 1000 + number,
        "run_id": 7,
        "name": f"job {number}",
        "status": "queued",
        "labels": ["self-hosted"],
        "runner_id": None,
        "created_at": HOUR_AGO,
    } | fields


def issue(**fields: Any) -> dict[str, Any]:
    return {"number": 1, "title": "t", "body": None, "comments": 0, "state": "open"} | fields


def serve_valid(server: HostileServer) -> None:
    """Answers of GitHub's shape for every endpoint: each case below spoils one."""
    server.on(RUNNERS, Answer(body={"total_count": 1, "runners": [runner()]}))
    for kind in ("registration-token", "remove-token"):
        server.on(f"{RUNNERS}/{kind}", Answer(201, {"token": "A" * 29, "expires_at": HOUR_AGO}))
    server.on(RUNS, Answer(body={"total_count": 1, "workflow_runs": [{"id": 7}]}))
    server.on(f"{RUNS}/7/jobs", Answer(body={"total_count": 1, "jobs": [job(1)]}))
    server.on(ISSUES, Answer(body=[issue()]))
    server.on(f"{ISSUES}/1", Answer(body=issue(state="closed")))
    server.on(f"{ISSUES}/1/comments", Answer(201, {"id": 5, "body": "b"}))
    server.on(META, Answer(body={"verifiable_password_authentication": False}))


RUNNER = ("GET", RUNNERS, lambda gh: gh.runner("vm1"))
QUEUE = ("GET", f"{RUNS}/7/jobs", lambda gh: gh.queued_jobs())
LOGIN_PAGE = f"<html><body>Sign in. Authorization: Bearer {TOKEN}</body></html>"

# (what the case is, the call, the path it spoils, the answer there)
MALFORMED: list[tuple[str, tuple[str, str, Callable[[GitHub], Any]], str, Answer]] = [
    ("html-200", RUNNER, RUNNERS, Answer(body=LOGIN_PAGE, headers={"Content-Type": "text/html"})),
    ("truncated", RUNNER, RUNNERS, Answer(body='{"total_count": 1, "runners": [{"id": 1, "na')),
    ("deep", RUNNER, RUNNERS, Answer(body="[" * 100_000)),
    ("not-utf8", RUNNER, RUNNERS, Answer(body=b'{"runners": "\xff\xfe"}')),
    ("list", RUNNER, RUNNERS, Answer(body=[runner()])),
    ("no-runners", RUNNER, RUNNERS, Answer(body={"total_count": 0, "message": "hi"})),
    ("runner-null", RUNNER, RUNNERS, Answer(body={"runners": [None]})),
    ("id-str", RUNNER, RUNNERS, Answer(body={"runners": [runner(id="1")]})),
    ("busy-str", RUNNER, RUNNERS, Answer(body={"runners": [runner(busy="false")]})),
    ("status-null", RUNNER, RUNNERS, Answer(body={"runners": [runner(status=None)]})),
    ("labels-str", RUNNER, RUNNERS, Answer(body={"runners": [runner(labels=["self-hosted"])]})),
    ("unasked-304", RUNNER, RUNNERS, Answer(304)),
    (
        "token-missing",
        ("POST", f"{RUNNERS}/registration-token", lambda gh: gh.registration_token()),
        f"{RUNNERS}/registration-token",
        Answer(201, {"expires_at": HOUR_AGO}),
    ),
    (
        "token-int",
        ("POST", f"{RUNNERS}/remove-token", lambda gh: gh.remove_token()),
        f"{RUNNERS}/remove-token",
        Answer(201, {"token": 12345678}),
    ),
    ("runs-missing", ("GET", RUNS, QUEUE[2]), RUNS, Answer(body={"total_count": 1})),
    ("run-no-id", ("GET", RUNS, QUEUE[2]), RUNS, Answer(body={"workflow_runs": [{"name": "x"}]})),
    ("jobs-list", QUEUE, f"{RUNS}/7/jobs", Answer(body=[job(1)])),
    ("job-labels-null", QUEUE, f"{RUNS}/7/jobs", Answer(body={"jobs": [job(1, labels=None)]})),
    ("job-runner-str", QUEUE, f"{RUNS}/7/jobs", Answer(body={"jobs": [job(1, runner_id="x")]})),
    ("job-time-junk", QUEUE, f"{RUNS}/7/jobs", Answer(body={"jobs": [job(1, created_at="soon")]})),
    (
        "job-time-naive",
        QUEUE,
        f"{RUNS}/7/jobs",
        Answer(body={"jobs": [job(1, created_at="2026-11-28T11:00:00")]}),
    ),
    (
        "issues-object",
        ("GET", ISSUES, lambda gh: gh.open_issues("runner-health")),
        ISSUES,
        Answer(body={"items": []}),
    ),
    (
        "issue-number-str",
        ("GET", ISSUES, lambda gh: gh.open_issues("runner-health")),
        ISSUES,
        Answer(body=[issue(number="1")]),
    ),
    (
        "create-html",
        ("POST", ISSUES, lambda gh: gh.create_issue("t", "b", ["runner-health"])),
        ISSUES,
        Answer(201, LOGIN_PAGE, headers={"Content-Type": "text/html"}),
    ),
    (
        "comment-empty",
        ("POST", f"{ISSUES}/1/comments", lambda gh: gh.comment_issue(1, "b")),
        f"{ISSUES}/1/comments",
        Answer(201, {}),
    ),
    (
        "close-list",
        ("PATCH", f"{ISSUES}/1", lambda gh: gh.close_issue(1)),
        f"{ISSUES}/1",
        Answer(body=[]),
    ),
    (
        "clock-from-a-proxy-page",
        ("GET", META, lambda gh: gh.server_time()),
        META,
        Answer(body=LOGIN_PAGE, headers={"Content-Type": "text/html"}),
    ),
]


@pytest.mark.parametrize(
    ("call", "path", "answer"), [case[1:] for case in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_a_malformed_answer_is_unavailable_naming_the_call(hostile, call, path, answer):
    method, endpoint, do = call
    serve_valid(hostile)
    hostile.on(path, answer)
    with pytest.raises(GitHubUnavailable) as error:
        do(github_at(hostile.url))
    message = str(error.value)
    assert message.startswith(f"{method} {endpoint}"), message
    assert f"HTTP {answer.status}: not an answer from GitHub (" in message
    assert TOKEN not in message
    if answer.body == LOGIN_PAGE:
        assert "'<html><body>Sign in. Authorization: ***" in message


def test_the_valid_answers_pass(hostile):
    """The cases above each spoil one answer of this set, which the client accepts whole."""
    serve_valid(hostile)
    gh = github_at(hostile.url)
    assert gh.runner("vm1")["labels"][0]["name"] == "self-hosted"
    assert gh.registration_token() == gh.remove_token() == "A" * 29
    assert [j["name"] for j in gh.queued_jobs().jobs] == ["job 1"]
    assert gh.open_issues("runner-health")[0]["number"] == 1
    gh.comment_issue(1, "b")
    gh.close_issue(1)


def test_an_error_status_with_any_body_is_an_error_with_its_status(hostile):
    hostile.on(RUNNERS, Answer(404, ["not", "an", "object"]))
    with pytest.raises(GitHubError) as error:
        github_at(hostile.url).runners()
    assert not isinstance(error.value, GitHubUnavailable)
    assert "404" in str(error.value)


@pytest.mark.parametrize("date", [None, "yesterday", ""])
def test_no_usable_date_header_is_unavailable(hostile, date):
    hostile.on(
        META, Answer(body={"verifiable_password_authentication": False}, headers={"Date": date})
    )
    with pytest.raises(GitHubUnavailable, match="no usable Date header"):
        github_at(hostile.url).server_time()


@pytest.fixture
def far_east() -> Iterator[None]:
    """The process in UTC+9, where a naive time read as local is nine hours off."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "Asia/Tokyo")
        time.tzset()
        yield
    time.tzset()


def test_a_date_without_zone_is_gmt(hostile, far_east):
    date = {"Date": "Sat, 28 Nov 2026 12:00:00 -0000"}
    hostile.on(META, Answer(body={"verifiable_password_authentication": False}, headers=date))
    assert github_at(hostile.url).server_time() == datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


# -- item 12: a deadline per call ---------------------------------------------------------


@pytest.mark.parametrize("drip_headers", [False, True], ids=["body", "headers"])
def test_a_dripping_answer_ends_at_the_deadline(hostile, drip_headers):
    # ~30 s of drip at 5 bytes a second; every read gets a byte well within the 1 s timeout.
    answer = Answer(body={"runners": [runner()]}, drip=0.2, drip_headers=drip_headers)
    hostile.on(RUNNERS, answer)
    started = time.monotonic()
    with pytest.raises(GitHubUnavailable, match="no whole answer within 1 s"):
        github_at(hostile.url, timeout=1).runners()
    assert time.monotonic() - started < 4  # two attempts of 1 s, 1 s apart
    if not drip_headers:  # both connections were shut: the server's writes fail
        deadline = time.monotonic() + 3
        while hostile.aborted < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert hostile.aborted == 2


def test_an_endless_answer_is_cut(hostile, monkeypatch):
    monkeypatch.setattr(github, "MAX_BODY", 10_000)
    hostile.on(RUNNERS, Answer(body={"runners": [], "padding": "x" * 20_000}))
    with pytest.raises(GitHubUnavailable, match="answer larger than 10000 bytes"):
        github_at(hostile.url).runners()


# -- item 13: every page, bounded, on api_url only ----------------------------------------


def serve_pages(
    server: HostileServer,
    path: str,
    key: str,
    items: list[Any],
    size: int = 100,
    link: Callable[[int], str] | None = None,
) -> None:
    """``items`` in pages linked by an opaque cursor, never ?page=: only Link finds page 2.

    ``link(after)``: the next page's URL (default: absolute, on this server)."""

    def page(query: dict[str, str]) -> Answer:
        after = int(query.get("after", 0))
        headers = {}
        if after + size < len(items):
            url = (link or (lambda n: f"{server.url}{path}?per_page={size}&after={n}"))(
                after + size
            )
            headers["Link"] = f'<{url}>; rel="next", <{server.url}{path}?after=0>; rel="first"'
        return Answer(
            body={"total_count": len(items), key: items[after : after + size]}, headers=headers
        )

    server.on(path, page)


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_lists_are_read_to_their_last_page(hostile, relative):
    runners = [runner(f"vm{n}", id=n) for n in range(250)]
    link = (lambda n: f"{RUNNERS}?after={n}") if relative else None
    serve_pages(hostile, RUNNERS, "runners", runners, link=link)
    gh = github_at(hostile.url)
    assert [r["id"] for r in gh.runners()] == list(range(250))
    assert gh.runner("vm249")["id"] == 249


def test_queued_jobs_past_the_first_page_are_seen(hostile):
    serve_pages(hostile, RUNS, "workflow_runs", [{"id": n} for n in range(1, 102)])
    for run in range(1, 102):
        hostile.on(f"{RUNS}/{run}/jobs", Answer(body={"jobs": []}))
    serve_pages(hostile, f"{RUNS}/1/jobs", "jobs", [job(n) for n in range(150)])
    hostile.on(f"{RUNS}/101/jobs", Answer(body={"jobs": [job(150, run_id=101)]}))
    queued = github_at(hostile.url).queued_jobs()
    assert [j["name"] for j in queued.jobs] == [f"job {n}" for n in range(151)]
    assert queued.unread == []


def test_a_list_without_end_is_cut_and_said_so(hostile):
    # 150 pages of one queued run each, and a runner list whose next page is itself.
    serve_pages(hostile, RUNS, "workflow_runs", [{"id": n} for n in range(150)], size=1)
    for run in range(github.MAX_PAGES):
        hostile.on(f"{RUNS}/{run}/jobs", Answer(body={"jobs": [job(run)]}))
    loop = {"Link": f'<{hostile.url}{RUNNERS}?per_page=100>; rel="next"'}
    hostile.on(RUNNERS, Answer(body={"runners": [runner()]}, headers=loop))
    gh = github_at(hostile.url)
    queued = gh.queued_jobs()
    assert len(queued.jobs) == github.MAX_PAGES
    assert queued.unread == [f"GET {RUNS}: more than {github.MAX_PAGES} pages, not read further"]
    with pytest.raises(GitHubUnavailable, match="more than 10 pages"):
        gh.runner("vm2")  # a cut list can't say "not there"
    assert sum(path.startswith(RUNNERS) for _, path, _ in hostile.requests) == github.MAX_PAGES


@pytest.mark.parametrize("where", ["other-port", "userinfo", "https", "outside-api-path"])
def test_a_next_page_elsewhere_is_not_followed(hostile, where):
    """A next page on another origin (or outside api_url) would receive the token."""
    with HostileServer() as elsewhere:
        host, other = hostile.url.removeprefix("http://"), elsewhere.url.removeprefix("http://")
        link = {
            "other-port": f"http://{other}/api/v3{RUNNERS}",
            "userinfo": f"http://{host}@{other}/api/v3{RUNNERS}",
            "https": f"https://{host}/api/v3{RUNNERS}",
            "outside-api-path": f"http://{host}/elsewhere{RUNNERS}",
        }[where]
        hostile.on(
            f"/api/v3{RUNNERS}",
            Answer(body={"runners": []}, headers={"Link": f'<{link}>; rel="next"'}),
        )
        hostile.on(f"/elsewhere{RUNNERS}", Answer(body={"runners": []}))
        with pytest.raises(GitHubUnavailable, match="the next page is not under"):
            github_at(f"{hostile.url}/api/v3").runners()
        assert elsewhere.requests == []
        assert len(hostile.requests) == 1


# -- the queue check, end to end ----------------------------------------------------------


def run_queue_check(server: HostileServer, tmp_path: Path) -> tuple[int, dict[str, Any]]:
    """The queue check against ``server``: the exit status and its record in summary.json."""
    github = f'repository = "acme/kernel-ci"\napi_url = "{server.url}"\n'
    finished, (record,) = run_github_checks(tmp_path, github, "checks/test_queue.py")
    return finished.returncode, record


def test_the_queue_check_sees_jobs_past_the_first_page(hostile, tmp_path):
    """150 queued jobs in one run: the first 100 for GitHub's runners, 50 for ours."""
    hostile.on(RUNNERS, Answer(body={"runners": [runner()]}))
    hostile.on(RUNS, Answer(body={"workflow_runs": [{"id": 7}]}))
    jobs = [job(n, labels=["ubuntu-latest"]) for n in range(100)] + [
        job(n) for n in range(100, 150)
    ]
    serve_pages(hostile, f"{RUNS}/7/jobs", "jobs", jobs)
    status, record = run_queue_check(hostile, tmp_path)
    assert status == 1 and record["outcome"] == "failed", record
    assert "50 job(s) wait for runner 'vm1'" in record["failure"]


def test_the_queue_check_read_in_part_is_not_a_pass(hostile, tmp_path):
    """Pages without end: what was read waits for nobody, the rest is unknown."""
    hostile.on(RUNNERS, Answer(body={"runners": [runner()]}))
    fresh = datetime.now(UTC).isoformat()
    serve_pages(hostile, RUNS, "workflow_runs", [{"id": n} for n in range(150)], size=1)
    for run in range(github.MAX_PAGES):
        hostile.on(f"{RUNS}/{run}/jobs", Answer(body={"jobs": [job(run, created_at=fresh)]}))
    status, record = run_queue_check(hostile, tmp_path)
    assert status == 9 and record["outcome"] == "unknown", record
    assert "the queue was read only in part" in record["failure"]
