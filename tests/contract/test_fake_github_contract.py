"""Contract: every body the fake GitHub serves validates against GitHub's own OpenAPI models.

githubkit's pydantic models are generated from GitHub's official REST description: a missing
or mistyped required field fails ``model_validate``. The scenarios drive the fake the way the
runner stand-in and the product do (register through ``/_runner``, list, tokens, queued runs
and jobs, issues, errors), so a shape the product relies on can't drift from the real API.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.fake_github.runner_protocol import api, open_session, poll, register_agent

models = pytest.importorskip("githubkit_schemas.v2022_11_28.models")

REPO = "/repos/acme/kernel-ci"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(online_grace=5).start()
    yield fake
    fake.stop()


def register(github: FakeGitHub, name: str = "vm1", labels: tuple[str, ...] = ("bpf",)) -> dict:
    """What config.sh then Runner.Listener run do, the token from the REST endpoint: a live session."""
    token = api(github, "POST", f"{REPO}/actions/runners/registration-token").json()["token"]
    agent = register_agent(github, name, list(labels), token=token, version="2.330.0")
    session = open_session(github, agent)
    assert session.status_code == 200
    return session.json()


def test_tokens_validate_and_expire_in_an_hour(github: FakeGitHub) -> None:
    for kind in ("registration-token", "remove-token"):
        response = api(github, "POST", f"{REPO}/actions/runners/{kind}")
        assert response.status_code == 201
        token = models.AuthenticationToken.model_validate(response.json())
        left = token.expires_at.timestamp() - time.time()
        assert 3500 < left <= 3600
        assert not token.token.startswith(("ghp_", "github_pat_", "ghs_"))
    assert not github.admin_token.startswith(("ghp_", "github_pat_"))


def test_runner_list_and_get_validate(github: FakeGitHub) -> None:
    session = register(github)
    register(github, "vm2", ("gpu",))
    listing = api(github, "GET", f"{REPO}/actions/runners")
    body = models.ReposOwnerRepoActionsRunnersGetResponse200.model_validate(listing.json())
    assert body.total_count == 2
    by_name = {r.name: r for r in body.runners}
    assert by_name["vm1"].status == "online" and by_name["vm1"].busy is False
    assert {lbl.name for lbl in by_name["vm1"].labels} == {"self-hosted", "Linux", "X64", "bpf"}
    assert {lbl.type for lbl in by_name["vm1"].labels} == {"read-only", "custom"}

    named = api(github, "GET", f"{REPO}/actions/runners", params={"name": "vm2"}).json()
    assert [r["name"] for r in named["runners"]] == ["vm2"]
    page = api(github, "GET", f"{REPO}/actions/runners", params={"per_page": 1, "page": 2})
    assert page.json()["total_count"] == 2 and len(page.json()["runners"]) == 1
    assert 'rel="prev"' in page.headers["Link"]

    one = api(github, "GET", f"{REPO}/actions/runners/{session['agent']['id']}")
    assert models.Runner.model_validate(one.json()).name == "vm1"
    org = api(github, "GET", "/orgs/acme/actions/runners").json()
    models.OrgsOrgActionsRunnersGetResponse200.model_validate(org)


def test_queued_run_and_job_shapes_through_assignment(github: FakeGitHub) -> None:
    session = register(github)
    job = github.queue_job(["self-hosted", "bpf"], duration=0)
    assert models.Job.model_validate(job).status == "queued"

    queued = api(github, "GET", f"{REPO}/actions/runs", params={"status": "queued"}).json()
    runs = models.ReposOwnerRepoActionsRunsGetResponse200.model_validate(queued)
    assert [r.id for r in runs.workflow_runs] == [job["run_id"]]
    jobs = api(github, "GET", f"{REPO}/actions/runs/{job['run_id']}/jobs").json()
    parsed = models.ReposOwnerRepoActionsRunsRunIdJobsGetResponse200.model_validate(jobs)
    assert parsed.jobs[0].runner_id is None and parsed.jobs[0].labels == ["self-hosted", "bpf"]

    message = poll(github, session)
    assert message.status_code == 200
    body = message.json()["body"]
    assert github.runner("vm1")["busy"] is True
    assigned = models.Job.model_validate(github.job(job["id"]))
    assert assigned.runner_name == "vm1" and assigned.runner_id == session["agent"]["id"]
    auth = {"Authorization": f"Bearer {body['job_token']}"}
    url = f"{github.url}/_runner/jobs/{job['id']}"
    assert requests.post(url + "/start", headers=auth, timeout=10).json()["status"] == "in_progress"
    done = requests.post(
        url + "/complete", json={"conclusion": "success"}, headers=auth, timeout=10
    ).json()
    assert models.Job.model_validate(done).conclusion == "success"
    assert github.runner("vm1")["busy"] is False
    left = api(github, "GET", f"{REPO}/actions/runs", params={"status": "queued"}).json()
    assert left["total_count"] == 0


def test_issue_lifecycle_shapes(github: FakeGitHub) -> None:
    created = api(
        github,
        "POST",
        f"{REPO}/issues",
        json={"title": "runner offline", "body": "details", "labels": ["runner-health"]},
    )
    assert created.status_code == 201
    issue = models.Issue.model_validate(created.json())
    listed = api(
        github, "GET", f"{REPO}/issues", params={"state": "open", "labels": "runner-health"}
    )
    assert [models.Issue.model_validate(i).number for i in listed.json()] == [issue.number]
    assert api(github, "GET", f"{REPO}/issues", params={"labels": "other"}).json() == []

    comment = api(github, "POST", f"{REPO}/issues/{issue.number}/comments", json={"body": "again"})
    assert comment.status_code == 201
    models.IssueComment.model_validate(comment.json())
    comments = api(github, "GET", f"{REPO}/issues/{issue.number}/comments").json()
    assert [models.IssueComment.model_validate(c).body for c in comments] == ["again"]

    closed = api(github, "PATCH", f"{REPO}/issues/{issue.number}", json={"state": "closed"})
    assert models.Issue.model_validate(closed.json()).state == "closed"
    assert api(github, "GET", f"{REPO}/issues", params={"state": "open"}).json() == []

    invalid = api(github, "POST", f"{REPO}/issues", json={"body": "no title"})
    assert invalid.status_code == 422
    models.ValidationError.model_validate(invalid.json())


def test_authors_validate_as_github_records_them(github: FakeGitHub) -> None:
    """What a token writes shows who it is: github-actions[bot] (a Bot) for a workflow's
    GITHUB_TOKEN, another user with their author_association for theirs."""

    def as_(token: str) -> dict:
        return {"headers": {"Authorization": f"Bearer {token}"}}

    body = {"title": "runner offline", "body": "details"}
    created = api(github, "POST", f"{REPO}/issues", json=body, **as_(github.actions_token))
    issue = models.Issue.model_validate(created.json())
    assert (issue.user.login, issue.user.type) == ("github-actions[bot]", "Bot")
    someone = github.add_user("someone", association="MEMBER")
    path = f"{REPO}/issues/{issue.number}/comments"
    comment = api(github, "POST", path, json={"body": "me too"}, **as_(someone))
    parsed = models.IssueComment.model_validate(comment.json())
    assert (parsed.user.login, parsed.user.type, parsed.author_association) == (
        "someone",
        "User",
        "MEMBER",
    )


@pytest.mark.parametrize("kind", ["5xx", "rate_limit"])
def test_error_bodies_validate(github: FakeGitHub, kind: str) -> None:
    bad = requests.get(github.url + f"{REPO}/actions/runners", timeout=10)
    assert bad.status_code == 401
    assert models.BasicError.model_validate(bad.json()).message == "Bad credentials"
    missing = api(github, "GET", f"{REPO}/actions/runners/999")
    assert missing.status_code == 404
    models.BasicError.model_validate(missing.json())

    github.fail_with(kind, retry_after=7)
    failed = api(github, "GET", f"{REPO}/actions/runners")
    models.BasicError.model_validate(failed.json())
    if kind == "5xx":
        assert failed.status_code in (502, 503)
    else:
        assert failed.status_code == 403
        assert failed.headers["x-ratelimit-remaining"] == "0"
        assert failed.headers["retry-after"] == "7"
    github.fail_with(None)
    assert api(github, "GET", f"{REPO}/actions/runners").status_code == 200


def test_every_answer_has_date_and_rate_limit_headers(github: FakeGitHub) -> None:
    for response in (
        api(github, "GET", f"{REPO}/actions/runners"),
        requests.get(github.url + f"{REPO}/issues", timeout=10),
        api(github, "GET", "/nope"),
    ):
        assert response.headers["Date"].endswith("GMT")
        for header in ("limit", "remaining", "used", "reset", "resource"):
            assert f"x-ratelimit-{header}" in response.headers


def test_304_does_not_count_against_the_rate_limit(github: FakeGitHub) -> None:
    first = api(github, "GET", f"{REPO}/actions/runners")
    remaining = int(first.headers["x-ratelimit-remaining"])
    etag = first.headers["ETag"]
    for _ in range(3):
        again = api(github, "GET", f"{REPO}/actions/runners", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert int(again.headers["x-ratelimit-remaining"]) == remaining
    register(github)  # costs one request (the registration token); changes the list
    changed = api(github, "GET", f"{REPO}/actions/runners", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert int(changed.headers["x-ratelimit-remaining"]) == remaining - 2
    assert github.rate_limit_remaining == remaining - 2


def test_expired_registration_token_is_not_found(github: FakeGitHub) -> None:
    token = github.create_registration_token()
    github.expire_registration_tokens()
    answer = requests.post(
        github.url + "/_runner/actions/runner-registration",
        json={"url": github.runner_url(guest=False), "runner_event": "register"},
        headers={"Authorization": f"RemoteAuth {token}"},
        timeout=10,
    )
    assert answer.status_code == 404
    assert models.BasicError.model_validate(answer.json()).message == "Not Found"


@pytest.mark.parametrize("offset", [7200, -7200])
def test_clock_skew_rejects_session(github: FakeGitHub, offset: int) -> None:
    github.poll_timeout = 0.2
    session = register(github)  # makes one session; the skewed client asks for another
    assert poll(github, session).status_code == 204
    github.delete_runner("vm1")
    assert poll(github, session).json()["typeName"] == "TaskAgentNotFoundException"

    token = github.create_registration_token()
    tenant = requests.post(
        github.url + "/_runner/actions/runner-registration",
        json={"url": github.runner_url(guest=False), "runner_event": "register"},
        headers={"Authorization": f"RemoteAuth {token}"},
        timeout=10,
    ).json()
    agent = requests.post(
        github.url + "/_runner/agents",
        json={"name": "vm1", "labels": [], "public_key": "k2"},
        headers={"Authorization": f"Bearer {tenant['token']}"},
        timeout=10,
    ).json()
    skewed = requests.post(
        github.url + "/_runner/sessions",
        json={
            "client_id": agent["authorization"]["client_id"],
            "key": "k2",
            "client_time": time.time() + offset,
        },
        timeout=10,
    )
    assert skewed.status_code == 401
    assert "Current server time is" in skewed.json()["error_description"]
    assert github.runner("vm1")["status"] == "offline"
    within = requests.post(
        github.url + "/_runner/sessions",
        json={
            "client_id": agent["authorization"]["client_id"],
            "key": "k2",
            "client_time": time.time() + 200,
        },
        timeout=10,
    )
    assert within.status_code == 200


def test_custom_labels_validate_and_read_only_names_are_refused(github: FakeGitHub) -> None:
    """POST .../runners/{id}/labels: the body GitHub takes, the labels it answers with, and its
    422 (validation-error-simple) for a name GitHub gives runners itself."""
    runner_id = register(github)["agent"]["id"]
    path = f"{REPO}/actions/runners/{runner_id}/labels"
    body = models.ReposOwnerRepoActionsRunnersRunnerIdLabelsPostBody(labels=["kernel-6.8"])
    added = api(github, "POST", path, json=body.model_dump())
    assert added.status_code == 200
    labels = models.OrgsOrgActionsRunnersRunnerIdLabelsGetResponse200.model_validate(added.json())
    assert labels.total_count == 5
    assert {(label.name, label.type) for label in labels.labels} >= {("kernel-6.8", "custom")}
    refused = api(github, "POST", path, json={"labels": ["gpu", "X64"]})
    assert refused.status_code == 422
    models.ValidationErrorSimple.model_validate(refused.json())
    listed = api(github, "GET", f"{REPO}/actions/runners/{runner_id}").json()
    assert "gpu" not in {label["name"] for label in listed["labels"]}


def test_meta_validates_without_a_token(github: FakeGitHub) -> None:
    anonymous = requests.get(github.url + "/meta", timeout=10)
    assert anonymous.status_code == 200 and anonymous.headers["Date"].endswith("GMT")
    models.ApiOverview.model_validate(anonymous.json())
    wrong = requests.get(github.url + "/meta", headers={"Authorization": "Bearer x"}, timeout=10)
    assert wrong.status_code == 401


def test_a_missing_permission_is_403_naming_it(github: FakeGitHub) -> None:
    token = github.add_user("ci", permissions={"administration": "read"})
    denied = api(
        github,
        "POST",
        f"{REPO}/actions/runners/registration-token",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert denied.status_code == 403
    assert denied.headers["X-Accepted-GitHub-Permissions"] == "administration=write"
    models.BasicError.model_validate(denied.json())
    org = api(
        github, "GET", "/orgs/acme/actions/runners", headers={"Authorization": f"Bearer {token}"}
    )
    assert org.headers["X-Accepted-GitHub-Permissions"] == "organization_self_hosted_runners=read"


def test_actions_variables_validate_through_their_lifecycle(github: FakeGitHub) -> None:
    """Create (201, an empty object; 409 for a taken name), read, list, update (204), delete
    (204): the endpoints the heartbeat writes and the workflow's ``vars`` context reads."""
    path = f"{REPO}/actions/variables"
    body = models.ReposOwnerRepoActionsVariablesPostBody(name="beat", value="1")
    created = api(github, "POST", path, json=body.model_dump())
    assert created.status_code == 201
    models.EmptyObject.model_validate(created.json())
    taken = api(github, "POST", path, json={"name": "BEAT", "value": "2"})
    assert taken.status_code == 409
    models.BasicError.model_validate(taken.json())

    one = models.ActionsVariable.model_validate(api(github, "GET", f"{path}/beat").json())
    assert (one.name, one.value) == ("BEAT", "1")  # names are case-insensitive, kept upper-case
    update = models.ReposOwnerRepoActionsVariablesNamePatchBody(value="3")
    patched = api(github, "PATCH", f"{path}/BEAT", json=update.model_dump(exclude_unset=True))
    assert (patched.status_code, patched.content) == (204, b"")
    listed = models.ReposOwnerRepoActionsVariablesGetResponse200.model_validate(
        api(github, "GET", path).json()
    )
    assert [(v.name, v.value) for v in listed.variables] == [("BEAT", "3")]
    assert listed.variables[0].updated_at >= listed.variables[0].created_at

    assert api(github, "DELETE", f"{path}/BEAT").status_code == 204
    gone = api(github, "GET", f"{path}/BEAT")
    assert gone.status_code == 404
    models.BasicError.model_validate(gone.json())
    assert api(github, "PATCH", f"{path}/BEAT", json={"value": "4"}).status_code == 404
    invalid = api(github, "POST", path, json={"name": "GITHUB_X", "value": "1"})
    assert invalid.status_code == 422
    models.ValidationError.model_validate(invalid.json())


def test_variables_need_the_variables_permission(github: FakeGitHub) -> None:
    token = github.add_user("ci", permissions={"administration": "write"})
    auth = {"Authorization": f"Bearer {token}"}
    denied = api(
        github, "PATCH", f"{REPO}/actions/variables/BEAT", json={"value": "1"}, headers=auth
    )
    assert denied.status_code == 403
    assert denied.headers["X-Accepted-GitHub-Permissions"] == "actions_variables=write"
    models.BasicError.model_validate(denied.json())
    reader = github.add_user("reader", permissions={"actions_variables": "read"})
    listed = api(
        github, "GET", f"{REPO}/actions/variables", headers={"Authorization": f"Bearer {reader}"}
    )
    assert listed.status_code == 200


def test_the_token_s_user_validates_and_an_app_token_has_none(github: FakeGitHub) -> None:
    me = models.PublicUser.model_validate(api(github, "GET", "/user").json())
    assert (me.login, me.type) == ("runner-health-bot", "User")
    app = api(github, "GET", "/user", headers={"Authorization": f"Bearer {github.actions_token}"})
    assert app.status_code == 403
    models.BasicError.model_validate(app.json())
