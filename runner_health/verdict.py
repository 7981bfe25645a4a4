"""The verdict that opens report.html: the run's status in words, then what failed, what was
done, what changed and what is still wrong.

A pure function of summary.json's content, so the page and the file can never disagree. The
block is self-contained (inline styles only, no script, no external asset) and every piece of
text in it is escaped: failure text comes from the machine a hostile job runs on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

# What each status means, after "<Status> (exit N)".
STATUS_WORDS = {
    "healthy": "every check passed",
    "healed": "a check failed and its fix healed it; every check now passes",
    "unhealthy": "a check failed",
    "unknown": "a check could not observe",
}
STATUS_COLOURS = {"healthy": "#1a7f37", "healed": "#9a6700", "unknown": "#6e40c9"}
FAILED_COLOUR = "#cf222e"  # unhealthy, and every status not named above
MODE_WORDS = {  # summary.json's "mode", in words (the terminal and the report say the same)
    "heal": "heal (a failing check's fix runs)",
    "report": 'report: observe only, no fix runs (mode = "report" in the config)',
    "no-remediate": "no-remediate: observe only, no fix runs (--no-remediate)",
    "dry-run": "dry run: each fix says what it would do, nothing changes (--dry-run)",
}
CELL = "border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top;color:#1f2328"


def html(summary: Mapping[str, Any]) -> str:
    """The verdict block for ``summary`` (summary.json's schema), ready to put in a page."""
    status = str(summary.get("status", "unknown"))
    checks = [c for c in summary.get("checks", []) if isinstance(c, Mapping)]
    rows = [
        ("What failed", _failed(checks), "nothing failed"),
        ("What was done", _done(checks), "no fix ran"),
        ("What changed", _changed(checks), "nothing changed"),
        ("What is still wrong", _still_wrong(checks), "nothing"),
        ("Skipped", _skipped(checks), "nothing"),
        ("Silenced", _silenced(checks), "nothing"),
    ]
    colour = STATUS_COLOURS.get(status, FAILED_COLOUR)
    table = "".join(
        f'<tr><th style="{CELL};width:12em">{escape(title)}</th>'
        f'<td style="{CELL}">{_list(items) if items else escape(empty)}</td></tr>'
        for title, items, empty in rows
    )
    return (
        '<section class="runner-health-verdict" style="margin:0 0 1em 0">'
        f'<h2 style="color:{colour};margin:0 0 .3em 0">{escape(_status_line(summary))}</h2>'
        f'<p style="margin:.2em 0">{escape(_run_line(summary))}</p>'
        f'<p style="margin:.2em 0">Silences: {_silences(summary.get("silences", []))}</p>'
        f'<table style="border-collapse:collapse;margin-top:.5em">{table}</table>'
        "</section>"
    )


def _status_line(summary: Mapping[str, Any]) -> str:
    """ "Healed (exit 7): a check failed and ...": the run's status in words."""
    status = str(summary.get("status", "unknown"))
    line = f"{status.capitalize()} (exit {summary.get('exit_code', '?')})"
    words = STATUS_WORDS.get(status)
    return f"{line}: {words}" if words else line


def _run_line(summary: Mapping[str, Any]) -> str:
    """Which runner-health, how it ran, on what, and when."""
    mode = str(summary.get("mode", ""))
    parts = [
        f"runner-health {summary.get('runner_health_version', '?')}",
        f"mode: {MODE_WORDS.get(mode, mode)}",
        f"runner {summary.get('runner', '?')} on {summary.get('target', '?')}",
    ]
    if summary.get("finished_at"):
        parts.append(f"finished {summary['finished_at']}")
    if isinstance(summary.get("duration_seconds"), (int, float)):
        parts.append(f"in {round(summary['duration_seconds'], 1):g} s")
    return " · ".join(parts)


def _silences(silences: Iterable[Any]) -> str:
    """Each silence in words, an expired one said so; "none" without any."""
    items = [
        f"{s.get('check')} until {s.get('until')}: {s.get('reason')}"
        + (" (EXPIRED: remove it or extend it)" if s.get("expired") else "")
        for s in silences
        if isinstance(s, Mapping)
    ]
    return "; ".join(escape(item) for item in items) or "none"


def _failed(checks: list[Mapping[str, Any]]) -> list[str]:
    """Checks whose first attempt failed (the healed ones too), with their failure line."""
    return [
        _said(c, c.get("failure"))
        for c in checks
        if c.get("outcome") in ("failed", "healed", "held")
    ]


def _done(checks: list[Mapping[str, Any]]) -> list[str]:
    return [
        f"{c['remediation']}: {c.get('fix_result') or 'not run'} (for {_name(c)})"
        for c in checks
        if c.get("remediation")
    ]


def _changed(checks: list[Mapping[str, Any]]) -> list[str]:
    return [f"{_name(c)}: healed" for c in checks if c.get("outcome") == "healed"]


def _still_wrong(checks: list[Mapping[str, Any]]) -> list[str]:
    """A held check says why its fix no longer runs: it tried its budget in the window."""
    return [
        _said(c, c.get("failure"), str(c["outcome"]))
        for c in checks
        if c.get("outcome") in ("failed", "unknown", "held")
    ]


def _skipped(checks: list[Mapping[str, Any]]) -> list[str]:
    return [_said(c, c.get("failure"), "skipped") for c in checks if c.get("outcome") == "skipped"]


def _silenced(checks: list[Mapping[str, Any]]) -> list[str]:
    items = []
    for check in checks:
        if check.get("outcome") == "silenced":
            silence = check.get("silence") if isinstance(check.get("silence"), Mapping) else {}
            why = f"until {silence.get('until')}: {silence.get('reason')}" if silence else ""
            items.append(_said(check, why, "silenced"))
    return items


def _name(check: Mapping[str, Any]) -> str:
    """A check as a person finds it in the table below: its function, and its condition."""
    name = check.get("name") or str(check.get("nodeid", "?")).split("::")[-1]
    return f"{name} ({check.get('condition', '?')})"


def _said(check: Mapping[str, Any], text: object, label: str = "") -> str:
    """ "name: label: text", leaving out what is missing (never a None or a repr)."""
    parts = [_name(check), label, text if isinstance(text, str) else ""]
    return ": ".join(p for p in parts if p)


def _list(items: list[str]) -> str:
    lis = "".join(f"<li>{escape(item)}</li>" for item in items)
    return f'<ul style="margin:0;padding-left:1.2em">{lis}</ul>'
