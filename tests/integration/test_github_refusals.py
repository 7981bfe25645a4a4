"""Issue 11 item 3: every refusal and every failure to reach GitHub is one line naming the cause
and the fix, never a traceback or a Python repr; and item 1's client side (custom labels).

Refusals come from the stateful fake, as GitHub sends them (401 Bad credentials, 403 with
X-Accepted-GitHub-Permissions, 404 Not Found); unreachable servers are made here: a closed
port, a failing name lookup, a self-signed TLS certificate, a server that never answers.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runner_health.github import GitHub, GitHubError, GitHubUnavailable, NoToken
from tests.integration.conftest import github_at, run_github_checks
from tests.integration.hostile_server import Answer
from tests.testbed.fake_github import FakeGitHub
from tests.testbed.fake_github.runner_protocol import register_agent

REPRS = ("<", "object at 0x", "Error(", "HTTPConnectionPool", "Traceback", "Max retries")


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(timeout_hold=5) as server:
        yield server


def one_line(error: pytest.ExceptionInfo[GitHubError]) -> str:
    message = str(error.value)
    assert "\n" not in message and not any(r in message for r in REPRS), message
    return message


def org_client(url: str, token: str, repositories: tuple[str, ...] = ()) -> GitHub:
    gh = github_at(url, token)
    settings = replace(gh.settings, repository=None, organization="acme", repositories=repositories)
    return GitHub(settings, token)


# -- refusals -----------------------------------------------------------------------------


def test_401_names_the_token_settings(fake):
    with pytest.raises(GitHubError) as error:
        github_at(fake.url, "wrong-token-123").runners()
    assert not isinstance(error.value, GitHubUnavailable)
    assert one_line(error).endswith(
        "GitHub rejected the token (401 Bad credentials): it is wrong, expired or revoked; "
        "set a valid one in github.token_file / GITHUB_TOKEN"
    )


@pytest.mark.parametrize(
    ("granted", "call", "needed"),
    [
        ({"actions": "read"}, lambda gh: gh.runners(), "administration=read"),
        ({"administration": "read"}, lambda gh: gh.registration_token(), "administration=write"),
        ({"administration": "read"}, lambda gh: gh.queued_jobs(), "actions=read"),
        ({"issues": "read"}, lambda gh: gh.create_issue("t", "b", []), "issues=write"),
    ],
    ids=["list-runners", "registration-token", "queue", "issue"],
)
def test_403_names_the_permission_github_asks_for(fake, granted, call, needed):
    fake.queue_job(["self-hosted"])
    token = fake.add_user("ci", permissions=granted)
    with pytest.raises(GitHubError) as error:
        call(github_at(fake.url, token))
    assert "GitHub refused the token (403 Resource not accessible by personal access token): " in (
        one_line(error)
    )
    assert one_line(error).endswith(f"it needs the permission {needed} (as GitHub lists it)")


@pytest.mark.parametrize(
    ("path", "call", "needed"),
    [
        ("/repos/acme/kernel-ci/actions/runners", "repo", "repository Administration read/write"),
        ("/orgs/acme/actions/runners", "org", "organisation Self-hosted runners read/write"),
        ("/repos/acme/kernel-ci/issues", "issue", "Issues write"),
    ],
)
def test_403_without_githubs_header_names_what_the_call_needs(hostile, path, call, needed):
    """A classic token's 403 has no X-Accepted-GitHub-Permissions: the client says it."""
    hostile.on(path, Answer(403, {"message": "Must have admin rights to Repository."}))
    gh = org_client(hostile.url, "t") if call == "org" else github_at(hostile.url)
    with pytest.raises(GitHubError) as error:
        gh.create_issue("t", "b", []) if call == "issue" else gh.runners()
    assert f"(403 Must have admin rights to Repository.): it needs the permission {needed}" in (
        one_line(error)
    )


def test_403_rate_limit_stays_a_rate_limit(fake):
    fake.fail_with("rate_limit", retry_after=7)
    with pytest.raises(GitHubUnavailable) as error:
        github_at(fake.url, fake.admin_token).runners()
    assert "GitHub API rate limit reached (retry after/at 7)" in one_line(error)


def test_404_names_the_repository_and_its_setting(fake):
    gh = github_at(fake.url, fake.admin_token)
    gh = GitHub(replace(gh.settings, repository="acme/nope"), fake.admin_token)
    with pytest.raises(GitHubError) as error:
        gh.runners()
    assert one_line(error).endswith(
        "404 Not Found: repository acme/nope not found, or this token cannot see it "
        "(check github.repository and the token's repository access)"
    )


def test_404_of_an_organisation_and_of_a_listed_repository(fake):
    org = org_client(fake.url, fake.admin_token)
    with pytest.raises(GitHubError) as error:
        GitHub(replace(org.settings, organization="nope"), fake.admin_token).runners()
    assert "organisation nope not found" in one_line(error)
    assert "(check github.organization and" in one_line(error)
    listed = org_client(fake.url, fake.admin_token, ("acme/kernel-ci", "acme/gone"))
    with pytest.raises(GitHubError) as error:
        listed.queued_jobs()
    assert "repository acme/gone not found" in one_line(error)
    assert "(check github.repositories and" in one_line(error)


# -- unreachable --------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def self_signed(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 whose certificate nobody trusts."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def no_dns(*args: Any, **kwargs: Any) -> Any:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.mark.parametrize("where", ["refused", "dns", "tls", "timeout"])
def test_unreachable_names_the_url_and_the_reason_in_words(where, monkeypatch, self_signed, silent):
    url, reason = {
        "refused": (f"http://127.0.0.1:{closed_port()}", "connection refused"),
        "dns": ("http://github.invalid", "DNS cannot resolve the host name"),
        "tls": (self_signed, "TLS: the server's certificate is not trusted (self-signed"),
        # Both bounds are 1 s: the whole-answer deadline or the socket's read timeout wins.
        "timeout": (silent, ("no whole answer within 1 s", "timed out waiting for the answer")),
    }[where]
    if where == "dns":
        monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(GitHubUnavailable) as error:
        github_at(url, timeout=1).runners()
    message = one_line(error)
    reasons = (reason,) if isinstance(reason, str) else reason
    prefix = f"GitHub API unreachable: GET {url}/repos/acme/kernel-ci/actions/runners: "
    assert message.startswith(tuple(prefix + r for r in reasons)), message


# -- no token on this machine -------------------------------------------------------------


def test_without_a_token_only_the_clock_is_read(fake):
    gh = GitHub(github_at(fake.url).settings, None)
    assert abs((gh.server_time() - datetime.now(UTC)).total_seconds()) < 3
    with pytest.raises(NoToken) as error:
        gh.runner("vm1")
    assert str(error.value) == (
        "no admin token on this machine (github.use_token = false): "
        "the host or the workflow checks GitHub"
    )
    assert [path for _, path, _ in fake.requests] == ["/meta"]


def test_a_wrong_token_cannot_read_the_clock_either(fake):
    with pytest.raises(GitHubError, match="401 Bad credentials"):
        github_at(fake.url, "wrong-token-123").server_time()


# -- custom labels (item 1, client side) --------------------------------------------------


def test_custom_labels_are_added_without_re_registering(fake):
    agent = register_agent(fake, "vm1", ["kernel-6.6"])
    gh = github_at(fake.url, fake.admin_token)
    names = gh.add_runner_labels(agent["id"], ["Kernel-6.8", "arm64-host"])
    assert names == {"self-hosted", "linux", "x64", "kernel-6.6", "kernel-6.8", "arm64-host"}
    assert fake.runner("vm1")["id"] == agent["id"]
    assert {label["name"] for label in fake.runner("vm1")["labels"]} >= {"Kernel-6.8"}


def test_a_read_only_label_is_refused_whole(fake):
    agent = register_agent(fake, "vm1", [])
    with pytest.raises(GitHubError) as error:
        github_at(fake.url, fake.admin_token).add_runner_labels(agent["id"], ["gpu", "self-hosted"])
    assert "HTTP 422 Validation Failed" in one_line(error)
    assert [label["name"] for label in fake.runner("vm1")["labels"]] == [
        "self-hosted",
        "Linux",
        "X64",
    ]


def test_labels_of_a_runner_that_is_gone(fake):
    with pytest.raises(GitHubError) as error:
        github_at(fake.url, fake.admin_token).add_runner_labels(999, ["gpu"])
    assert "runner 999 is no longer registered, or repository acme/kernel-ci not found" in (
        one_line(error)
    )


def test_a_labels_answer_of_the_wrong_shape_is_unavailable(hostile):
    path = "/repos/acme/kernel-ci/actions/runners/1/labels"
    hostile.on(path, Answer(body={"total_count": 1, "labels": ["gpu"]}))
    with pytest.raises(GitHubUnavailable, match=r"labels\[0\]: expected an object"):
        github_at(hostile.url).add_runner_labels(1, ["gpu"])


# -- the checks, end to end: "unknown", exit 9, the cause on one line -----------------------


def run_checks(api_url: str, token: str, tmp_path: Path, repository: str = "acme/kernel-ci"):
    github = f'repository = "{repository}"\napi_url = "{api_url}"\ntimeout_seconds = 1\n'
    checks = ("checks/test_online.py", "checks/test_queue.py")
    return run_github_checks(tmp_path, github, *checks, token=token)


@pytest.mark.parametrize("cause", ["401", "403", "404", "unreachable"])
def test_each_refusal_ends_as_unknown_with_a_one_line_cause(fake, tmp_path, cause):
    token, url, repository = fake.admin_token, fake.url, "acme/kernel-ci"
    expected = {
        "401": "GitHub rejected the token (401 Bad credentials)",
        "403": "it needs the permission administration=read",
        "404": "repository acme/nope not found, or this token cannot see it",
        "unreachable": "GitHub API unreachable: GET http://127.0.0.1:",
    }[cause]
    if cause == "401":
        token = "wrong-token-123"
    elif cause == "403":
        token = fake.add_user("ci", permissions={"actions": "read"})
    elif cause == "404":
        repository = "acme/nope"
    else:
        url = f"http://127.0.0.1:{closed_port()}"
    checks, records = run_checks(url, token, tmp_path, repository)
    assert checks.returncode == 9, checks.stdout + checks.stderr
    for record in records:
        assert record["outcome"] == "unknown", record
        assert expected in record["failure"] and "\n" not in record["failure"], record
        assert not any(r in record["failure"] for r in REPRS), record
    assert "Traceback" not in checks.stdout + checks.stderr
