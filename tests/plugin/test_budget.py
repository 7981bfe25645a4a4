"""The fix budget across runs (issue 9): a fix that keeps failing is held, the hold lifts when
the window passes or with --recover, and each run's summary.json lists what changed."""

# ruff: noqa: RUF001  (the multiplication sign in "tried 2 times" is the product's)

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timedelta

import pytest

from tests.plugin import test_healing
from tests.plugin.test_healing import calls
from tests.plugin.test_healing import write_check as write
from tests.testbed.webhook import RecordingWebhook

pytest_plugins = ["pytester"]

FAILING = """
import pytest

@pytest.mark.remediation("useless_fix")
def test_thing():
    assert False, "still broken"
"""
HELD = "not run: held: tried 2× in 60 min, last result done"


project = test_healing.project


@pytest.fixture
def budgeted(project: pytest.Pytester) -> pytest.Pytester:
    """test_healing's project, with a budget of two attempts an hour."""
    config = project.path / "runner-health.toml"
    config.write_text(config.read_text() + "[remediation]\nmax_attempts = 2\nwindow_minutes = 60\n")
    return project


def latest(project: pytest.Pytester) -> dict:
    """The newest run's summary.json (run folders sort in the order they were made)."""
    found = sorted((project.path / "reports").glob("*/summary.json"))
    return json.loads(found[-1].read_text())


def run(project: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = project.runpytest_subprocess("checks", *args)
    return result, latest(project)


def state_file(project: pytest.Pytester) -> dict:
    return json.loads((project.path / "reports" / "state.json").read_text())


def test_a_fix_that_keeps_failing_is_held_after_its_budget(budgeted):
    project = budgeted
    write(project, "thing", FAILING)
    kinds = []
    for expected_calls in (1, 2):
        result, summary = run(project)
        assert result.ret == 1 and calls(project) == expected_calls
        assert summary["checks"][0]["outcome"] == "failed"
        kinds.append([e["kind"] for e in summary["events"]])
    for _ in range(2):
        result, summary = run(project)
        assert result.ret == 1, result.stdout.str()
        assert calls(project) == 2  # the fix did not run again
        (check,) = summary["checks"]
        assert (check["outcome"], check["fix_result"]) == ("held", HELD)
        assert summary["status"] == "unhealthy"
        kinds.append([e["kind"] for e in summary["events"]])
    assert kinds == [["unhealthy"], [], ["held"], []]
    result.stdout.fnmatch_lines([f"HELD     test_thing  [[]useless_fix: {HELD}]  still broken"])
    assert "RERUN" not in result.stdout.str()
    (page,) = sorted((project.path / "reports").glob("*/report.html"))[-1:]
    text = page.read_text()
    blob = re.search(r'data-jsonblob="([^"]*)"', text)
    assert blob is not None
    (row,) = [r for rs in json.loads(html.unescape(blob.group(1)))["tests"].values() for r in rs]
    assert '<td class="col-verdict">held</td>' in row["resultsTableRow"][0]
    assert "test_thing (thing): held: still broken" in text  # the verdict block
    _, summary = run(project, "--no-remediate")  # health_check.sh --status says held too
    assert summary["checks"][0]["fix_result"] == HELD and summary["events"] == []


def test_the_hold_lifts_when_the_window_has_passed(budgeted):
    project = budgeted
    write(project, "thing", FAILING)
    for _ in range(3):
        run(project)
    assert calls(project) == 2
    saved = state_file(project)
    attempts = saved["fixes"]["useless_fix"]["attempts"]
    saved["fixes"]["useless_fix"]["attempts"] = [
        (datetime.fromisoformat(t) - timedelta(minutes=61)).isoformat() for t in attempts
    ]  # an hour later, as far as the store can tell
    (project.path / "reports" / "state.json").write_text(json.dumps(saved))
    _, summary = run(project)
    assert calls(project) == 3 and summary["checks"][0]["outcome"] == "failed"
    assert summary["checks"][0]["fix_result"] == "done"
    assert summary["events"] == []  # still the same bad spell
    _, summary = run(project)
    assert summary["checks"][0]["outcome"] == "failed" and calls(project) == 4
    _, summary = run(project)
    assert summary["checks"][0]["outcome"] == "held" and calls(project) == 4


def test_recover_lifts_the_hold_and_runs_the_fix(budgeted):
    project = budgeted
    write(project, "thing", FAILING)
    for _ in range(3):
        run(project)
    result, summary = run(project, "--recover")
    assert calls(project) == 3 and summary["checks"][0]["outcome"] == "failed"
    result.stdout.fnmatch_lines(["--recover: lifted the hold on useless_fix"])
    assert state_file(project)["fixes"]["useless_fix"]["attempts"] != []  # this run's


@pytest.mark.parametrize("args", [["--dry-run"], ["--no-remediate"]])
def test_runs_that_change_nothing_count_no_attempt(budgeted, args):
    project = budgeted
    write(project, "thing", FAILING)
    for _ in range(3):
        _, summary = run(project, *args)
        assert summary["checks"][0]["outcome"] == "failed"
    assert "useless_fix" not in state_file(project)["fixes"]
    assert [e["kind"] for e in summary["events"]] == []  # observed: one unhealthy, run 1


def test_events_say_what_changed(budgeted):
    project = budgeted
    write(
        project,
        "thing",
        "def test_thing(settings):\n"
        '    assert not (settings.path.parent / "broken").exists(), "it broke"\n',
    )
    (project.path / "broken").touch()
    result, summary = run(project)
    (event,) = summary["events"]
    assert set(event) == {"kind", "check", "condition", "text", "at"}
    assert (event["kind"], event["check"], event["condition"]) == (
        "unhealthy",
        "test_thing",
        "thing",
    )
    assert event["text"] == "test_thing (thing): unhealthy: it broke"
    result.stdout.fnmatch_lines(["event: unhealthy: test_thing (thing): unhealthy: it broke"])
    (project.path / "broken").unlink()
    result, summary = run(project)
    assert [e["kind"] for e in summary["events"]] == ["recovered"]
    assert result.ret == 0
    history = state_file(project)["checks"]["test_thing"]
    assert history["first_failure"] is None and history["time_to_heal_seconds"] > 0
    assert "runner_health_check_up" in (project.path / "reports" / "runner_health.prom").read_text()
    assert "test_thing" in (project.path / "reports" / "index.html").read_text()


def test_a_state_file_or_metrics_file_that_cannot_be_written_is_a_warning_not_a_changed_status(
    budgeted,
):
    project = budgeted
    write(project, "thing", FAILING)
    shared = project.path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    config = project.path / "runner-health.toml"
    config.write_text(
        f'state_file = "{shared}/state.json"\n'
        + config.read_text()
        + '[metrics]\ntextfile = "/proc/no-such/runner_health.prom"\n'
    )
    result, summary = run(project)
    assert result.ret == 1 and summary["status"] == "unhealthy"
    assert any("writable by other users" in w for w in summary["warnings"])
    result.stdout.fnmatch_lines(["warning: state file: StateError: *writable by other users*"])
    result.stdout.fnmatch_lines(["warning: metrics: *no-such*"])
    assert not (shared / "state.json").exists()


@pytest.mark.parametrize("mode", ["hang", "500"])
def test_a_dead_webhook_never_delays_a_heal_nor_changes_the_verdict(budgeted, mode):
    """Alerts go out after every fix, each delivery bounded: the heal is done before the
    webhook is even tried, and the run's verdict is the checks' alone."""
    project = budgeted
    write(project, "thing", test_healing.HEALABLE)
    write(project, "other", 'def test_other():\n    assert False, "broken, no fix"\n')
    with RecordingWebhook() as hook:
        hook.mode = mode
        config = project.path / "runner-health.toml"
        config.write_text(
            config.read_text()
            + f'[alerts]\nwebhook_url = "{hook.url}"\nwebhook_timeout_seconds = 1\n'
            + "webhook_retries = 1\n"
        )
        result, summary = run(project)
    assert result.ret == 1, result.stdout.str()
    outcomes = {c["name"]: (c["outcome"], c["fix_result"]) for c in summary["checks"]}
    assert outcomes == {"test_thing": ("healed", "done"), "test_other": ("failed", None)}
    assert [e["kind"] for e in summary["events"]] == ["unhealthy"]
    assert len(hook.calls) == 2  # tried, then once more
    # Sent from the run's finished summary: after every check and fix, not in their way.
    assert all(call["status"] == "unhealthy" and call["report"] for call in hook.calls)
    lines = result.stdout.str().splitlines()
    failed = next(i for i, x in enumerate(lines) if x.startswith("alert: webhook failed"))
    # 1 s per try and a 0.5 s pause: given up within its 2.5 s budget, whatever the server does.
    expected = "no whole answer within 2.5 s, given up" if mode == "hang" else "HTTP 500"
    assert expected in lines[failed], lines[failed]
    assert hook.secret not in result.stdout.str()
