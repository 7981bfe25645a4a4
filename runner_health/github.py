"""The one place that talks to GitHub's REST API.

>>> gh = GitHub(settings.github, token)
>>> gh.runner("assay-bpf-runner")["status"]
'online'

Two error types matter to callers: ``GitHubUnavailable`` (no answer, 5xx, rate-limited:
we know nothing, so nothing destructive may follow) and ``GitHubError`` (GitHub answered
no: bad token, missing permission, unknown repository).
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from runner_health import redact
from runner_health.config import GitHubSettings

API_VERSION = "2022-11-28"


class GitHubError(Exception):
    """GitHub answered, and the answer was no."""


class GitHubUnavailable(GitHubError):
    """GitHub could not be asked: network error, timeout, 5xx or rate limit."""


class GitHub:
    """A requests session with timeouts, ETag revalidation and GitHub's clock."""

    def __init__(self, settings: GitHubSettings, token: str) -> None:
        redact.register(token)
        self.settings = settings
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {token}",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "runner-health",
            }
        )
        self._etags: dict[str, tuple[str, Any]] = {}
        self.last_date: datetime | None = None

    # -- transport ---------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One call, retried once on a network error or 5xx; never waits without a timeout."""
        url = self.settings.api_url + path
        for attempt in (1, 2):
            try:
                response = self.session.request(
                    method, url, timeout=self.settings.timeout_seconds, **kwargs
                )
            except requests.RequestException as exc:
                problem = f"{method} {path}: {type(exc).__name__}"
            else:
                self._note_date(response)
                if response.status_code < 500:
                    self._raise_for_status(method, path, response)
                    return response
                problem = f"{method} {path}: HTTP {response.status_code}"
            if attempt == 1:
                time.sleep(1)
        raise GitHubUnavailable(f"GitHub API unreachable ({problem})")

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET with If-None-Match: a 304 answer costs no rate limit."""
        key = path + "?" + "&".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
        headers = {}
        if key in self._etags:
            headers["If-None-Match"] = self._etags[key][0]
        response = self.request("GET", path, params=params, headers=headers)
        if response.status_code == 304:
            return self._etags[key][1]
        body = response.json()
        if response.headers.get("ETag"):
            self._etags[key] = (response.headers["ETag"], body)
        return body

    def _note_date(self, response: requests.Response) -> None:
        if response.headers.get("Date"):
            with contextlib.suppress(TypeError, ValueError):
                self.last_date = parsedate_to_datetime(response.headers["Date"])

    def _raise_for_status(self, method: str, path: str, response: requests.Response) -> None:
        if response.status_code < 400:
            return
        try:
            message = response.json().get("message", "")
        except ValueError:
            message = response.text[:200]
        if response.status_code in (403, 429) and (
            response.headers.get("x-ratelimit-remaining") == "0"
            or "retry-after" in response.headers
            or "rate limit" in message.lower()
        ):
            reset = response.headers.get("retry-after") or response.headers.get("x-ratelimit-reset")
            raise GitHubUnavailable(f"GitHub API rate limit reached (retry after/at {reset})")
        raise GitHubError(f"{method} {path}: HTTP {response.status_code} {message}".strip())

    # -- clock -------------------------------------------------------------------------

    def server_time(self) -> datetime:
        """GitHub's clock (the Date header): the one that judges the runner's tokens."""
        self.request("GET", f"{self.settings.scope_path}/actions/runners", params={"per_page": 1})
        assert self.last_date is not None, "GitHub sent no Date header"
        return self.last_date.astimezone(UTC)

    # -- runners -----------------------------------------------------------------------

    def runners(self) -> list[dict[str, Any]]:
        runners: list[dict[str, Any]] = []
        for page in range(1, 100):
            body = self.get_json(
                f"{self.settings.scope_path}/actions/runners", {"per_page": 100, "page": page}
            )
            runners.extend(body.get("runners", []))
            if len(runners) >= body.get("total_count", 0) or not body.get("runners"):
                break
        return runners

    def runner(self, name: str) -> dict[str, Any] | None:
        """The runner called ``name``, or None when GitHub does not know it."""
        return next((r for r in self.runners() if r.get("name") == name), None)

    def registration_token(self) -> str:
        return self._token("registration-token")

    def remove_token(self) -> str:
        return self._token("remove-token")

    def _token(self, kind: str) -> str:
        body = self.request("POST", f"{self.settings.scope_path}/actions/runners/{kind}").json()
        token = body["token"]
        redact.register(token)
        return token

    # -- queued work -------------------------------------------------------------------

    def queued_jobs(self) -> list[dict[str, Any]]:
        """Jobs of queued workflow runs that no runner has taken yet (repository scope only)."""
        if not self.settings.repository:
            return []
        runs = self.get_json(
            f"{self.settings.scope_path}/actions/runs", {"status": "queued", "per_page": 100}
        ).get("workflow_runs", [])
        jobs = []
        for run in runs:
            body = self.get_json(
                f"{self.settings.scope_path}/actions/runs/{run['id']}/jobs", {"per_page": 100}
            )
            jobs.extend(
                job
                for job in body.get("jobs", [])
                if job.get("status") == "queued" and not job.get("runner_id")
            )
        return jobs

    # -- issues ------------------------------------------------------------------------

    def open_issues(self, label: str) -> list[dict[str, Any]]:
        """Open issues with ``label`` (pull requests, which the endpoint also returns, dropped)."""
        issues = self.get_json(
            f"{self.settings.scope_path}/issues", {"state": "open", "labels": label}
        )
        return [i for i in issues if "pull_request" not in i]

    def create_issue(self, title: str, body: str, labels: list[str]) -> dict[str, Any]:
        return self.request(
            "POST",
            f"{self.settings.scope_path}/issues",
            json={"title": title, "body": body, "labels": labels},
        ).json()

    def comment_issue(self, number: int, body: str) -> None:
        self.request(
            "POST", f"{self.settings.scope_path}/issues/{number}/comments", json={"body": body}
        )

    def close_issue(self, number: int) -> None:
        self.request(
            "PATCH", f"{self.settings.scope_path}/issues/{number}", json={"state": "closed"}
        )


def runner_label_names(runner: dict[str, Any]) -> set[str]:
    """A runner's labels, lower-cased: GitHub matches runs-on labels case-insensitively."""
    return {label["name"].lower() for label in runner.get("labels", [])}


def age_minutes(timestamp: str, now: datetime | None = None) -> float:
    """Minutes since an ISO-8601 GitHub timestamp."""
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return ((now or datetime.now(UTC)) - then).total_seconds() / 60
