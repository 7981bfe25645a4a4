"""The healing hook, end to end in a throwaway project (pytester): fail → fix → rerun → report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SECRET = "test-token-not-real-0123456789"

CONFIG = """
target = "local://"
lock_file = "{lock}"
[github]
repository = "acme/kernel-ci"
api_url = "http://127.0.0.1:9"
[runner]
name = "vm1"
[reports]
directory = "{reports}"
"""

# Remediation fixtures for the throwaway project: they change a marker file through `steps`,
# the way real remediations change the VM, and count their calls in another file.
REMEDIATIONS = """
import pytest
from runner_health.steps import RemediationRefused

pytest_plugins = ["runner_health.plugin"]

def _count(tmp):
    calls = tmp / "calls"
    calls.write_text(calls.read_text() + "x" if calls.exists() else "x")

@pytest.fixture
def make_healthy(steps, settings):
    state = settings.path.parent
    def fix():
        _count(state)
        steps.run(f"touch {state}/healthy", why="the test says so", root=False)
    return fix

@pytest.fixture
def useless_fix(steps, settings):
    state = settings.path.parent
    def fix():
        _count(state)
        steps.run("true", why="does nothing", root=False)
    return fix

@pytest.fixture
def refusing_fix(settings):
    def fix():
        _count(settings.path.parent)
        raise RemediationRefused("GitHub is unreachable")
    return fix
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project with checks/, a valid config, and the remediation fixtures above."""
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(REMEDIATIONS)
    (pytester.path / "checks").mkdir()
    config = pytester.path / "runner-health.toml"
    config.write_text(CONFIG.format(lock=pytester.path / "lock", reports=pytester.path / "reports"))
    monkeypatch.setenv("GITHUB_TOKEN", SECRET)
    monkeypatch.delenv("RUNNER_HEALTH_CONFIG", raising=False)
    return pytester


def write_check(project: pytest.Pytester, name: str, body: str) -> None:
    (project.path / "checks" / f"test_{name}.py").write_text(body)


HEALABLE = """
import pytest
from pathlib import Path

@pytest.mark.remediation("make_healthy")
def test_thing(settings):
    assert (settings.path.parent / "healthy").exists(), "not healthy yet"
"""


def calls(project: pytest.Pytester) -> int:
    path = project.path / "calls"
    return len(path.read_text()) if path.exists() else 0


def summary(project: pytest.Pytester) -> dict:
    (found,) = (project.path / "reports").glob("*/summary.json")
    return json.loads(found.read_text())


def test_failing_check_is_fixed_rerun_and_reported_healed(project):
    write_check(project, "thing", HEALABLE)
    result = project.runpytest_subprocess("checks")
    assert result.ret == 7, result.stdout.str()
    assert calls(project) == 1
    result.stdout.fnmatch_lines(["*[[]fix[]] $ touch*", "*HEALED*test_thing*make_healthy: done*"])
    record = summary(project)["checks"][0]
    assert record["outcome"] == "healed"
    assert any("touch" in line for line in record["steps"])
    (html,) = (project.path / "reports").glob("*/report.html")
    page = html.read_text()
    assert "remediation make_healthy: done" in page
    assert "Mode" in page and "remediate" in page
    (junit,) = (project.path / "reports").glob("*/junit.xml")
    assert 'name="remediation" value="make_healthy"' in junit.read_text()


def test_healthy_run_exits_zero_and_runs_no_fix(project):
    write_check(project, "thing", HEALABLE)
    (project.path / "healthy").touch()
    result = project.runpytest_subprocess("checks")
    assert result.ret == 0
    assert calls(project) == 0
    assert summary(project)["status"] == "healthy"


def test_fix_that_does_not_help_runs_once_and_exits_unhealthy(project):
    write_check(
        project,
        "thing",
        'import pytest\n@pytest.mark.remediation("useless_fix")\ndef test_thing():\n    assert False, "broken"\n',
    )
    result = project.runpytest_subprocess("checks")
    assert result.ret == 1
    assert calls(project) == 1  # not again after the final attempt
    assert summary(project)["checks"][0]["outcome"] == "failed"


def test_no_remediate_reports_only(project):
    write_check(project, "thing", HEALABLE)
    result = project.runpytest_subprocess("checks", "--no-remediate")
    assert result.ret == 1
    assert calls(project) == 0
    assert not (project.path / "healthy").exists()


def test_dry_run_says_what_it_would_do_and_changes_nothing(project):
    write_check(project, "thing", HEALABLE)
    result = project.runpytest_subprocess("checks", "--dry-run")
    assert result.ret == 1
    assert not (project.path / "healthy").exists()
    result.stdout.fnmatch_lines(["*would run: touch*"])


def test_refused_fix_is_recorded_and_the_check_stays_failed(project):
    write_check(
        project,
        "thing",
        'import pytest\n@pytest.mark.remediation("refusing_fix")\ndef test_thing():\n    assert False\n',
    )
    result = project.runpytest_subprocess("checks")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*refused, nothing changed: GitHub is unreachable*"])
    assert summary(project)["checks"][0]["fix_result"] == "refused"


def test_unhealthy_prerequisite_skips_dependent_check_and_its_fix(project):
    write_check(project, "vm", 'def test_vm():\n    assert False, "vm down"\n')
    write_check(
        project,
        "service",
        'import pytest\npytestmark = pytest.mark.needs("vm")\n'
        '@pytest.mark.remediation("make_healthy")\ndef test_service():\n    assert False\n',
    )
    result = project.runpytest_subprocess("checks", "-rs")
    assert result.ret == 1
    assert calls(project) == 0
    result.stdout.fnmatch_lines(["*prerequisite 'vm' is unhealthy*"])


def test_checks_run_in_dependency_order(project):
    for name in ("version", "online", "service", "clock", "vm"):
        write_check(project, name, f"def test_{name}():\n    pass\n")
    result = project.runpytest_subprocess("checks", "-v")
    order = [
        line.split("::")[1].split()[0]
        for line in result.outlines
        if "::test_" in line and "PASSED" in line
    ]
    assert order == ["test_vm", "test_clock", "test_service", "test_online", "test_version"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[runner]\nname = 'vm1'\n", "github.repository: set exactly one of"),
        ("[github]\nrepository = 'acme/x'\n", "runner.name: missing"),
        (
            "[github]\nrepository = 'acme/x'\n[runner]\nname = 'vm1'\nlabel = ['x']\n",
            "runner.label: unknown setting",
        ),
        (
            "[github]\nrepository = 'acme/x'\napi_url = 'ftp://x'\n[runner]\nname = 'vm1'\n",
            "github.api_url: expected an http(s) URL",
        ),
        ("not toml ===", "is not valid TOML"),
        (  # hostile values: one here end to end, all of them in tests/unit/test_config.py
            "[github]\nrepository = 'acme/x'\n[runner]\nname = 'vm1'\n"
            "[remediation]\nonline_wait_seconds = nan\n",
            "remediation.online_wait_seconds: expected a number from 0 to 3600, got nan",
        ),
    ],
)
def test_bad_config_is_a_usage_error_that_touches_nothing(project, config, message):
    write_check(project, "thing", HEALABLE)
    (project.path / "runner-health.toml").write_text(config)
    result = project.runpytest_subprocess("checks")
    assert result.ret == 4
    result.stderr.fnmatch_lines([f"*{message}*"])
    assert calls(project) == 0
    assert not (project.path / "reports").exists()


def test_missing_token_is_a_usage_error(project, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN")
    monkeypatch.delenv("GH_TOKEN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no `gh` either
    write_check(project, "thing", HEALABLE)
    result = project.runpytest_subprocess("checks")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*no GitHub token*"])


def test_help_works_even_with_a_broken_config(project):
    (project.path / "runner-health.toml").write_text("broken ===")
    result = project.runpytest_subprocess("checks", "--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*--no-remediate*", "*--dry-run*", "*--recover*"])


def test_second_run_while_one_holds_the_lock_exits_at_once(project):
    import fcntl

    write_check(project, "thing", HEALABLE)
    with (project.path / "lock").open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = project.runpytest_subprocess("checks")
    assert result.ret == 6
    result.stderr.fnmatch_lines(["*another runner-health run is in progress*"])
    assert calls(project) == 0


def test_secrets_never_reach_the_reports(project):
    write_check(
        project,
        "thing",
        "import os\ndef test_leaky():\n"
        "    print('Authorization: Bearer', os.environ['GITHUB_TOKEN'])\n"
        "    assert False, 'token was ' + os.environ['GITHUB_TOKEN']\n",
    )
    result = project.runpytest_subprocess("checks")
    assert result.ret == 1
    for report in Path(project.path / "reports").glob("*/*"):
        assert SECRET not in report.read_text(), report.name
    assert SECRET not in result.stdout.str()
