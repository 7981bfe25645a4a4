"""health_check.sh --install-launchd / --uninstall: the user's LaunchAgent on a Mac.

No launchd here: ``uname -s`` says Darwin, ``id`` is a user (uid 501), ``launchctl`` is a fake
keeping what is loaded in a temp dir (its messages and statuses as launchctl prints them:
bootstrap of a loaded service "Bootstrap failed: 5: Input/output error"), and ``plutil -lint``
is plistlib. HOME is a temp dir, so the plist goes to a temp ~/Library/LaunchAgents.
"""

from __future__ import annotations

import plistlib
import sys
from pathlib import Path

import pytest

from tests.scripts.conftest import run_script, write_fake
from tests.scripts.test_health_check import FAKE_CRONTAB, checkout_venv, copy_checkout

LABEL = "io.github.runner-health"

FAKE_LAUNCHCTL = """
loaded() { [ -f "$LAUNCHCTL_STATE/$1" ]; }
case $1 in
  print) loaded "${2##*/}" || { echo "Could not find service \\"${2##*/}\\" in domain for user gui: 501" >&2; exit 113; } ;;
  bootstrap)
    [ "$2" = gui/501 ] || { echo "fake launchctl: unexpected domain $2" >&2; exit 1; }
    label=$(basename "$3" .plist)
    loaded "$label" && { echo "Bootstrap failed: 5: Input/output error" >&2; exit 5; }
    cp "$3" "$LAUNCHCTL_STATE/$label" ;;
  bootout)
    loaded "${2##*/}" || { echo "Boot-out failed: 3: No such process" >&2; exit 3; }
    rm -f "$LAUNCHCTL_STATE/${2##*/}" ;;
  *) echo "fake launchctl: unexpected $*" >&2; exit 1 ;;
esac
"""
FAKE_PLUTIL = f"""
[ "$1 $2" = "-lint -s" ] || {{ echo "fake plutil: unexpected $*" >&2; exit 1; }}
exec {sys.executable} -c 'import plistlib, sys; plistlib.load(open(sys.argv[1], "rb"))' "$3"
"""
FAKE_ID_USER = 'case $1 in -u) echo 501 ;; -un) echo alice ;; *) exec /usr/bin/id "$@" ;; esac'
DARWIN = '[ "$1" = -s ] && echo Darwin || exec /usr/bin/uname "$@"'


@pytest.fixture
def mac(tmp_path: Path, fakes) -> dict[str, str]:
    """A Mac user's environment: the fakes above, a temp HOME, a crontab file."""
    bin_dir = fakes[0]
    write_fake(bin_dir, "uname", DARWIN)
    write_fake(bin_dir, "id", FAKE_ID_USER)
    write_fake(bin_dir, "launchctl", FAKE_LAUNCHCTL)
    write_fake(bin_dir, "plutil", FAKE_PLUTIL)
    write_fake(bin_dir, "crontab", FAKE_CRONTAB)
    for name in ("home", "launchd"):
        (tmp_path / name).mkdir()
    return {
        "HOME": str(tmp_path / "home"),
        "LAUNCHCTL_STATE": str(tmp_path / "launchd"),
        "CRONTAB_FILE": str(tmp_path / "crontab"),
        "RUNNER_HEALTH_CONFIG": str(tmp_path / "config.toml"),
    }


def checkout_at(tree: Path) -> Path:
    copy_checkout(tree)
    checkout_venv(tree)
    return tree / "health_check.sh"


def run(script: Path, args: list[str], fakes, env: dict[str, str]):
    return run_script([str(script), *args], fakes=fakes, env=env)


def calls(fakes, command: str) -> list[str]:
    return [line for line in fakes[1].read_text().splitlines() if line.startswith(command + " ")]


def plist_path(env: dict[str, str]) -> Path:
    return Path(env["HOME"]) / "Library" / "LaunchAgents" / f"{LABEL}.plist"


def test_install_writes_loads_and_runs_once_then_a_second_install_changes_nothing(
    tmp_path, fakes, mac
):
    script = checkout_at(tmp_path / "runner-health")
    first = run(script, ["--install-launchd"], fakes, mac)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "LaunchAgent installed for alice" in first.stdout
    log = Path(mac["HOME"]) / "Library" / "Logs" / "runner-health.log"
    with plist_path(mac).open("rb") as f:
        agent = plistlib.load(f)
    assert agent["Label"] == LABEL
    assert agent["ProgramArguments"] == [str(script)]
    assert agent["WorkingDirectory"] == str(script.parent)
    assert agent["StandardOutPath"] == agent["StandardErrorPath"] == str(log)
    assert agent["EnvironmentVariables"] == {"RUNNER_HEALTH_CONFIG": mac["RUNNER_HEALTH_CONFIG"]}
    assert agent["StartCalendarInterval"] == [{"Minute": m} for m in range(0, 60, 5)]
    assert calls(fakes, "launchctl bootstrap") == [f"launchctl bootstrap gui/501 {plist_path(mac)}"]
    (lint,) = calls(fakes, "plutil")
    assert lint.startswith(f"plutil -lint -s {plist_path(mac)}.tmp.")  # checked before it is moved
    assert log.read_text() == "checked\n"  # the run it makes as launchd will
    assert "first run: healthy" in first.stdout
    assert not list(plist_path(mac).parent.glob("*.tmp.*"))

    before = plist_path(mac).read_bytes()
    second = run(script, ["--install-launchd"], fakes, mac)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"LaunchAgent already installed, unchanged ({plist_path(mac)})" in second.stdout
    assert plist_path(mac).read_bytes() == before
    assert len(calls(fakes, "launchctl bootstrap")) == 1
    assert calls(fakes, "launchctl bootout") == []


def test_a_changed_agent_is_booted_out_and_bootstrapped_again(tmp_path, fakes, mac):
    script = checkout_at(tmp_path / "runner-health")
    assert run(script, ["--install-launchd"], fakes, mac).returncode == 0
    moved = {**mac, "RUNNER_HEALTH_CONFIG": str(tmp_path / "elsewhere.toml")}
    again = run(script, ["--install-launchd"], fakes, moved)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "LaunchAgent installed" in again.stdout
    assert calls(fakes, "launchctl bootout") == [f"launchctl bootout gui/501/{LABEL}"]
    assert len(calls(fakes, "launchctl bootstrap")) == 2
    loaded = plistlib.loads((tmp_path / "launchd" / LABEL).read_bytes())
    assert loaded["EnvironmentVariables"]["RUNNER_HEALTH_CONFIG"] == moved["RUNNER_HEALTH_CONFIG"]


def test_a_path_with_xml_markup_in_it_stays_one_string(tmp_path, fakes, mac):
    script = checkout_at(tmp_path / "R&D <lab> it's" / "runner-health")
    env = {**mac, "RUNNER_HEALTH_CONFIG": str(tmp_path / "a&b<c>.toml")}
    result = run(script, ["--install-launchd"], fakes, env)
    assert result.returncode == 0, result.stdout + result.stderr
    agent = plistlib.loads(plist_path(mac).read_bytes())
    assert agent["ProgramArguments"] == [str(script)]
    assert agent["WorkingDirectory"] == str(script.parent)
    assert agent["EnvironmentVariables"]["RUNNER_HEALTH_CONFIG"] == env["RUNNER_HEALTH_CONFIG"]


def test_it_replaces_the_cron_line(tmp_path, fakes, mac):
    script = checkout_at(tmp_path / "runner-health")
    crontab = tmp_path / "crontab"
    crontab.write_text(
        "0 3 * * * /usr/local/bin/backup\n*/5 * * * * cd /x && ./health_check.sh"
        " # runner-health health_check\n"
    )
    result = run(script, ["--install-launchd"], fakes, mac)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "removed the cron line" in result.stdout
    assert crontab.read_text() == "0 3 * * * /usr/local/bin/backup\n"


@pytest.mark.parametrize(
    ("fake", "body", "said"),
    [
        ("uname", "echo Linux", "--install-launchd is for macOS (launchd)"),
        ("id", "case $1 in -u) echo 0 ;; *) echo root ;; esac", "not root"),
    ],
)
def test_it_refuses_off_a_mac_and_as_root(fake, body, said, tmp_path, fakes, mac):
    script = checkout_at(tmp_path / "runner-health")
    write_fake(fakes[0], fake, body)
    result = run(script, ["--install-launchd"], fakes, mac)
    assert result.returncode == 4
    assert said in result.stderr
    assert not plist_path(mac).exists()
    assert calls(fakes, "launchctl") == []


def test_uninstall_boots_it_out_and_deletes_it_and_twice_is_harmless(tmp_path, fakes, mac):
    script = checkout_at(tmp_path / "runner-health")
    assert run(script, ["--install-launchd"], fakes, mac).returncode == 0
    first = run(script, ["--uninstall"], fakes, mac)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"removed the LaunchAgent ({plist_path(mac)})" in first.stdout
    assert calls(fakes, "launchctl bootout") == [f"launchctl bootout gui/501/{LABEL}"]
    assert not plist_path(mac).exists()
    assert not (tmp_path / "launchd" / LABEL).exists()
    second = run(script, ["--uninstall"], fakes, mac)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "no runner-health LaunchAgent" in second.stdout
    assert len(calls(fakes, "launchctl bootout")) == 1
