"""health_check.sh: what it passes to pytest, and idempotent cron/timer installs.

The host's crontab and systemd are never touched: ``crontab`` and ``systemctl`` are fakes on
PATH writing to temp files, and SYSTEMD_DIR points at a temp dir.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

import runner_health
from runner_health.exitcodes import ExitCode
from runner_health.state import Store
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
  restart) ;;
  *) echo "fake systemctl: unexpected $*" >&2; exit 1 ;;
esac
"""

# sudo stand-in: `sudo -n -H -u USER CMD...` runs CMD (as root: this machine's nobody can't
# reach pytest's tmp dirs); `sudo -n -l -U USER` lists $SUDO_RULES (none by default).
FAKE_SUDO = r"""
if [ "$2" = -l ]; then
  if [ -n "${SUDO_RULES:-}" ]; then
    echo "User $4 may run the following commands on test:"; echo "    $SUDO_RULES"
  else
    echo "User $4 is not allowed to run sudo on test."
  fi
  exit 0
fi
while [ "${1#-}" != "$1" ]; do [ "$1" = -u ] && shift; shift; done
exec "$@"
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


def health_check(args: list[str], fakes, env: dict[str, str], script: Path = SCRIPT):
    return run_script([str(script), *args], fakes=fakes, env=env)


def calls(fakes, command: str) -> list[str]:
    return [line for line in fakes[1].read_text().splitlines() if line.startswith(command + " ")]


def test_install_cron_twice_leaves_one_line_and_says_so(tmp_path, fakes, env, checkout):
    script = checkout / "health_check.sh"
    crontab = tmp_path / "crontab"
    crontab.write_text("0 3 * * * /usr/local/bin/backup\n")
    first = health_check(["--install-cron"], fakes, env, script)
    assert first.returncode == 0, first.stderr
    assert "cron installed" in first.stdout
    lines = crontab.read_text().splitlines()
    assert lines[0] == "0 3 * * * /usr/local/bin/backup"  # someone else's line stays
    ours = [line for line in lines if "runner-health" in line]
    assert len(ours) == 1
    assert ours[0].startswith("*/5 * * * * ")
    assert f"cd {checkout} && ./health_check.sh >> {tmp_path}/runner-health.log 2>&1" in ours[0]

    writes_before = len(calls(fakes, "crontab -"))
    second = health_check(["--install-cron"], fakes, env, script)
    assert second.returncode == 0, second.stderr
    assert "already installed, nothing changed" in second.stdout
    assert crontab.read_text().splitlines() == lines
    assert len(calls(fakes, "crontab -")) == writes_before  # not even rewritten


def test_install_cron_with_no_crontab_yet(tmp_path, fakes, env, checkout):
    result = health_check(["--install-cron"], fakes, env, checkout / "health_check.sh")
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "crontab").read_text().splitlines()) == 1


def test_install_cron_replaces_an_outdated_line(tmp_path, fakes, env, checkout):
    crontab = tmp_path / "crontab"
    crontab.write_text("*/10 * * * * /old/health_check.sh # runner-health health_check\n")
    result = health_check(["--install-cron"], fakes, env, checkout / "health_check.sh")
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


def test_uninstall_removes_both_and_twice_is_harmless(tmp_path, fakes, env, checkout):
    # Other lines stay, the hourly free_disk cron (setup.sh's) included.
    others = (
        "0 3 * * * /usr/local/bin/backup\n"
        "0 * * * * bash /opt/runner-health/remediations/free_disk.sh # runner-health free_disk\n"
    )
    (tmp_path / "crontab").write_text(others)
    assert (
        health_check(["--install-cron"], fakes, env, checkout / "health_check.sh").returncode == 0
    )
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
    """health_check.sh, provision/ (what --install-cron needs) and runner_health/__init__.py
    (the version) copied to ``tree``."""
    tree.mkdir(parents=True)
    shutil.copy2(SCRIPT, tree / SCRIPT.name)
    shutil.copytree(ROOT / "provision", tree / "provision")
    (tree / "runner_health").mkdir()
    shutil.copy2(ROOT / "runner_health" / "__init__.py", tree / "runner_health")
    return tree


def checkout_venv(tree: Path) -> Path:
    """``tree/.venv`` as make leaves it (a real venv of this Python, pytest importable through a
    .pth, the .installed mark) with a fake pytest: it writes its cwd and argv to
    ``tree/pytest-argv`` and its environment to ``tree/pytest-env``, prints "checked" and exits
    with the number in ``tree/pytest-status`` (0 without). Cron's bare environment reaches it."""
    venv = tree / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "project.pth").write_text(str(Path(pytest.__file__).parents[1]) + "\n")
    (venv / ".installed").touch()
    (venv / "bin" / "pytest").unlink(missing_ok=True)
    write_fake(
        venv / "bin",
        "pytest",
        'here=$(cd "$(dirname "$0")/../.." && pwd)\n'
        'printf "%s\\n" "$PWD" "$@" > "$here/pytest-argv"\n'
        'env > "$here/pytest-env"\n'
        "echo checked\n"
        'exit "$(cat "$here/pytest-status" 2>/dev/null || echo 0)"',
    )
    return venv


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the checkout with a working (fake-pytest) .venv: what --install-cron runs."""
    tree = copy_checkout(tmp_path / "runner-health")
    checkout_venv(tree)
    return tree


@pytest.fixture
def hostile_tree(tmp_path: Path) -> Path:
    tree = copy_checkout(tmp_path / HOSTILE / "runner-health")
    checkout_venv(tree)
    return tree


def test_cron_line_runs_the_checkout_whatever_its_path(hostile_tree, tmp_path, fakes, env):
    """The installed line, read as cron reads it and run as cron runs it, reaches this checkout's
    pytest and appends to the log, both under a path with a quote, a %, spaces and a $."""
    ran = tmp_path / "pytest-ran-in"
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
    # --install-cron's own first run, then cron's.
    assert log.read_text().splitlines() == ["checked", "checked"]


@pytest.mark.parametrize("name", ["back\\slash", "new\nline"])
def test_install_cron_refuses_a_path_no_cron_line_can_carry(name, tmp_path, fakes, env):
    """A newline ends a crontab line; a backslash means different things to different crons."""
    tree = copy_checkout(tmp_path / name)
    result = run_script([str(tree / "health_check.sh"), "--install-cron"], fakes=fakes, env=env)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "cron" in result.stderr
    assert not (tmp_path / "crontab").exists()


def test_install_cron_fails_when_the_line_is_not_read_back(tmp_path, fakes, env, checkout):
    write_fake(
        fakes[0], "crontab", FAKE_CRONTAB.replace('cat > "$CRONTAB_FILE"', "cat > /dev/null")
    )
    result = health_check(["--install-cron"], fakes, env, checkout / "health_check.sh")
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
state_file = "{tmp_path}/state.json"
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
    assert json.loads(summary.read_text())["mode"] == "no-remediate"
    assert token not in result.stdout + result.stderr


def test_reset_lifts_every_hold_with_the_venv_a_run_uses(tmp_path, fakes):
    """--reset runs the state store's reset from the checkout: the hold a failing fix earned
    is gone, and it says which fix it cleared."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'state_file = "{tmp_path}/state/state.json"\nlock_file = "{tmp_path}/lock"\n'
        '[github]\nrepository = "acme/ci"\n[runner]\nname = "vm1"\n'
    )
    store, _ = Store.open(tmp_path / "state" / "state.json")
    for _ in range(3):
        store.record_attempt("free_disk", "failed", datetime.now(timezone.utc))
    store.save()
    venv = {"RUNNER_HEALTH_VENV": str(ROOT / ".venv")}
    result = health_check(["--reset", "--", "--config", str(config)], fakes, venv)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "cleared the attempts of: free_disk\n"
    store, warnings = Store.open(tmp_path / "state" / "state.json")
    assert (
        warnings == [] and store.hold_reason("free_disk", datetime.now(timezone.utc), 3, 60) is None
    )
    assert "--reset" in health_check(["--help"], fakes, {}).stdout
    assert health_check(["--reset", "--status"], fakes, venv).returncode == 4


# --- the first day: a Python that fits, a venv that works, user paths, the first run --------

# The tools health_check.sh and find_python.sh use, for a PATH without the host's Pythons.
TOOLS = ("bash", "sh", "env", "dirname", "basename", "sed", "uname", "cat", "head", "id", "rm",
         "mkdir", "grep", "chmod", "touch", "tail")  # fmt: skip
# A python3 that is 3.9, as a Mac's /usr/bin/python3 is: this Python told it is 3.9.6.
OLD_PYTHON = f"""[ "$1" = -c ] || exit 2
exec {sys.executable} -c "import sys; sys.version_info = (3, 9, 6, 'final', 0)
$2"
"""
# make .venv/.installed, as far as health_check.sh can tell: a venv whose pytest says "rebuilt".
FAKE_MAKE = """venv="$2/.venv"
mkdir -p "$venv/bin"
printf '#!/bin/sh\\necho rebuilt\\n' > "$venv/bin/pytest"
chmod +x "$venv/bin/pytest"
touch "$venv/.installed"
"""
MINOR = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture
def bare_path(tmp_path: Path, fakes) -> str:
    """A PATH of the fakes and the few tools the scripts use: no Python of this host's."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in TOOLS:
        (tools / tool).symlink_to(shutil.which(tool))
    return f"{fakes[0]}:{tools}"


@pytest.mark.parametrize(
    ("system", "fix"),
    [("Linux", "apt install python3 python3-venv"), ("Darwin", "brew install python@3.12")],
)
def test_without_python_3_10_it_says_what_it_found_and_the_fix(
    system, fix, tmp_path, fakes, bare_path
):
    tree = copy_checkout(tmp_path / "runner-health")
    write_fake(fakes[0], "python3", OLD_PYTHON)
    write_fake(fakes[0], "uname", f"echo {system}")
    write_fake(fakes[0], "make", FAKE_MAKE)
    result = run_script(
        [str(tree / "health_check.sh"), "--status"], fakes=fakes, env={"PATH": bare_path}
    )
    assert result.returncode == 4, result.stdout + result.stderr
    assert (
        f"runner-health needs Python >= 3.10; found python3 3.9.6 at {fakes[0]}/python3: "
        in result.stderr
    )
    assert fix in result.stderr
    assert "or set PYTHON=/path" in result.stderr
    assert not calls(fakes, "make")


def test_the_venv_is_built_with_PYTHON_when_set(tmp_path, fakes, bare_path):
    tree = copy_checkout(tmp_path / "runner-health")
    write_fake(fakes[0], "python3", OLD_PYTHON)
    write_fake(fakes[0], "make", FAKE_MAKE)
    result = run_script(
        [str(tree / "health_check.sh"), "--status"],
        fakes=fakes,
        env={"PATH": bare_path, "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stderr
    assert f"creating {tree}/.venv with {sys.executable}" in result.stderr
    assert calls(fakes, "make") == [
        f"make -C {tree} --no-print-directory .venv/.installed PYTHON={sys.executable}"
    ]
    assert result.stdout == "rebuilt\n"


def other_version(venv: Path) -> None:
    cfg = venv / "pyvenv.cfg"
    cfg.write_text(re.sub(r"(?m)^version = .*$", "version = 3.9.6", cfg.read_text()))


def python_gone(venv: Path) -> None:
    for python in (venv / "bin").glob("python*"):
        python.unlink()
        python.symlink_to("/nonexistent/bin/python3")


def home_gone(venv: Path) -> None:
    cfg = venv / "pyvenv.cfg"
    cfg.write_text(re.sub(r"(?m)^home = .*$", "home = /nonexistent/bin", cfg.read_text()))


def no_pytest(venv: Path) -> None:
    next(venv.glob("lib/python*/site-packages/project.pth")).unlink()


def unfinished(venv: Path) -> None:
    (venv / ".installed").unlink()


@pytest.mark.parametrize(
    ("breaks", "reason"),
    [
        (other_version, f"it was built by Python 3.9, its python is now {MINOR}"),
        (python_gone, "its python no longer runs or cannot import pytest"),
        (home_gone, "the Python it was built with (/nonexistent/bin) is gone"),
        (no_pytest, "its python no longer runs or cannot import pytest"),
        (unfinished, "its build never finished"),
    ],
)
def test_a_venv_of_another_python_or_broken_is_rebuilt(breaks, reason, checkout, fakes):
    venv = checkout / ".venv"
    (venv / "old-marker").touch()
    breaks(venv)
    write_fake(fakes[0], "make", FAKE_MAKE)
    result = health_check(["--status"], fakes, {}, checkout / "health_check.sh")
    assert result.returncode == 0, result.stderr
    assert f"rebuilding {venv} with " in result.stderr
    assert reason in result.stderr
    assert not (venv / "old-marker").exists()  # built afresh, not over the old one
    assert len(calls(fakes, "make")) == 1
    assert result.stdout == "rebuilt\n"


def test_a_working_venv_is_used_as_it_is(checkout, fakes):
    write_fake(fakes[0], "make", FAKE_MAKE)
    result = health_check(["--status"], fakes, {}, checkout / "health_check.sh")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "checked\n"
    assert not calls(fakes, "make")


# A user (uid 1000) for the script, whoever runs the test.
FAKE_ID_USER = 'case $1 in -u) echo 1000 ;; -un) echo alice ;; *) exec /usr/bin/id "$@" ;; esac'


@pytest.mark.parametrize(
    ("system", "log"),
    [
        ("Linux", "state/runner-health/runner-health.log"),
        ("Darwin", "home/Library/Logs/runner-health.log"),
    ],
)
def test_a_user_install_cron_logs_in_the_users_own_folder(
    system, log, tmp_path, fakes, env, checkout
):
    write_fake(fakes[0], "id", FAKE_ID_USER)
    write_fake(fakes[0], "uname", f'[ "$1" = -s ] && echo {system} || exec /usr/bin/uname "$@"')
    (tmp_path / "home").mkdir()
    env = {k: v for k, v in env.items() if k != "RUNNER_HEALTH_LOG"}
    env |= {"HOME": str(tmp_path / "home"), "XDG_STATE_HOME": str(tmp_path / "state")}
    result = health_check(["--install-cron"], fakes, env, checkout / "health_check.sh")
    assert result.returncode == 0, result.stderr
    (line,) = cron_jobs((tmp_path / "crontab").read_text())
    assert f">> {tmp_path / log} 2>&1" in line
    assert (tmp_path / log).read_text() == "checked\n"  # the first run wrote there


@pytest.mark.parametrize(
    ("status", "returncode", "said"),
    [
        (0, 0, "first run: healthy"),
        (7, 0, "first run: healed"),
        (1, 0, "first run works (it found problems: see {log})"),
        (9, 0, "first run works (it found problems: see {log})"),
        (4, 1, "the scheduled command FAILS (exit 4); the last lines of {log}:\n  checked\n"),
    ],
)
def test_install_cron_runs_the_line_once_and_says_how_it_went(
    status, returncode, said, tmp_path, fakes, env, checkout
):
    (checkout / "pytest-status").write_text(str(status))
    env = {**env, "GITHUB_TOKEN": "from-my-shell"}
    result = health_check(["--install-cron"], fakes, env, checkout / "health_check.sh")
    log = tmp_path / "runner-health.log"
    assert result.returncode == returncode, result.stdout + result.stderr
    assert "running it once now, as cron will (can take minutes)" in result.stdout
    assert said.format(log=log) in result.stdout + result.stderr
    assert log.read_text() == "checked\n"
    # As cron runs it: its bare environment (the shell's token is not there), from the checkout.
    ran_env = (checkout / "pytest-env").read_text()
    assert "GITHUB_TOKEN" not in ran_env
    assert re.search(r"(?m)^PATH=/usr/bin:/bin(:|$)", ran_env)
    assert (checkout / "pytest-argv").read_text().splitlines()[0] == str(checkout)
    assert len(cron_jobs((tmp_path / "crontab").read_text())) == 1  # installed all the same


def test_version_is_the_packages_and_needs_no_venv(tmp_path, fakes):
    tree = copy_checkout(tmp_path / "runner-health")
    result = run_script([str(tree / "health_check.sh"), "--version"], fakes=fakes)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{runner_health.__version__}\n"
    assert not (tree / ".venv").exists()


@pytest.mark.parametrize(
    "named",
    [
        "checks/test_disk.py",
        "checks/test_disk.py::test_disk_free",
        "./checks",
        str(ROOT / "checks" / "test_disk.py"),
    ],
)
def test_named_checks_run_alone(named, fakes, fake_venv):
    venv_env, argv_file = fake_venv
    result = health_check(["--status", "--", named], fakes, venv_env)
    assert result.returncode == 0, result.stderr
    _, *argv = argv_file.read_text().splitlines()
    assert "checks" not in argv  # not every check as well
    assert argv[-1] == named


# --- --uninstall ------------------------------------------------------------------------------


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


@pytest.fixture
def installed(tmp_path: Path, fakes, env) -> dict[str, str]:
    """What setup.sh installs, under ``tmp_path/root``: its copy in opt/runner-health (a venv,
    a report), etc/runner-health (config, token), the hourly free_disk cron and its log; then
    the cron line and the timer. Its record (.installed-files) also names a cron file and a
    config folder that only it knows of (srv/). Returns the environment pointing there."""
    root = tmp_path / "root"
    install = copy_checkout(root / "opt" / "runner-health")
    checkout_venv(install)
    (install / "reports" / "run-1").mkdir(parents=True)
    (install / "reports" / "run-1" / "summary.json").write_text("{}\n")
    config = root / "etc" / "runner-health"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(f'[github]\ntoken_file = "{config}/token"\n')
    (config / "token").write_text("ghp_secret\n")
    cron_d = root / "etc" / "cron.d"
    cron_d.mkdir()
    (cron_d / "runner-health-free-disk").write_text("0 * * * * root bash free_disk.sh\n")
    (cron_d / "someone-else").write_text("0 4 * * * root /usr/local/bin/backup\n")
    state = root / "var" / "lib" / "runner-health"
    state.mkdir(parents=True, mode=0o700)
    (state / "state.json").write_text("{}\n")
    (state / "runner_health.prom").write_text("runner_health_check_up 1\n")
    textfiles = root / "var" / "lib" / "node-exporter"
    textfiles.mkdir(parents=True)
    (textfiles / "runner_health.prom").write_text("runner_health_check_up 1\n")
    (textfiles / "node.prom").write_text("other 1\n")
    logs = root / "var" / "log"
    logs.mkdir(parents=True)
    (logs / "runner-health-free-disk.log").write_text("freed\n")
    srv = root / "srv"
    (srv / "cron.custom").mkdir(parents=True)
    (srv / "cron.custom" / "runner-health-free-disk").write_text("0 * * * * root true\n")
    (srv / "rh-config").mkdir()
    (srv / "rh-config" / "config.toml").write_text("target = 'local://'\n")
    (install / ".installed-files").write_text(
        f"# Installed by provision/setup.sh\nremove {install}\n"
        f"remove {srv}/cron.custom/runner-health-free-disk\npurge {srv}/rh-config\n"
        f"purge {config}/token\npurge {config}\n"
    )
    env = {
        **env,
        "RUNNER_HEALTH_DIR": str(install),
        "RUNNER_HEALTH_CONFIG_DIR": str(config),
        "RUNNER_HEALTH_CRON_DIR": str(cron_d),
        "RUNNER_HEALTH_LOG": str(logs / "runner-health.log"),
        "RUNNER_HEALTH_STATE_DIR": str(state),
        "RUNNER_HEALTH_TEXTFILE_DIR": str(textfiles),
    }
    for action in ("--install-cron", "--install-timer"):
        done = health_check([action], fakes, env, install / "health_check.sh")
        assert done.returncode == 0, done.stderr
    return env


def test_uninstall_purge_leaves_nothing_and_twice_is_harmless(installed, tmp_path, fakes):
    install = Path(installed["RUNNER_HEALTH_DIR"])
    # Run from the installed copy it removes.
    result = health_check(["--uninstall", "--purge"], fakes, installed, install / "health_check.sh")
    assert result.returncode == 0, result.stderr
    # node_exporter's other textfiles stay; the state and the stale metrics go.
    assert files(tmp_path / "root") == {
        "etc/cron.d/someone-else",
        "var/lib/node-exporter/node.prom",
    }
    assert not install.exists()
    assert "runner-health" not in (tmp_path / "crontab").read_text()
    assert not list((tmp_path / "systemd").iterdir())
    assert "removed the config and the token" in result.stdout
    assert "left: the runner: actions/runner, its service and its registration" in result.stdout
    again = health_check(["--uninstall", "--purge"], fakes, installed)
    assert again.returncode == 0, again.stderr
    for nothing in ("no runner-health cron line", "no runner-health timer", "no hourly free_disk",
                    f"no {install}", "no config folder"):  # fmt: skip
        assert nothing in again.stdout


def test_uninstall_without_purge_keeps_config_logs_and_reports(installed, tmp_path, fakes):
    install = Path(installed["RUNNER_HEALTH_DIR"])
    result = health_check(["--uninstall"], fakes, installed, install / "health_check.sh")
    assert result.returncode == 0, result.stderr
    assert files(tmp_path / "root") == {
        "etc/cron.d/someone-else",
        "etc/runner-health/config.toml",
        "etc/runner-health/token",
        "opt/runner-health/reports/run-1/summary.json",
        "var/log/runner-health.log",
        "var/log/runner-health-free-disk.log",
        "srv/rh-config/config.toml",
        "var/lib/runner-health/state.json",  # the memory stays; the stale metrics go
        "var/lib/runner-health/runner_health.prom",
        "var/lib/node-exporter/node.prom",
    }
    for left in (
        f"left: {tmp_path}/root/srv/rh-config (--purge removes it)",
        f"left: the reports in {install}/reports (--purge removes them)",
        "left: the config and the token in",
        f"left: the log {tmp_path}/root/var/log/runner-health.log",
        f"left: the state in {tmp_path}/root/var/lib/runner-health (--purge removes it)",
        "left: the runner",
    ):
        assert left in result.stdout


def test_a_user_uninstalls_only_their_own(installed, tmp_path, fakes, checkout):
    write_fake(fakes[0], "id", FAKE_ID_USER)
    state, config = tmp_path / "state" / "runner-health", tmp_path / "config" / "runner-health"
    state.mkdir(parents=True)
    (state / "runner-health.log").write_text("checked\n")
    config.mkdir(parents=True)
    (config / "token").write_text("ghp_mine\n")
    user_crontab = tmp_path / "alice-crontab"
    user_crontab.write_text(
        f"*/5 * * * * cd {checkout} && ./health_check.sh # runner-health health_check\n"
    )
    root_before = files(tmp_path / "root")
    env = {
        k: v
        for k, v in installed.items()
        if k not in ("RUNNER_HEALTH_LOG", "RUNNER_HEALTH_CONFIG_DIR")
    }
    env |= {"CRONTAB_FILE": str(user_crontab), "XDG_STATE_HOME": str(tmp_path / "state"),
            "XDG_CONFIG_HOME": str(tmp_path / "config")}  # fmt: skip
    result = health_check(["--uninstall", "--purge"], fakes, env, checkout / "health_check.sh")
    assert result.returncode == 0, result.stderr
    assert "runner-health" not in user_crontab.read_text()
    assert not state.exists()
    assert not config.exists()
    assert files(tmp_path / "root") == root_before  # root's install is root's to remove
    assert len(list((tmp_path / "systemd").iterdir())) == 2
    assert f"left: {installed['RUNNER_HEALTH_DIR']} (root's: sudo" in result.stdout


def test_uninstall_leaves_a_folder_that_is_not_runner_health(installed, tmp_path, fakes):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "precious").write_text("keep\n")
    env = {**installed, "RUNNER_HEALTH_DIR": str(other)}
    result = health_check(["--uninstall"], fakes, env)
    assert result.returncode == 0, result.stderr
    assert (other / "precious").exists()
    assert f"left: {other}: not a runner-health install" in result.stdout


def test_a_record_others_can_write_is_not_read(installed, tmp_path, fakes):
    install = Path(installed["RUNNER_HEALTH_DIR"])
    (install / ".installed-files").chmod(0o666)
    result = health_check(["--uninstall", "--purge"], fakes, installed, install / "health_check.sh")
    assert result.returncode == 0, result.stderr
    assert files(tmp_path / "root") == {
        "etc/cron.d/someone-else",
        "srv/cron.custom/runner-health-free-disk",
        "srv/rh-config/config.toml",
        "var/lib/node-exporter/node.prom",  # node_exporter's own, never runner-health's
    }


@pytest.mark.parametrize(
    ("github_table", "noted"),
    [
        ('repository = "acme/ci"\n', True),
        ('repository = "acme/ci"\ntoken_file = "/etc/runner-health/token"\n', False),
        ('repository = "acme/ci"\nuse_token = false\n', False),  # no token here, by design
    ],
)
def test_install_cron_notes_a_token_cron_would_not_see(
    github_table, noted, tmp_path, fakes, env, checkout
):
    config = tmp_path / "config.toml"
    config.write_text(f'[github]\n{github_table}[runner]\nname = "r"\n')
    env = {**env, "RUNNER_HEALTH_CONFIG": str(config)}
    result = health_check(["--install-cron"], fakes, env, checkout / "health_check.sh")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("scheduled runs don't see your shell's GITHUB_TOKEN" in result.stdout) is noted


def test_purge_leaves_a_state_folder_holding_what_runner_health_never_wrote(
    installed, tmp_path, fakes
):
    state = Path(installed["RUNNER_HEALTH_STATE_DIR"])
    (state / "db.sqlite").write_text("someone else's\n")
    result = health_check(["--uninstall", "--purge"], fakes, installed)
    assert result.returncode == 0, result.stderr
    assert (state / "state.json").exists() and (state / "db.sqlite").exists()
    assert f"left: {state}: it holds db.sqlite, which runner-health does not write" in result.stdout


# --- --uninstall and the runner's job-completed hook ----------------------------------------

RUNNER_UNIT = "actions.runner.acme-ci.r1.service"
# A daemon-reload records the unit files systemd then sees.
FAKE_SYSTEMCTL_LOADS = (
    'if [ "$1" = daemon-reload ]; then\n'
    '  (cd "$SYSTEMD_DIR" && find . -type f | sort) > "$SYSTEMCTL_STATE/loaded"\nfi\n'
    + FAKE_SYSTEMCTL
)
# The runner's listener runs (unless $NO_LISTENER), a job too when $JOB_RUNS.
FAKE_PGREP_RUNNER = """
case "$*" in
  "-x Runner.Listener") [ -z "${NO_LISTENER:-}" ] ;;
  "-x Runner.Worker") [ -n "${JOB_RUNS:-}" ] ;;
  *) exec /usr/bin/pgrep "$@" ;;
esac
"""


def our_hook(install: Path) -> str:
    return f"ACTIONS_RUNNER_HOOK_JOB_COMPLETED={install}/remediations/job_completed.sh"


@pytest.fixture
def hooked(installed, tmp_path, fakes) -> tuple[dict[str, str], Path]:
    """``installed`` plus what setup.sh does to the runner (root/opt/actions-runner, owned by
    nobody): its active unit's drop-in and the hook line in its .env, both in the record, and
    the hook script. Returns the environment and the runner's folder."""
    install = Path(installed["RUNNER_HEALTH_DIR"])
    (install / "remediations").mkdir()
    write_fake(install / "remediations", "job_completed.sh", "exit 0")
    runner = tmp_path / "root" / "opt" / "actions-runner"
    runner.mkdir(parents=True)
    (runner / ".env").write_text(f"LANG=C.UTF-8\n{our_hook(install)}\nJAVA_HOME=/opt/jdk\n")
    (runner / ".service").write_text(RUNNER_UNIT + "\n")
    os.chown(runner, 65534, 65534)
    systemd = Path(installed["SYSTEMD_DIR"])
    (systemd / RUNNER_UNIT).write_text("[Service]\n")
    (systemd / f"{RUNNER_UNIT}.d").mkdir()
    (systemd / f"{RUNNER_UNIT}.d" / "runner-health.conf").write_text(
        "[Service]\nOOMPolicy=continue\n"
    )
    (Path(installed["SYSTEMCTL_STATE"]) / f"{RUNNER_UNIT}.active").touch()
    with (install / ".installed-files").open("a") as record:
        record.write(f"remove {systemd}/{RUNNER_UNIT}.d/runner-health.conf\nhook {runner}/.env\n")
    write_fake(fakes[0], "systemctl", FAKE_SYSTEMCTL_LOADS)
    write_fake(fakes[0], "sudo", FAKE_SUDO)
    write_fake(fakes[0], "pgrep", FAKE_PGREP_RUNNER)
    return installed, runner


@pytest.mark.parametrize("owner", ["nobody", "root"])
def test_uninstall_takes_our_hook_out_of_the_env_and_restarts_the_idle_runner(
    owner, hooked, tmp_path, fakes
):
    env, runner = hooked
    install = Path(env["RUNNER_HEALTH_DIR"])
    if owner == "root":
        os.chown(runner, 0, 0)
    started = "ACTIONS_RUNNER_HOOK_JOB_STARTED=/home/me/started.sh"  # another hook: kept
    with (runner / ".env").open("a") as dot_env:
        dot_env.write(f"{started}\n{our_hook(install)}.bak\n")
    result = health_check(["--uninstall", "--purge"], fakes, env, install / "health_check.sh")
    assert result.returncode == 0, result.stderr
    assert (runner / ".env").read_text() == (
        f"LANG=C.UTF-8\nJAVA_HOME=/opt/jdk\n{started}\n{our_hook(install)}.bak\n"
    )
    assert f"removed runner-health's job-completed hook from {runner}/.env" in result.stdout
    # Edited as the owner of the runner's folder (sudo unless that is root itself).
    assert (f"sudo -n -H -u {owner} bash -c" in "\n".join(calls(fakes, "sudo"))) is (
        owner == "nobody"
    )
    assert f"systemctl restart {RUNNER_UNIT}" in calls(fakes, "systemctl")
    assert f"restarted {RUNNER_UNIT} (idle)" in result.stdout
    assert not install.exists()


def test_uninstall_reloads_systemd_after_removing_the_runner_units_drop_in(hooked, fakes):
    env, _ = hooked
    systemd = Path(env["SYSTEMD_DIR"])
    result = health_check(["--uninstall"], fakes, env)
    assert result.returncode == 0, result.stderr
    assert not (systemd / f"{RUNNER_UNIT}.d" / "runner-health.conf").exists()
    # What systemd loaded last is what is on disk: the runner's own unit, no drop-in of ours.
    loaded = (Path(env["SYSTEMCTL_STATE"]) / "loaded").read_text().split()
    assert loaded == [f"./{RUNNER_UNIT}"]
    restart = calls(fakes, "systemctl").index(f"systemctl restart {RUNNER_UNIT}")
    assert "systemctl daemon-reload" in calls(fakes, "systemctl")[:restart]


def test_uninstall_keeps_another_job_completed_hook(hooked, fakes):
    env, runner = hooked
    theirs = "LANG=C.UTF-8\nACTIONS_RUNNER_HOOK_JOB_COMPLETED=/home/me/hook.sh\n"
    (runner / ".env").write_text(theirs)
    result = health_check(["--uninstall", "--purge"], fakes, env)
    assert result.returncode == 0, result.stderr
    assert (runner / ".env").read_text() == theirs
    assert f"{runner}/.env has no job-completed hook of runner-health's" in result.stdout
    assert not [c for c in calls(fakes, "systemctl") if c.startswith("systemctl restart")]
    assert not Path(env["RUNNER_HEALTH_DIR"]).exists()


@pytest.mark.parametrize("case", ["job running", "started by hand", "runner stopped"])
def test_uninstall_restarts_the_runner_only_when_idle(case, hooked, fakes):
    """A listener that read .env at its start hands the hook to every job: with a job running
    (or a listener its unit did not start) it is not restarted, and the hook script stays until
    it is (a missing hook fails jobs). A stopped runner starts without the hook."""
    env, runner = hooked
    install = Path(env["RUNNER_HEALTH_DIR"])
    if case == "job running":
        env = {**env, "JOB_RUNS": "1"}
    else:
        (Path(env["SYSTEMCTL_STATE"]) / f"{RUNNER_UNIT}.active").unlink()
    if case == "runner stopped":
        env = {**env, "NO_LISTENER": "1"}
    result = health_check(["--uninstall", "--purge"], fakes, env)
    assert result.returncode == 0, result.stderr
    assert our_hook(install) not in (runner / ".env").read_text()
    assert not [c for c in calls(fakes, "systemctl") if c.startswith("systemctl restart")]
    if case == "runner stopped":
        assert "the runner is not running: it starts without the hook" in result.stdout
        assert not install.exists()
        return
    assert files(install) == {"remediations/job_completed.sh"}
    if case == "job running":
        left = f"a job is running, {RUNNER_UNIT} still runs it after each job; restart it when idle"
    else:
        left = f"a runner not started by its unit ({RUNNER_UNIT}) runs and still runs it"
    assert f"left: {install}/remediations/job_completed.sh: {left}" in result.stdout


@pytest.mark.parametrize("case", ["link", "too big"])
def test_uninstall_never_edits_an_env_through_a_link_nor_a_huge_one(case, hooked, tmp_path, fakes):
    env, runner = hooked
    install = Path(env["RUNNER_HEALTH_DIR"])
    target = tmp_path / "root-owned"
    target.write_text(f"SECRET=1\n{our_hook(install)}\n")
    if case == "link":
        (runner / ".env").unlink()
        (runner / ".env").symlink_to(target)
    else:
        (runner / ".env").write_text(f"{our_hook(install)}\n" + "X=" + "y" * 70000 + "\n")
    before = (runner / ".env").read_text()
    result = health_check(["--uninstall", "--purge"], fakes, env)
    assert result.returncode == 0, result.stderr
    assert target.read_text() == f"SECRET=1\n{our_hook(install)}\n"
    assert (runner / ".env").is_symlink() is (case == "link")
    assert (runner / ".env").read_text() == before
    reason = "not-a-file" if case == "link" else "too-big"
    assert f"left: ACTIONS_RUNNER_HOOK_JOB_COMPLETED in {runner}/.env: not edited ({reason})" in (
        result.stdout
    )
    # The runner still names the hook: its script stays, or every job would fail.
    assert files(install) == {"remediations/job_completed.sh"}
