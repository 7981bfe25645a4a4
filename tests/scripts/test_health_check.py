"""health_check.sh: what it passes to pytest, and idempotent cron/timer installs.

The host's crontab and systemd are never touched: ``crontab`` and ``systemctl`` are fakes on
PATH writing to temp files, and SYSTEMD_DIR points at a temp dir.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from runner_health.exitcodes import ExitCode
from tests.scripts.conftest import (
    ROOT,
    cron_command,
    cron_jobs,
    run_like_cron,
    run_script,
    write_fake,
)
from tests.testbed.fake_github import FakeGitHub

SCRIPT = ROOT / "health_check.sh"
# A checkout folder name cron and systemd each misread unless escaped: a quote, a percent,
# spaces, a dollar.
HOSTILE = "it's 100% $HOME & more"

# crontab(1): keeps the table as given, like the real one. What the cron daemon then makes of
# a line (its command field, % and backslashes) is conftest.cron_command.
FAKE_CRONTAB = """
case $1 in
  -l) [ -f "$CRONTAB_FILE" ] || { echo "no crontab for $(id -un)" >&2; exit 1; }
      cat "$CRONTAB_FILE" ;;
  -) cat > "$CRONTAB_FILE" ;;
  *) echo "fake crontab: unexpected $*" >&2; exit 1 ;;
esac
"""

# Remembers enabled/active units as files in $SYSTEMCTL_STATE.
FAKE_SYSTEMCTL = """
unit=${@: -1}
case $1 in
  daemon-reload) ;;
  enable) touch "$SYSTEMCTL_STATE/$unit.enabled" "$SYSTEMCTL_STATE/$unit.active" ;;
  disable) rm -f "$SYSTEMCTL_STATE/$unit.enabled" "$SYSTEMCTL_STATE/$unit.active" ;;
  is-enabled) [ -f "$SYSTEMCTL_STATE/$unit.enabled" ] ;;
  is-active) [ -f "$SYSTEMCTL_STATE/$unit.active" ] ;;
  *) echo "fake systemctl: unexpected $*" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def env(tmp_path: Path, fakes) -> dict[str, str]:
    bin_dir, _ = fakes
    write_fake(bin_dir, "crontab", FAKE_CRONTAB)
    write_fake(bin_dir, "systemctl", FAKE_SYSTEMCTL)
    (tmp_path / "systemd").mkdir()
    (tmp_path / "systemctl-state").mkdir()
    return {
        "CRONTAB_FILE": str(tmp_path / "crontab"),
        "SYSTEMD_DIR": str(tmp_path / "systemd"),
        "SYSTEMCTL_STATE": str(tmp_path / "systemctl-state"),
        "RUNNER_HEALTH_LOG": str(tmp_path / "runner-health.log"),
        "RUNNER_HEALTH_CONFIG": str(tmp_path / "absent.toml"),
    }


def health_check(args: list[str], fakes, env: dict[str, str]):
    return run_script([str(SCRIPT), *args], fakes=fakes, env=env)


def calls(fakes, command: str) -> list[str]:
    return [line for line in fakes[1].read_text().splitlines() if line.startswith(command + " ")]


def test_install_cron_twice_leaves_one_line_and_says_so(tmp_path, fakes, env):
    crontab = tmp_path / "crontab"
    crontab.write_text("0 3 * * * /usr/local/bin/backup\n")
    first = health_check(["--install-cron"], fakes, env)
    assert first.returncode == 0, first.stderr
    assert "cron installed" in first.stdout
    lines = crontab.read_text().splitlines()
    assert lines[0] == "0 3 * * * /usr/local/bin/backup"  # someone else's line stays
    ours = [line for line in lines if "runner-health" in line]
    assert len(ours) == 1
    assert ours[0].startswith("*/5 * * * * ")
    assert f"cd {ROOT} && ./health_check.sh >> {tmp_path}/runner-health.log 2>&1" in ours[0]

    writes_before = len(calls(fakes, "crontab -"))
    second = health_check(["--install-cron"], fakes, env)
    assert second.returncode == 0, second.stderr
    assert "already installed, nothing changed" in second.stdout
    assert crontab.read_text().splitlines() == lines
    assert len(calls(fakes, "crontab -")) == writes_before  # not even rewritten


def test_install_cron_with_no_crontab_yet(tmp_path, fakes, env):
    result = health_check(["--install-cron"], fakes, env)
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "crontab").read_text().splitlines()) == 1


def test_install_cron_replaces_an_outdated_line(tmp_path, fakes, env):
    crontab = tmp_path / "crontab"
    crontab.write_text("*/10 * * * * /old/health_check.sh # runner-health health_check\n")
    result = health_check(["--install-cron"], fakes, env)
    assert result.returncode == 0, result.stderr
    lines = crontab.read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("*/5 ")


def test_install_timer_twice_is_idempotent(tmp_path, fakes, env):
    first = health_check(["--install-timer"], fakes, env)
    assert first.returncode == 0, first.stderr
    service = (tmp_path / "systemd" / "runner-health.service").read_text()
    timer = (tmp_path / "systemd" / "runner-health.timer").read_text()
    assert f'ExecStart=/usr/bin/env bash "{SCRIPT}"' in service
    assert "Type=oneshot" in service
    # Busy (6) and healed (7) are fine; unhealthy (1) and a stale lock (8) are failures.
    (success,) = unit_values(service, "SuccessExitStatus")
    assert success.split() == [str(ExitCode.LOCKED.value), str(ExitCode.HEALED.value)]
    assert "OnCalendar=*:0/5" in timer
    assert "WantedBy=timers.target" in timer
    assert calls(fakes, "systemctl") == [
        "systemctl daemon-reload",
        "systemctl enable --now runner-health.timer",
    ]

    second = health_check(["--install-timer"], fakes, env)
    assert second.returncode == 0, second.stderr
    assert "already installed and enabled, nothing changed" in second.stdout
    assert (tmp_path / "systemd" / "runner-health.service").read_text() == service
    changing = [c for c in calls(fakes, "systemctl") if " is-" not in c]
    assert len(changing) == 2  # no second daemon-reload or enable


def test_uninstall_removes_both_and_twice_is_harmless(tmp_path, fakes, env):
    # Other lines stay, the hourly free_disk cron (setup.sh's) included.
    others = (
        "0 3 * * * /usr/local/bin/backup\n"
        "0 * * * * bash /opt/runner-health/remediations/free_disk.sh # runner-health free_disk\n"
    )
    (tmp_path / "crontab").write_text(others)
    assert health_check(["--install-cron"], fakes, env).returncode == 0
    assert health_check(["--install-timer"], fakes, env).returncode == 0
    result = health_check(["--uninstall"], fakes, env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "crontab").read_text() == others
    assert not list((tmp_path / "systemd").iterdir())
    assert "systemctl disable --now runner-health.timer" in calls(fakes, "systemctl")
    again = health_check(["--uninstall"], fakes, env)
    assert again.returncode == 0
    assert "no runner-health cron line" in again.stdout
    assert "no runner-health timer" in again.stdout


def copy_checkout(tree: Path) -> Path:
    """health_check.sh and provision/ (what --install-cron needs) copied to ``tree``."""
    tree.mkdir(parents=True)
    shutil.copy2(SCRIPT, tree / SCRIPT.name)
    shutil.copytree(ROOT / "provision", tree / "provision")
    return tree


@pytest.fixture
def hostile_tree(tmp_path: Path) -> Path:
    return copy_checkout(tmp_path / HOSTILE / "runner-health")


def test_cron_line_runs_the_checkout_whatever_its_path(hostile_tree, tmp_path, fakes, env):
    """The installed line, read as cron reads it and run as cron runs it, reaches this checkout's
    pytest and appends to the log, both under a path with a quote, a %, spaces and a $."""
    ran = tmp_path / "pytest-ran-in"
    (hostile_tree / ".venv" / "bin").mkdir(parents=True)
    write_fake(
        hostile_tree / ".venv" / "bin", "pytest", f"pwd > {shlex.quote(str(ran))}; echo checked"
    )
    log = tmp_path / HOSTILE / "runner-health 100%.log"
    env = {**env, "RUNNER_HEALTH_LOG": str(log)}
    result = run_script(
        [str(hostile_tree / "health_check.sh"), "--install-cron"], fakes=fakes, env=env
    )
    assert result.returncode == 0, result.stderr
    (line,) = cron_jobs((tmp_path / "crontab").read_text())
    command, stdin = cron_command(line)
    assert stdin is None, f"cron would cut the command at a %: {line}"
    run = run_like_cron(command, home=tmp_path)
    assert run.returncode == 0, run.stderr
    assert ran.read_text().strip() == str(hostile_tree)
    assert log.read_text().strip() == "checked"


@pytest.mark.parametrize("name", ["back\\slash", "new\nline"])
def test_install_cron_refuses_a_path_no_cron_line_can_carry(name, tmp_path, fakes, env):
    """A newline ends a crontab line; a backslash means different things to different crons."""
    tree = copy_checkout(tmp_path / name)
    result = run_script([str(tree / "health_check.sh"), "--install-cron"], fakes=fakes, env=env)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "cron" in result.stderr
    assert not (tmp_path / "crontab").exists()


def test_install_cron_fails_when_the_line_is_not_read_back(tmp_path, fakes, env):
    write_fake(
        fakes[0], "crontab", FAKE_CRONTAB.replace('cat > "$CRONTAB_FILE"', "cat > /dev/null")
    )
    result = health_check(["--install-cron"], fakes, env)
    assert result.returncode == 1
    assert "cron installed" not in result.stdout
    assert "crontab -l does not show" in result.stderr


def systemd_literal(text: str, *, dollar: bool) -> str:
    """A word after systemd's expansions: %% is a % (any other % a specifier), and on command
    lines $$ is a $ (any other $ a variable)."""

    def literal(match: re.Match[str]) -> str:
        if match[0] in ("%%", "$$"):
            return match[0][0]
        raise ValueError(f"systemd would expand {match[0]!r} in {text!r}")

    return re.sub(r"%%|%|\$\$|\$" if dollar else r"%%|%", literal, text)


def systemd_words(line: str) -> list[str]:
    """An Exec*= command line as systemd splits it (systemd.syntax(7) "Quoting"): words at
    whitespace, each bare or wholly in "..." or '...', a backslash escaping the next character
    (only \\\\, \\" and \\' are expected here); then each word's % and $ expansions."""
    words, i = [], 0
    while i < len(line):
        if line[i].isspace():
            i += 1
            continue
        quote = line[i] if line[i] in "\"'" else None
        i += quote is not None
        word = []
        while i < len(line) and (line[i] != quote if quote else not line[i].isspace()):
            if line[i] == "\\":
                if line[i + 1 : i + 2] not in ("\\", '"', "'"):
                    raise ValueError(f"unexpected escape in {line!r}")
                i += 1
            word.append(line[i])
            i += 1
        if quote:
            if i == len(line):
                raise ValueError(f"unbalanced {quote} in {line!r}")
            i += 1
        words.append(systemd_literal("".join(word), dollar=True))
    return words


def unit_values(unit: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(key + "=")]


def test_timer_unit_runs_the_checkout_whatever_its_path(hostile_tree, tmp_path, fakes, env):
    result = run_script(
        [str(hostile_tree / "health_check.sh"), "--install-timer"], fakes=fakes, env=env
    )
    assert result.returncode == 0, result.stderr
    unit = tmp_path / "systemd" / "runner-health.service"
    service = unit.read_text()
    (exec_start,) = unit_values(service, "ExecStart")
    assert systemd_words(exec_start) == [
        "/usr/bin/env",
        "bash",
        str(hostile_tree / "health_check.sh"),
    ]
    conditions = [
        systemd_literal(v, dollar=False) for v in unit_values(service, "ConditionPathExists")
    ]
    assert f"|{hostile_tree}/runner-health.toml" in conditions
    if shutil.which("systemd-analyze"):  # the real parser, where there is one
        verify = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "runner-health.service" not in verify.stdout + verify.stderr


def test_install_timer_refuses_a_path_that_would_add_unit_lines(tmp_path, fakes, env):
    """A newline in the path would end the ExecStart= line and start one of its own."""
    tree = copy_checkout(tmp_path / "x\nExecStartPre=touch pwned\ny")
    result = run_script([str(tree / "health_check.sh"), "--install-timer"], fakes=fakes, env=env)
    assert result.returncode == 4, result.stdout + result.stderr
    assert not list((tmp_path / "systemd").iterdir())


@pytest.fixture
def fake_venv(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A venv whose pytest records its argv and exits with $FAKE_PYTEST_STATUS."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    argv = tmp_path / "pytest-argv"
    write_fake(
        venv / "bin",
        "pytest",
        f'printf "%s\\n" "$PWD" "$@" > {argv}; exit "${{FAKE_PYTEST_STATUS:-0}}"',
    )
    return {"RUNNER_HEALTH_VENV": str(venv)}, argv


@pytest.mark.parametrize(
    ("args", "expected", "absent"),
    [
        (["--status"], ["--no-remediate"], ["--recover", "--dry-run"]),
        ([], [], ["--no-remediate", "--recover", "--dry-run"]),
        (["--recover"], ["--recover"], ["--no-remediate"]),
        (["--dry-run"], ["--dry-run"], ["--no-remediate"]),
        (["--status", "--", "-k", "disk"], ["--no-remediate", "-k", "disk"], []),
    ],
)
def test_modes_reach_pytest(args, expected, absent, fakes, fake_venv):
    venv_env, argv_file = fake_venv
    result = health_check(args, fakes, venv_env)
    assert result.returncode == 0, result.stderr
    cwd, *argv = argv_file.read_text().splitlines()
    assert cwd == str(ROOT)
    assert argv[:2] == ["checks", "-q"]
    for arg in expected:
        assert arg in argv
    for arg in absent:
        assert arg not in argv


@pytest.mark.parametrize("status", [1, 6, 7])
def test_exit_status_is_pytests(status, fakes, fake_venv):
    venv_env, _ = fake_venv
    result = health_check([], fakes, {**venv_env, "FAKE_PYTEST_STATUS": str(status)})
    assert result.returncode == status


def test_help_lists_every_exit_status_of_a_run(fakes):
    exit_status = health_check(["--help"], fakes, {}).stdout.split("Exit status")[1]
    for code in ExitCode:
        if code not in (ExitCode.INTERRUPTED, ExitCode.INTERNAL_ERROR, ExitCode.NO_CHECKS):
            assert f" {code.value} " in exit_status, code


@pytest.mark.parametrize(
    "args",
    [["--bogus"], ["--status", "--recover"], ["--install-cron", "--status"], ["-k", "disk"]],
)
def test_usage_errors_exit_4_and_run_nothing(args, fakes, fake_venv):
    venv_env, argv_file = fake_venv
    result = health_check(args, fakes, venv_env)
    assert result.returncode == 4
    assert "Try 'health_check.sh --help'" in result.stderr
    assert not argv_file.exists()


def test_status_for_real_against_the_fake_github(tmp_path, fakes):
    """The real suite, read-only, on this host (local://) with the fake GitHub: one line per
    check, report-only mode, the token nowhere in the output."""
    with FakeGitHub() as fake:
        config = tmp_path / "config.toml"
        config.write_text(
            f"""target = "local://"
lock_file = "{tmp_path}/lock"
[github]
repository = "{fake.owner}/{fake.repo}"
api_url = "{fake.url}"
[runner]
name = "assay-bpf-runner"
directory = "{tmp_path}/actions-runner"
[reports]
directory = "{tmp_path}/reports"
"""
        )
        result = run_script(
            [str(SCRIPT), "--status"],
            fakes=fakes,
            env={"RUNNER_HEALTH_CONFIG": str(config), "GITHUB_TOKEN": fake.admin_token},
            timeout=120,
        )
        token = fake.admin_token
    assert result.returncode == 1, result.stdout + result.stderr  # no runner here: unhealthy
    section = result.stdout.split("runner-health =")[1].splitlines()[1:]
    check_lines = [
        line for line in section if line.split(" ")[0] in {"PASSED", "FAILED", "SKIPPED"}
    ]
    assert any("test_runner_service_active" in line for line in check_lines)
    assert "status: unhealthy (exit 1)" in result.stdout
    assert "[fix]" not in result.stdout  # nothing was remediated
    (summary,) = (tmp_path / "reports").glob("*/summary.json")
    assert json.loads(summary.read_text())["mode"] == "report-only"
    assert token not in result.stdout + result.stderr
