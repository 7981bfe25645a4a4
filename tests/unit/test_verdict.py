"""The verdict block that opens report.html: status in words, then what failed, what was done,
what changed, what is still wrong, what was skipped or silenced; every text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from runner_health import verdict


def check(name: str, outcome: str, **fields: Any) -> dict[str, Any]:
    """One check's record, as summary.json has it."""
    condition = fields.pop("condition", name.removeprefix("test_").split("_")[0])
    return {
        "nodeid": f"checks/test_{condition}.py::{name}",
        "condition": condition,
        "name": name,
        "outcome": outcome,
        "remediation": None,
        "fix_result": None,
        "failure": None,
        "failure_text": None,
        "steps": [],
        "duration_seconds": 0.5,
        "measurements": {},
        "silence": None,
        **fields,
    }


def summary(status: str, exit_code: int, *checks: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "runner_health_version": "0.2.0",
        "started_at": "2025-06-01T12:00:00+00:00",
        "finished_at": "2025-06-01T12:00:42+00:00",
        "duration_seconds": 42.0,
        "status": status,
        "exit_code": exit_code,
        "target": "multipass://runner-vm",
        "runner": "runner-vm",
        "mode": "heal",
        "silences": [],
        "checks": list(checks),
        **fields,
    }


def read(block: str) -> dict[str, Any]:
    """What a person reads in the block: heading, the lines under it, and each table row."""
    root = ET.fromstring(block)  # well-formed, so nothing in it can open a tag
    rows = {}
    for row in root.iter("tr"):
        items = [li.text for li in row.iter("li")]
        rows[row.find("th").text] = items or row.find("td").text
    return {
        "status": root.find("h2").text,
        "lines": [p.text for p in root.findall("p")],
        "rows": rows,
    }


SERVICE_DOWN = "runner service actions.runner.o-r.runner-vm.service is inactive"


def test_a_healthy_run_says_so_and_lists_nothing():
    seen = read(verdict.html(summary("healthy", 0, check("test_disk_has_space", "passed"))))
    assert seen["status"] == "Healthy (exit 0): every check passed"
    assert seen["rows"] == {
        "What failed": "nothing failed",
        "What was done": "no fix ran",
        "What changed": "nothing changed",
        "What is still wrong": "nothing",
        "Skipped": "nothing",
        "Silenced": "nothing",
    }
    assert seen["lines"] == [
        "runner-health 0.2.0 · mode: heal (a failing check's fix runs) · runner runner-vm on "
        "multipass://runner-vm · finished 2025-06-01T12:00:42+00:00 · in 42 s",
        "Silences: none",
    ]


def test_a_healed_check_is_shown_failed_fixed_and_healed():
    healed = check(
        "test_service_running",
        "healed",
        remediation="start_runner_service",
        fix_result="done",
        failure=SERVICE_DOWN,
    )
    seen = read(verdict.html(summary("healed", 7, healed)))
    assert seen["status"] == (
        "Healed (exit 7): a check failed and its fix healed it; every check now passes"
    )
    rows = seen["rows"]
    assert rows["What failed"] == [f"test_service_running (service): {SERVICE_DOWN}"]
    assert rows["What was done"] == [
        "start_runner_service: done (for test_service_running (service))"
    ]
    assert rows["What changed"] == ["test_service_running (service): healed"]
    assert rows["What is still wrong"] == "nothing"


def test_a_check_still_failing_after_its_fix_is_still_wrong():
    failed = check(
        "test_service_running",
        "failed",
        remediation="start_runner_service",
        fix_result="failed",
        failure=SERVICE_DOWN,
    )
    seen = read(verdict.html(summary("unhealthy", 1, failed)))
    assert seen["status"] == "Unhealthy (exit 1): a check failed"
    assert seen["rows"]["What was done"] == [
        "start_runner_service: failed (for test_service_running (service))"
    ]
    assert seen["rows"]["What changed"] == "nothing changed"
    assert seen["rows"]["What is still wrong"] == [
        f"test_service_running (service): failed: {SERVICE_DOWN}"
    ]


def test_an_unknown_check_says_it_could_not_observe_and_why():
    cause = (
        "GET /repos/o/r/actions/runners: 401: the token is invalid or expired (github.token_file)"
    )
    unknown = check("test_runner_online", "unknown", failure=cause)
    seen = read(verdict.html(summary("unknown", 9, unknown)))
    assert seen["status"] == "Unknown (exit 9): a check could not observe"
    assert seen["rows"]["What failed"] == "nothing failed"
    assert seen["rows"]["What is still wrong"] == [f"test_runner_online (runner): unknown: {cause}"]


def test_skipped_and_silenced_checks_give_their_reasons_in_words():
    skipped = check("test_runner_online", "skipped", failure="prerequisite 'vm' is unhealthy")
    silenced = check(
        "test_disk_has_space",
        "silenced",
        silence={"reason": "disk swap planned", "until": "2025-06-30T23:59:59+00:00"},
    )
    silences = [
        {"check": "disk", "reason": "disk swap planned", "until": "2025-06-30", "expired": False},
        {"check": "clock", "reason": "NTP outage", "until": "2025-05-01", "expired": True},
    ]
    seen = read(verdict.html(summary("healthy", 0, skipped, silenced, silences=silences)))
    assert seen["rows"]["Skipped"] == [
        "test_runner_online (runner): skipped: prerequisite 'vm' is unhealthy"
    ]
    assert seen["rows"]["Silenced"] == [
        "test_disk_has_space (disk): silenced: until 2025-06-30T23:59:59+00:00: disk swap planned"
    ]
    assert seen["lines"][1] == (
        "Silences: disk until 2025-06-30: disk swap planned; clock until 2025-05-01: "
        "NTP outage (EXPIRED: remove it or extend it)"
    )


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("report", 'mode: report: observe only, no fix runs (mode = "report" in the config)'),
        ("dry-run", "mode: dry run: each fix says what it would do, nothing changes (--dry-run)"),
        ("no-remediate", "mode: no-remediate: observe only, no fix runs (--no-remediate)"),
    ],
)
def test_the_mode_is_said_in_words(mode, words):
    not_run = check(
        "test_service_running",
        "failed",
        remediation="start_runner_service",
        fix_result="not run: mode is report",
        failure=SERVICE_DOWN,
    )
    seen = read(verdict.html(summary("unhealthy", 1, not_run, mode=mode)))
    assert words in seen["lines"][0]
    assert seen["rows"]["What was done"] == [
        "start_runner_service: not run: mode is report (for test_service_running (service))"
    ]


HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)> & \"quoted\""


def test_hostile_text_is_escaped_everywhere():
    # Failure text, names and config values can come from the machine a hostile job runs on.
    evil = check(
        "test_<b>bold</b>",
        "failed",
        condition="<i>c</i>",
        remediation="<script>fix()</script>",
        fix_result="<u>done</u>",
        failure=HOSTILE,
    )
    block = verdict.html(
        summary(
            "unhealthy",
            1,
            evil,
            runner="<script>r</script>",
            target="<script>t</script>",
            runner_health_version="<script>v</script>",
            silences=[{"check": "<s>", "reason": HOSTILE, "until": "<t>", "expired": True}],
        )
    )
    root = ET.fromstring(block)
    tags = {element.tag for element in root.iter()}
    assert tags <= {"section", "h2", "p", "table", "tr", "th", "td", "ul", "li"}
    assert "<script" not in block and "<img" not in block and "onerror=alert(1)>" not in block
    assert read(block)["rows"]["What is still wrong"] == [
        f"test_<b>bold</b> (<i>c</i>): failed: {HOSTILE}"
    ]


def test_nothing_missing_shows_as_a_python_repr():
    # Nulls in the schema (no fix, no failure line, no silence) read as absent, not "None".
    bare = [
        check("test_a", "failed"),
        check("test_b", "skipped"),
        check("test_c", "silenced"),
        check("test_d", "unknown"),
        check("test_e", "failed", remediation="fix_e"),
    ]
    block = verdict.html(summary("unhealthy", 1, *bare))
    text = "".join(ET.fromstring(block).itertext())
    for repr_mark in ("None", "{'", "['", '{"', "Mapping", "dict("):
        assert repr_mark not in text
    assert read(block)["rows"]["What was done"] == ["fix_e: not run (for test_e (e))"]


def test_the_block_is_self_contained():
    block = verdict.html(summary("healthy", 0))
    for outside in ("<script", "<link", "<img", "src=", "href=", "url(", "@import"):
        assert outside not in block
