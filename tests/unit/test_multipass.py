"""Multipass on the workstation: a state it names, or MultipassError (could not observe), never a
guess; a daemon that doesn't answer is DaemonDown; and the vm fix (remediations/vm.py) brings a
VM back by the one way that works for its trouble, never forcing off a runner GitHub calls busy.

The fake ``multipass`` speaks as canonical/multipass does (messages and codes: see
tests/testbed/bin/multipass); its instance's state is a file the test writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from remediations.vm import bring_back
from runner_health.config import Settings, load
from runner_health.github import GitHubError
from runner_health.multipass import (
    DaemonDown,
    MultipassError,
    daemon_restart_command,
    state,
    unreachable,
)
from runner_health.observe import CannotObserve
from runner_health.steps import RemediationRefused, Steps
from runner_health.targets import target
from tests.scripts.conftest import write_fake

NO_SOCKET = (
    "echo 'cannot connect to the multipass socket' >&2\n"
    "echo \"Please ensure multipassd is running and '/var/run/multipass_socket' is accessible\" >&2"
)


def info(tmp_path, monkeypatch, stdout: str, rc: int = 0, *, body: str | None = None) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "out").write_text(stdout)
    write_fake(bin_dir, "multipass", body or f"cat {tmp_path / 'out'}; exit {rc}")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "log"))
    return state(target("local://"), "vm1", timeout=2)


def test_reads_the_state_without_asking_the_vm(tmp_path, monkeypatch):
    answer = {"errors": [], "info": {"vm1": {"state": "Stopped"}}}
    assert info(tmp_path, monkeypatch, json.dumps(answer)) == "Stopped"
    # a Running VM's runtime facts come over SSH: an unreachable VM would fail the whole info
    assert (tmp_path / "log").read_text() == (
        "multipass info vm1 --format json --no-runtime-information\n"
    )


@pytest.mark.parametrize(
    "stdout",
    [
        "Starting vm1 \\ {",  # not JSON
        "[]",  # the wrong shape
        '{"info": {"other": {"state": "Stopped"}}}',
        '{"info": {"vm1": {"state": ["Stopped"]}}}',
        '{"info": {"vm1": {"state": "Sleeping"}}}',  # no state Multipass has
    ],
)
def test_garbage_is_cannot_observe(tmp_path, monkeypatch, stdout):
    with pytest.raises(MultipassError) as raised:
        info(tmp_path, monkeypatch, stdout)
    assert not isinstance(raised.value, DaemonDown)
    assert issubclass(MultipassError, CannotObserve)


def test_a_failing_cli_is_cannot_observe(tmp_path, monkeypatch):
    with pytest.raises(MultipassError, match="exited 2"):
        info(tmp_path, monkeypatch, "", rc=2)


def test_no_socket_is_the_daemon_down(tmp_path, monkeypatch):
    with pytest.raises(DaemonDown, match="cannot connect to the multipass socket"):
        info(tmp_path, monkeypatch, "", body=f"{NO_SOCKET}\nexit 2")


def test_an_info_that_never_returns_is_the_daemon_down(tmp_path, monkeypatch):
    with pytest.raises(DaemonDown, match="did not answer within 2 s"):
        info(tmp_path, monkeypatch, "", body="sleep 30")


# -- a VM that doesn't answer ----------------------------------------------------------------


class Multipass:
    """A fake multipass on PATH whose one instance, vm1, is in ``state`` (a file)."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dir = tmp_path / "mp"
        self.dir.mkdir()
        self.log = tmp_path / "log"
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        d = self.dir
        write_fake(
            bin_dir,
            "multipass",
            f"if [ -f {d}/daemon ]; then {NO_SOCKET}; exit 2; fi\n"
            'case "$1" in\n'
            'info) printf \'{"errors": [], "info": {"vm1": {"state": "%s"}}}\\n\' '
            f'"$(cat {d}/state)" ;;\n'
            f'exec) if [ "$(cat {d}/state)" = Unknown ]; then\n'
            "  echo 'exec failed: Cannot retrieve credentials in unknown state' >&2; exit 2; fi\n"
            f"  if [ -f {d}/hang ]; then sleep 30; fi\n"
            f"  if [ -f {d}/refused ]; then\n"
            "  echo \"exec failed: ssh connection failed: 'Connection refused'\" >&2; exit 2; fi\n"
            '  shift 3; exec "$@" ;;\n'
            f"stop) echo Stopped > {d}/state ;;\n"
            f"start) echo Running > {d}/state; rm -f {d}/refused {d}/hang ;;\n"
            "esac",
        )
        write_fake(bin_dir, "snap", f"rm -f {d}/daemon; echo Restarted.")
        monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
        monkeypatch.setenv("FAKE_LOG", str(self.log))
        self.set("Running")

    def set(self, state: str, *faults: str) -> None:
        (self.dir / "state").write_text(state + "\n")
        for fault in faults:
            (self.dir / fault).touch()

    def commands(self) -> list[str]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [line for line in lines if not line.startswith(("multipass info", "multipass exec"))]


@pytest.fixture
def mp(tmp_path, monkeypatch) -> Multipass:
    return Multipass(tmp_path, monkeypatch)


def test_a_vm_that_answers_is_reachable(mp):
    assert unreachable(target("multipass://vm1"), timeout=5) is None


def test_a_refused_exec_says_why(mp):
    mp.set("Running", "refused")
    why = unreachable(target("multipass://vm1"), timeout=5)
    assert (
        why == "`multipass exec` exited 2: exec failed: ssh connection failed: 'Connection refused'"
    )


def test_an_exec_that_hangs_is_bounded(mp):
    mp.set("Running", "hang")
    assert unreachable(target("multipass://vm1"), timeout=1) == (
        "does not answer `multipass exec` within 1 s"
    )


def settings_for(tmp_path: Path, extra: str = "") -> Settings:
    config = tmp_path / "runner-health.toml"
    config.write_text(
        'target = "multipass://vm1"\n[github]\nrepository = "acme/kernel-ci"\n'
        '[runner]\nname = "assay-bpf-runner"\n'
        f"[multipass]\nexec_timeout_seconds = 2\n{extra}"
    )
    return load(config)


class GitHubSays:
    """What GitHub answers about the runner (or the error it raises)."""

    def __init__(self, answer: dict | Exception | None) -> None:
        self.answer = answer
        self.asked = 0

    def runner(self, name: str) -> dict | None:
        self.asked += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


IDLE = {"name": "assay-bpf-runner", "status": "online", "busy": False}


def heal(tmp_path, github: GitHubSays, extra: str = "") -> list[str]:
    steps = Steps(None, dry_run=False, echo=lambda line: None)
    settings = settings_for(tmp_path, extra)
    bring_back(settings, target("local://"), target("multipass://vm1"), steps, github)
    return steps.lines


@pytest.mark.parametrize("fault", [("Unknown",), ("Running", "refused"), ("Running", "hang")])
def test_unknown_or_unreachable_is_forced_off_and_started(mp, tmp_path, fault):
    mp.set(*fault)
    github = GitHubSays(IDLE)
    lines = heal(tmp_path, github)
    assert mp.commands() == ["multipass stop --force vm1", "multipass start vm1"]
    assert github.asked == 1
    assert lines[-1].startswith("ok: vm1 answers `multipass exec`")


def test_a_stopped_vm_is_started_without_asking_github(mp, tmp_path):
    mp.set("Stopped")
    github = GitHubSays(GitHubError("unreachable"))
    heal(tmp_path, github)
    assert mp.commands() == ["multipass start vm1"]
    assert github.asked == 0


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ({**IDLE, "busy": True}, "GitHub says runner 'assay-bpf-runner' runs a job"),
        (GitHubError("GitHub did not answer"), "GitHub can't say whether"),
    ],
)
def test_a_busy_runner_or_a_silent_github_is_never_forced_off(mp, tmp_path, answer, why):
    mp.set("Unknown")
    with pytest.raises(RemediationRefused, match=why) as refused:
        heal(tmp_path, GitHubSays(answer))
    assert "multipass stop --force vm1 && multipass start vm1" in str(refused.value)
    assert mp.commands() == []


def test_a_daemon_down_is_refused_with_the_command_unless_opted_in(mp, tmp_path):
    mp.set("Running", "daemon")
    with pytest.raises(RemediationRefused) as refused:
        heal(tmp_path, GitHubSays(IDLE))
    assert "run `snap restart multipass`" in str(refused.value)  # as root; else with sudo -n
    assert "restart_daemon = true" in str(refused.value)
    assert mp.commands() == []


def test_a_daemon_down_is_restarted_when_opted_in_and_the_vm_left_alone(mp, tmp_path):
    mp.set("Running", "daemon")
    lines = heal(tmp_path, GitHubSays(IDLE), "restart_daemon = true\n")
    assert mp.commands() == ["snap restart multipass"]
    assert lines[0].startswith("$ snap restart multipass  (multipassd does not answer) -> exit 0")


def test_the_daemon_restart_is_launchd_on_a_mac_and_the_snap_on_linux():
    mac = SimpleNamespace(system_info=SimpleNamespace(type="darwin"))
    linux = SimpleNamespace(system_info=SimpleNamespace(type="linux"))
    assert daemon_restart_command(mac) == "launchctl kickstart -k system/com.canonical.multipassd"
    assert daemon_restart_command(linux) == "snap restart multipass"
    with pytest.raises(MultipassError, match="windows"):
        daemon_restart_command(SimpleNamespace(system_info=SimpleNamespace(type="windows")))
