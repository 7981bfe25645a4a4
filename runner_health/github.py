"""The one place that talks to GitHub's REST API.

>>> gh = GitHub(settings.github, token)
>>> gh.runner("assay-bpf-runner")["status"]
'online'

Two error types matter to callers: ``GitHubUnavailable`` (no answer, 5xx, rate-limited, or an
answer GitHub would not give: HTML from a proxy, truncated or wrong-shaped JSON, a page link
to another host; we know nothing, so nothing destructive may follow) and ``GitHubError``
(GitHub answered no: bad token, missing permission, unknown repository). Each message is one
line naming the cause and the fix (the setting, or the permission a 403 asks for). Every
answer is checked here for the fields callers use, so callers never meet a KeyError: a runner
list missing ``runners`` is an error, never "no runners" (which would re-register the runner).

Without a token (``github.use_token = false``) only GitHub's clock can be read; every other
call raises ``NoToken``.

Every call ends in bounded time: ``timeout_seconds`` bounds each attempt as a whole
(connect, headers, body), not each read; a call makes at most two attempts, 1 s apart.
Lists follow GitHub's ``Link: rel="next"`` pages, at most ``MAX_PAGES``, on ``api_url`` only.

GETs are conditional (an authorised 304 costs no rate limit). Pass ``etags`` (a dict the
caller saves as JSON, e.g. the state store's) and the validators outlive the process:
``GitHub(settings, token, etags=store.etags)``.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from runner_health import redact
from runner_health.config import GitHubSettings

API_VERSION = "2022-11-28"
MAX_PAGES = 10  # of 100 items: GitHub lists at most 1,000 runs for a filtered query
MAX_BODY = 32 * 1024 * 1024  # 100 issues or comments of GitHub's maximum size fit
_GITHUBS = "verifiable_password_authentication"  # a field of GET /meta only GitHub sends

Json = dict[str, Any]
Check = Callable[[Any], None]


class GitHubError(Exception):
    """GitHub answered, and the answer was no."""


class GitHubUnavailable(GitHubError):
    """GitHub could not be asked, or what answered was not GitHub: we know nothing."""


class NoToken(GitHubError):
    """This machine holds no admin token (``github.use_token = false``): the host asks GitHub."""

    def __init__(self) -> None:
        super().__init__(
            "no admin token on this machine (github.use_token = false): "
            "the host or the workflow checks GitHub"
        )


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, read whole."""

    where: str  # method and endpoint, for messages
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str  # after redirects: relative links resolve against it
    links: dict[str, dict[str, str]]

    def snippet(self) -> str:
        """The start of the body on one line, scrubbed: enough to recognise a login page."""
        text = " ".join(self.body[:4096].decode("utf-8", "replace").split())
        return repr(redact.scrub(text)[:120])

    def json(self, check: Check) -> Any:
        """The body as JSON of the shape ``check`` accepts, else GitHubUnavailable."""
        try:
            body = json.loads(self.body)
            check(body)
        except (ValueError, RecursionError) as exc:
            raise GitHubUnavailable(
                f"{self.where}: HTTP {self.status}: not an answer from GitHub "
                f"({redact.scrub(str(exc))[:200]}): {self.snippet()}"
            ) from None
        return body


class ETagCache:
    """Conditional-request validators and the bodies they stand for, in a JSON-ready dict the
    caller may keep across runs (the state store's ``etags``): cron's next pass then gets 304s,
    which cost no rate limit. ``{url: {"etag", "body", "next"}}``, oldest first; bounded in
    entries and bytes; what was loaded is data, never trusted: a bad entry is dropped."""

    MAX_ENTRIES = 1024  # a queue of many runs: one entry per run's jobs
    MAX_BYTES = 4 * 1024 * 1024  # the whole section, as JSON
    MAX_ENTRY_BYTES = 1024 * 1024

    def __init__(self, api_url: str, entries: dict) -> None:
        self.entries = entries
        for url in [u for u in entries if not self._valid(u, entries[u], api_url)]:
            del entries[url]
        self._sizes = {url: _json_size(entry) for url, entry in entries.items()}
        self._trim()

    @staticmethod
    def _valid(url: Any, entry: Any, api_url: str) -> bool:
        return (
            isinstance(url, str)
            and url.startswith(api_url + "/")
            and isinstance(entry, dict)
            and set(entry) == {"etag", "body", "next"}
            and isinstance(entry["etag"], str)
            and _ETAG.fullmatch(entry["etag"]) is not None
            and isinstance(entry["next"], (str, type(None)))
        )

    def get(self, url: str) -> tuple[str, Any, str | None] | None:
        """(etag, body, next page) for ``url``, now the newest entry; None when not cached."""
        entry = self.entries.pop(url, None)
        if entry is None:
            return None
        self.entries[url] = entry
        return entry["etag"], entry["body"], entry["next"]

    def put(self, url: str, etag: str, body: Any, next_url: str | None) -> None:
        self.drop(url)
        entry = {"etag": etag, "body": body, "next": next_url}
        size = _json_size(entry)
        if _ETAG.fullmatch(etag) and size <= self.MAX_ENTRY_BYTES:
            self.entries[url], self._sizes[url] = entry, size
            self._trim()

    def drop(self, url: str) -> None:
        self.entries.pop(url, None)
        self._sizes.pop(url, None)

    def _trim(self) -> None:
        """Forget the oldest entries until the bounds hold."""
        while len(self.entries) > self.MAX_ENTRIES or sum(self._sizes.values()) > self.MAX_BYTES:
            self.drop(next(iter(self.entries)))


# An entity tag as HTTP sends it (weak or strong), short: it goes back in a header.
_ETAG = re.compile(r'(?:W/)?"[\x21\x23-\x7e]{0,256}"')


def _json_size(value: Any) -> int:
    try:
        return len(json.dumps(value))
    except (TypeError, ValueError, RecursionError):
        return ETagCache.MAX_BYTES + 1  # not JSON: never kept


@dataclass(frozen=True)
class QueuedJobs:
    """Jobs of queued runs that no runner has taken, and the lists cut at MAX_PAGES."""

    jobs: list[Json] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)


class GitHub:
    """A requests session with whole-call deadlines, checked answers, ETags and GitHub's clock."""

    def __init__(
        self, settings: GitHubSettings, token: str | None = None, etags: dict | None = None
    ) -> None:
        self.settings = settings
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "runner-health",
            }
        )
        if token is not None:
            redact.register(token)
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.etags = ETagCache(self.settings.api_url, {} if etags is None else etags)

    # -- transport ---------------------------------------------------------------------

    def _url(self, path: str, params: dict[str, Any] | None = None) -> str:
        return self.settings.api_url + path + (f"?{urlencode(params)}" if params else "")

    def request(self, method: str, url: str, *, anonymous: bool = False, **kwargs: Any) -> Reply:
        """One call, retried once on a network error, a missed deadline or a 5xx: at most
        twice timeout_seconds + 1 s. Not retried: an answer, even a malformed one (a write
        may have happened). Only an ``anonymous`` call goes without a token."""
        if not anonymous and "Authorization" not in self.session.headers:
            raise NoToken()
        where = f"{method} {url.removeprefix(self.settings.api_url)}"
        for attempt in (1, 2):
            try:
                reply = self._attempt(method, url, where, **kwargs)
            except TimeoutError as exc:
                problem = str(exc)
            except requests.RequestException as exc:
                problem = why(exc)
            else:
                if reply.status < 500:
                    _raise_for_status(reply, self.settings)
                    return reply
                problem = f"HTTP {reply.status}, GitHub's side failed; it usually passes"
            if attempt == 1:
                time.sleep(1)
        raise GitHubUnavailable(f"GitHub API unreachable: {method} {url.split('?')[0]}: {problem}")

    def _attempt(self, method: str, url: str, where: str, **kwargs: Any) -> Reply:
        """One try, over at timeout_seconds whatever the server does.

        A read timeout bounds each read only: a server dripping a byte a second (headers
        included) would hold the call for ever. So the exchange runs in a daemon thread the
        call stops waiting for at the deadline; its connection is shut as soon as it has one.
        """
        timeout = self.settings.timeout_seconds
        done: dict[str, Any] = {}
        late = threading.Event()
        worker = threading.Thread(
            target=self._exchange, args=(method, url, where, kwargs, done, late), daemon=True
        )
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            late.set()  # before looking for the response: _exchange checks after storing it
            if "response" in done:
                with contextlib.suppress(Exception):
                    done["response"].raw.shutdown()
            raise TimeoutError(f"no whole answer within {timeout:g} s")
        if "error" in done:
            raise done["error"]
        return done["reply"]

    def _exchange(
        self,
        method: str,
        url: str,
        where: str,
        kwargs: dict[str, Any],
        done: dict[str, Any],
        late: threading.Event,
    ) -> None:
        """_attempt's thread: send, read the body (at most MAX_BODY), leave the outcome in done."""
        try:
            with self.session.request(
                method, url, stream=True, timeout=self.settings.timeout_seconds, **kwargs
            ) as response:
                done["response"] = response
                if late.is_set():  # the caller gave up before it could shut this one
                    return
                body = bytearray()
                for chunk in response.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise GitHubUnavailable(
                            f"{where}: HTTP {response.status_code}: answer larger than {MAX_BODY} bytes"
                        )
                done["reply"] = Reply(
                    where,
                    response.status_code,
                    response.headers,
                    bytes(body),
                    response.url,
                    response.links,
                )
        except Exception as exc:  # handed to the caller's thread
            done["error"] = exc

    def _get(
        self,
        url: str,
        check: Check,
        headers: dict[str, str] | None = None,
        keep: Callable[[Any], Any] = lambda body: body,
        **kwargs: Any,
    ) -> tuple[Any, str | None, Reply]:
        """GET ``url`` with If-None-Match (an authorised 304 costs no rate limit): the body,
        checked (a cached one again: the state file is only data), the next page's URL and
        the reply. Only a 200 is kept (``keep`` of it: what callers use), never an error."""
        extra = headers or {}
        cached = self.etags.get(url)
        conditional = {"If-None-Match": cached[0]} if cached else {}
        reply = self.request("GET", url, headers=extra | conditional, **kwargs)
        if reply.status == 304 and cached:
            try:
                check(cached[1])
                return cached[1], cached[2] and self._under_api(cached[2], reply), reply
            except (ValueError, RecursionError, GitHubUnavailable):
                self.etags.drop(url)  # a cache that fails the checks is no cache: ask again
                return self._get(url, check, extra, keep, **kwargs)
        body = reply.json(check)
        next_url = self._next_page(reply)
        if reply.status == 200 and reply.headers.get("ETag"):
            self.etags.put(url, reply.headers["ETag"], keep(body), next_url)
        return body, next_url, reply

    def _next_page(self, reply: Reply) -> str | None:
        """The ``rel="next"`` URL: only under api_url, where the token may go."""
        link = reply.links.get("next", {}).get("url")
        return None if link is None else self._under_api(urljoin(reply.url, link), reply)

    def _under_api(self, url: str, reply: Reply) -> str:
        """``url`` when it is under api_url, else GitHubUnavailable."""
        base, split = urlsplit(self.settings.api_url), urlsplit(url)
        if (split.scheme, split.netloc) != (base.scheme, base.netloc) or not split.path.startswith(
            base.path + "/"
        ):
            raise GitHubUnavailable(
                f"{reply.where}: HTTP {reply.status}: the next page is not under "
                f"{self.settings.api_url}: {redact.scrub(url)[:200]!r}"
            )
        return url

    def _pages(
        self,
        path: str,
        params: dict[str, Any],
        key: str | None,
        item: Callable[[Any, str], None],
        unread: list[str] | None = None,
        keep: Callable[[Any], Any] = lambda body: body,
    ) -> Iterator[Json]:
        """The items of a list (``body[key]``, or the body itself) page by page, checked
        with ``item`` (``keep``: what of a page the ETag cache keeps). Past MAX_PAGES: a note
        in ``unread`` when given, else GitHubUnavailable (a list cut short must not read as
        "not there")."""
        url = self._url(path, params)
        for _ in range(MAX_PAGES):
            body, next_url, _ = self._get(url, _page_check(key, item), keep=keep)
            yield from body if key is None else body[key]
            if next_url is None:
                return
            url = next_url
        cut = f"GET {path}: more than {MAX_PAGES} pages, not read further"
        if unread is None:
            raise GitHubUnavailable(cut)
        unread.append(cut)

    # -- clock -------------------------------------------------------------------------

    def server_time(self) -> datetime:
        """GitHub's clock (the Date header): the one that judges the runner's tokens.

        Read from ``GET /meta``, which needs no token, and only from an answer that is GitHub's
        (its ``verifiable_password_authentication``): a proxy's page and its clock are not.
        ``no-cache``: a cache's copy would carry the Date it was made. Conditional: a 304
        carries GitHub's Date too, and with the token costs no rate limit; only the field
        checked is kept (the whole answer is hundreds of KiB of address ranges)."""
        _, _, reply = self._get(
            self._url("/meta"),
            lambda body: _fields(body, {_GITHUBS: bool}, "meta"),
            {"Cache-Control": "no-cache"},
            keep=lambda body: {_GITHUBS: body[_GITHUBS]},
            anonymous=True,
        )
        date = reply.headers.get("Date", "")
        try:
            when = parsedate_to_datetime(date)
        except ValueError:
            raise GitHubUnavailable(
                f"{reply.where}: HTTP {reply.status}: no usable Date header ({redact.scrub(date)[:60]!r})"
            ) from None
        # HTTP dates are GMT; parsedate_to_datetime leaves "-0000" naive.
        return when.replace(tzinfo=when.tzinfo or timezone.utc).astimezone(timezone.utc)

    # -- runners -----------------------------------------------------------------------

    def runners(self, name: str | None = None) -> list[Json]:
        """Every runner in scope (only those called ``name`` when given: GitHub filters)."""
        params: dict[str, Any] = {"per_page": 100} | ({"name": name} if name else {})
        path = f"{self.settings.scope_path}/actions/runners"
        return [
            r for r in self._pages(path, params, "runners", _runner) if name in (None, r["name"])
        ]

    def runner(self, name: str) -> Json | None:
        """The runner called ``name``, or None when GitHub does not know it."""
        return next(iter(self.runners(name)), None)

    def registration_token(self) -> str:
        return self._token("registration-token")

    def remove_token(self) -> str:
        return self._token("remove-token")

    def add_runner_labels(self, runner_id: int, labels: Sequence[str]) -> set[str]:
        """Add custom ``labels`` to a registered runner, without re-registering it: the
        lower-cased names of every label it has now."""
        reply = self.request(
            "POST",
            self._url(f"{self.settings.scope_path}/actions/runners/{runner_id}/labels"),
            json={"labels": list(labels)},
        )
        body = reply.json(_page_check("labels", _label))
        return {label["name"].lower() for label in body["labels"]}

    def _token(self, kind: str) -> str:
        reply = self.request(
            "POST", self._url(f"{self.settings.scope_path}/actions/runners/{kind}")
        )
        token = reply.json(lambda body: _fields(body, {"token": str}, "answer"))["token"]
        redact.register(token)
        return token

    # -- queued work -------------------------------------------------------------------

    def queue_repositories(self) -> tuple[str, ...]:
        """The repositories whose jobs can reach the runner: its own, or those an organisation
        runner's config lists (GitHub has no organisation-wide list of queued jobs)."""
        if self.settings.repository:
            return (self.settings.repository,)
        return self.settings.repositories

    def queued_jobs(self) -> QueuedJobs:
        """Jobs of queued workflow runs that no runner has taken yet, in every one of
        ``queue_repositories()``; each job carries its ``repository``."""
        queued = QueuedJobs()
        for repository in self.queue_repositories():
            runs = self._pages(
                f"/repos/{repository}/actions/runs",
                {"status": "queued", "per_page": 100},
                "workflow_runs",
                lambda run, what: _fields(run, {"id": int}, what),
                queued.unread,
                keep=lambda page: {
                    "workflow_runs": [{"id": r["id"]} for r in page["workflow_runs"]]
                },
            )
            for run in runs:
                jobs = self._pages(
                    f"/repos/{repository}/actions/runs/{run['id']}/jobs",
                    {"per_page": 100},
                    "jobs",
                    _job,
                    queued.unread,
                )
                queued.jobs.extend(
                    {**j, "repository": repository}
                    for j in jobs
                    if j["status"] == "queued" and not j["runner_id"]
                )
        return queued

    # -- jobs --------------------------------------------------------------------------

    def job(self, repository: str, job_id: int) -> Json:
        """A workflow job (``GET /repos/{repository}/actions/jobs/{job_id}``): its status,
        conclusion and completed_at; GitHubError (404) when the repository has no such job."""
        body, _, _ = self._get(
            self._url(f"/repos/{repository}/actions/jobs/{int(job_id)}"),
            lambda body: _fields(
                body,
                {
                    "id": int,
                    "status": str,
                    "conclusion": (str, type(None)),
                    "completed_at": (str, type(None)),
                },
                "job",
            ),
        )
        return body

    # -- issues ------------------------------------------------------------------------

    def login(self) -> str:
        """The login the token writes as (``GET /user``: a PAT can read it; an app's token cannot)."""
        reply = self.request("GET", self._url("/user"))
        return reply.json(lambda body: _fields(body, {"login": str}, "user"))["login"]

    def open_issues(self, label: str) -> list[Json]:
        """Open issues with ``label`` (pull requests, which the endpoint also returns, dropped)."""
        issues = self._pages(
            f"{self.settings.scope_path}/issues",
            {"state": "open", "labels": label, "per_page": 100},
            None,
            _issue,
        )
        return [i for i in issues if "pull_request" not in i]

    def create_issue(self, title: str, body: str, labels: list[str]) -> Json:
        reply = self.request(
            "POST",
            self._url(f"{self.settings.scope_path}/issues"),
            json={"title": title, "body": body, "labels": labels},
        )
        return reply.json(lambda issue: _issue(issue, "issue"))

    def issue_comments(self, number: int) -> list[Json]:
        """An issue's comments, oldest first, each with its author (``user``)."""
        path = f"{self.settings.scope_path}/issues/{number}/comments"
        return list(self._pages(path, {"per_page": 100}, None, _comment))

    def comment_issue(self, number: int, body: str) -> None:
        reply = self.request(
            "POST",
            self._url(f"{self.settings.scope_path}/issues/{number}/comments"),
            json={"body": body},
        )
        reply.json(lambda comment: _fields(comment, {"id": int}, "comment"))

    def close_issue(self, number: int) -> None:
        reply = self.request(
            "PATCH",
            self._url(f"{self.settings.scope_path}/issues/{number}"),
            json={"state": "closed"},
        )
        reply.json(lambda issue: _issue(issue, "issue"))

    # -- Actions variables (the heartbeat) -----------------------------------------------

    def set_variable(self, repository: str, name: str, value: str) -> str:
        """Write a repository Actions variable: "updated", or "created" when it was not there.
        PATCH first: the variable exists after the first run, so a run costs one request."""
        path = f"/repos/{repository}/actions/variables"
        body = {"name": name, "value": value}
        try:
            self.request("PATCH", self._url(f"{path}/{name}"), json=body)
            return "updated"
        except GitHubError as exc:
            # GitHubError carries no status; a 404's message starts with where it was and 404.
            if not str(exc).startswith(f"PATCH {path}/{name}: 404 "):
                raise
        self.request("POST", self._url(path), json=body)
        return "created"


def _raise_for_status(reply: Reply, settings: GitHubSettings) -> None:
    """GitHubError for a refusal, on one line: what GitHub said, what it means, what to do."""
    if reply.status < 400:
        return
    try:
        body = json.loads(reply.body)
    except (ValueError, RecursionError):
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    message = redact.scrub(message)[:200] if isinstance(message, str) else reply.snippet()
    message = " ".join(message.split())
    if reply.status in (403, 429) and (
        reply.headers.get("x-ratelimit-remaining") == "0"
        or "retry-after" in reply.headers
        or "rate limit" in message.lower()
    ):
        reset = reply.headers.get("retry-after") or reply.headers.get("x-ratelimit-reset")
        raise GitHubUnavailable(
            f"{reply.where}: GitHub API rate limit reached (retry after/at {reset}): "
            "the next runs read again once it resets"
        )
    said = f"({reply.status} {message})"
    if reply.status == 401:
        raise GitHubError(
            f"{reply.where}: GitHub rejected the token {said}: it is wrong, expired or revoked; "
            "set a valid one in github.token_file / GITHUB_TOKEN"
        )
    if reply.status == 403:
        raise GitHubError(
            f"{reply.where}: GitHub refused the token {said}: it needs the permission "
            f"{_permission(reply)}"
        )
    if reply.status == 404:
        raise GitHubError(f"{reply.where}: {said[1:-1]}: {_not_found(reply.where, settings)}")
    raise GitHubError(f"{reply.where}: HTTP {reply.status} {message}".strip())


def _permission(reply: Reply) -> str:
    """The permission a 403 asks for: GitHub's own X-Accepted-GitHub-Permissions when it sent
    one (fine-grained tokens and apps), else what runner-health's calls need."""
    accepted = reply.headers.get("X-Accepted-GitHub-Permissions", "").strip()
    if accepted:
        return f"{accepted} (as GitHub lists it)"
    path = reply.where.split(" ", 1)[-1]
    if path.startswith("/orgs/") and "/actions/runners" in path:
        return "organisation Self-hosted runners read/write (classic token: admin:org)"
    if "/actions/runners" in path:
        return "repository Administration read/write (classic token: repo)"
    if "/issues" in path:
        return "Issues write (a workflow's GITHUB_TOKEN: permissions: issues: write)"
    return "Actions read (classic token: repo)"


def _not_found(where: str, settings: GitHubSettings) -> str:
    """What a 404 on ``where`` means: the repository or organisation is not there or not visible
    to this token (GitHub hides what a token may not see), or the runner is gone."""
    match = re.match(
        r"\S+ /(?:repos/(?P<repo>[^/?]+/[^/?]+)|orgs/(?P<org>[^/?]+))"
        r"(?:/actions/runners/(?P<runner>\d+))?",
        where,
    )
    if match is None:
        return f"no such endpoint under {settings.api_url} (check github.api_url)"
    if match["org"]:
        what, setting, access = (
            f"organisation {match['org']}",
            "github.organization",
            "organisation",
        )
    else:
        setting = (
            "github.repository" if match["repo"] == settings.repository else "github.repositories"
        )
        what, access = f"repository {match['repo']}", "repository"
    gone = f"runner {match['runner']} is no longer registered, or " if match["runner"] else ""
    return (
        f"{gone}{what} not found, or this token cannot see it "
        f"(check {setting} and the token's {access} access)"
    )


def why(exc: BaseException) -> str:
    """Why a request got no answer, in words (DNS, refused, timeout, TLS), from the chain of
    exceptions requests and urllib3 wrap around the socket's."""
    chain, seen = [exc], set()
    for error in chain:
        seen.add(id(error))
        causes = (error.__cause__, error.__context__, getattr(error, "reason", None), *error.args)
        chain += [c for c in causes if isinstance(c, BaseException) and id(c) not in seen]
    for error in chain:
        if isinstance(error, socket.gaierror):
            return f"DNS cannot resolve the host name ({error.strerror})"
        if isinstance(error, ssl.SSLCertVerificationError):
            return f"TLS: the server's certificate is not trusted ({error.verify_message})"
        if isinstance(error, ssl.SSLError):
            return f"TLS handshake failed ({error.reason or error.strerror})"
        if isinstance(error, ConnectionRefusedError):
            return "connection refused (nothing listens there)"
        if isinstance(error, requests.ConnectTimeout):
            return "timed out connecting (a firewall, or no route to the host)"
        if isinstance(error, (requests.Timeout, TimeoutError)):
            return "timed out waiting for the answer"
        if isinstance(error, ConnectionResetError):
            return "the connection was reset"
    return f"the connection failed ({type(exc).__name__})"


# -- the shapes callers rely on ---------------------------------------------------------


def _fields(value: Any, shape: dict[str, type | tuple[type, ...]], what: str) -> Json:
    """``value`` if it is an object with ``shape``'s fields and types, else ValueError."""
    if not isinstance(value, dict):
        raise ValueError(f"{what}: expected an object, got {type(value).__name__}")
    for key, kind in shape.items():
        if key not in value:
            raise ValueError(f"{what}: no {key!r}")
        _typed(value[key], kind, f"{what}[{key!r}]")
    return value


def _typed(value: Any, kind: type | tuple[type, ...], what: str) -> None:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise ValueError(f"{what}: expected {names}, got {type(value).__name__}")


def _page_check(key: str | None, item: Callable[[Any, str], None]) -> Check:
    def check(body: Any) -> None:
        items = body if key is None else _fields(body, {key: list}, "answer")[key]
        _typed(items, list, "answer")
        for index, value in enumerate(items):
            item(value, f"{key or 'items'}[{index}]")

    return check


def _label(value: Any, what: str) -> None:
    _fields(value, {"name": str}, what)


def _runner(value: Any, what: str) -> None:
    shape = {"id": int, "name": str, "status": str, "busy": bool, "labels": list}
    for index, label in enumerate(_fields(value, shape, what)["labels"]):
        _label(label, f"{what}['labels'][{index}]")


def _job(value: Any, what: str) -> None:
    shape = {
        "id": int,
        "run_id": int,
        "name": str,
        "status": str,
        "labels": list,
        "runner_id": (int, type(None)),
        "created_at": str,
    }
    job = _fields(value, shape, what)
    for index, label in enumerate(job["labels"]):
        _typed(label, str, f"{what}['labels'][{index}]")
    parse_time(job["created_at"])


def _written(value: Any, shape: dict[str, type | tuple[type, ...]], what: str) -> None:
    """An issue or a comment: ``shape``, and its author when given (``user``: an object with a
    login, or null for a deleted account)."""
    _fields(value, shape, what)
    if value.get("user") is not None:
        _fields(value["user"], {"login": str}, f"{what}['user']")


def _issue(value: Any, what: str) -> None:
    _written(value, {"number": int, "body": (str, type(None)), "comments": int}, what)


def _comment(value: Any, what: str) -> None:
    _written(value, {"body": (str, type(None))}, what)


def runner_label_names(runner: Json) -> set[str]:
    """A runner's labels, lower-cased: GitHub matches runs-on labels case-insensitively."""
    return {label["name"].lower() for label in runner.get("labels", [])}


def parse_time(timestamp: str) -> datetime:
    """An ISO-8601 GitHub timestamp with its zone; ValueError for anything else."""
    try:
        # Python 3.10's fromisoformat does not read GitHub's "Z" suffix.
        when = datetime.fromisoformat(re.sub(r"Z$", "+00:00", timestamp))
    except (TypeError, ValueError):
        raise ValueError(f"not an ISO-8601 time: {str(timestamp)[:40]!r}") from None
    if when.tzinfo is None:
        raise ValueError(f"a time without a zone: {timestamp[:40]!r}")
    return when


def age_minutes(timestamp: str, now: datetime | None = None) -> float:
    """Minutes since an ISO-8601 GitHub timestamp."""
    return ((now or datetime.now(timezone.utc)) - parse_time(timestamp)).total_seconds() / 60
