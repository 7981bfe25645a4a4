"""Telling people when something changed: a webhook and the runner's GitHub issue.

>>> lines = send(events, summary, settings, github)   # at the end of a run, after the store

``events`` come from the state store and fire on changes only (unhealthy, held, flapping,
recovered), never once per run: a run with no event sends nothing and asks GitHub nothing.

- ``[alerts] webhook_url``: one JSON POST per run with events, Slack's incoming-webhook shape
  (``text``) plus fields for machines (``runner``, ``status``, ``events``, ``report``). Each
  try lasts at most ``webhook_timeout_seconds`` per connect and per read; a network error, a
  timeout, a 5xx or a 429 is tried again (``webhook_retries`` times, 0.5 s, 1 s, 2 s ... apart),
  another 4xx is not (a wrong URL stays wrong). The whole delivery is given up after
  ``timeout x (retries + 1) + the pauses`` (16.5 s by default) whatever the server does. The
  URL is a secret: it is registered with ``redact`` and never printed ("webhook" is).
- ``[alerts] github_issue``: the runner's issue, with the workflow's logic (``alert.post``):
  opened on the first alert, a comment per new occurrence, closed when a recovery leaves no
  check failed or held. Written as the token's user (``alerts.issue_author``, else ``GET
  /user``); only that user's issues and comments carry state.

``send`` never raises: each channel's outcome is a line for the run's terminal summary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from runner_health import alert, delivery, redact
from runner_health.config import AlertSettings, Settings
from runner_health.github import GitHub, GitHubError

if TYPE_CHECKING:
    from runner_health.state import Event

MAX_EVENTS = 50  # in one message: more is a storm nobody reads line by line
MAX_LINE = 500  # characters of one event's text
ALERTING = ("unhealthy", "held", "flapping")  # "recovered" is news, not an alert
UNHEALTHY = ("failed", "held")  # outcomes that keep the issue open

VM_ADVICE = """What to do (on the runner, as root):

```bash
./health_check.sh --status     # read-only: which check fails, and why
./health_check.sh              # check and heal
./health_check.sh --reset      # after fixing the cause: lift the holds, try the fixes again
```

A held fix runs again by itself once its window has passed. This issue is updated by
runner-health on the runner and closed when no check is failing or held any more."""


def send(
    events: Sequence[Event], summary: dict[str, Any], settings: Settings, github: GitHub | None
) -> list[str]:
    """Tell the configured channels about ``events``: a line per channel, scrubbed."""
    if not events:
        return []
    alerts = settings.alerts
    for secret in alerts.secrets:
        redact.register(secret)
    lines = []
    if alerts.webhook_url:
        lines.append(_guarded("webhook", lambda: webhook(events, summary, alerts)))
    if alerts.github_issue:
        lines.append(_guarded("GitHub issue", lambda: issue(events, summary, settings, github)))
    return lines


def _guarded(channel: str, step: Callable[[], str]) -> str:
    """``step()``'s line, or one saying it failed: an alert never breaks a run."""
    try:
        return redact.scrub(step())
    except Exception as exc:  # a bug here must not change the run's outcome
        return redact.scrub(f"alert: {channel} failed: {type(exc).__name__}: {exc}")


# -- the webhook ----------------------------------------------------------------------------


def payload(events: Sequence[Event], summary: dict[str, Any]) -> dict[str, Any]:
    """The webhook's JSON: Slack's ``text`` for people, the rest for machines."""
    runner = str(summary.get("runner") or "?")
    status = str(summary.get("status") or "?")
    shown = list(events)[:MAX_EVENTS]
    lines = [f"runner-health on {runner}: {status}"]
    lines += [f"• {_line(e.text)}" for e in shown]
    if len(events) > len(shown):
        lines.append(f"… and {len(events) - len(shown)} more")
    body = {
        "text": "\n".join(lines),
        "runner": runner,
        "status": status,
        "events": [
            {
                "kind": e.kind,
                "check": e.check,
                "condition": e.condition,
                "text": _line(e.text),
                "at": e.at,
            }
            for e in shown
        ],
    }
    if summary.get("report"):
        body["report"] = str(summary["report"])
    return body


def _line(text: str) -> str:
    return " ".join(str(text).split())[:MAX_LINE]


def webhook(events: Sequence[Event], summary: dict[str, Any], alerts: AlertSettings) -> str:
    """POST the events (runner_health.delivery: bounded, retried); the outcome in a line."""
    assert alerts.webhook_url is not None
    data = redact.scrub(json.dumps(payload(events, summary))).encode()
    count = f"{len(events)} event{'s' if len(events) != 1 else ''}"
    tries = alerts.webhook_retries + 1
    done = delivery.post(
        alerts.webhook_url,
        data,
        "application/json",
        timeout=alerts.webhook_timeout_seconds,
        retries=alerts.webhook_retries,
    )
    if done.ok:
        return f"alert: webhook: sent {count}" + (
            f" (try {done.tries} of {tries})" if done.tries > 1 else ""
        )
    if not done.retried:
        return f"alert: webhook failed: {done.problem} (not retried: check alerts.webhook_url)"
    return f"alert: webhook failed: {done.problem}"


# -- the GitHub issue -----------------------------------------------------------------------


def issue(
    events: Sequence[Event], summary: dict[str, Any], settings: Settings, github: GitHub | None
) -> str:
    """Post the events to the runner's issue in ``alerts.repository``; the outcome in a line."""
    alerts = settings.alerts
    if github is None or settings.token is None or alerts.repository is None:
        return "alert: GitHub issue skipped: no GitHub token on this machine"
    gh = (
        github
        if github.settings.scope_path == f"/repos/{alerts.repository}"
        else GitHub(
            replace(github.settings, repository=alerts.repository, organization=None),
            settings.token,
        )
    )
    try:
        author = alerts.issue_author or gh.login()
    except GitHubError as exc:
        return (
            f"alert: GitHub issue skipped: cannot tell whose issues are runner-health's "
            f"(GET /user: {exc}): set alerts.issue_author"
        )
    runner = str(summary.get("runner") or settings.runner.name)
    try:
        lines = alert.post(
            gh, issue_post(events, summary), runner=runner, label=alerts.label, author=author
        )
    except GitHubError as exc:
        return f"alert: GitHub issue failed: {exc}"
    except alert.UntrustedAuthor as exc:
        return f"alert: GitHub issue: {exc}: set alerts.issue_author = {exc.login!r}"
    return f"alert: GitHub issue: {'; '.join(lines or ['nothing to post'])}"


def issue_post(events: Sequence[Event], summary: dict[str, Any]) -> alert.Post:
    """The run's events as one post: an alert when any is one; else a recovery, which closes
    the issue once no check is failed or held any more."""
    runner = str(summary.get("runner") or "?")
    state = ",".join(sorted({f"{e.kind}-{_slug(e.condition)}" for e in events}))
    items = [f"- {_line(e.text)}" for e in events[:MAX_EVENTS]]
    if len(events) > MAX_EVENTS:
        items.append(f"- … and {len(events) - MAX_EVENTS} more")
    when = summary.get("finished_at", "just now")
    report = f"\n\nReport on the runner: `{summary['report']}`" if summary.get("report") else ""
    alerting = [e for e in events if e.kind in ALERTING]
    if alerting:
        first = alerting[0]
        more = f" (and {len(alerting) - 1} more)" if len(alerting) > 1 else ""
        title = f"runner-health on {runner}: {first.condition} {first.kind}{more}"
        text = f"**runner-health on {runner}: {summary.get('status', '?')}** ({when})."
        return alert.Post(
            state, alert.OPEN, "\n".join([text, "", *items]) + report, title, VM_ADVICE
        )
    still = sorted(
        {str(c.get("name")) for c in summary.get("checks", []) if c.get("outcome") in UNHEALTHY}
    )
    if still:
        text = f"Recovered ({when}); still failing or held: {', '.join(still)}."
        return alert.Post(state, alert.NOTE, "\n".join([text, "", *items]) + report)
    text = f"Runner {runner} is healthy again ({when}): no check is failing or held."
    return alert.Post(state, alert.CLOSE, "\n".join([text, "", *items]) + report)


def _slug(condition: str) -> str:
    """A condition as the marker's state allows it (letters, digits, '_', '-')."""
    return re.sub(r"[^\w-]", "_", condition) or "_"
