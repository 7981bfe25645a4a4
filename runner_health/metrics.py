"""What the last run found, as a Prometheus textfile for node_exporter's textfile collector.

>>> write(Path("/var/lib/prometheus/node-exporter/runner_health.prom"), summary, history, counts)

node_exporter (``--collector.textfile.directory``) reads every ``*.prom`` file in its folder at
each scrape; this one is replaced whole after each run (``runner_health.atomic``), mode 0644:
it holds no secret. Names follow Prometheus' conventions: a ``runner_health_`` prefix, base
units (seconds, bytes), ``_total`` on the one counter, ``_timestamp_seconds`` on a time.

A check's state is two metrics. ``runner_health_check_up`` is 1 when it passed or was healed
and 0 when it failed, is held, or could not observe (unknown): an alert on ``up == 0`` must
not resolve because the check stopped being able to look. A skipped or silenced check has no
``up``: there is nothing to alert on. ``runner_health_check_outcome`` says which outcome it
was (1 for it, 0 for every other), so "held" or "unknown" can be told apart and alerted on.

Every value comes from summary.json's content and the state store (untrusted: the state file
may be garbled, a measurement may be a string): only finite numbers become samples, label
values are scrubbed of secrets and URLs and cut to a bounded length.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from runner_health import atomic, redact
from runner_health.exitcodes import ExitCode

PREFIX = "runner_health_"
OUTCOMES = ("passed", "healed", "held", "failed", "unknown", "skipped", "silenced")
EXIT_WORDS = ", ".join(
    f"{int(code)} {code.label}"
    for code in (ExitCode.HEALTHY, ExitCode.UNHEALTHY, ExitCode.HEALED, ExitCode.UNKNOWN)
)
UP = {"passed": 1, "healed": 1, "held": 0, "failed": 0, "unknown": 0}
MAX_LABEL = 128  # characters in a label value: a check's name with its parameters fits
MAX_SERIES = 200  # checks, remediations, results, paths: far above what a runner has
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s()<>\[\]\"']*")
# Measurements of one value each: (measurement, metric, help, factor to the base unit).
SINGLE = (
    ("clock_offset_seconds", "clock_offset_seconds", "The VM's clock minus GitHub's.", 1),
    (
        "oldest_queued_minutes",
        "oldest_queued_job_age_seconds",
        "How long the oldest queued self-hosted job has waited (0: none queued).",
        60,
    ),
    ("runner_online", "runner_online", "1 when GitHub lists the runner online.", 1),
    ("runner_busy", "runner_busy", "1 when GitHub lists the runner running a job.", 1),
)
# Measurements per path (``free_bytes:/var``): (prefix, metric, help).
PER_PATH = (
    (
        "free_bytes:",
        "disk_free_bytes",
        "Free space on the filesystem holding the path, on the target (the runner's VM).",
    ),
    (
        "free_inodes:",
        "disk_free_inodes",
        "Free inodes on the filesystem holding the path, on the target (the runner's VM).",
    ),
)


def write(
    path: Path,
    summary: Mapping[str, Any],
    history: Mapping[str, Any],
    remediation_counts: Mapping[str, Any],
) -> None:
    """Replace ``path`` with the metrics of this run (``summary``), what runs remember
    (``history``: time to heal) and the fixes run so far (``remediation_counts``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(summary, history, remediation_counts))
    atomic.write(path, generate_latest(registry), mode=0o644)


class _Collector:
    """prometheus_client's view of one run: the families, built once, when written."""

    def __init__(
        self, summary: Mapping[str, Any], history: Mapping[str, Any], counts: Mapping[str, Any]
    ) -> None:
        self.summary, self.history, self.counts = summary, history, counts

    def collect(self) -> Iterator[Metric]:
        yield from _run(self.summary)
        listed = self.summary.get("checks")
        checks = [c for c in listed if isinstance(c, Mapping)] if isinstance(listed, list) else []
        yield from _checks(checks)
        yield _time_to_heal(self.history)
        yield _remediations(self.counts)
        yield from _measurements(checks)


def _run(summary: Mapping[str, Any]) -> Iterator[Metric]:
    finished = _timestamp(summary.get("finished_at"))
    for name, help_text, value in (
        ("last_run_timestamp_seconds", "When the last run finished (Unix time).", finished),
        (
            "last_run_duration_seconds",
            "How long the last run took.",
            summary.get("duration_seconds"),
        ),
        (
            "last_run_exit_code",
            f"The last run's exit status ({EXIT_WORDS}; the README lists all).",
            summary.get("exit_code"),
        ),
    ):
        if (number := _number(value)) is not None:
            yield GaugeMetricFamily(PREFIX + name, help_text, value=number)


def _checks(checks: list[Mapping[str, Any]]) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        PREFIX + "check_up",
        "1: the check passed or was healed; 0: failed, held or unknown (none: skipped, silenced).",
        labels=["check", "condition"],
    )
    outcome = GaugeMetricFamily(
        PREFIX + "check_outcome",
        "1 for the check's outcome in the last run, 0 for the others.",
        labels=["check", "condition", "outcome"],
    )
    seen: set[str] = set()
    for check in checks:
        labels = [_label(check.get("name")), _label(check.get("condition"))]
        if labels[0] in seen or len(seen) >= MAX_SERIES:
            continue
        seen.add(labels[0])
        said = check.get("outcome") if check.get("outcome") in OUTCOMES else "unknown"
        if said in UP:
            up.add_metric(labels, UP[said])
        for each in OUTCOMES:
            outcome.add_metric([*labels, each], int(each == said))
    yield up
    yield outcome


def _time_to_heal(history: Mapping[str, Any]) -> Metric:
    family = GaugeMetricFamily(
        PREFIX + "time_to_heal_seconds",
        "From a check's first failure to the run that healed it, the last time it healed.",
        labels=["check", "condition"],
    )
    for name, entry in list(history.items())[:MAX_SERIES]:
        seconds = _number(entry.get("time_to_heal_seconds")) if isinstance(entry, Mapping) else None
        if seconds is not None:
            family.add_metric([_label(name), _label(entry.get("condition"))], seconds)
    return family


def _remediations(counts: Mapping[str, Any]) -> Metric:
    family = CounterMetricFamily(
        PREFIX + "remediations",
        "Fixes run since the state file began, by fix and result (done, failed, refused).",
        labels=["remediation", "result"],
    )
    for fix, results in list(counts.items())[:MAX_SERIES]:
        if isinstance(results, Mapping):
            for result, count in list(results.items())[:MAX_SERIES]:
                if (number := _number(count)) is not None and number >= 0:
                    family.add_metric([_label(fix), _label(result)], number)
    return family


def _measurements(checks: list[Mapping[str, Any]]) -> Iterator[Metric]:
    found: dict[str, float] = {}
    for check in checks:
        measured = check.get("measurements")
        if isinstance(measured, Mapping):
            for key, value in list(measured.items())[:MAX_SERIES]:
                if isinstance(key, str) and (number := _number(value)) is not None:
                    found.setdefault(key, number)
    for key, name, help_text, factor in SINGLE:
        if key in found:
            yield GaugeMetricFamily(PREFIX + name, help_text, value=found[key] * factor)
    for key_prefix, name, help_text in PER_PATH:
        family = GaugeMetricFamily(PREFIX + name, help_text, labels=["path"])
        paths: dict[str, float] = {}
        for key, value in found.items():
            if key.startswith(key_prefix):
                paths.setdefault(_label(key.removeprefix(key_prefix)), value)
        for path, value in list(paths.items())[:MAX_SERIES]:
            family.add_metric([path], value)
        yield family


def _number(value: object) -> float | None:
    """A finite number (a bool counts: 0/1), else None: a string or NaN is no measurement."""
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _timestamp(value: object) -> float | None:
    """An ISO time with a zone as Unix time; None when it is not one."""
    try:
        moment = datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _label(value: object) -> str:
    """A label value that is safe to publish: no secret, no URL, valid UTF-8, bounded."""
    text = _URL.sub(redact.MASK, redact.scrub(str(value)))
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
