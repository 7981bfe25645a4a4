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
    for job in jobs:
        wanted = {label.lower() for label in job.get("labels", [])}
        if "self-hosted" not in wanted:
            continue  # for GitHub-hosted runners: not ours to worry about
        waited = age_minutes(job["created_at"], now)
        if waited < max_wait_minutes:
            continue
        lines.append(
            f"job {job.get('name', job['id'])!r} (run {job.get('run_id')}) queued since "
            f"{job['created_at']} ({waited:.0f} min): {_reason(wanted, ours, runner)}"
        )
    return lines


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
