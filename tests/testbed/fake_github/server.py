"""A stateful stand-in for api.github.com and for the Actions service a runner talks to.

Test infrastructure only: product code never imports it. It serves the few REST endpoints
runner-health uses (runners, tokens, runs, jobs, issues, Actions variables, the token's user)
in GitHub's JSON shapes (checked
against githubkit's generated models by tests/contract), and under ``/_runner/...`` a small
private protocol that only the actions/runner stand-in (tests/testbed/runner) speaks, so that
a runner configured against it goes online, takes jobs, and fails the way the real one does
when its registration is deleted or its clock is off.

The ``/_runner`` protocol (JSON bodies; ``Authorization`` as noted):

- ``POST /_runner/actions/runner-registration`` (``RemoteAuth <registration|remove token>``,
  ``{url, runner_event}``) -> 200 ``{url, token, token_schema}`` (a tenant token), or 404
  ``Not Found`` for an unknown or expired token: the call config.sh makes first.
- ``GET /_runner/agents?name=`` / ``POST /_runner/agents`` / ``DELETE /_runner/agents/{id}``
  (``Bearer <tenant token>``): find, add (409 if the name exists without ``replace``) and
  delete a runner registration. Adding returns ``authorization.client_id``.
- ``POST /_runner/sessions`` ``{client_id, key, client_time, session_name, version}`` ->
  200 ``{session_id, access_token, ...}``; 401 ``{"error": "invalid_client"}`` when the
  registration is gone; 401 ``invalid_grant`` with "Current server time is ..." when the
  client's clock is off by more than five minutes; 409 session conflict while another
  listener's session is alive.
- ``GET /_runner/sessions/{id}/message?status=Online|Busy`` (``Bearer <access token>``):
  long poll (``poll_timeout`` s) -> 200 job message or 204; 404
  ``TaskAgentSessionExpiredException`` when the session or registration is gone; 403
  ``AccessDeniedException`` (errorCode 1) when the runner version is deprecated.
- ``POST /_runner/jobs/{id}/start`` and ``/complete`` ``{conclusion, log}`` (``Bearer <job
  token>``; ``log``: the job log's lines, kept for ``job_log()``).
- ``DELETE /_runner/sessions/{id}``: the listener stopping cleanly (runner goes offline now).
- The broker flow (``.runner`` ``useV2Flow``; the registration answer's ``use_v2_flow``, on
  unless ``broker_flow=False``; serverUrlV2 is ``/_runner`` too), as BrokerHttpClient.cs
  calls it: ``POST /_runner/session`` (body as above), ``GET /_runner/message?sessionId=``
  and ``DELETE /_runner/session`` (``Bearer <access token>``); its errors carry
  ``errorKind`` (RunnerNotFound, RunnerVersionTooOld, RunnerSessionInvalid).
- A poll whose runner was deleted answers 404 ``TaskAgentNotFoundException`` (broker:
  ``RunnerNotFound``); a revoked OAuth token answers 401 ``TaskAgentAccessTokenExpiredException``
  on session creation and polls.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.testbed.fake_github import releases

DOCS = "https://docs.github.com/rest"
DEFAULT_LABELS = ("self-hosted", "Linux", "X64")
# Names GitHub gives runners itself (type "read-only"): never a custom label.
READ_ONLY_LABELS = {"self-hosted", "linux", "windows", "macos", "x64", "x86", "arm", "arm64"}
CLOCK_SKEW_LIMIT = 300  # seconds; GitHub's OAuth token validation allows five minutes
REGISTRATION_TOKEN_TTL = 3600  # registration and remove tokens expire after one hour
VARIABLE_NAME = re.compile(r"(?!GITHUB_)[A-Z_][A-Z0-9_]*")  # upper-cased first: case-insensitive
VARIABLE_VALUE_LIMIT = 48 * 1024  # GitHub's limit for one variable
FAILURE_KINDS = (None, "5xx", "timeout", "rate_limit")
POLL_FAILURE_KINDS = (None, "non_retryable", "retryable")
# How long GitHub keeps the session of a listener that died without deleting it (SIGKILL,
# power loss): minutes (actions/runner#1506). Longer than the listener's 240 s of conflict
# retries (MessageListener.cs _sessionConflictRetryLimit), so a killed listener's successor
# gives up with exit 5, as reported in the field.
ORPHAN_SESSION_SECONDS = 300.0

Json = dict[str, Any]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dotnet_time(epoch: float) -> str:
    """The way the Actions service prints times in its OAuth errors (.NET's default format)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%m/%d/%Y %H:%M:%S")


def _parse_time(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _node_id(prefix: str, number: int) -> str:
    return prefix + base64.b64encode(f"fake:{number}".encode()).decode().rstrip("=")


def _fake_token(prefix: str = "FAKE") -> str:
    """Registration-token look-alike (29 upper-case characters), obviously fake."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(29 - len(prefix)))


class _Reply(Exception):
    """Raised by a handler to answer at once with a status and a JSON body."""

    def __init__(self, status: int, body: Json | None, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _not_found() -> _Reply:
    return _Reply(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})


def _variable_exists() -> _Reply:
    """What creating (or renaming onto) a variable name that is taken answers."""
    return _Reply(
        409,
        {
            "message": "Already exists - Variable already exists",
            "documentation_url": DOCS,
            "status": "409",
        },
    )


def _revoked() -> _Reply:
    """The runner's OAuth token was revoked (TaskAgentAccessTokenExpiredException)."""
    message = "The runner's access token has been revoked."
    return _Reply(401, {"typeName": "TaskAgentAccessTokenExpiredException", "message": message})


def _validation_simple(errors: list[str]) -> _Reply:
    """GitHub's ``validation-error-simple`` 422 (what the runner-label endpoints answer)."""
    return _Reply(
        422,
        {
            "message": "Validation Failed",
            "errors": errors,
            "documentation_url": DOCS,
            "status": "422",
        },
    )


def _validation_failed(resource: str, fld: str, code: str = "missing_field") -> _Reply:
    return _Reply(
        422,
        {
            "message": "Validation Failed",
            "errors": [{"resource": resource, "field": fld, "code": code}],
            "documentation_url": DOCS,
            "status": "422",
        },
    )


@dataclass
class _Runner:
    id: int
    name: str
    scope: str  # "owner/repo" or "org"
    labels: list[tuple[int, str, str]]  # (id, name, "read-only" | "custom")
    ephemeral: bool
    disable_update: bool
    version: str
    client_id: str
    key_hash: str
    session_id: str | None = None
    access_token: str | None = None
    revoked_token: str | None = None  # revoke_runner_token(): the access token it revoked
    token_revoked: bool = False
    session_rejection: int | None = None  # reject_sessions(): HTTP status of session create
    poll_failure: str | None = None  # fail_polls(): "non_retryable" | "retryable"
    seen: float = 0.0  # monotonic time of the last poll (start or end)
    polling: int = 0  # polls in flight
    job_id: int | None = None


@dataclass
class _Job:
    id: int
    run_id: int
    name: str
    labels: list[str]
    created_at: float
    duration: float
    write_bytes: int
    workflow_name: str
    token: str
    log: list[str] = field(default_factory=list)
    status: str = "queued"
    conclusion: str | None = None
    started_at: float | None = None
    completed_at: float | None = None
    runner_id: int | None = None
    runner_name: str | None = None
    assigned_at: float | None = None


@dataclass(frozen=True)
class _Account:
    """Who a token acts as: the ``user`` GitHub records on what it writes."""

    login: str
    id: int
    type: str  # "User", or "Bot" for an app's user such as github-actions[bot]
    association: str  # its author_association with the repository
    permissions: dict[str, str] | None = None  # a fine-grained token's grants; None: all

    def allows(self, needed: str | None) -> bool:
        """Whether the token holds ``needed`` ("administration=write"): write implies read."""
        if needed is None or self.permissions is None:
            return True
        kind, level = needed.split("=")
        return self.permissions.get(kind) in ((level, "write") if level == "read" else (level,))


@dataclass
class _Issue:
    number: int
    id: int
    author: _Account
    title: str
    body: str | None
    labels: list[str]
    created_at: float
    updated_at: float
    state: str = "open"
    state_reason: str | None = None
    closed_at: float | None = None
    comments: list[Json] = field(default_factory=list)


@dataclass
class _Variable:
    name: str
    value: str
    created_at: float
    updated_at: float


class FakeGitHub:
    """api.github.com for one repository (and its owner org), in a thread on 127.0.0.1.

    ``online_grace``: seconds after its last poll during which a runner still shows online.
    ``orphan_session_seconds``: how long the session of a listener that stopped polling
    without deleting it (SIGKILL) still exists, so that creating a new one answers "A session
    for this runner already exists." (real: minutes, ORPHAN_SESSION_SECONDS; tests pass it
    multiplied by RUNNER_STANDIN_TIME_SCALE, like the listener's windows).
    ``poll_timeout``: how long a runner's long poll is held when there is no job (<= 2 s).
    ``timeout_hold``: how long ``fail_with("timeout")`` holds a request (longer than clients
    wait, but bounded; ``stop()`` releases held requests at once).
    ``lost_runner_timeout``: a job whose runner stopped polling is failed after this long
    (GitHub: about ten minutes).
    ``broker_flow``: registrations use the runner-admin + broker flow, as github.com's do
    today (ConfigurationManager.cs sets ``useV2Flow``); False: the legacy flow (GHES).
    """

    def __init__(
        self,
        owner: str = "acme",
        repo: str = "kernel-ci",
        *,
        online_grace: float = 10.0,
        orphan_session_seconds: float = ORPHAN_SESSION_SECONDS,
        broker_flow: bool = True,
        poll_timeout: float = 2.0,
        timeout_hold: float = 20.0,
        lost_runner_timeout: float = 60.0,
        rate_limit: int = 5000,
        port: int = 0,
    ) -> None:
        self.owner = owner
        self.repo = repo
        self.online_grace = online_grace
        self.orphan_session_seconds = orphan_session_seconds
        self.broker_flow = broker_flow
        self.poll_timeout = min(poll_timeout, 2.0)
        self.timeout_hold = timeout_hold
        self.lost_runner_timeout = lost_runner_timeout
        self.admin_token = "fake-admin-" + secrets.token_hex(16)
        # A workflow's GITHUB_TOKEN: what it writes shows the GitHub Actions app's user as author.
        self.actions_token = "fake-actions-" + secrets.token_hex(16)
        self._accounts = {
            self.admin_token: _Account("runner-health-bot", 4242, "User", "OWNER"),
            self.actions_token: _Account("github-actions[bot]", 41898282, "Bot", "NONE"),
        }
        self._caller = self._accounts[self.admin_token]  # the request being served (lock held)
        self.issues_enabled = True
        self.deprecated_runner_version: str | None = None
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status), in order
        self._port = port
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._failure: str | None = None
        self._failure_runner_too = True
        self._failure_was_rate_limit = False
        self._retry_after = 60
        self._fail_count = 0
        self._rl_limit = rate_limit
        self._rl_used = 0
        self._rl_reset = int(time.time()) + 3600
        self._ids = iter(range(1, 1_000_000_000))
        self._label_ids: dict[str, int] = {}
        self._runners: dict[int, _Runner] = {}
        self._reg_tokens: dict[str, tuple[str, float]] = {}  # token -> (kind, expires_at)
        self._tenant_tokens: dict[str, tuple[str, str, float]] = {}  # -> (event, scope, exp)
        self._jobs: dict[int, _Job] = {}
        self._gone_tokens: set[str] = set()  # access tokens of sessions of deleted runners
        self._issues: dict[int, _Issue] = {}
        self._variables: dict[str, _Variable] = {}  # repository Actions variables, by name
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        """Bind 127.0.0.1 (a free port unless one was given) and serve in a daemon thread."""
        fake = self

        class Handler(_Handler):
            github = fake

        self._stopping.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-github",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests held by a timeout or a long poll are released at once."""
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "FakeGitHub is not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The API base URL seen from the host (the product's ``api_url``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def guest_url(self) -> str:
        """The same server seen from the QEMU guest (user-mode net maps 10.0.2.2 to 127.0.0.1)."""
        return f"http://10.0.2.2:{self.port}"

    def runner_url(self, *, guest: bool = True) -> str:
        """What ``config.sh --url`` takes: ``{base}/{owner}/{repo}``."""
        return f"{self.guest_url if guest else self.url}/{self.owner}/{self.repo}"

    # -- switches for tests --------------------------------------------------------------

    def fail_with(
        self, kind: str | None, *, retry_after: int = 60, include_runner: bool = True
    ) -> None:
        """Make every REST answer fail: None (heal), "5xx", "timeout" or "rate_limit".

        ``include_runner``: also fail the runner's ``/_runner`` traffic for 5xx and timeout
        (an outage): its runner then shows offline once ``online_grace`` has passed.
        """
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; expected one of {FAILURE_KINDS}")
        with self._lock:
            self._failure_was_rate_limit = self._failure == "rate_limit"
            self._failure = kind
            self._retry_after = retry_after
            self._failure_runner_too = include_runner
            self._fail_count = 0
            if kind is None and self._failure_was_rate_limit:
                self._rl_used = 0  # the forced exhaustion ends with the switch
            self._failure_was_rate_limit = kind == "rate_limit"

    def revoke_runner_token(self, name: str) -> None:
        """Revoke the runner's OAuth token (an admin or GitHub did): its session ends, and
        the listener logs "Runner OAuth token has been revoked. ..." (_diag only) and exits 0.
        """
        with self._lock:
            runner = self._named(name)
            runner.token_revoked = True
            runner.revoked_token = runner.access_token
            runner.session_id = runner.access_token = None
            self._lock.notify_all()

    def reject_sessions(self, name: str, status: int | None = 401) -> None:
        """Answer the runner's session creation with ``status`` (None: accept again): 401 is
        the real runner's "Failed to create session. ..." (exit 1, the unit stops).
        """
        if status is not None:
            HTTPStatus(status)  # ValueError for a status HTTP doesn't have
        with self._lock:
            self._named(name).session_rejection = status

    def fail_polls(self, name: str, kind: str | None) -> None:
        """Fail the runner's message polls: "non_retryable" (broker flow: "Get next message
        failed with non-retryable error.", exit 1), "retryable" (a 5xx every time: "Runner
        connect error ...", broker flow exits 2 after 10 in a row) or None (heal).
        """
        if kind not in POLL_FAILURE_KINDS:
            raise ValueError(f"unknown poll failure {kind!r}; expected one of {POLL_FAILURE_KINDS}")
        with self._lock:
            self._named(name).poll_failure = kind
            self._lock.notify_all()

    def job_log(self, job_id: int) -> str:
        """The job's log as its Worker uploaded it (the job log page at GitHub)."""
        with self._lock:
            return "".join(line + "\n" for line in self._jobs[job_id].log)

    def session_of(self, name: str) -> Json | None:
        """The runner's live session at GitHub (``session_id``, ``idle_seconds`` since its
        last poll), or None: lets tests see whether a listener deleted its session.
        """
        with self._lock:
            runner = self._named(name)
            if not self._session_alive(runner):
                return None
            idle = 0.0 if runner.polling else time.monotonic() - runner.seen
            return {"session_id": runner.session_id, "idle_seconds": round(idle, 3)}

    def set_rate_limit(self, *, remaining: int) -> None:
        """Pretend the token already used all but ``remaining`` requests of this hour."""
        with self._lock:
            self._rl_used = max(0, self._rl_limit - remaining)

    @property
    def rate_limit_remaining(self) -> int:
        with self._lock:
            return max(0, self._rl_limit - self._rl_used)

    def add_user(
        self, login: str, association: str = "NONE", permissions: dict[str, str] | None = None
    ) -> str:
        """A token of another user (someone commenting on issues, say): what it writes shows
        ``login`` as author, with ``association`` (e.g. "MEMBER") as its author_association.

        ``permissions``: a fine-grained token's grants, e.g. ``{"administration": "read"}``;
        a call needing more is answered 403 with the X-Accepted-GitHub-Permissions it needs."""
        token = "fake-user-" + secrets.token_hex(16)
        with self._lock:
            self._accounts[token] = _Account(
                login, 100_000 + len(self._accounts), "User", association, permissions
            )
        return token

    def set_runner_labels(self, name: str, labels: list[str]) -> None:
        """Replace a runner's custom labels (as the settings page does); read-only ones stay."""
        with self._lock:
            runner = next(r for r in self._runners.values() if r.name == name)
            runner.labels = [x for x in runner.labels if x[2] == "read-only"] + [
                self._label(label, "custom") for label in labels
            ]

    def create_registration_token(self, kind: str = "registration") -> str:
        """A registration (or remove) token, as ``POST .../registration-token`` makes."""
        with self._lock:
            return self._new_reg_token(kind)["token"]

    def expire_registration_tokens(self) -> None:
        """Every registration and remove token issued so far expires now."""
        with self._lock:
            past = time.time() - 1
            for token, (kind, _) in list(self._reg_tokens.items()):
                self._reg_tokens[token] = (kind, past)

    def delete_runner(self, name: str) -> bool:
        """Delete a registration as GitHub does (e.g. after 14 days offline); False if absent.

        Its sessions die with it: a running listener's next poll fails, and creating a
        session answers ``invalid_client`` (the runner logs "registration has been deleted").
        """
        with self._lock:
            for runner in list(self._runners.values()):
                if runner.name == name:
                    self._remove_runner(runner, "cancelled")
                    return True
            return False

    def deprecate_runner_version(self, version: str | None) -> None:
        """Refuse messages to runners reporting ``version`` (None: accept every version)."""
        with self._lock:
            self.deprecated_runner_version = version
            self._lock.notify_all()

    def queue_job(
        self,
        labels: list[str],
        created_at: datetime | float | None = None,
        *,
        duration: float = 1.0,
        name: str = "build",
        workflow_name: str = "CI",
        write_bytes: int = 4096,
    ) -> Json:
        """Queue a one-job workflow run; an online idle runner with all ``labels`` takes it.

        ``duration``: seconds the runner's Worker stays busy with it; ``write_bytes``: how
        much it writes into its workspace (a full disk fails the job with ENOSPC).
        Returns the job in its REST shape (status "queued", runner_id None).
        """
        if isinstance(created_at, datetime):
            created = created_at.timestamp()
        elif created_at is None:
            created = time.time()
        else:
            created = float(created_at)
        with self._lock:
            run_id = next(self._ids)
            job = _Job(
                id=next(self._ids),
                run_id=run_id,
                name=name,
                labels=list(labels),
                created_at=created,
                duration=duration,
                write_bytes=write_bytes,
                workflow_name=workflow_name,
                token="fake-job-" + secrets.token_hex(12),
            )
            self._jobs[job.id] = job
            self._lock.notify_all()
            return self._job_json(job)

    def job(self, job_id: int) -> Json | None:
        """A job's REST shape (status, conclusion, runner_id, runner_name ...) or None."""
        with self._lock:
            self._reap()
            job = self._jobs.get(job_id)
            return None if job is None else self._job_json(job)

    def finish_job(self, job_id: int, conclusion: str = "cancelled", *, ago: float = 0) -> Json:
        """End a job at the REST API only (completed, ``conclusion``, ``ago`` seconds ago),
        telling its runner nothing: its Worker runs on, as a hung one does after GitHub gave
        up on its job."""
        with self._lock:
            job = self._jobs[job_id]
            self._finish_job(job, conclusion)
            job.completed_at = time.time() - ago
            return self._job_json(job)

    def runner(self, name: str) -> Json | None:
        """A runner's REST shape (id, name, os, status, busy, labels ...) or None."""
        with self._lock:
            self._reap()
            for runner in self._runners.values():
                if runner.name == name:
                    return self._runner_json(runner)
            return None

    def runners(self) -> list[Json]:
        with self._lock:
            self._reap()
            return [self._runner_json(r) for r in self._runners.values()]

    def issues(self) -> list[Json]:
        with self._lock:
            return [self._issue_json(i) for i in self._issues.values()]

    def variable(self, name: str) -> Json | None:
        """A repository Actions variable's REST shape (name, value, created_at, updated_at)."""
        with self._lock:
            found = self._variables.get(name.upper())
            return None if found is None else self._variable_json(found)

    def set_variable(self, name: str, value: str, updated_at: datetime | None = None) -> None:
        """Create or replace a variable as the settings page does (``updated_at``: backdate it)."""
        when = time.time() if updated_at is None else updated_at.timestamp()
        with self._lock:
            old = self._variables.get(name.upper())
            created = when if old is None else old.created_at
            self._variables[name.upper()] = _Variable(name.upper(), value, created, when)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll ``predicate`` (every 50 ms) until it returns something truthy; raise on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(0.05)

    # -- state helpers (call with the lock held) ---------------------------------------

    def _new_reg_token(self, kind: str) -> Json:
        token = _fake_token()
        expires = time.time() + REGISTRATION_TOKEN_TTL
        self._reg_tokens[token] = (kind, expires)
        return {"token": token, "expires_at": _iso(expires)}

    def _label(self, name: str, kind: str) -> tuple[int, str, str]:
        key = name.lower()
        if key not in self._label_ids:
            self._label_ids[key] = len(self._label_ids) + 1
        return (self._label_ids[key], name, kind)

    def _named(self, name: str) -> _Runner:
        runner = next((r for r in self._runners.values() if r.name == name), None)
        if runner is None:
            raise KeyError(f"no runner named {name!r}")
        return runner

    def _online(self, runner: _Runner) -> bool:
        if runner.session_id is None:
            return False
        return runner.polling > 0 or time.monotonic() - runner.seen <= self.online_grace

    def _session_alive(self, runner: _Runner) -> bool:
        """A session lives until deleted, or until ``orphan_session_seconds`` without polls."""
        if runner.session_id is None:
            return False
        idle = time.monotonic() - runner.seen
        return runner.polling > 0 or idle <= self.orphan_session_seconds

    def _remove_runner(self, runner: _Runner, conclusion: str) -> None:
        if runner.access_token is not None:
            self._gone_tokens.add(runner.access_token)
        if runner.job_id is not None:
            self._finish_job(self._jobs[runner.job_id], conclusion)
        del self._runners[runner.id]
        self._lock.notify_all()

    def _finish_job(self, job: _Job, conclusion: str) -> None:
        if job.status != "completed":
            job.status = "completed"
            job.conclusion = conclusion
            job.completed_at = time.time()
            if job.started_at is None:
                job.started_at = job.completed_at
        runner = self._runners.get(job.runner_id or -1)
        if runner is not None and runner.job_id == job.id:
            runner.job_id = None
        self._lock.notify_all()

    def _reap(self) -> None:
        """Fail the jobs of runners that stopped polling long ago (GitHub: lost communication)."""
        now = time.monotonic()
        for runner in self._runners.values():
            if (
                runner.job_id is not None
                and runner.polling == 0
                and now - runner.seen > self.lost_runner_timeout
            ):
                self._finish_job(self._jobs[runner.job_id], "failure")

    def _eligible_job(self, runner: _Runner) -> _Job | None:
        names = {name.lower() for _, name, _ in runner.labels}
        for job in sorted(self._jobs.values(), key=lambda j: (j.created_at, j.id)):
            if (
                job.status == "queued"
                and job.runner_id is None
                and all(label.lower() in names for label in job.labels)
            ):
                return job
        return None

    def _scope_of_url(self, url: str) -> str | None:
        parts = [p for p in urlsplit(url).path.split("/") if p]
        if parts == [self.owner, self.repo]:
            return f"{self.owner}/{self.repo}"
        if parts == [self.owner]:
            return "org"
        return None

    # -- JSON shapes -------------------------------------------------------------------

    def _user(self, login: str, uid: int, kind: str = "User") -> Json:
        base = f"{self.url}/users/{login}"
        return {
            "login": login,
            "id": uid,
            "node_id": _node_id("U_", uid),
            "avatar_url": f"{self.url}/avatars/{login}",
            "gravatar_id": "",
            "url": base,
            "html_url": f"{self.url}/{login}",
            "followers_url": f"{base}/followers",
            "following_url": f"{base}/following{{/other_user}}",
            "gists_url": f"{base}/gists{{/gist_id}}",
            "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{base}/subscriptions",
            "organizations_url": f"{base}/orgs",
            "repos_url": f"{base}/repos",
            "events_url": f"{base}/events{{/privacy}}",
            "received_events_url": f"{base}/received_events",
            "type": kind,
            "site_admin": False,
        }

    def _repo_json(self) -> Json:
        api = f"{self.url}/repos/{self.owner}/{self.repo}"
        names = [
            "archive_url",
            "assignees_url",
            "blobs_url",
            "branches_url",
            "collaborators_url",
            "comments_url",
            "commits_url",
            "compare_url",
            "contents_url",
            "contributors_url",
            "deployments_url",
            "downloads_url",
            "events_url",
            "forks_url",
            "git_commits_url",
            "git_refs_url",
            "git_tags_url",
            "issue_comment_url",
            "issue_events_url",
            "issues_url",
            "keys_url",
            "labels_url",
            "languages_url",
            "merges_url",
            "milestones_url",
            "notifications_url",
            "pulls_url",
            "releases_url",
            "stargazers_url",
            "statuses_url",
            "subscribers_url",
            "subscription_url",
            "tags_url",
            "teams_url",
            "trees_url",
            "hooks_url",
        ]
        repo: Json = {
            "id": 1296269,
            "node_id": _node_id("R_", 1296269),
            "name": self.repo,
            "full_name": f"{self.owner}/{self.repo}",
            "owner": self._user(self.owner, 9919, "Organization"),
            "private": True,
            "html_url": f"{self.url}/{self.owner}/{self.repo}",
            "description": "fake repository served by FakeGitHub",
            "fork": False,
            "url": api,
        }
        for name in names:
            repo[name] = f"{api}/{name.removesuffix('_url')}"
        return repo

    def _runner_json(self, runner: _Runner) -> Json:
        return {
            "id": runner.id,
            "name": runner.name,
            "os": "Linux",
            "status": "online" if self._online(runner) else "offline",
            "busy": runner.job_id is not None,
            "ephemeral": runner.ephemeral,
            "runner_group_id": 1,
            "labels": [{"id": i, "name": n, "type": t} for i, n, t in runner.labels],
        }

    def _job_json(self, job: _Job) -> Json:
        api = f"{self.url}/repos/{self.owner}/{self.repo}"
        html = f"{self.url}/{self.owner}/{self.repo}"
        sha = hashlib.sha1(f"run{job.run_id}".encode()).hexdigest()
        return {
            "id": job.id,
            "run_id": job.run_id,
            "run_url": f"{api}/actions/runs/{job.run_id}",
            "run_attempt": 1,
            "node_id": _node_id("CR_", job.id),
            "head_sha": sha,
            "url": f"{api}/actions/jobs/{job.id}",
            "html_url": f"{html}/actions/runs/{job.run_id}/job/{job.id}",
            "status": job.status,
            "conclusion": job.conclusion,
            "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at or job.created_at),
            "completed_at": None if job.completed_at is None else _iso(job.completed_at),
            "name": job.name,
            "steps": [],
            "check_run_url": f"{api}/check-runs/{job.id}",
            "labels": list(job.labels),
            "runner_id": job.runner_id,
            "runner_name": job.runner_name,
            "runner_group_id": None if job.runner_id is None else 1,
            "runner_group_name": None if job.runner_id is None else "Default",
            "workflow_name": job.workflow_name,
            "head_branch": "main",
        }

    def _run_json(self, job: _Job) -> Json:
        api = f"{self.url}/repos/{self.owner}/{self.repo}"
        run = f"{api}/actions/runs/{job.run_id}"
        sha = hashlib.sha1(f"run{job.run_id}".encode()).hexdigest()
        updated = job.completed_at or job.started_at or job.created_at
        return {
            "id": job.run_id,
            "name": job.workflow_name,
            "node_id": _node_id("WFR_", job.run_id),
            "head_branch": "main",
            "head_sha": sha,
            "path": ".github/workflows/ci.yml",
            "display_title": f"{job.workflow_name} #{job.run_id}",
            "run_number": job.run_id,
            "run_attempt": 1,
            "event": "push",
            "status": job.status,
            "conclusion": job.conclusion,
            "workflow_id": 161335,
            "url": run,
            "html_url": f"{self.url}/{self.owner}/{self.repo}/actions/runs/{job.run_id}",
            "pull_requests": [],
            "created_at": _iso(job.created_at),
            "updated_at": _iso(updated),
            "run_started_at": _iso(job.started_at or job.created_at),
            "jobs_url": f"{run}/jobs",
            "logs_url": f"{run}/logs",
            "check_suite_url": f"{api}/check-suites/{job.run_id}",
            "artifacts_url": f"{run}/artifacts",
            "cancel_url": f"{run}/cancel",
            "rerun_url": f"{run}/rerun",
            "workflow_url": f"{api}/actions/workflows/161335",
            "head_commit": {
                "id": sha,
                "tree_id": hashlib.sha1(sha.encode()).hexdigest(),
                "message": "fake commit",
                "timestamp": _iso(job.created_at),
                "author": {"name": "Fake Dev", "email": "dev@example.invalid"},
                "committer": {"name": "Fake Dev", "email": "dev@example.invalid"},
            },
            "repository": self._repo_json(),
            "head_repository": self._repo_json(),
        }

    def _label_json(self, name: str) -> Json:
        lid = self._label(name, "issue")[0] + 10_000
        return {
            "id": lid,
            "node_id": _node_id("LA_", lid),
            "url": f"{self.url}/repos/{self.owner}/{self.repo}/labels/{name}",
            "name": name,
            "description": None,
            "color": "ededed",
            "default": False,
        }

    @staticmethod
    def _variable_json(variable: _Variable) -> Json:
        return {
            "name": variable.name,
            "value": variable.value,
            "created_at": _iso(variable.created_at),
            "updated_at": _iso(variable.updated_at),
        }

    def _issue_json(self, issue: _Issue) -> Json:
        api = f"{self.url}/repos/{self.owner}/{self.repo}"
        url = f"{api}/issues/{issue.number}"
        return {
            "id": issue.id,
            "node_id": _node_id("I_", issue.id),
            "url": url,
            "repository_url": api,
            "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments",
            "events_url": f"{url}/events",
            "html_url": f"{self.url}/{self.owner}/{self.repo}/issues/{issue.number}",
            "number": issue.number,
            "state": issue.state,
            "state_reason": issue.state_reason,
            "title": issue.title,
            "body": issue.body,
            "user": self._user(issue.author.login, issue.author.id, issue.author.type),
            "labels": [self._label_json(n) for n in issue.labels],
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "active_lock_reason": None,
            "comments": len(issue.comments),
            "closed_at": None if issue.closed_at is None else _iso(issue.closed_at),
            "created_at": _iso(issue.created_at),
            "updated_at": _iso(issue.updated_at),
            "author_association": issue.author.association,
        }

    # -- REST handlers -------------------------------------------------------------------
    # Each takes (match, query, body) with the lock held and returns (status, json).

    def _rest_routes(self) -> list[tuple[str, str, Callable[..., tuple[int, Any]], str | None]]:
        """(method, path pattern, handler, the fine-grained permission GitHub asks for)."""
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        org = r"/orgs/(?P<org>[^/]+)"
        routes: list[tuple[str, str, Callable[..., tuple[int, Any]], str | None]] = [
            ("GET", r"/meta", self._meta, None),
            ("GET", r"/user", self._get_user, None),
        ]
        for prefix, kind in ((repo, "administration"), (org, "organization_self_hosted_runners")):
            read, write = f"{kind}=read", f"{kind}=write"
            routes += [
                ("GET", prefix + r"/actions/runners", self._list_runners, read),
                ("GET", prefix + r"/actions/runners/(?P<id>\d+)", self._get_runner, read),
                ("DELETE", prefix + r"/actions/runners/(?P<id>\d+)", self._delete_runner, write),
                ("POST", prefix + r"/actions/runners/(?P<id>\d+)/labels", self._add_labels, write),
                ("POST", prefix + r"/actions/runners/registration-token", self._reg_token, write),
                ("POST", prefix + r"/actions/runners/remove-token", self._remove_token, write),
            ]
        routes += [
            ("GET", repo + r"/actions/runs", self._list_runs, "actions=read"),
            ("GET", repo + r"/actions/runs/(?P<id>\d+)", self._get_run, "actions=read"),
            ("GET", repo + r"/actions/runs/(?P<id>\d+)/jobs", self._list_jobs, "actions=read"),
            ("GET", repo + r"/actions/jobs/(?P<id>\d+)", self._get_job, "actions=read"),
            ("GET", repo + r"/issues", self._list_issues, "issues=read"),
            ("POST", repo + r"/issues", self._create_issue, "issues=write"),
            ("GET", repo + r"/issues/(?P<n>\d+)", self._get_issue, "issues=read"),
            ("PATCH", repo + r"/issues/(?P<n>\d+)", self._update_issue, "issues=write"),
            ("GET", repo + r"/issues/(?P<n>\d+)/comments", self._list_comments, "issues=read"),
            ("POST", repo + r"/issues/(?P<n>\d+)/comments", self._create_comment, "issues=write"),
        ]
        variables, one = repo + r"/actions/variables", repo + r"/actions/variables/(?P<name>[^/]+)"
        read, write = "actions_variables=read", "actions_variables=write"
        routes += [
            ("GET", variables, self._list_variables, read),
            ("POST", variables, self._create_variable, write),
            ("GET", one, self._get_variable, read),
            ("PATCH", one, self._update_variable, write),
            ("DELETE", one, self._delete_variable, write),
        ]
        routes += releases.of(self).routes()  # actions/runner's releases (releases.py)
        return routes

    def _meta(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        """GitHub's overview (``GET /meta``): answered without a token too."""
        return 200, {"verifiable_password_authentication": False, "installed_version": "fake"}

    def _get_user(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        """The token's account (``GET /user``); an app's installation token (a workflow's
        GITHUB_TOKEN) acts as no user: GitHub answers 403."""
        caller = self._caller
        if caller.type == "Bot":
            raise _Reply(
                403,
                {
                    "message": "Resource not accessible by integration",
                    "documentation_url": DOCS,
                    "status": "403",
                },
            )
        now = _iso(time.time())
        user = self._user(caller.login, caller.id, caller.type)
        profile = dict.fromkeys(("name", "company", "blog", "location", "email", "bio"))
        counts = dict.fromkeys(("public_repos", "public_gists", "followers", "following"), 0)
        return 200, {
            **user,
            **profile,
            "hireable": None,
            **counts,
            "created_at": now,
            "updated_at": now,
        }

    def _check_scope(self, m: re.Match[str]) -> str:
        groups = m.groupdict()
        if "org" in groups and groups["org"] is not None:
            if groups["org"] != self.owner:
                raise _not_found()
            return "org"
        if (groups.get("owner"), groups.get("repo")) != (self.owner, self.repo):
            raise _not_found()
        return f"{self.owner}/{self.repo}"

    @staticmethod
    def _paging(query: dict[str, str]) -> tuple[int, int]:
        try:
            per_page = max(1, min(100, int(query.get("per_page", "30"))))
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            raise _validation_failed("Pagination", "per_page", "invalid") from None
        return per_page, page

    def _list_runners(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        scope = self._check_scope(m)
        runners = [r for r in self._runners.values() if r.scope == scope]
        if "name" in query:
            runners = [r for r in runners if r.name == query["name"]]
        per_page, page = self._paging(query)
        chosen = runners[(page - 1) * per_page : page * per_page]
        payload = {"total_count": len(runners), "runners": [self._runner_json(r) for r in chosen]}
        return 200, payload, len(runners), per_page, page

    def _find_runner(self, m: re.Match[str]) -> _Runner:
        scope = self._check_scope(m)
        runner = self._runners.get(int(m["id"]))
        if runner is None or runner.scope != scope:
            raise _not_found()
        return runner

    def _get_runner(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        return 200, self._runner_json(self._find_runner(m))

    def _add_labels(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        """Add custom labels; a name GitHub gives runners itself (read-only) is refused with a
        422, the whole request with it."""
        runner = self._find_runner(m)
        labels = body.get("labels") if isinstance(body, dict) else None
        if (
            not isinstance(labels, list)
            or not 1 <= len(labels) <= 100
            or not all(isinstance(x, str) and x for x in labels)
        ):
            raise _validation_simple(["labels: expected 1 to 100 label names"])
        taken = {n.lower() for _, n, kind in runner.labels if kind == "read-only"}
        refused = [x for x in labels if x.lower() in READ_ONLY_LABELS | taken]
        if refused:
            raise _validation_simple(
                [
                    f"'{x}' is a read-only label and cannot be added as a custom label"
                    for x in refused
                ]
            )
        have = {n.lower() for _, n, _ in runner.labels}
        for label in labels:
            if label.lower() not in have:
                runner.labels.append(self._label(label, "custom"))
                have.add(label.lower())
        found = [{"id": i, "name": n, "type": t} for i, n, t in runner.labels]
        return 200, {"total_count": len(found), "labels": found}

    def _delete_runner(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        runner = self._find_runner(m)
        if runner.job_id is not None:
            raise _Reply(
                422,
                {
                    "message": f'Bad request - Runner "{runner.name}" is still running a job"',
                    "documentation_url": DOCS,
                    "status": "422",
                },
            )
        self._remove_runner(runner, "cancelled")
        return 204, None

    def _reg_token(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        self._check_scope(m)
        return 201, self._new_reg_token("registration")

    def _remove_token(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        self._check_scope(m)
        return 201, self._new_reg_token("remove")

    def _list_runs(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        self._check_scope(m)
        jobs = sorted(self._jobs.values(), key=lambda j: (-j.created_at, -j.id))
        wanted = query.get("status")
        if wanted:
            jobs = [j for j in jobs if wanted in (j.status, j.conclusion)]
        per_page, page = self._paging(query)
        chosen = jobs[(page - 1) * per_page : page * per_page]
        payload = {"total_count": len(jobs), "workflow_runs": [self._run_json(j) for j in chosen]}
        return 200, payload, len(jobs), per_page, page

    def _job_of_run(self, m: re.Match[str]) -> _Job:
        self._check_scope(m)
        for job in self._jobs.values():
            if job.run_id == int(m["id"]):
                return job
        raise _not_found()

    def _get_run(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        return 200, self._run_json(self._job_of_run(m))

    def _list_jobs(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        job = self._job_of_run(m)
        return 200, {"total_count": 1, "jobs": [self._job_json(job)]}

    def _get_job(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        self._check_scope(m)
        job = self._jobs.get(int(m["id"]))
        if job is None:
            raise _not_found()
        return 200, self._job_json(job)

    def _issue(self, m: re.Match[str]) -> _Issue:
        self._check_scope(m)
        if not self.issues_enabled:
            raise _Reply(410, {"message": "Issues are disabled for this repo", "status": "410"})
        issue = self._issues.get(int(m["n"]))
        if issue is None:
            raise _not_found()
        return issue

    def _list_issues(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        self._check_scope(m)
        if not self.issues_enabled:
            raise _Reply(410, {"message": "Issues are disabled for this repo", "status": "410"})
        state = query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise _validation_failed("Issue", "state", "invalid")
        wanted = [x.strip().lower() for x in query.get("labels", "").split(",") if x.strip()]
        issues = sorted(self._issues.values(), key=lambda i: -i.number)
        issues = [i for i in issues if state == "all" or i.state == state]
        issues = [i for i in issues if all(w in {x.lower() for x in i.labels} for w in wanted)]
        per_page, page = self._paging(query)
        chosen = issues[(page - 1) * per_page : page * per_page]
        return 200, [self._issue_json(i) for i in chosen], len(issues), per_page, page

    def _create_issue(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        self._check_scope(m)
        if not self.issues_enabled:
            raise _Reply(410, {"message": "Issues are disabled for this repo", "status": "410"})
        if not isinstance(body, dict) or not body.get("title"):
            raise _validation_failed("Issue", "title")
        now = time.time()
        number = len(self._issues) + 1
        labels = [str(x if isinstance(x, str) else x.get("name")) for x in body.get("labels", [])]
        issue = _Issue(
            number=number,
            id=next(self._ids),
            author=self._caller,
            title=str(body["title"]),
            body=body.get("body"),
            labels=labels,
            created_at=now,
            updated_at=now,
        )
        self._issues[number] = issue
        return 201, self._issue_json(issue)

    def _get_issue(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        return 200, self._issue_json(self._issue(m))

    def _update_issue(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        issue = self._issue(m)
        body = body if isinstance(body, dict) else {}
        state = body.get("state")
        if state is not None and state not in ("open", "closed"):
            raise _validation_failed("Issue", "state", "invalid")
        if state == "closed" and issue.state != "closed":
            issue.closed_at = time.time()
            issue.state_reason = body.get("state_reason") or "completed"
        elif state == "open" and issue.state != "open":
            issue.closed_at = None
            issue.state_reason = "reopened"
        if state is not None:
            issue.state = state
        if "title" in body:
            issue.title = str(body["title"])
        if "body" in body:
            issue.body = body["body"]
        if "labels" in body:
            issue.labels = [str(x) for x in body["labels"]]
        issue.updated_at = time.time()
        return 200, self._issue_json(issue)

    def _list_comments(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        issue = self._issue(m)
        per_page, page = self._paging(query)
        chosen = issue.comments[(page - 1) * per_page : page * per_page]
        return 200, chosen, len(issue.comments), per_page, page

    def _create_comment(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        issue = self._issue(m)
        if not isinstance(body, dict) or not body.get("body"):
            raise _validation_failed("IssueComment", "body")
        cid = next(self._ids)
        api = f"{self.url}/repos/{self.owner}/{self.repo}"
        now = _iso(time.time())
        comment = {
            "id": cid,
            "node_id": _node_id("IC_", cid),
            "url": f"{api}/issues/comments/{cid}",
            "html_url": f"{self.url}/{self.owner}/{self.repo}/issues/{issue.number}#issuecomment-{cid}",
            "body": str(body["body"]),
            "user": self._user(self._caller.login, self._caller.id, self._caller.type),
            "created_at": now,
            "updated_at": now,
            "issue_url": f"{api}/issues/{issue.number}",
            "author_association": self._caller.association,
        }
        issue.comments.append(comment)
        issue.updated_at = time.time()
        return 201, comment

    def _variable(self, m: re.Match[str]) -> _Variable:
        self._check_scope(m)
        found = self._variables.get(m["name"].upper())
        if found is None:
            raise _not_found()
        return found

    def _variable_fields(self, body: Any, required: bool) -> tuple[str | None, str | None]:
        """A POST or PATCH body's name (upper-cased: names are case-insensitive) and value,
        refused as GitHub does: 422 for a bad name, a value too long or not a string."""
        body = body if isinstance(body, dict) else {}
        name, value = body.get("name"), body.get("value")
        if required and (name is None or value is None):
            raise _validation_failed("ActionsVariable", "name" if name is None else "value")
        if name is not None and (
            not isinstance(name, str) or not VARIABLE_NAME.fullmatch(name.upper())
        ):
            raise _validation_failed("ActionsVariable", "name", "invalid")
        if value is not None and (
            not isinstance(value, str) or len(value.encode()) > VARIABLE_VALUE_LIMIT
        ):
            raise _validation_failed("ActionsVariable", "value", "invalid")
        return (name.upper() if name is not None else None), value

    def _list_variables(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        self._check_scope(m)
        found = sorted(self._variables.values(), key=lambda v: v.name)
        per_page, page = self._paging(query)
        per_page = min(per_page, 30)  # this list pages by 30 at most
        chosen = found[(page - 1) * per_page : page * per_page]
        payload = {"total_count": len(found), "variables": [self._variable_json(v) for v in chosen]}
        return 200, payload, len(found), per_page, page

    def _create_variable(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        """201 with an empty object; 409 when the name is taken (PATCH updates)."""
        self._check_scope(m)
        name, value = self._variable_fields(body, required=True)
        assert name is not None and value is not None
        if name in self._variables:
            raise _variable_exists()
        now = time.time()
        self._variables[name] = _Variable(name, value, now, now)
        return 201, {}

    def _get_variable(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        return 200, self._variable_json(self._variable(m))

    def _update_variable(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        """204, no body; the body may rename the variable (409 onto a taken name)."""
        variable = self._variable(m)
        name, value = self._variable_fields(body, required=False)
        if name is not None and name != variable.name:
            if name in self._variables:
                raise _variable_exists()
            del self._variables[variable.name]
            variable.name = name
            self._variables[name] = variable
        if value is not None:
            variable.value = value
        variable.updated_at = time.time()
        return 204, None

    def _delete_variable(self, m: re.Match[str], query: dict[str, str], body: Any) -> Any:
        del self._variables[self._variable(m).name]
        return 204, None

    # -- /_runner handlers -------------------------------------------------------------------

    def _runner_routes(self) -> list[tuple[str, str, Callable[..., tuple[int, Any]]]]:
        return [
            ("POST", r"/_runner/actions/runner-registration", self._r_registration),
            ("GET", r"/_runner/agents", self._r_find_agents),
            ("POST", r"/_runner/agents", self._r_add_agent),
            ("DELETE", r"/_runner/agents/(?P<id>\d+)", self._r_delete_agent),
            ("POST", r"/_runner/sessions", self._r_create_session),
            ("DELETE", r"/_runner/sessions/(?P<sid>[0-9a-f-]+)", self._r_delete_session),
            ("GET", r"/_runner/sessions/(?P<sid>[0-9a-f-]+)/message", self._r_message),
            ("POST", r"/_runner/session", self._r_create_session),
            ("DELETE", r"/_runner/session", self._r_delete_session),
            ("GET", r"/_runner/message", self._r_message),
            ("POST", r"/_runner/jobs/(?P<id>\d+)/(?P<what>start|complete)", self._r_job),
        ]

    def _tenant(self, auth: str, event: str) -> str:
        token = auth.removeprefix("Bearer ").strip()
        entry = self._tenant_tokens.get(token)
        if entry is None or entry[0] != event or entry[2] < time.time():
            raise _Reply(401, {"message": "Unauthorized"})
        return entry[1]

    def _r_registration(self, m: re.Match[str], query: dict[str, str], body: Any, auth: str) -> Any:
        token = auth.removeprefix("RemoteAuth ").strip()
        event = body.get("runner_event") if isinstance(body, dict) else None
        entry = self._reg_tokens.get(token)
        scope = self._scope_of_url(str(body.get("url", ""))) if isinstance(body, dict) else None
        kind = {"register": "registration", "remove": "remove"}.get(str(event))
        if entry is None or entry[1] < time.time() or entry[0] != kind or scope is None:
            raise _not_found()
        tenant = "fake-tenant-" + secrets.token_hex(16)
        self._tenant_tokens[tenant] = (str(event), scope, time.time() + 3600)
        return 200, {
            "url": "/_runner",
            "token": tenant,
            "token_schema": "OAuthAccessToken",
            "use_v2_flow": self.broker_flow,
        }

    def _r_find_agents(self, m: re.Match[str], query: dict[str, str], body: Any, auth: str) -> Any:
        try:
            scope = self._tenant(auth, "register")
        except _Reply:
            scope = self._tenant(auth, "remove")
        found = [
            {"id": r.id, "name": r.name}
            for r in self._runners.values()
            if r.scope == scope and r.name == query.get("name")
        ]
        return 200, {"count": len(found), "value": found}

    def _r_add_agent(self, m: re.Match[str], query: dict[str, str], body: Any, auth: str) -> Any:
        scope = self._tenant(auth, "register")
        name = str(body.get("name") or "")
        group = str(body.get("runner_group") or "default")
        if group.lower() != "default":
            raise _Reply(
                404,
                {
                    "typeName": "TaskAgentPoolNotFoundException",
                    "message": f'Could not find any self-hosted runner group named "{group}".',
                },
            )
        labels: list[tuple[int, str, str]] = []
        if not body.get("no_default_labels"):
            labels += [self._label(n, "read-only") for n in DEFAULT_LABELS]
        seen = {n.lower() for _, n, _ in labels}
        for label in body.get("labels") or []:
            if label.lower() not in seen:
                labels.append(self._label(label, "custom"))
                seen.add(label.lower())
        if not labels:
            raise _Reply(400, {"message": "A runner needs at least one label."})
        existing = next(
            (r for r in self._runners.values() if r.scope == scope and r.name == name), None
        )
        if existing is not None and not body.get("replace"):
            raise _Reply(
                409,
                {
                    "typeName": "TaskAgentExistsException",
                    "message": f"A runner exists with the same name {name}.",
                },
            )
        key_hash = hashlib.sha256(str(body.get("public_key", "")).encode()).hexdigest()
        client_id = str(uuid.uuid4())
        if existing is not None:  # --replace: same id, new key; the old listener is cut off
            if existing.job_id is not None:
                self._finish_job(self._jobs[existing.job_id], "cancelled")
            existing.labels = labels
            existing.client_id = client_id
            existing.key_hash = key_hash
            existing.session_id = existing.access_token = None
            # New credentials: what GitHub held against the old ones (a revoked token, a
            # refused session or poll) is gone with them; a network fault (retryable) stays.
            existing.token_revoked, existing.revoked_token = False, None
            existing.session_rejection = None
            if existing.poll_failure == "non_retryable":
                existing.poll_failure = None
            existing.ephemeral = bool(body.get("ephemeral"))
            existing.disable_update = bool(body.get("disable_update"))
            existing.version = str(body.get("version", ""))
            runner = existing
            replaced = True
        else:
            runner = _Runner(
                id=next(self._ids),
                name=name,
                scope=scope,
                labels=labels,
                ephemeral=bool(body.get("ephemeral")),
                disable_update=bool(body.get("disable_update")),
                version=str(body.get("version", "")),
                client_id=client_id,
                key_hash=key_hash,
            )
            self._runners[runner.id] = runner
            replaced = False
        self._lock.notify_all()
        return 200, {
            "id": runner.id,
            "name": runner.name,
            "replaced": replaced,
            "labels": [{"id": i, "name": n, "type": t} for i, n, t in runner.labels],
            "ephemeral": runner.ephemeral,
            "disable_update": runner.disable_update,
            "pool_id": 1,
            "pool_name": "Default",
            "authorization": {
                "client_id": client_id,
                "authorization_url": "/_runner/sessions",
            },
        }

    def _r_delete_agent(self, m: re.Match[str], query: dict[str, str], body: Any, auth: str) -> Any:
        scope = self._tenant(auth, "remove")
        runner = self._runners.get(int(m["id"]))
        if runner is None or runner.scope != scope:
            raise _Reply(404, {"typeName": "TaskAgentNotFoundException", "message": "not found"})
        self._remove_runner(runner, "cancelled")
        return 204, None

    def _r_create_session(
        self, m: re.Match[str], query: dict[str, str], body: Any, auth: str
    ) -> Any:
        client_id = str(body.get("client_id", ""))
        runner = next((r for r in self._runners.values() if r.client_id == client_id), None)
        key_hash = hashlib.sha256(str(body.get("key", "")).encode()).hexdigest()
        if runner is None or runner.key_hash != key_hash:
            raise _Reply(
                401,
                {
                    "error": "invalid_client",
                    "error_description": f"Registration {client_id} was not found.",
                },
            )
        if runner.token_revoked:
            raise _revoked()
        if runner.session_rejection is not None:
            raise _Reply(
                runner.session_rejection, {"message": HTTPStatus(runner.session_rejection).phrase}
            )
        now = time.time()
        client_now = _parse_time(body.get("client_time", now))
        if client_now - now > CLOCK_SKEW_LIMIT:
            raise _Reply(
                401,
                {
                    "error": "invalid_grant",
                    "error_description": (
                        f"The bearer token is not valid until {_dotnet_time(client_now)}. "
                        f"Current server time is {_dotnet_time(now)}."
                    ),
                },
            )
        if now - client_now > CLOCK_SKEW_LIMIT:
            raise _Reply(
                401,
                {
                    "error": "invalid_grant",
                    "error_description": (
                        f"The bearer token expired on {_dotnet_time(client_now + CLOCK_SKEW_LIMIT)}"
                        f". Current server time is {_dotnet_time(now)}."
                    ),
                },
            )
        if self._session_alive(runner):
            # the server's texts, as real logs show them: legacy "Failed to create session.
            # The actions runner <name> already has an active session." (actions/runner#1506),
            # broker "TaskAgentSessionConflictException: Error: Conflict" (ARC#4155)
            if m.string == "/_runner/session":
                raise _Reply(409, {"message": "Error: Conflict"})
            message = f"The actions runner {runner.name} already has an active session."
            raise _Reply(409, {"typeName": "TaskAgentSessionConflictException", "message": message})
        runner.session_id = str(uuid.uuid4())
        runner.access_token = "fake-access-" + secrets.token_hex(16)
        runner.seen = time.monotonic()
        runner.version = str(body.get("version") or runner.version)
        self._lock.notify_all()
        return 200, {
            "session_id": runner.session_id,
            "session_name": body.get("session_name"),
            "access_token": runner.access_token,
            "expires_in": 3600,
            "agent": {"id": runner.id, "name": runner.name, "version": runner.version},
        }

    def _session(self, m: re.Match[str], auth: str) -> _Runner:
        """The runner whose session the request names: by id in the legacy flow's path, by
        its access token alone in the broker flow (BrokerHttpClient.cs sends no id)."""
        sid = m.groupdict().get("sid")
        broker = sid is None
        token = auth.removeprefix("Bearer ").strip()
        runner = next(
            (r for r in self._runners.values() if r.access_token == token and token), None
        )
        if runner is not None and (broker or runner.session_id == sid):
            return runner
        if any(r.revoked_token == token for r in self._runners.values()):
            raise _revoked()
        if token in self._gone_tokens:
            message = "No runner with this session's id exists."
            if broker:
                raise _Reply(404, {"errorKind": "RunnerNotFound", "message": message})
            raise _Reply(404, {"typeName": "TaskAgentNotFoundException", "message": message})
        message = f"The session {sid or 'of this runner'} has expired or was deleted."
        if broker:
            raise _Reply(404, {"errorKind": "RunnerSessionInvalid", "message": message})
        raise _Reply(404, {"typeName": "TaskAgentSessionExpiredException", "message": message})

    def _r_delete_session(
        self, m: re.Match[str], query: dict[str, str], body: Any, auth: str
    ) -> Any:
        """Idempotent: deleting a session GitHub no longer has (expired, revoked, runner
        deleted) succeeds, so the listener's exit is that of the error that ended it."""
        try:
            runner = self._session(m, auth)
        except _Reply:
            return 204, None
        if runner.job_id is not None:
            self._finish_job(self._jobs[runner.job_id], "cancelled")
        runner.session_id = runner.access_token = None
        self._lock.notify_all()
        return 204, None

    def _r_message(self, m: re.Match[str], query: dict[str, str], body: Any, auth: str) -> Any:
        runner = self._session(m, auth)
        broker = "sid" not in m.groupdict()
        if runner.poll_failure == "non_retryable":  # VssUnauthorizedException at the runner
            raise _Reply(401, {"message": "Unauthorized"})
        if runner.poll_failure == "retryable":
            raise _Reply(503, {"message": "Service Unavailable"})
        runner.seen = time.monotonic()
        runner.polling += 1
        try:
            deadline = time.monotonic() + self.poll_timeout
            while True:
                runner = self._session(m, auth)  # deleted while we waited?
                if runner.poll_failure is not None:
                    return 204, None  # the next poll fails
                if self.deprecated_runner_version in (runner.version, "*"):
                    message = (
                        f"Runner version v{runner.version} is deprecated and cannot receive "
                        "messages."
                    )
                    if broker:
                        raise _Reply(403, {"errorKind": "RunnerVersionTooOld", "message": message})
                    raise _Reply(
                        403,
                        {"typeName": "AccessDeniedException", "errorCode": 1, "message": message},
                    )
                if query.get("status", "Online") == "Online" and runner.job_id is None:
                    job = self._eligible_job(runner)
                    if job is not None:
                        return 200, self._assign(runner, job)
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping.is_set():
                    return 204, None
                self._lock.wait(left)
        finally:
            runner.polling -= 1
            runner.seen = time.monotonic()

    def _assign(self, runner: _Runner, job: _Job) -> Json:
        job.runner_id = runner.id
        job.runner_name = runner.name
        job.assigned_at = time.time()
        runner.job_id = job.id
        body = {
            "job_id": job.id,
            "run_id": job.run_id,
            "job_display_name": job.name,
            "repository": f"{self.owner}/{self.repo}",
            "labels": job.labels,
            "duration": job.duration,
            "write_bytes": job.write_bytes,
            "job_token": job.token,
        }
        return {"message_id": job.id, "message_type": "RunnerJobRequest", "body": body}

    def _r_job(self, m: re.Match[str], query: dict[str, str], body: Any, auth: str) -> Any:
        job = self._jobs.get(int(m["id"]))
        if job is None or auth.removeprefix("Bearer ").strip() != job.token:
            raise _Reply(404, {"message": "job not found"})
        if m["what"] == "start":
            if job.status == "queued":
                job.status = "in_progress"
                job.started_at = time.time()
        else:
            conclusion = str((body or {}).get("conclusion", "success"))
            if conclusion not in ("success", "failure", "cancelled"):
                raise _Reply(400, {"message": f"bad conclusion {conclusion}"})
            log = (body or {}).get("log") or []
            job.log += [str(line)[:4096] for line in log[:1000] if isinstance(line, str)]
            self._finish_job(job, conclusion)
        return 200, self._job_json(job)


class _Handler(BaseHTTPRequestHandler):
    """Routes one request; every answer carries Date and x-ratelimit-* headers."""

    github: FakeGitHub
    protocol_version = "HTTP/1.1"
    server_version = "GitHub.com"

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``FakeGitHub.requests`` instead."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    # -- plumbing --------------------------------------------------------------------

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise _Reply(
                400, {"message": "Problems parsing JSON", "documentation_url": DOCS}
            ) from None

    def _rate_headers(self) -> dict[str, str]:
        gh = self.github
        now = int(time.time())
        if now >= gh._rl_reset:
            gh._rl_reset = now + 3600
            gh._rl_used = 0
        remaining = max(0, gh._rl_limit - gh._rl_used)
        if gh._failure == "rate_limit":
            remaining = 0
        return {
            "x-ratelimit-limit": str(gh._rl_limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-used": str(gh._rl_limit - remaining),
            "x-ratelimit-reset": str(gh._rl_reset),
            "x-ratelimit-resource": "core",
        }

    def _send(
        self, status: int, body: Any, headers: dict[str, str] | None = None, etag: bool = False
    ) -> None:
        data = b"" if body is None or status in (204, 304) else json.dumps(body).encode()
        # Recorded before the reply leaves: a client that has its answer must find
        # its request in ``requests`` (recording afterwards raced with the test).
        with self.github._lock:
            self.github.requests.append((self.command, self._path, status))
        self._recorded = status
        self.send_response(status, HTTPStatus(status).phrase)  # adds Server and Date
        self.send_header("x-github-request-id", secrets.token_hex(8).upper())
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self, method: str) -> None:
        gh = self.github
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        self._path, self._recorded = path, None
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        status = 500
        try:
            body = self._body() if method in ("POST", "PATCH", "PUT") else None
            if path.startswith("/_runner/"):
                status = self._handle_runner(method, path, query, body)
            else:
                status = self._handle_rest(method, path, query, body)
        except (BrokenPipeError, ConnectionResetError):
            status = 499
        except _Reply as reply:  # raised before any routing (bad JSON)
            with gh._lock:
                headers = {**self._rate_headers(), **reply.headers}
            self._send(reply.status, reply.body, headers)
            status = reply.status
        finally:
            if self._recorded is None:  # nothing was sent (e.g. the client went away)
                with gh._lock:
                    gh.requests.append((method, path, status))

    def _fail(self, runner: bool) -> int | None:
        """Apply ``fail_with``; returns the status sent, or None to go on."""
        gh = self.github
        with gh._lock:
            kind = gh._failure
            if kind is None or (runner and (kind == "rate_limit" or not gh._failure_runner_too)):
                return None
            gh._fail_count += 1
            count = gh._fail_count
            headers = self._rate_headers()
        if kind == "timeout":
            gh._stopping.wait(gh.timeout_hold)
            body = {
                "message": "We couldn't respond to your request in time. Sorry about that. "
                "Please try resubmitting your request and contact us if the problem persists."
            }
            self._send(504, body, headers)
            return 504
        if kind == "5xx":
            status = 502 if count % 2 else 503
            body = (
                {"message": "Server Error"}
                if status == 502
                else {"message": "Service Unavailable", "documentation_url": DOCS, "status": "503"}
            )
            self._send(status, body, headers)
            return status
        # rate_limit
        with gh._lock:
            gh._rl_used = gh._rl_limit
            headers = self._rate_headers()
        headers["x-ratelimit-reset"] = str(int(time.time()) + gh._retry_after)
        headers["retry-after"] = str(gh._retry_after)
        self._send(
            403,
            {
                "message": "API rate limit exceeded for user ID 4242. If you reach out to "
                "GitHub Support for help, please include the request ID.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                "status": "403",
            },
            headers,
        )
        return 403

    def _handle_rest(self, method: str, path: str, query: dict[str, str], body: Any) -> int:
        gh = self.github
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        account = gh._accounts.get(token.strip())
        if not auth and path == "/meta":
            account = _Account("anonymous", 0, "User", "NONE", {})
        elif scheme.lower() not in ("bearer", "token") or account is None:
            with gh._lock:
                headers = self._rate_headers()
            self._send(
                401,
                {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"},
                headers,
            )
            return 401
        failed = self._fail(runner=False)
        if failed is not None:
            return failed
        with gh._lock:
            gh._reap()
            if gh._rl_used >= gh._rl_limit:
                headers = self._rate_headers()
                self._send(
                    403,
                    {
                        "message": "API rate limit exceeded for user ID 4242.",
                        "documentation_url": DOCS,
                        "status": "403",
                    },
                    headers,
                )
                return 403
            gh._caller = account
            try:
                status, payload, extra = self._route_rest(method, path, query, body)
            except _Reply as reply:
                status, payload, extra = reply.status, reply.body, reply.headers
            headers = dict(extra)
            etag = None
            if method == "GET" and status == 200:
                digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
                etag = f'W/"{digest}"'
                headers["ETag"] = etag
                headers["Cache-Control"] = "private, max-age=60, s-maxage=60"
                headers["Vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP"
            not_modified = etag is not None and etag in self._if_none_match()
            if not not_modified:  # a 304 does not count against the primary rate limit
                gh._rl_used += 1
            headers.update(self._rate_headers())
            headers["x-github-api-version-selected"] = "2022-11-28"
        if not_modified:
            self._send(304, None, headers)
            return 304
        self._send(status, payload, headers)
        return status

    def _if_none_match(self) -> list[str]:
        raw = self.headers.get("If-None-Match", "")
        tags = [t.strip() for t in raw.split(",") if t.strip()]
        # GitHub compares weakly: "abc" matches W/"abc"
        return tags + [f"W/{t}" for t in tags if not t.startswith("W/")]

    def _route_rest(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        gh = self.github
        path_matched = False
        for verb, pattern, handler, needed in gh._rest_routes():
            match = re.fullmatch(pattern, path)
            if match is None:
                continue
            path_matched = True
            if verb != method:
                continue
            if not gh._caller.allows(needed):
                raise _Reply(
                    403,
                    {
                        "message": "Resource not accessible by personal access token",
                        "documentation_url": DOCS,
                        "status": "403",
                    },
                    {"X-Accepted-GitHub-Permissions": str(needed)},
                )
            result = handler(match, query, body)
            status, payload = result[0], result[1]
            headers: dict[str, str] = {}
            if len(result) == 5:  # a page of a list: add GitHub's Link header
                total, per_page, page = result[2], result[3], result[4]
                headers = self._link(path, query, total, per_page, page)
            return status, payload, headers
        if path_matched:
            return 404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}, {}
        raise _not_found()

    def _link(
        self, path: str, query: dict[str, str], total: int, per_page: int, page: int
    ) -> dict[str, str]:
        last = max(1, -(-total // per_page))
        if last == 1:
            return {}

        # Like GitHub, on the host the client asked (the guest reaches us as 10.0.2.2).
        host = self.headers.get("Host")
        base = f"http://{host}" if host else self.github.url

        def url(p: int) -> str:
            params = {**query, "per_page": str(per_page), "page": str(p)}
            return f"{base}{path}?" + "&".join(f"{k}={v}" for k, v in params.items())

        links = []
        if page < last:
            links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
        if page > 1:
            links += [f'<{url(page - 1)}>; rel="prev"', f'<{url(1)}>; rel="first"']
        return {"Link": ", ".join(links)}

    def _handle_runner(self, method: str, path: str, query: dict[str, str], body: Any) -> int:
        gh = self.github
        failed = self._fail(runner=True)
        if failed is not None:
            return failed
        auth = self.headers.get("Authorization", "")
        with gh._lock:
            status: int
            payload: Any
            for verb, pattern, handler in gh._runner_routes():
                match = re.fullmatch(pattern, path)
                if match is None or verb != method:
                    continue
                try:
                    status, payload = handler(match, query, body or {}, auth)
                except _Reply as reply:
                    status, payload = reply.status, reply.body
                break
            else:
                status, payload = 404, {"message": "Not Found"}
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send(status, payload)
        return status
