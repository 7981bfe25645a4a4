"""Behaviour of the fake GitHub itself: switches, liveness, job assignment, failure modes.

The fake stands in for api.github.com in every other test, so its own rules (when a runner
is online, which runner takes a job, how a timeout behaves) are pinned down here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.fake_github.runner_protocol import api, open_session, poll, register_agent

REPO = "/repos/acme/kernel-ci"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(
        online_grace=0.5, orphan_session_seconds=1.0, poll_timeout=0.2, timeout_hold=1.5
    ).start()
    yield fake
    fake.stop()


def register(github: FakeGitHub, name: str, labels: list[str], key: str = "k") -> dict:
    return register_agent(github, name, labels, public_key=key, replace=True)


def test_binds_loopback_and_names_the_guest_address(github: FakeGitHub) -> None:
    assert github.url == f"http://127.0.0.1:{github.port}"
    assert github.guest_url == f"http://10.0.2.2:{github.port}"
    assert github.runner_url() == f"{github.guest_url}/acme/kernel-ci"


def test_online_while_polling_offline_after_grace(github: FakeGitHub) -> None:
    agent = register(github, "vm1", ["bpf"])
    assert github.runner("vm1")["status"] == "offline"
    sess = open_session(github, agent).json()
    assert github.runner("vm1")["status"] == "online"
    assert poll(github, sess).status_code == 204  # no job: the long poll times out empty
    time.sleep(0.7)
    assert github.runner("vm1")["status"] == "offline"


def test_job_goes_to_the_oldest_match_and_only_to_an_idle_runner(github: FakeGitHub) -> None:
    agent = register(github, "vm1", ["bpf"])
    sess = open_session(github, agent).json()
    newer = github.queue_job(["bpf"], created_at=time.time())
    older = github.queue_job(["bpf"], created_at=time.time() - 60)
    github.queue_job(["gpu"])
    first = poll(github, sess).json()
    assert first["body"]["job_id"] == older["id"]
    assert poll(github, sess, "Busy").status_code == 204  # busy: no second job
    token = {"Authorization": f"Bearer {first['body']['job_token']}"}
    requests.post(
        f"{github.url}/_runner/jobs/{older['id']}/complete",
        json={"conclusion": "failure"},
        headers=token,
        timeout=10,
    )
    assert github.job(older["id"])["conclusion"] == "failure"
    assert poll(github, sess).json()["body"]["job_id"] == newer["id"]


def test_long_poll_wakes_when_a_job_is_queued(github: FakeGitHub) -> None:
    github.poll_timeout = 2.0
    sess = open_session(github, register(github, "vm1", ["bpf"])).json()
    timer = threading.Timer(0.3, github.queue_job, args=(["bpf"],))
    timer.start()
    started = time.monotonic()
    answer = poll(github, sess)
    timer.join()
    assert answer.status_code == 200
    assert time.monotonic() - started < 1.5


def test_rest_delete_refuses_a_busy_runner_but_the_switch_forces_it(github: FakeGitHub) -> None:
    agent = register(github, "vm1", ["bpf"])
    sess = open_session(github, agent).json()
    github.queue_job(["bpf"])
    assert poll(github, sess).status_code == 200
    refused = api(github, "DELETE", f"{REPO}/actions/runners/{agent['id']}")
    assert refused.status_code == 422
    assert github.delete_runner("vm1") is True
    assert github.runner("vm1") is None
    assert poll(github, sess).json()["typeName"] == "TaskAgentNotFoundException"
    gone = open_session(github, agent)
    assert gone.status_code == 401 and gone.json()["error"] == "invalid_client"
    assert github.delete_runner("vm1") is False


def test_rest_delete_idle_runner(github: FakeGitHub) -> None:
    agent = register(github, "vm1", ["bpf"])
    assert api(github, "DELETE", f"{REPO}/actions/runners/{agent['id']}").status_code == 204
    assert api(github, "GET", f"{REPO}/actions/runners").json()["total_count"] == 0


def test_replace_cuts_off_the_old_credentials(github: FakeGitHub) -> None:
    old = register(github, "vm1", ["bpf"], key="old")
    new = register(github, "vm1", ["bpf", "kvm"], key="new")
    assert new["id"] == old["id"] and new["replaced"] is True
    assert open_session(github, old, key="old").status_code == 401
    assert open_session(github, new, key="new").status_code == 200
    assert "kvm" in {lbl["name"] for lbl in github.runner("vm1")["labels"]}


def test_an_orphan_session_blocks_a_new_one_until_it_expires(github: FakeGitHub) -> None:
    agent = register(github, "vm1", ["bpf"])
    first = open_session(github, agent).json()
    assert github.session_of("vm1")["session_id"] == first["session_id"]
    conflict = open_session(github, agent)
    assert conflict.status_code == 409
    assert conflict.json()["message"] == "The actions runner vm1 already has an active session."
    time.sleep(0.7)  # the first listener died without deleting its session: offline, but
    assert github.runner("vm1")["status"] == "offline"  # its session still blocks a new one
    assert open_session(github, agent).status_code == 409
    time.sleep(0.5)  # orphan_session_seconds without a poll: GitHub drops it
    assert github.session_of("vm1") is None
    assert open_session(github, agent).status_code == 200


def test_deprecated_version(github: FakeGitHub) -> None:
    sess = open_session(github, register(github, "vm1", ["bpf"])).json()
    github.deprecate_runner_version("*")
    answer = poll(github, sess)
    assert answer.status_code == 403
    assert answer.json()["errorCode"] == 1
    assert "is deprecated and cannot receive messages." in answer.json()["message"]


def test_timeout_is_bounded_and_stop_releases_it() -> None:
    fake = FakeGitHub(timeout_hold=30).start()
    try:
        fake.fail_with("timeout")
        with pytest.raises(requests.Timeout):
            api(fake, "GET", f"{REPO}/actions/runners", timeout=0.3)
        held = threading.Thread(
            target=lambda: requests.get(fake.url + "/rate_limit", timeout=10), daemon=True
        )
        held.start()
        time.sleep(0.2)
    finally:
        started = time.monotonic()
        fake.stop()
    held.join(timeout=5)
    assert time.monotonic() - started < 3


def test_timeout_answers_504_after_the_hold(github: FakeGitHub) -> None:
    github.fail_with("timeout")
    started = time.monotonic()
    answer = api(github, "GET", f"{REPO}/actions/runners")
    assert answer.status_code == 504
    assert 1.4 < time.monotonic() - started < 5


def test_unknown_failure_kind_is_refused(github: FakeGitHub) -> None:
    with pytest.raises(ValueError):
        github.fail_with("flaky")


def test_auth_schemes_and_rate_limit_exhaustion(github: FakeGitHub) -> None:
    assert api(github, "GET", f"{REPO}/actions/runners").status_code == 200  # "token ..."
    bearer = requests.get(
        github.url + f"{REPO}/actions/runners",
        headers={"Authorization": f"Bearer {github.admin_token}"},
        timeout=10,
    )
    assert bearer.status_code == 200
    wrong = requests.get(
        github.url + f"{REPO}/actions/runners",
        headers={"Authorization": "Bearer nope"},
        timeout=10,
    )
    assert wrong.status_code == 401
    github.set_rate_limit(remaining=1)
    assert api(github, "GET", f"{REPO}/issues").status_code == 200
    exhausted = api(github, "GET", f"{REPO}/issues")
    assert exhausted.status_code == 403
    assert exhausted.headers["x-ratelimit-remaining"] == "0"


def test_other_repository_is_not_found(github: FakeGitHub) -> None:
    assert api(github, "GET", "/repos/acme/other/actions/runners").status_code == 404
    assert api(github, "GET", "/orgs/other/actions/runners").status_code == 404


def test_issues_disabled_answers_410(github: FakeGitHub) -> None:
    github.issues_enabled = False
    created = api(github, "POST", f"{REPO}/issues", json={"title": "x"})
    assert created.status_code == 410


def test_request_log_records_traffic(github: FakeGitHub) -> None:
    api(github, "GET", f"{REPO}/actions/runners")
    # The fake logs a request once its answer is sent: the client may read it first.
    github.wait_for(lambda: ("GET", f"{REPO}/actions/runners", 200) in github.requests)


def test_tests_set_a_runners_custom_labels(github: FakeGitHub) -> None:
    register(github, "vm1", ["kernel-6.6"])
    github.set_runner_labels("vm1", ["kernel-6.8", "arm64-vm"])
    labels = [(label["name"], label["type"]) for label in github.runner("vm1")["labels"]]
    assert labels == [
        ("self-hosted", "read-only"),
        ("Linux", "read-only"),
        ("X64", "read-only"),
        ("kernel-6.8", "custom"),
        ("arm64-vm", "custom"),
    ]


def test_write_grants_read_and_nothing_else(github: FakeGitHub) -> None:
    token = github.add_user("ci", permissions={"administration": "write"})
    as_ci = {"headers": {"Authorization": f"Bearer {token}"}}
    assert api(github, "GET", f"{REPO}/actions/runners", **as_ci).status_code == 200
    issues = api(github, "GET", f"{REPO}/issues", **as_ci)
    assert issues.status_code == 403
    assert issues.headers["X-Accepted-GitHub-Permissions"] == "issues=read"


def test_variables_page_by_30_rename_and_tests_backdate_them(github: FakeGitHub) -> None:
    path = f"{REPO}/actions/variables"
    for n in range(31):
        assert api(github, "POST", path, json={"name": f"V{n:02}", "value": "x"}).status_code == 201
    first = api(github, "GET", path, params={"per_page": 100})
    assert first.json()["total_count"] == 31 and len(first.json()["variables"]) == 30
    assert 'rel="next"' in first.headers["Link"]

    renamed = api(github, "PATCH", f"{path}/v00", json={"name": "BEAT"})
    assert renamed.status_code == 204 and github.variable("V00") is None
    assert api(github, "PATCH", f"{path}/BEAT", json={"name": "V01"}).status_code == 409

    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    github.set_variable("beat", "{}", updated_at=long_ago)
    assert github.variable("BEAT") == api(github, "GET", f"{path}/BEAT").json()
    assert github.variable("BEAT")["updated_at"] == "2026-01-01T00:00:00Z"  # type: ignore[index]
    too_long = api(github, "PATCH", f"{path}/BEAT", json={"value": "x" * (48 * 1024 + 1)})
    assert too_long.status_code == 422


def broker(
    github: FakeGitHub, method: str, what: str, session: dict, **kw: object
) -> requests.Response:
    """The broker flow's calls (BrokerHttpClient.cs): the session is named by its token."""
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    return requests.request(
        method, f"{github.url}/_runner/{what}", headers=headers, timeout=10, **kw
    )


def test_registration_says_which_flow(github: FakeGitHub) -> None:
    for flag in (True, False):
        github.broker_flow = flag
        tenant = requests.post(
            github.url + "/_runner/actions/runner-registration",
            json={"url": github.runner_url(guest=False), "runner_event": "register"},
            headers={"Authorization": f"RemoteAuth {github.create_registration_token()}"},
            timeout=10,
        )
        assert tenant.json()["use_v2_flow"] is flag


def test_broker_flow_session_poll_errors_and_delete(github: FakeGitHub) -> None:
    agent = register(github, "vm1", ["bpf"])
    body = {"client_id": agent["authorization"]["client_id"], "key": "k"}
    sess = requests.post(github.url + "/_runner/session", json=body, timeout=10).json()
    assert github.session_of("vm1")["session_id"] == sess["session_id"]
    assert requests.post(github.url + "/_runner/session", json=body, timeout=10).status_code == 409
    assert broker(github, "GET", "message", sess).status_code == 204
    github.fail_polls("vm1", "non_retryable")
    assert broker(github, "GET", "message", sess).status_code == 401
    github.fail_polls("vm1", "retryable")
    assert broker(github, "GET", "message", sess).status_code == 503
    github.fail_polls("vm1", None)
    github.deprecate_runner_version("*")
    assert broker(github, "GET", "message", sess).json()["errorKind"] == "RunnerVersionTooOld"
    github.deprecate_runner_version(None)
    assert broker(github, "DELETE", "session", sess).status_code == 204
    assert github.session_of("vm1") is None
    assert broker(github, "GET", "message", sess).json()["errorKind"] == "RunnerSessionInvalid"
    assert broker(github, "DELETE", "session", sess).status_code == 204  # idempotent
    sess = requests.post(github.url + "/_runner/session", json=body, timeout=10).json()
    github.delete_runner("vm1")
    assert broker(github, "GET", "message", sess).json()["errorKind"] == "RunnerNotFound"


def test_revoked_token_and_rejected_sessions(github: FakeGitHub) -> None:
    agent = register(github, "vm1", ["bpf"])
    github.reject_sessions("vm1", 401)
    assert open_session(github, agent).status_code == 401
    github.reject_sessions("vm1", None)
    sess = open_session(github, agent).json()
    github.revoke_runner_token("vm1")
    assert github.session_of("vm1") is None
    revoked = "TaskAgentAccessTokenExpiredException"
    assert poll(github, sess).json()["typeName"] == revoked
    assert open_session(github, agent).json()["typeName"] == revoked
    with pytest.raises(ValueError):
        github.fail_polls("vm1", "sometimes")


def test_a_replace_registration_clears_what_github_held_against_the_old_credentials(
    github: FakeGitHub,
) -> None:
    """Re-registering (config.sh --replace) is the cure for a revoked token, a refused session
    or a non-retryable poll error: the new credentials get a session; a network fault stays."""
    register(github, "vm1", ["bpf"])
    github.revoke_runner_token("vm1")
    github.reject_sessions("vm1", 401)
    github.fail_polls("vm1", "non_retryable")
    agent = register(github, "vm1", ["bpf"], key="new")
    sess = open_session(github, agent, key="new")
    assert sess.status_code == 200, sess.text
    assert "typeName" not in poll(github, sess.json()).text
    github.fail_polls("vm1", "retryable")
    register(github, "vm1", ["bpf"], key="newer")
    assert github._named("vm1").poll_failure == "retryable"
