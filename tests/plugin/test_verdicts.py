"""The run's verdicts (issue 11): every check observes whatever else is broken, "unknown" is
its own outcome and exit status, report mode and silences, summary.json and report.html."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from runner_health import alert
from tests.integration.hostile_server import Answer, HostileServer
from tests.plugin import test_healing
from tests.plugin.test_healing import HEALABLE, ROOT, calls, configure, html_data, summary
from tests.plugin.test_healing import write_check as write

pytest_plugins = ["pytester"]

project = test_healing.project


def outcomes(project: pytest.Pytester) -> dict[str, str]:
    return {c["name"]: c["outcome"] for c in summary(project)["checks"]}


# -- item 2: observation never depends on another check's health ------------------------------

# The real GitHub-side checks' markers; the answers are what an outage looks like.
REGISTRATION = """
import pytest
pytestmark = pytest.mark.needs("vm", "clock")

@pytest.mark.github
@pytest.mark.remediation("counted_fix")
def test_runner_known_to_github():
    assert False, "runner 'vm1' lacks labels ['kernel-6.6'] at GitHub"
"""
ONLINE = """
import pytest
pytestmark = pytest.mark.needs("vm", "clock", "registration", "service")

@pytest.mark.github
def test_runner_online_at_github():
    assert False, "GitHub shows runner 'vm1' offline"
"""
QUEUE = """
import pytest

@pytest.mark.github
def test_no_job_queued_too_long():
    assert False, "1 job(s) wait for runner 'vm1':\\nacme/kernel-ci build: queued 40 min"
"""


def test_github_only_run_sees_offline_and_the_queue_when_the_labels_are_wrong(project):
    write(project, "registration", REGISTRATION)
    write(project, "online", ONLINE)
    write(project, "queue", QUEUE)
    write(project, "clock", 'def test_clock():\n    assert False, "chronyd stopped"\n')
    result = project.runpytest_subprocess("checks", "-m", "github", "--no-remediate")
    assert result.ret == 1
    assert outcomes(project) == {
        "test_runner_known_to_github": "failed",
        "test_runner_online_at_github": "failed",
        "test_no_job_queued_too_long": "failed",
    }
    assert alert.assess(summary(project)).state == alert.DOWN  # the alert fires


def test_a_fix_waits_for_its_prerequisite_and_the_check_is_not_rerun(project):
    write(project, "clock", 'def test_clock():\n    assert False, "chronyd stopped"\n')
    write(project, "registration", REGISTRATION)
    result = project.runpytest_subprocess("checks")
    assert result.ret == 1 and calls(project) == 0
    assert "RERUN" not in result.stdout.str()
    record = summary(project)["checks"][1]
    assert record["outcome"] == "failed" and record["remediation"] == "counted_fix"
    assert record["fix_result"] == "not run: prerequisite 'clock' is unhealthy"


# -- item 3: "unknown" is its own verdict -----------------------------------------------------

UNKNOWN = (
    "from runner_health.observe import CannotObserve\n"
    "def test_unknown():\n    raise CannotObserve('GET /x: 403: needs Administration read')\n"
)
FAILED = 'def test_failed():\n    assert False, "broken"\n'


@pytest.mark.parametrize(
    ("checks", "status", "label"),
    [
        ({"a": UNKNOWN}, 9, "unknown"),
        ({"a": UNKNOWN, "b": FAILED}, 1, "unhealthy"),
        ({"a": UNKNOWN, "thing": HEALABLE}, 9, "unknown"),
    ],
)
def test_unknown_exits_9_below_a_failure_above_a_heal(project, checks, status, label):
    for name, body in checks.items():
        write(project, name, body)
    result = project.runpytest_subprocess("checks")
    assert result.ret == status
    assert summary(project)["status"] == label
    result.stdout.fnmatch_lines(
        [
            "UNKNOWN  test_unknown  GET /x: 403: needs Administration read",
            f"status: {label} (exit {status})*",
        ]
    )


def test_a_command_testinfra_asserts_on_is_unknown_in_words(project):
    write(
        project,
        "thing",
        'import pytest\n@pytest.mark.remediation("counted_fix")\n'
        'def test_thing(target):\n    assert target.file("/").is_directory\n'
        '    target.check_output("ls /nonexistent-rh")\n',
    )
    for args in (["checks"], ["checks", "--no-remediate", "--tb=no", "-rN"]):  # --status
        result = project.runpytest_subprocess(*args)
        assert result.ret == 9 and calls(project) == 0
        (record,) = summary(project)["checks"]
        assert record["outcome"] == "unknown" and record["fix_result"] is None
        assert record["failure"].startswith("`ls /nonexistent-rh` exited 2: ls: cannot access")
        assert "CommandResult" not in result.stdout.str() + str(summary(project))
        assert "CommandResult" not in str(html_data(project)["tests"])
        shutil.rmtree(project.path / "reports")


def test_without_a_token_github_checks_are_skipped_not_unknown(project, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN")
    configure(project, extra="")
    text = (project.path / "runner-health.toml").read_text()
    (project.path / "runner-health.toml").write_text(
        text.replace(
            'repository = "acme/kernel-ci"', 'repository = "acme/kernel-ci"\nuse_token = false'
        )
    )
    write(project, "online", 'def test_online(github):\n    github.runner("vm1")\n')
    result = project.runpytest_subprocess("checks")
    assert result.ret == 0, result.stdout.str()
    (record,) = summary(project)["checks"]
    assert record["outcome"] == "skipped"
    assert record["failure"] == (
        "GitHub side: checked from the host or the workflow (github.use_token = false)"
    )


# -- item 6: report mode and silences ---------------------------------------------------------


def test_report_mode_runs_no_fix_and_says_so_everywhere(project):
    write(project, "thing", HEALABLE)
    configure(project)
    config = project.path / "runner-health.toml"
    config.write_text('mode = "report"\n' + config.read_text())
    result = project.runpytest_subprocess("checks")
    assert result.ret == 1 and calls(project) == 0
    assert "RERUN" not in result.stdout.str()
    result.stdout.fnmatch_lines(["mode: report: observe only, no fix runs*"])
    assert summary(project)["mode"] == "report"
    assert html_data(project)["environment"]["Mode"].startswith("report: observe only")


# a silence still in force: a year after the real today (a fixed date would expire one day)
IN_FORCE = (datetime.now(timezone.utc) + timedelta(days=365)).date().isoformat()
SILENCE = '\n[[silences]]\ncheck = "{check}"\nreason = "ticket 42: disk swap"\nuntil = {until}\n'
MEASURED = """
import pytest

@pytest.mark.remediation("make_healthy")
def test_thing(settings, record_property):
    record_property("free_bytes:/", 1234)
    assert (settings.path.parent / "healthy").exists(), "not healthy yet"
"""


def test_a_silenced_check_runs_gets_no_fix_and_never_counts(project):
    write(project, "thing", MEASURED)
    configure(project, extra=SILENCE.format(check="thing", until=IN_FORCE))
    for args in (["checks"], ["checks", "--no-remediate", "--tb=no", "-rN"]):  # --status
        result = project.runpytest_subprocess(*args)
        assert result.ret == 0 and calls(project) == 0
        result.stdout.fnmatch_lines(
            [
                f"SILENCED test_thing  *until {IN_FORCE}: ticket 42: disk swap "
                "(still failing: not healthy yet)",
                f"silence: thing until {IN_FORCE}: ticket 42: disk swap",
                "status: healthy (exit 0)*",
            ]
        )
        run = summary(project)
        (record,) = run["checks"]
        assert record["outcome"] == "silenced" and record["measurements"] == {"free_bytes:/": 1234}
        assert record["silence"]["reason"] == "ticket 42: disk swap"
        assert record["silence"]["until"].startswith(f"{IN_FORCE}T23:59:59")
        assert [s["expired"] for s in run["silences"]] == [False]
        shutil.rmtree(project.path / "reports")


def test_an_expired_silence_is_ignored_and_warned_about(project):
    write(project, "thing", HEALABLE)
    configure(project, extra=SILENCE.format(check="test_thing", until="2020-11-01"))
    result = project.runpytest_subprocess("checks")
    assert result.ret == 7 and calls(project) == 1  # healed as if unsilenced
    warning = "silence for test_thing expired 2020-11-01: ticket 42: disk swap"
    result.stdout.fnmatch_lines([f"warning: {warning}"])
    run = summary(project)
    assert run["warnings"] == [warning] and run["silences"][0]["expired"] is True
    assert run["checks"][0]["silence"] is None


def test_a_silence_naming_no_check_is_warned_about(project):
    write(project, "thing", HEALABLE)
    (project.path / "healthy").touch()
    configure(project, extra=SILENCE.format(check="dsik", until=IN_FORCE))
    result = project.runpytest_subprocess("checks")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["warning: silence for dsik names no known check or condition"])


# -- item 7: summary.json and report.html -----------------------------------------------------


def test_summary_json_has_the_version_times_whole_failure_and_measurements(project):
    write(project, "thing", MEASURED)
    write(
        project,
        "other",
        "class Settings:\n    limit = 2\n\n"
        'def test_other():\n    assert 1 == Settings().limit, "line one\\nline two"\n',
    )
    result = project.runpytest_subprocess("checks")
    assert result.ret == 1
    run = summary(project)
    assert (
        run["runner_health_version"]
        == (ROOT / "runner_health" / "__init__.py").read_text().split('"')[-2]
    )
    assert run["started_at"] <= run["finished_at"] and run["duration_seconds"] > 0
    assert run["mode"] == "heal" and run["silences"] == []
    assert Path(run["report"]).is_absolute() and Path(run["report"]).exists()  # the alerts link it
    other, thing = sorted(run["checks"], key=lambda c: c["name"])
    assert other["failure"] == "line one"
    assert other["failure_text"] == "line one\n  line two"  # not pytest's "assert … where …"
    assert "Settings" not in json.dumps(run)
    assert thing["outcome"] == "healed" and thing["duration_seconds"] > 0
    assert thing["measurements"] == {"free_bytes:/": 1234}  # not the remediation properties


def test_the_real_checks_record_their_measurements(project):
    shutil.copy(ROOT / "checks" / "test_disk.py", project.path / "checks")
    shutil.copy(ROOT / "checks" / "test_clock.py", project.path / "checks")
    meta = Answer(200, {"verifiable_password_authentication": False})
    with HostileServer() as github:
        github.on("/meta", meta)
        configure(
            project,
            api_url=github.url,
            extra="[thresholds]\ndisk_free_gib = 0\ndisk_free_percent = 0\nmax_clock_offset_seconds = 3600\n",
        )
        project.runpytest_subprocess(
            "checks/test_disk.py", "checks/test_clock.py::test_clock_matches_github"
        )
    found = {c["name"]: c["measurements"] for c in summary(project)["checks"]}
    root = found["test_disk_headroom[root]"]
    assert set(root) == {"free_bytes:/", "free_inodes:/", "free_percent:/"}
    assert root["free_bytes:/"] > 0 and 0 < root["free_percent:/"] <= 100
    assert abs(found["test_clock_matches_github"]["clock_offset_seconds"]) < 5


def test_report_html_opens_with_the_verdict_and_shows_a_heal_as_healed(project):
    write(project, "thing", HEALABLE)
    write(
        project,
        "vm",
        'import pytest\ndef test_vm():\n    pytest.skip("the target is not a Multipass VM")\n',
    )
    result = project.runpytest_subprocess("checks")
    assert result.ret == 7
    data = html_data(project)
    assert data["environment"]["runner-health"] == summary(project)["runner_health_version"]
    rows = {nodeid.split("::")[-1]: tests for nodeid, tests in data["tests"].items()}
    (healed,) = rows["test_thing"]  # one row, not "Rerun" then "Passed"
    assert healed["resultsTableRow"][0] == '<td class="col-verdict">healed</td>'
    assert "failed before the fix:\nnot healthy yet" in healed["log"]
    (skipped,) = rows["test_vm"]
    assert skipped["log"].startswith("skipped: the target is not a Multipass VM\n")
    assert "Skipped: " not in skipped["log"] and ".py" not in skipped["log"]
    (page,) = (project.path / "reports").glob("*/report.html")
    text = page.read_text()
    assert text.index("runner-health-verdict") < text.index('class="run-count"')
