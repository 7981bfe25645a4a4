"""The runner's GitHub issue: one issue per outage, not one per 15 minutes.

>>> python -m runner_health.alert --summary reports/health/summary.json --heartbeat "$HEARTBEAT"

The workflow runs this after a ``pytest checks -m github --no-remediate`` run and decides from
its ``summary.json``:

- the runner is offline (or gone) at GitHub **and** jobs wait for it → open an issue (label
  ``runner-health``), or comment on the open one when this is a new occurrence;
- the heartbeat runner-health leaves on the runner (``--heartbeat``, the Actions variable) is
  older than three intervals → the same, "runner-health has stopped reporting": the VM, its
  timer or runner-health is dead, which nothing on the VM can report (when the runner is
  also offline with jobs waiting, that alert wins and mentions the heartbeat);
- the runner is online again (and the heartbeat fresh) → comment and close the issue;
- anything else (offline with nothing waiting, GitHub unreachable, a check "unknown", or the
  online or queue check silenced in the config) → say so, post nothing.

Organisation runners too: their queue is read in the repositories the config lists
(``github.repositories``); the issue goes to ``--repository`` (the workflow's own).

``post()`` is the one implementation of one-issue-per-runner, comment-per-occurrence,
close-on-recovery: the workflow uses it here, runner-health on the VM through
``runner_health.notify`` (``[alerts] github_issue``), each with its own author and so its own
issue. Every issue body and comment written ends with a hidden marker
``<!-- runner-health-alert runner=NAME state=STATE -->``; the newest marker is the state the
previous run reported, so a run repeats nothing the issue already says. Issues are found by
label and the runner name in the marker (several runners can share a repository).

Only issues and comments written by the alert's own identity count (``--trusted-author``,
default ``github-actions[bot]``: the user a workflow's ``GITHUB_TOKEN`` writes as). Anyone who
can comment can paste a marker; trusted, it would silence the next outage.

The token is ``GITHUB_TOKEN`` (a workflow's own token with ``issues: write`` is enough).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runner_health import config as config_module
from runner_health import heartbeat, redact
from runner_health.config import ConfigError
from runner_health.github import GitHub, GitHubError

DEFAULT_LABEL = "runner-health"
# Who a workflow's GITHUB_TOKEN writes as. GET /user cannot tell (403 for an app's token), and
# an author_association of MEMBER or OWNER belongs to people who did not write the alert.
DEFAULT_TRUSTED_AUTHOR = "github-actions[bot]"
MARKER = re.compile(r"<!-- runner-health-alert runner=(?P<runner>\S+) state=(?P<state>[\w,-]+) -->")

# States, from the checks' outcomes in summary.json.
DOWN = "down"  # offline or gone at GitHub, and jobs wait: the alert
OFFLINE = "offline"  # offline, but nothing waits for it
ONLINE = "online"
UNKNOWN = "unknown"  # the checks could not tell (GitHub unreachable, skipped)
SILENCED = "silenced"  # the online or queue check is silenced in the config: no alert
STALE = "stale"  # --heartbeat: runner-health on the runner stopped reporting


@dataclass(frozen=True)
class Finding:
    state: str
    reason: str
    details: tuple[str, ...] = ()


def assess(summary: dict[str, Any]) -> Finding:
    """The runner's state according to one run's summary.json."""
    checks = summary.get("checks", [])

    def record(name: str) -> dict[str, Any] | None:
        return next((c for c in checks if c.get("nodeid", "").split("::")[-1] == name), None)

    online = record("test_runner_online_at_github")
    known = record("test_runner_known_to_github")
    queue = record("test_no_job_queued_too_long")
    details = tuple(
        f"`{c['nodeid'].split('::')[-1]}`: {c.get('failure') or c['outcome']}"
        for c in (known, online, queue)
        if c is not None and c.get("outcome") != "passed"
    )
    if online is not None and online.get("outcome") in ("passed", "healed"):
        return Finding(ONLINE, "GitHub shows the runner online")
    silenced = [c for c in (online, queue) if c is not None and c.get("outcome") == "silenced"]
    if silenced:
        why = "; ".join(
            f"{c['nodeid'].split('::')[-1]}: {(c.get('silence') or {}).get('reason', '')}"
            for c in silenced
        )
        return Finding(SILENCED, f"silenced in the config ({why})", details)
    gone = (
        known is not None
        and known.get("outcome") == "failed"
        and "has no runner named" in (known.get("failure") or "")
    )
    offline = online is not None and online.get("outcome") == "failed"
    if not (gone or offline):
        why = "no online check result" if online is None else f"online check {online['outcome']}"
        return Finding(UNKNOWN, f"cannot tell whether the runner is online ({why})", details)
    what = "is not registered at GitHub" if gone else "is offline at GitHub"
    if queue is not None and queue.get("outcome") == "failed":
        return Finding(DOWN, f"the runner {what} and jobs are queued for it", details)
    if queue is None or queue.get("outcome") != "passed":
        return Finding(UNKNOWN, f"the runner {what}; the queue could not be read", details)
    return Finding(OFFLINE, f"the runner {what}, but no job waits for it", details)


class UntrustedAuthor(Exception):
    """What the alert wrote shows an author other than the one it trusts."""

    def __init__(self, number: int, login: str | None, author: str) -> None:
        super().__init__(
            f"#{number} shows {login} as its author, but only {author}'s issues and comments "
            "are trusted"
        )
        self.login = login


# What a post does to the runner's issue.
OPEN = "open"  # an alert: open the issue, or comment on the open one if this state is new
NOTE = "note"  # news, not an alert: comment on the open issue if this state is new
CLOSE = "close"  # recovered: comment on the open issue and close it


@dataclass(frozen=True)
class Post:
    """One message for a runner's issue (the workflow's and the VM's alike)."""

    state: str  # recorded in the marker: the same state again posts nothing
    mode: str  # OPEN | NOTE | CLOSE
    text: str  # markdown, scrubbed
    title: str = ""  # the issue's title, when OPEN opens one
    advice: str = ""  # what to do, after the text in the opening body


def marker(runner: str, state: str) -> str:
    return f"<!-- runner-health-alert runner={runner} state={state} -->"


def written_by(item: dict[str, Any], author: str) -> bool:
    """Whether ``author`` wrote this issue or comment (GitHub logins ignore case)."""
    login = (item.get("user") or {}).get("login")
    return login is not None and login.casefold() == author.casefold()


def last_state(gh: GitHub, issue: dict[str, Any], runner: str, author: str) -> str | None:
    """The state in the newest marker for ``runner``, in ``author``'s comments (newest first)
    then the issue's body."""
    bodies = [issue.get("body") or ""]
    if issue.get("comments"):
        bodies += [
            c["body"] or "" for c in gh.issue_comments(issue["number"]) if written_by(c, author)
        ]
    for body in reversed(bodies):
        for match in reversed(list(MARKER.finditer(body))):
            if match["runner"] == runner:
                return match["state"]
    return None


def find_issue(gh: GitHub, label: str, runner: str, author: str) -> dict[str, Any] | None:
    """The open issue with ``label`` that ``author`` opened for ``runner`` (oldest first)."""
    ours = [
        issue
        for issue in gh.open_issues(label)
        if written_by(issue, author)
        and any(m["runner"] == runner for m in MARKER.finditer(issue.get("body") or ""))
    ]
    return min(ours, key=lambda i: i["number"]) if ours else None


def plan(gh: GitHub, message: Post, runner: str, label: str, author: str) -> list[tuple[str, Any]]:
    """The writes ``message`` needs, as (action, args) pairs, given the runner's open issue."""
    issue = find_issue(gh, label, runner, author)
    text = f"{message.text}\n\n{marker(runner, message.state)}"
    if issue is None:
        if message.mode != OPEN:
            return []
        body = f"{text}\n\n{message.advice}" if message.advice else text
        return [("create", (message.title, body, [label]))]
    number = issue["number"]
    if message.mode == CLOSE:
        return [("comment", (number, text)), ("close", number)]
    if last_state(gh, issue, runner, author) == message.state:
        said = "reports this outage" if message.mode == OPEN else "says so"
        return [("nothing", f"#{number} already {said}")]
    return [("comment", (number, f"New occurrence: {text}" if message.mode == OPEN else text))]


def apply(gh: GitHub, actions: list[tuple[str, Any]], dry_run: bool, author: str) -> list[str]:
    """Make the writes; a line for each. UntrustedAuthor when the issue opened is not
    ``author``'s: later runs would not find it and would open another each time."""
    prefix = "would " if dry_run else ""
    lines = []
    for action, args in actions:
        if action == "nothing":
            lines.append(f"nothing to post: {args}")
        elif action == "create":
            title, body, labels = args
            issue = {"number": "?"} if dry_run else gh.create_issue(title, body, labels)
            lines.append(f"{prefix}open issue #{issue['number']}: {title}")
            if not dry_run and not written_by(issue, author):
                login = (issue.get("user") or {}).get("login")
                raise UntrustedAuthor(issue["number"], login, author)
        elif action == "comment":
            number, body = args
            if not dry_run:
                gh.comment_issue(number, body)
            lines.append(f"{prefix}comment on #{number}: {body.splitlines()[0]}")
        elif action == "close":
            if not dry_run:
                gh.close_issue(args)
            lines.append(f"{prefix}close #{args}")
    return lines


def post(
    gh: GitHub, message: Post, *, runner: str, label: str, author: str, dry_run: bool = False
) -> list[str]:
    """One issue per runner, a comment per occurrence, closed on recovery: what ``message``
    changes on GitHub, a line each (none when there is nothing to change)."""
    return apply(gh, plan(gh, message, runner, label, author), dry_run, author)


def run_link() -> str:
    server, repo, run = (
        os.environ.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else ""


def describe(finding: Finding, summary: dict[str, Any]) -> str:
    lines = [f"**{finding.reason}** (checked {summary.get('finished_at', 'just now')})."]
    if finding.details:
        lines += ["", *(f"- {d}" for d in finding.details)]
    if link := run_link():
        lines += ["", f"Workflow run and report: {link}"]
    return "\n".join(lines)


ADVICE = """What to do (on the Mac, or on the VM as root):

```bash
./health_check.sh --status     # read-only: which check fails
./health_check.sh              # check and heal (clock, service, registration, disk)
./health_check.sh --recover    # force re-registration and a service restart
```

A full disk ("No space left on device"): `multipass exec assay-bpf-runner -- sudo bash -s < remediations/free_disk.sh`.
No heartbeat: is the VM running, is its runner-health timer (or cron entry) enabled, does `./health_check.sh` run by hand?
This issue is updated by the runner-health workflow and closed when the runner is back online (and, with a heartbeat, runner-health on it reports again)."""


def workflow_post(finding: Finding, summary: dict[str, Any], runner: str) -> Post | None:
    """What the workflow tells the runner's issue about ``finding`` (None: nothing)."""
    text = describe(finding, summary)
    if finding.state == DOWN:
        title = f"Self-hosted runner {runner} is offline with queued jobs"
        return Post(DOWN, OPEN, text, title, ADVICE)
    if finding.state == STALE:
        title = f"runner-health on {runner} has stopped reporting"
        return Post(STALE, OPEN, text, title, ADVICE)
    if finding.state == ONLINE:
        return Post(ONLINE, CLOSE, f"Runner {runner} is back online.\n\n{text}")
    if finding.state == OFFLINE:  # said once, so that jobs queueing again count as new
        return Post(OFFLINE, NOTE, text)
    return None  # UNKNOWN, SILENCED


def with_heartbeat(finding: Finding, stale: str | None) -> Finding:
    """``finding`` with the heartbeat's verdict (``stale``: why it is stale, None: fresh):
    runs that stopped are an alert of their own, unless the runner is DOWN, which says more."""
    if stale is None:
        return finding
    if finding.state == DOWN:
        return replace(finding, details=(*finding.details, f"heartbeat: {stale}"))
    return Finding(STALE, stale, (*finding.details, f"GitHub: {finding.reason}"))


def newest_summary(reports: Path) -> Path:
    found = sorted(reports.glob("*/summary.json"), key=lambda p: p.parent.name)
    if (reports / "summary.json").exists():
        found.append(reports / "summary.json")
    if not found:
        raise FileNotFoundError(f"no summary.json in {reports}: did `pytest checks` run?")
    return found[-1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m runner_health.alert",
        description="Open, update or close the runner-offline issue from a checks run's "
        "summary.json (the runner-health workflow runs this after `pytest checks -m github`).",
        epilog="Token: $GITHUB_TOKEN (issues: write). Exit status: 0 done, 1 error, 2 usage.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--summary", type=Path, help="the run's summary.json")
    where.add_argument(
        "--reports-dir",
        type=Path,
        help="take the newest <stamp>/summary.json here (default: the config's reports.directory)",
    )
    parser.add_argument(
        "--config",
        help="runner-health config (default: $RUNNER_HEALTH_CONFIG, then the usual places)",
    )
    parser.add_argument(
        "--label", default=DEFAULT_LABEL, help=f"issue label (default: {DEFAULT_LABEL})"
    )
    parser.add_argument(
        "--repository",
        metavar="OWNER/REPO",
        help="where the issue is opened (default: the config's github.repository; required for "
        "an organisation runner: the workflow passes its own repository)",
    )
    parser.add_argument(
        "--trusted-author",
        default=DEFAULT_TRUSTED_AUTHOR,
        metavar="LOGIN",
        help="only this user's issues and comments carry the alert's state: the login the token "
        f"writes as (default: {DEFAULT_TRUSTED_AUTHOR}, a workflow's GITHUB_TOKEN)",
    )
    parser.add_argument(
        "--heartbeat",
        default="",
        metavar="VALUE",
        help="the heartbeat runner-health on the runner leaves (the workflow passes "
        "${{ vars.<alerts.heartbeat_variable> }}): too old, and the issue says the runs stopped; "
        "empty: no heartbeat configured",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be posted, post nothing"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = config_module.load(config_module.find_config(args.config))
    except ConfigError as exc:
        print(f"runner-health config: {exc}", file=sys.stderr)
        return 2
    token = os.environ.get("GITHUB_TOKEN", "").strip()
    if not token:
        print("GITHUB_TOKEN is not set (a token with issues: write)", file=sys.stderr)
        return 2
    redact.register(token)
    repository = args.repository or settings.github.repository
    if not repository:
        print(
            "organisation runner: pass --repository OWNER/REPO (where the alert opens its issue)",
            file=sys.stderr,
        )
        return 2
    if not config_module.is_repository(repository):
        print(f"--repository: expected OWNER/REPO, got {repository!r}", file=sys.stderr)
        return 2
    try:
        path = args.summary or newest_summary(args.reports_dir or settings.reports_directory)
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"cannot read the checks' summary: {exc}", file=sys.stderr)
        return 1
    runner = summary.get("runner") or settings.runner.name
    finding = with_heartbeat(
        assess(summary), heartbeat.stale(args.heartbeat, datetime.now(timezone.utc))
    )
    print(f"runner {runner}: {finding.state}: {finding.reason}")
    message = workflow_post(finding, summary, runner)
    if message is None:
        print("nothing to post")
        return 0
    # Issues live in one repository, whatever the runner's scope.
    gh = GitHub(replace(settings.github, repository=repository, organization=None), token)
    try:
        lines = post(
            gh,
            message,
            runner=runner,
            label=args.label,
            author=args.trusted_author,
            dry_run=args.dry_run,
        )
    except GitHubError as exc:
        print(redact.scrub(f"GitHub: {exc}"), file=sys.stderr)
        return 1
    except UntrustedAuthor as exc:
        print(f"{exc}: run with --trusted-author {exc.login}", file=sys.stderr)
        return 1
    print("\n".join(lines or ["nothing to post"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
