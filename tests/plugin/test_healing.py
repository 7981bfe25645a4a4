"""The healing hook, end to end in a throwaway project (pytester): fail → fix → rerun → report."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.integration.hostile_server import Answer, HostileServer
from tests.scripts.conftest import ROOT, write_fake

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

@pytest.fixture
def counted_fix(settings):
    return lambda: _count(settings.path.parent)

# The real checks' fixes, counted and harmless.
free_disk = sync_clock = start_vm = counted_fix
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


def html_data(project: pytest.Pytester) -> dict:
    """What report.html shows: pytest-html keeps its environment and rows as JSON."""
    (page,) = (project.path / "reports").glob("*/report.html")
    blob = re.search(r'data-jsonblob="([^"]*)"', page.read_text())
    assert blob is not None
    return json.loads(html.unescape(blob.group(1)))


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
    assert "Mode" in page and "heal (a failing check" in page
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


def test_unhealthy_prerequisite_stops_the_fix_not_the_check(project):
    write_check(project, "clock", 'def test_clock():\n    assert False, "clock off"\n')
    write_check(
        project,
        "service",
        'import pytest\npytestmark = pytest.mark.needs("clock")\n'
        '@pytest.mark.remediation("make_healthy")\ndef test_service():\n'
        '    assert False, "service down"\n',
    )
    result = project.runpytest_subprocess("checks")
    assert result.ret == 1
    assert calls(project) == 0
    assert "RERUN" not in result.stdout.str()
    _, service = summary(project)["checks"]
    assert service["outcome"] == "failed" and service["failure"] == "service down"
    assert service["remediation"] == "make_healthy"
    assert service["fix_result"] == "not run: prerequisite 'clock' is unhealthy"
    result.stdout.fnmatch_lines(
        ["FAILED   test_service  [[]make_healthy: not run: prerequisite 'clock' is unhealthy]*"]
    )


def test_a_check_that_needs_a_vm_that_is_down_is_unknown_without_running(project):
    write_check(project, "vm", 'def test_vm():\n    assert False, "vm stopped"\n')
    write_check(
        project,
        "service",
        'import pytest\npytestmark = pytest.mark.needs("vm")\n'
        '@pytest.mark.remediation("make_healthy")\ndef test_service(settings):\n'
        '    (settings.path.parent / "ran").touch()\n',
    )
    result = project.runpytest_subprocess("checks")
    assert result.ret == 1
    assert calls(project) == 0 and not (project.path / "ran").exists()
    _, service = summary(project)["checks"]
    assert service["outcome"] == "unknown" and service["fix_result"] is None
    assert service["failure"] == "the VM is down or does not answer (see the vm check)"
    assert "Traceback" not in result.stdout.str() and "CannotObserve" not in result.stdout.str()


def test_checks_run_in_dependency_order(project):
    for name in ("version", "online", "service", "clock", "vm"):
        write_check(project, name, f"def test_{name}():\n    pass\n")
    result = project.runpytest_subprocess("checks", "-v")
    order = [
        line.split("::")[1].split()[0]
        for line in result.outlines
        if "::test_" in line and "PASSED" in line
    ]
    assert order == ["test_vm", "test_clock", "test_version", "test_service", "test_online"]


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


# -- a check that cannot observe: "unknown" (exit 9), and no fix ---------------------------


def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bin dir first on the PATH the runs inherit."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return bin_dir


def configure(
    project: pytest.Pytester, *, runner: str = "", extra: str = "", **values: str
) -> None:
    """The project's config with ``values`` replaced (target, api_url), ``runner`` keys added to
    [runner] and ``extra`` tables at the end."""
    text = CONFIG.format(lock=project.path / "lock", reports=project.path / "reports")
    for key, value in values.items():
        text = "\n".join(
            f'{key} = "{value}"' if line.startswith(f"{key} = ") else line
            for line in text.splitlines()
        )
    text = text.replace('name = "vm1"', f'name = "vm1"\n{runner}') + "\n" + extra
    (project.path / "runner-health.toml").write_text(text)


def unobserved(project: pytest.Pytester, check: str, *args: str) -> dict:
    """Run the real ``checks/test_<check>.py``: it must end "unknown" with no fix run, exit 9,
    its cause on one line with no traceback or Python repr anywhere."""
    shutil.copy(ROOT / "checks" / f"test_{check}.py", project.path / "checks")
    result = project.runpytest_subprocess(*(args or ("checks",)))
    assert result.ret == 9, result.stdout.str()
    assert calls(project) == 0
    output = result.stdout.str()
    assert "RERUN" not in output
    (record,) = [r for r in summary(project)["checks"] if r["outcome"] != "passed"]
    assert record["outcome"] == "unknown" and record["remediation"] is None, record
    assert "\n" not in record["failure"]
    for text in (output, json.dumps(record), json.dumps(html_data(project))):
        assert not re.search(r"Traceback|CommandResult\(|Error\(|\.py:\d", text), text
    result.stdout.fnmatch_lines([f"UNKNOWN  {record['name']}  {record['failure']}"])
    return record


def test_check_that_cannot_observe_is_unknown_runs_no_fix_and_its_dependants_say_why(project):
    write_check(
        project,
        "vm",
        "import pytest\nfrom runner_health.observe import CannotObserve\n"
        '@pytest.mark.remediation("make_healthy")\ndef test_vm():\n'
        '    raise CannotObserve("multipass printed nonsense")\n',
    )
    write_check(
        project,
        "service",
        'import pytest\npytestmark = pytest.mark.needs("vm")\ndef test_service():\n    pass\n',
    )
    result = project.runpytest_subprocess("checks")
    assert result.ret == 9
    assert calls(project) == 0 and not (project.path / "healthy").exists()
    vm, service = summary(project)["checks"]
    assert vm["outcome"] == "unknown" and vm["fix_result"] is None
    assert vm["failure"] == "multipass printed nonsense"
    assert service["outcome"] == "unknown"
    assert service["failure"] == "the VM's state could not be read (see the vm check)"
    result.stdout.fnmatch_lines(
        ["UNKNOWN  test_vm  multipass printed nonsense", "status: unknown (exit 9)*"]
    )


def test_disk_check_on_a_mistyped_runner_directory_runs_no_cleanup(project):
    configure(
        project,
        runner='directory = "/nonexistent/typo"',
        extra="[thresholds]\ndisk_free_gib = 0\ndisk_free_percent = 0\n",
    )
    record = unobserved(project, "disk")
    assert record["nodeid"].endswith("[work]")
    assert "df -P -B1 /nonexistent/typo` exited" in record["failure"]


def test_clock_check_refused_by_github_runs_no_clock_fix(project):
    with HostileServer() as github:
        github.on("/meta", Answer(401, {"message": "Bad credentials"}))
        configure(project, api_url=github.url)
        record = unobserved(project, "clock", "checks/test_clock.py::test_clock_matches_github")
    assert "401" in record["failure"]


def test_vm_check_reading_garbage_from_multipass_starts_nothing(project, tmp_path, monkeypatch):
    write_fake(fake_bin(tmp_path, monkeypatch), "multipass", "echo 'Starting... {not json'")
    configure(project, target="multipass://vm1")
    record = unobserved(project, "vm")
    assert "multipass" in record["failure"]


# -- reports -------------------------------------------------------------------------------


def test_a_given_reports_dir_is_never_pruned_around(project):
    write_check(project, "thing", HEALABLE)
    (project.path / "healthy").touch()
    configure(project, extra="keep = 1\n")  # appended to [reports]
    mine = project.path / "mine"
    for name in ("2023-taxes", "2024-photos"):
        (mine / name).mkdir(parents=True)
        (mine / name / "receipt.pdf").write_text("keep me")
    for _ in range(2):
        assert project.runpytest_subprocess("checks", "--reports-dir", mine / "health").ret == 0
    assert sorted(p.name for p in mine.iterdir()) == ["2023-taxes", "2024-photos", "health"]
    assert (mine / "2023-taxes" / "receipt.pdf").read_text() == "keep me"


# -- a fix that reboots the machine runner-health runs on ------------------------------------


def test_local_reboot_waits_until_the_reports_are_written(project, tmp_path, monkeypatch):
    bin_dir = fake_bin(tmp_path, monkeypatch)
    seen = tmp_path / "seen-at-reboot"
    write_fake(bin_dir, "update-grub", "exit 0")
    write_fake(
        bin_dir,
        "systemctl",
        '[ "$1" = reboot ] || exit 3\n'
        "for f in report.html junit.xml summary.json; do\n"
        f'  if ls {project.path}/reports/*/"$f" >/dev/null 2>&1; then echo "$f"; fi\n'
        f"done >> {seen}\necho reboot >> {seen}",
    )
    grub = tmp_path / "grub"
    grub.write_text('GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX="console=ttyS0"\n')
    project.makeconftest(
        'pytest_plugins = ["runner_health.plugin", "remediations.bpf_lsm"]\n'
        f"import runner_health.bpf_lsm\nrunner_health.bpf_lsm.GRUB = {str(grub)!r}\n"
    )
    configure(project, extra="[remediation]\napply_bpf_lsm_fix = true\n")
    write_check(
        project,
        "bpf_lsm",
        'import pytest\n@pytest.mark.remediation("enable_bpf_lsm")\n'
        'def test_bpf_lsm_active():\n    assert False, "bpf is not an active LSM"\n',
    )
    result = project.runpytest_subprocess("checks", timeout=120)
    assert seen.read_text().split() == ["report.html", "junit.xml", "summary.json", "reboot"]
    assert (
        'GRUB_CMDLINE_LINUX="console=ttyS0 lsm=lockdown,capability,landlock,yama,apparmor,bpf"'
        in grub.read_text()
    )
    record = summary(project)["checks"][0]
    assert record["fix_result"] == "done"
    assert any("after the reports are written: systemctl reboot" in s for s in record["steps"])
    result.stdout.fnmatch_lines(["*after the reports: $ systemctl reboot -> exit 0"])
