"""reports/index.html: the recent runs at a glance, and what each check's fixes have done.

>>> write_index(Path("reports"), store.history())
PosixPath('reports/index.html')

The page is a grid, one row per check and one column per run (newest first, at most
``MAX_RUNS``), each cell its outcome in a word and a colour (the word is there for readers
who cannot tell the colours apart) and a link to that run's report.html. Below it, per
check, what the state store remembers: heals and fix attempts within the window, the last
heal, the time it took and the last fix's result.

The page is self-contained: inline CSS, no script, no font or image from elsewhere, so it
works offline and from a copied folder. Its links are relative. Everything in it comes from
files (each run's summary.json, the state file) that may be missing, garbled or, through a
check's text, shaped by a hostile job: read with a size bound, checked for type, cut to a
bounded length and escaped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Mapping
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from runner_health import atomic, redact, verdict

INDEX = "index.html"
MAX_RUNS = 50  # columns: two days at one run an hour, four hours at every 5 minutes
MAX_CHECKS = 100  # rows
MAX_TEXT = 120  # characters of any one piece of text
MAX_SUMMARY_BYTES = 2_000_000  # summary.json is a few kB; more is not runner-health's
RUN_NAME = re.compile(r"\d{8}T\d{6}Z(?:-(\d{1,6}))?")  # reports.create_run_dir's names
OUTCOME_COLOURS = {  # background, for dark text
    "passed": "#dafbe1",
    "healed": "#fff1c2",
    "held": "#ffd8b5",
    "failed": "#ffc1c0",
    "unknown": "#e5dbff",
    "skipped": "#eaeef2",
    "silenced": "#eaeef2",
}
STYLE = """
body{font-family:sans-serif;color:#1f2328;margin:1em}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}
.grid td,.grid thead th{text-align:center;white-space:nowrap}
.grid th.check{text-align:left;white-space:nowrap;position:sticky;left:0;background:#fff}
.grid a{color:#1f2328;text-decoration:none;display:block}
.scroll{overflow-x:auto}
"""


def write_index(reports_base: Path, history: Mapping[str, Any]) -> Path:
    """Replace ``<reports_base>/index.html`` with the runs there and ``history`` (the state
    store's per-check memory); the page's path."""
    path = reports_base / INDEX
    atomic.write(path, _page(reports_base, history).encode(), mode=0o644)
    return path


def _page(reports_base: Path, history: Mapping[str, Any]) -> str:
    """The whole page."""
    runs = [(name, _summary(reports_base / name)) for name in _run_names(reports_base)]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>runner-health: recent runs</title>"
        f"<style>{STYLE}</style></head><body>"
        "<h1>runner-health: recent runs</h1>"
        f"<p>The newest {len(runs)} runs, newest first. Each cell opens that run's report.</p>"
        f"{_grid(reports_base, runs)}"
        "<h2>Fixes per check</h2>"
        "<p>From the state file: heals and fix attempts within the budget's window.</p>"
        f"{_fixes(history)}"
        "</body></html>\n"
    )


def _run_names(base: Path) -> list[str]:
    """The run folders' names, newest first (names are UTC times, then -1, -2 ... in a second)."""
    try:
        with os.scandir(base) as entries:
            names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    runs = [(name, match) for name in names if (match := RUN_NAME.fullmatch(name))]
    runs.sort(key=lambda run: (run[0][:16], int(run[1].group(1) or 0)), reverse=True)
    return [name for name, _ in runs[:MAX_RUNS]]


def _summary(run_dir: Path) -> dict[str, Any] | None:
    """The run's summary.json, or None when it is missing, garbled, huge or not a plain file."""
    try:
        fd = os.open(run_dir / "summary.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                return None
            text = file.read(MAX_SUMMARY_BYTES + 1)
        data = json.loads(text) if len(text) <= MAX_SUMMARY_BYTES else None
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _grid(base: Path, runs: list[tuple[str, dict[str, Any] | None]]) -> str:
    if not runs:
        return "<p>No runs yet.</p>"
    outcomes = [_outcomes(summary) for _, summary in runs]
    checks = list(dict.fromkeys(name for each in outcomes for name in each))[:MAX_CHECKS]
    reports = [_report(base, name, summary) for name, summary in runs]
    head = "".join(
        _run_header(name, summary, report)
        for (name, summary), report in zip(runs, reports, strict=True)
    )
    rows = "".join(
        f'<tr><th class="check">{_text(check)}</th>'
        + "".join(
            _cell(each.get(check), report) for each, report in zip(outcomes, reports, strict=True)
        )
        + "</tr>"
        for check in checks
    )
    return (
        '<div class="scroll"><table class="grid">'
        f'<thead><tr><th class="check">check</th>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _outcomes(summary: dict[str, Any] | None) -> dict[str, str]:
    """Check name -> outcome (a word not runner-health's is shown as "unknown")."""
    checks = summary.get("checks") if summary else None
    found: dict[str, str] = {}
    for check in checks if isinstance(checks, list) else []:
        if isinstance(check, Mapping) and isinstance(check.get("name"), str):
            outcome = check.get("outcome")
            known = isinstance(outcome, str) and outcome in OUTCOME_COLOURS
            found.setdefault(check["name"], outcome if known else "unknown")
    return found


def _report(base: Path, run: str, summary: dict[str, Any] | None) -> str | None:
    """The run's report.html as a relative link; None when there is none. A run that wrote
    its summary gets its report right after (pytest-html writes it last): the current run,
    whose page this is, links to it before it exists."""
    if summary is None and not (base / run / "report.html").is_file():
        return None
    return f"{run}/report.html"


def _run_header(name: str, summary: dict[str, Any] | None, report: str | None) -> str:
    """The run's time and status; a run without a readable summary says so."""
    if summary is None:
        return f"<th>{_link(report, _text(name) + '<br>no summary')}</th>"
    status = str(summary.get("status", "unknown"))
    colour = verdict.STATUS_COLOURS.get(status, verdict.FAILED_COLOUR)
    moment = _when(summary.get("finished_at")) or _when(summary.get("started_at"))
    shown = moment.strftime("%m-%d<br>%H:%M UTC") if moment else _text(name)
    said = f'{shown}<br><span style="color:{colour};font-weight:bold">{_text(status)}</span>'
    return f"<th>{_link(report, said)}</th>"


def _cell(outcome: str | None, report: str | None) -> str:
    if outcome is None:
        return "<td></td>"  # the check did not run then (added later, deselected)
    colour = OUTCOME_COLOURS[outcome]
    return f'<td style="background:{colour}">{_link(report, outcome)}</td>'


def _link(report: str | None, inner: str) -> str:
    return inner if report is None else f'<a href="{escape(report)}">{inner}</a>'


def _fixes(history: Mapping[str, Any]) -> str:
    rows = []
    for name, entry in list(history.items())[:MAX_CHECKS]:
        if not isinstance(entry, Mapping):
            continue
        heal = entry.get("time_to_heal_seconds")
        cells = (
            name,
            entry.get("condition"),
            entry.get("outcome"),
            entry.get("heals"),
            entry.get("attempts"),
            _shown_time(entry.get("last_heal")),
            _duration(heal) if isinstance(heal, (int, float)) else None,
            entry.get("last_result"),
            _shown_time(entry.get("first_failure")),
        )
        rows.append("<tr>" + "".join(f"<td>{_text(c)}</td>" for c in cells) + "</tr>")
    if not rows:
        return "<p>No check has been remembered yet.</p>"
    head = "".join(
        f"<th>{title}</th>"
        for title in (
            "check",
            "condition",
            "last outcome",
            "heals",
            "fix attempts",
            "last heal",
            "time to heal (last)",
            "last fix result",
            "failing since",
        )
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _when(value: object) -> datetime | None:
    """An ISO time with a zone, in UTC; None when it is not one."""
    with contextlib.suppress(TypeError, ValueError):
        moment = datetime.fromisoformat(value)  # type: ignore[arg-type]
        if moment.tzinfo is not None:
            return moment.astimezone(timezone.utc)
    return None


def _shown_time(value: object) -> str | None:
    moment = _when(value)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else None


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _text(value: object) -> str:
    """Any value as bounded, escaped text without secrets; nothing for a missing one."""
    text = "" if value is None else redact.scrub(str(value))
    return escape(text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…")
