"""The dead man's switch: each completed run leaves a heartbeat the outside can read.

No VM-side tool can report that the VM, its timer or runner-health itself is dead; something
outside has to notice that the runs stopped. Two heartbeats, either or both:

- ``alerts.ping_url``: a ping in the style of healthchecks.io (POST, a one-line status as the
  body, which such services keep as the ping's log). A run whose checks still fail pings
  ``<url>/fail`` (healthchecks.io's failure signal): the monitor then tells "down" at once,
  and a later healthy run's plain ping tells "up" again. Works without GitHub.
- ``alerts.heartbeat_variable``: a repository Actions variable, rewritten through the REST API
  with ``{"at", "status", "runner", "interval_minutes", "version"}``. The workflow reads it as
  ``${{ vars.NAME }}`` with no token at all, and ``stale()`` judges it there.

Neither may delay or break a run: every call is bounded (timeout per try, two tries) and
``beat`` never raises. The ping URL is a secret: it is never printed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from runner_health import __version__, delivery, redact
from runner_health.config import _NAME, Settings
from runner_health.exitcodes import ExitCode
from runner_health.github import GitHub, GitHubError, GitHubUnavailable, parse_time

STALE_AFTER = 3  # intervals without a heartbeat before the workflow says the runs stopped
FUTURE_SLACK = timedelta(minutes=5)  # clocks differ; GitHub's own token checks allow 5 min
MAX_VALUE = 1024  # characters: what runner-health writes is about 150
INTERVAL_RANGE = (1.0, 24 * 60.0)  # minutes, as alerts.heartbeat_interval_minutes allows
# Statuses under which the runner can take jobs (or nothing is known to be wrong): a plain ping.
FINE = (ExitCode.HEALTHY, ExitCode.HEALED, ExitCode.UNKNOWN)
# The variable's fields, each with the shape runner-health writes (it is untrusted when read).
SHAPE = {
    "at": re.compile(r"[0-9T:.+Z-]{10,40}"),
    "status": re.compile(r"[a-z ]{1,20}"),
    "runner": re.compile(_NAME),
    "version": re.compile(r"[0-9A-Za-z.+-]{1,40}"),
}
FIELDS = ("at", "status", "runner", "interval_minutes", "version")


def beat(summary: dict[str, Any], settings: Settings, github: GitHub | None) -> list[str]:
    """Leave the heartbeats ``[alerts]`` configures; lines for the terminal summary."""
    alerts, lines = settings.alerts, []
    if alerts.ping_url:
        lines.append(_guarded("ping", lambda: _ping(alerts.ping_url or "", summary, settings)))
    if alerts.heartbeat_variable:
        name = alerts.heartbeat_variable
        lines.append(
            _guarded(f"variable {name}", lambda: _variable(name, summary, settings, github))
        )
    return lines


def value(summary: dict[str, Any], settings: Settings, now: datetime) -> str:
    """The variable's value: when this run finished, how it ended, and when to expect the next."""
    interval = settings.alerts.heartbeat_interval_minutes
    return json.dumps(
        {
            "at": now.astimezone(timezone.utc).isoformat(timespec="seconds"),
            "status": str(summary.get("status", "unknown")),
            "runner": settings.runner.name,
            "interval_minutes": int(interval) if float(interval).is_integer() else interval,
            "version": __version__,
        },
        separators=(",", ":"),
    )


def stale(value: str, now: datetime) -> str | None:
    """Why the heartbeat ``value`` (the variable, as the workflow reads it) says the runs
    stopped, in one line; None while it is fresh, or when it is empty (not configured).

    Anyone with write access to the repository can set the variable: a value that is not
    runner-health's shape is itself a reason (a heartbeat that can't be read is no heartbeat)."""
    if not value.strip():
        return None
    try:
        heartbeat = _parse(value)
    except ValueError as exc:
        return f"heartbeat unreadable ({exc}): not what runner-health writes"
    interval = heartbeat["interval_minutes"]
    age = now - heartbeat["at"]
    last = f"last at {heartbeat['at']:%Y-%m-%d %H:%M} UTC"
    if age < -FUTURE_SLACK:
        return (
            f"heartbeat from the future ({last}, {_span(-age)} ahead): "
            f"the clock of {heartbeat['runner']} is wrong, or the value was not written by runner-health"
        )
    if age > timedelta(minutes=STALE_AFTER * interval):
        return (
            f"no heartbeat from runner-health on {heartbeat['runner']} for {_span(age)} "
            f"({last}, {heartbeat['status']}; expected every {interval:g} min): "
            "the VM, its timer or runner-health itself is down"
        )
    return None


# -- the ping -------------------------------------------------------------------------------


def _ping(url: str, summary: dict[str, Any], settings: Settings) -> str:
    redact.register(url)
    fine = summary.get("exit_code") in FINE
    what = "ping" if fine else "failure ping"
    done = delivery.post(
        url if fine else _fail_url(url),
        _status_line(summary, settings).encode(),
        "text/plain; charset=utf-8",
        timeout=settings.alerts.webhook_timeout_seconds,
        retries=1,
    )
    return f"heartbeat: {what} sent" if done.ok else f"heartbeat: {what} failed: {done.problem}"


def _fail_url(url: str) -> str:
    """healthchecks.io's failure signal: ``/fail`` appended to the path (before any query)."""
    split = urlsplit(url)
    return urlunsplit(split._replace(path=split.path.rstrip("/") + "/fail"))


def _status_line(summary: dict[str, Any], settings: Settings) -> str:
    """One line a person reads in the monitor's log: which runner, how the run ended, what fails."""
    checks = summary.get("checks") or []
    failing = [str(c.get("name")) for c in checks if c.get("outcome") in ("failed", "held")]
    line = (
        f"runner-health {__version__} on {settings.runner.name}: {summary.get('status', '?')} "
        f"(exit {summary.get('exit_code', '?')}), {len(checks)} checks"
    )
    if failing:
        line += f"; failing: {', '.join(failing[:5])}" + (" ..." if len(failing) > 5 else "")
    return redact.scrub(line)


# -- the variable ---------------------------------------------------------------------------


def _variable(name: str, summary: dict[str, Any], settings: Settings, github: GitHub | None) -> str:
    repository = settings.alerts.repository
    if github is None or repository is None:
        return f"heartbeat: variable {name} not updated: no GitHub client on this machine"
    try:
        done = github.set_variable(
            repository, name, value(summary, settings, datetime.now(timezone.utc))
        )
    except GitHubUnavailable as exc:
        return f"heartbeat: variable {name} not updated: {exc}"
    except GitHubError as exc:
        return (
            f"heartbeat: variable {name} not updated: {exc}; the heartbeat needs a token with "
            f"the repository permission Variables: write on {repository} (classic token: repo)"
        )
    return f"heartbeat: variable {name} {done}"


def _parse(value: str) -> dict[str, Any]:
    """The heartbeat's fields, checked; ValueError naming what is wrong."""
    if len(value) > MAX_VALUE:
        raise ValueError(f"{len(value)} characters, expected at most {MAX_VALUE}")
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(data, dict) or set(data) != set(FIELDS):
        # What it holds instead is not shown: the reason goes into an issue, and it is untrusted.
        got = f"{len(data)} other fields" if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"expected the fields {', '.join(FIELDS)}; got {got}")
    for key, pattern in SHAPE.items():
        if not isinstance(data[key], str) or not pattern.fullmatch(data[key]):
            raise ValueError(f"{key}: not the expected shape")
    interval = data["interval_minutes"]
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise ValueError("interval_minutes: not a number")
    try:  # JSON's numbers and ISO times go beyond what float and datetime hold
        minutes, at = float(interval), parse_time(data["at"]).astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("out of range") from None
    if not math.isfinite(minutes):
        raise ValueError("interval_minutes: not a finite number")
    return {
        **data,
        "at": at,
        "interval_minutes": min(max(minutes, INTERVAL_RANGE[0]), INTERVAL_RANGE[1]),
    }


def _span(age: timedelta) -> str:
    minutes = age.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _guarded(what: str, step: Callable[[], str]) -> str:
    """``step()``'s line, or one saying it failed: a heartbeat never breaks a run."""
    try:
        return step()
    except Exception as exc:  # a bug here must not change the run's outcome
        return redact.scrub(f"heartbeat: {what} failed: {type(exc).__name__}: {exc}")
