"""Which queued jobs wait for this runner too long, and why nobody takes them.

A job waits for our runner when it is queued, unassigned, and every ``runs-on`` label is
among the runner's labels (case-insensitive, as GitHub matches them).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from runner_health.github import age_minutes, runner_label_names


def stuck_jobs(
    jobs: Iterable[dict[str, Any]],
    runner: dict[str, Any] | None,
    configured_labels: Iterable[str],
    max_wait_minutes: float,
    now: datetime | None = None,
) -> list[str]:
    """One line per self-hosted job queued longer than the threshold, with the likely reason."""
    ours = runner_label_names(runner) if runner else {label.lower() for label in configured_labels}
    lines = []
    for job in _self_hosted(jobs):
        waited = age_minutes(job["created_at"], now)
        if waited < max_wait_minutes:
            continue
        wanted = {label.lower() for label in job["labels"]}
        where = f"{job['repository']} run" if "repository" in job else "run"
        lines.append(
            f"job {job.get('name', job['id'])!r} ({where} {job.get('run_id')}) queued since "
            f"{job['created_at']} ({waited:.0f} min): {_reason(wanted, ours, runner)}"
        )
    return lines


def oldest_minutes(jobs: Iterable[dict[str, Any]], now: datetime | None = None) -> float:
    """How long the oldest queued self-hosted job has waited, in minutes (0 when none): the
    measured value behind the queue check, whatever its threshold."""
    ages = [age_minutes(job["created_at"], now) for job in _self_hosted(jobs)]
    return round(max(ages, default=0.0), 1)


def _self_hosted(jobs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Jobs asking for a self-hosted runner: those for GitHub's runners are not ours to watch."""
    return [job for job in jobs if "self-hosted" in {x.lower() for x in job.get("labels", [])}]


def _reason(wanted: set[str], ours: set[str], runner: dict[str, Any] | None) -> str:
    missing = sorted(wanted - ours)
    if missing:
        return f"labels don't match: the runner lacks {', '.join(missing)}"
    if runner is None:
        return "the runner is not registered at GitHub"
    if runner.get("status") != "online":
        return "the runner is offline"
    if runner.get("busy"):
        return "the runner is busy with another job"
    return "the runner is online and idle, yet GitHub has not assigned the job"
