"""`.service` is the runner user's (so every job's) to write: root acts only on a runner unit.

RunnerInstall on this machine (testinfra local://) over a temp runner directory and a temp
systemd directory; the fixes run for real with fake systemctl, pgrep and svc.sh on PATH.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from remediations.registration import reconfigure
from remediations.service import ensure_running
from runner_health.runner import RunnerInstall, UnsafeUnit
from runner_health.steps import RemediationRefused, Steps
from runner_health.targets import target
from tests.scripts.conftest import write_fake

UNIT = "actions.runner.acme-kernel-ci.assay-bpf-runner.service"


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(runner directory, systemd directory), the runner configured."""
    runner, systemd = tmp_path / "actions-runner", tmp_path / "systemd"
    runner.mkdir()
    systemd.mkdir()
    (runner / ".runner").write_text('\ufeff{"agentName": "assay-bpf-runner"}', encoding="utf-8")
    return runner, systemd


def install(
    dirs: tuple[Path, Path], service: str | bytes, *, unit_file: bool = True
) -> RunnerInstall:
    runner, systemd = dirs
    data = service if isinstance(service, bytes) else service.encode()
    (runner / ".service").write_bytes(data)
    name = data.decode("utf-8", "replace").strip()
    if unit_file and name and "/" not in name:
        (systemd / name).write_text("[Service]\n")
    return RunnerInstall(target("local://"), str(runner), "github-runner", systemd_dir=str(systemd))


@pytest.mark.parametrize(
    "name",
    [
        UNIT,
        "actions.runner.acme.assay-bpf-runner.service",  # an org runner
        "actions.runner._services.my_runner.service",  # GHES scope; a space became "_"
        f"actions.runner.{'o' * 70}.{'r' * 51}-4821.service",  # cut to 150, with its suffix
    ],
)
def test_a_runner_unit_installed_in_the_systemd_dir_is_accepted(dirs, name):
    assert len(name) <= 150
    assert install(dirs, name + "\n").unit() == name


@pytest.mark.parametrize(
    "service",
    [
        "ssh.service",
        "../../x.service",
        "actions.runner.x.service; reboot",
        "actions.runner.a.b.service\nssh.service",
        "actions.runner.a b.c.service",
        "actions.runner.$(reboot).x.service",
        "/etc/systemd/system/actions.runner.a.b.service",
        "actions.runner.a/../../../ssh.b.service",
        "actions.runner.a.b.service.d",
        f"actions.runner.{'o' * 70}.{'r' * 80}.service",  # longer than svc.sh ever makes
        b"actions.runner.a.\xff.service",
    ],
)
def test_anything_else_is_refused_naming_the_value(dirs, service):
    with pytest.raises(UnsafeUnit, match="not a runner unit") as refused:
        install(dirs, service).unit()
    shown = service.decode("utf-8", "replace") if isinstance(service, bytes) else service
    assert repr(shown.strip()[:150]) in str(refused.value)


def test_a_unit_file_that_links_elsewhere_is_refused(dirs, tmp_path):
    elsewhere = tmp_path / "elsewhere" / UNIT
    elsewhere.parent.mkdir()
    elsewhere.write_text("[Service]\n")
    (dirs[1] / UNIT).symlink_to(elsewhere)
    with pytest.raises(UnsafeUnit, match="not a regular file"):
        install(dirs, UNIT, unit_file=False).unit()


def test_a_missing_unit_file_is_refused(dirs):
    with pytest.raises(UnsafeUnit, match=f"{UNIT}, but .*/systemd/{UNIT} is missing"):
        install(dirs, UNIT, unit_file=False).unit()


def test_a_service_file_that_is_a_link_is_not_read(dirs, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$y$j9T$secret-hash:19000:0:99999:7:::\n")
    (dirs[0] / ".service").symlink_to(secret)
    runner = RunnerInstall(target("local://"), str(dirs[0]), "github-runner", str(dirs[1]))
    with pytest.raises(UnsafeUnit, match="not a regular file") as refused:
        runner.unit()
    assert "secret-hash" not in str(refused.value)


@pytest.mark.parametrize("service", [None, "", "\n"])
def test_no_service_file_means_not_installed(dirs, service):
    if service is None:
        runner = RunnerInstall(target("local://"), str(dirs[0]), "github-runner", str(dirs[1]))
    else:
        runner = install(dirs, service)
    assert runner.unit() is None


def test_the_service_check_fails_naming_the_value(dirs):
    check = importlib.import_module("checks.test_service").test_runner_service_active
    runner = install(dirs, "ssh.service\n")
    with pytest.raises(pytest.fail.Exception, match=r"names 'ssh\.service', not a runner unit"):
        check(runner.host, runner)


# -- the fixes refuse it, and never stop, kill or restart what it names ----------------------


@pytest.fixture
def fake_path(tmp_path, monkeypatch) -> Path:
    """systemctl and pgrep (no job runs) as fakes first on PATH; their calls go to the log."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    log = tmp_path / "fake.log"
    log.touch()
    write_fake(bin_dir, "systemctl", "exit 0")
    write_fake(bin_dir, "pgrep", "exit 1")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    return log


def steps_on(runner: RunnerInstall) -> Steps:
    return Steps(runner.host, dry_run=False, echo=lambda line: None)


def test_the_service_fix_refuses_and_leaves_ssh_alone(dirs, fake_path):
    runner = install(dirs, "ssh.service\n")
    steps = steps_on(runner)
    with pytest.raises(RemediationRefused, match=r"'ssh\.service'"):
        ensure_running(runner, steps, why="the runner service is not running")
    assert "systemctl" not in fake_path.read_text()
    assert steps.lines == []


def test_the_registration_fix_refuses_before_touching_the_service(dirs, fake_path):
    runner = install(dirs, "ssh.service\n")
    write_fake(dirs[0], "config.sh", "exit 0")
    write_fake(dirs[0], "svc.sh", "exit 0")
    github = SimpleNamespace(registration_token=lambda: "AAAA", runner=lambda name: {"busy": False})
    settings = SimpleNamespace(runner=SimpleNamespace(name="assay-bpf-runner"))
    steps = steps_on(runner)
    with pytest.raises(RemediationRefused, match=r"'ssh\.service'"):
        reconfigure(github, runner, settings, steps)
    assert fake_path.read_text() == "pgrep -x Runner.Worker\n"
    assert steps.lines == []


def test_the_runner_log_skips_the_journal_of_a_unit_that_is_not_the_runners(dirs, fake_path):
    (dirs[0] / "_diag").mkdir()
    (dirs[0] / "_diag" / "Runner_20261128-100000-utc.log").write_text("[diag]\n")
    log = install(dirs, "ssh.service\n").recent_log()
    assert (log.diag, log.journal) == ("[diag]\n", "")
    assert "systemctl" not in fake_path.read_text()
