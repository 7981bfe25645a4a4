"""Re-registration keeps the runner's environment and copes with a lost unit file.

config.sh sources env.sh, which rewrites ``.path`` with the caller's PATH and appends to
``.env`` (actions/runner src/Misc/layoutroot/env.sh); the fake config.sh here does the same.
The fix runs for real on this machine (testinfra local://) with fake systemctl, pgrep and
sudo on PATH (tests/unit/test_runner_install.py).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from remediations.registration import reconfigure
from runner_health.runner import RunnerInstall
from runner_health.targets import target
from runner_health.unit import lost_unit
from tests.scripts.conftest import write_fake
from tests.unit import test_runner_install as base

EXPECTED_UNIT, REGISTRATION, UNIT = base.EXPECTED_UNIT, base.REGISTRATION, base.UNIT
calls, steps_on = base.calls, base.steps_on
dirs, fake_path, settings = base.dirs, base.fake_path, base.settings  # fixtures

PATH_LINE = "/home/github-runner/.cargo/bin:/usr/local/bin:/usr/bin:/bin\n"
ENV = "RUNNER_STANDIN_TIME_SCALE=0.025\nCUSTOM=kept as it was\n"


@pytest.fixture
def runner_dir(dirs: tuple[Path, Path]) -> Path:
    """A configured runner whose config.sh writes .path and .env as env.sh does."""
    runner = dirs[0]
    (runner / ".runner").write_text(REGISTRATION)
    (runner / "bin").mkdir()
    write_fake(runner / "bin", "runsvc.sh", "exit 0")
    write_fake(
        runner,
        "config.sh",
        'if [ "$1" = remove ]; then rm -f .runner; exit 0; fi\n'
        'echo $PATH > .path\necho "LANG=C.UTF-8" >> .env\n'
        f"printf '%s' '{REGISTRATION}' > .runner",
    )
    (runner / ".path").write_text(PATH_LINE)
    (runner / ".path").chmod(0o640)
    (runner / ".env").write_text(ENV)
    return runner


def github() -> SimpleNamespace:
    return SimpleNamespace(
        registration_token=lambda: "AAAA", runner=lambda name: {"busy": False, "status": "online"}
    )


def runner_at(dirs: tuple[Path, Path]) -> RunnerInstall:
    return RunnerInstall(target("local://"), str(dirs[0]), "github-runner", str(dirs[1]))


def test_path_and_env_are_kept_exactly(dirs, runner_dir, fake_path, settings):
    """Fails before: .path became config.sh's PATH and .env gained LANG=C.UTF-8."""
    (runner_dir / ".service").write_text(UNIT + "\n")
    (dirs[1] / UNIT).write_text(f"[Service]\nWorkingDirectory={runner_dir}\n")
    runner = runner_at(dirs)
    steps = steps_on(runner)
    reconfigure(github(), runner, settings, steps)
    assert calls(fake_path, "config.sh")[-1].startswith("--unattended --replace ")
    assert (runner_dir / ".path").read_text() == PATH_LINE
    assert (runner_dir / ".path").stat().st_mode & 0o777 == 0o640
    assert (runner_dir / ".env").read_text() == ENV
    assert (
        sorted(
            p.name for p in runner_dir.iterdir() if ".XXXX" in p.name or p.name.startswith(".path.")
        )
        == []
    )
    # written back by the runner user, never by root
    assert all(call.startswith("-n -H -u github-runner ") for call in calls(fake_path, "sudo"))
    assert calls(fake_path, "systemctl")[-2:] == [f"enable {UNIT}", f"start {UNIT}"]


def test_a_file_that_was_missing_is_left_to_config_sh(dirs, runner_dir, fake_path, settings):
    (runner_dir / ".path").unlink()
    runner = runner_at(dirs)
    reconfigure(github(), runner, settings, steps_on(runner))
    assert (runner_dir / ".path").is_file()  # config.sh's, as on a first registration
    assert (runner_dir / ".env").read_text() == ENV


def test_a_link_is_neither_read_nor_written_through(
    dirs, runner_dir, fake_path, settings, tmp_path
):
    """A job points .env at another file: it is not kept, and that file is never written."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("SECRET=root-only\n")
    (runner_dir / ".env").unlink()
    (runner_dir / ".env").symlink_to(elsewhere)
    runner = runner_at(dirs)
    steps = steps_on(runner)
    reconfigure(github(), runner, settings, steps)
    assert elsewhere.read_text() == "SECRET=root-only\nLANG=C.UTF-8\n"  # config.sh's own write
    assert any(".env is not kept" in line for line in steps.lines)
    assert not any("SECRET" in line for line in steps.lines)
    assert (runner_dir / ".path").read_text() == PATH_LINE


def test_an_env_over_64_kib_is_not_kept(dirs, runner_dir, fake_path, settings):
    big = "X=" + "y" * 70_000 + "\n"
    (runner_dir / ".env").write_text(big)
    runner = runner_at(dirs)
    steps = steps_on(runner)
    reconfigure(github(), runner, settings, steps)
    assert (runner_dir / ".env").read_text() == big + "LANG=C.UTF-8\n"
    assert any(
        ".env is not kept (not a regular file, or over 64 KiB)" in line for line in steps.lines
    )


def test_a_lost_unit_file_is_stopped_and_installed_again(dirs, runner_dir, fake_path, settings):
    """.service names the unit, its file is gone (rm'd; systemd may still run it): before, the
    fix refused (UnsafeUnit); now it stops it, registers and installs the unit again."""
    (runner_dir / ".service").write_text(UNIT + "\n")
    runner = runner_at(dirs)
    assert lost_unit(runner) == UNIT
    reconfigure(github(), runner, settings, steps_on(runner))
    assert calls(fake_path, "systemctl") == [
        f"stop {UNIT}",
        "daemon-reload",
        f"enable {UNIT}",
        f"start {UNIT}",
    ]
    assert (dirs[1] / UNIT).read_text() == EXPECTED_UNIT.format(root=runner_dir)
    assert (runner_dir / ".service").read_text() == UNIT + "\n"
    assert (runner_dir / ".path").read_text() == PATH_LINE


def test_no_svc_sh_is_needed(dirs, runner_dir, fake_path, settings):
    """The real svc.sh exists only after config.sh: re-registration never runs or needs it."""
    assert not (runner_dir / "svc.sh").exists()
    (runner_dir / ".service").write_text(UNIT + "\n")
    (dirs[1] / UNIT).write_text(f"[Service]\nWorkingDirectory={runner_dir}\n")
    runner = runner_at(dirs)
    reconfigure(github(), runner, settings, steps_on(runner))
    assert (dirs[1] / UNIT).read_text() == EXPECTED_UNIT.format(root=runner_dir)
    assert calls(fake_path, "svc.sh") == []


@pytest.mark.parametrize(
    "case",
    ["unit file present", "unit file a link", "another unit runs the directory", "not a unit"],
)
def test_a_unit_is_lost_only_when_nothing_is_there(dirs, runner_dir, case, tmp_path):
    systemd = dirs[1]
    (runner_dir / ".service").write_text(("ssh.service" if case == "not a unit" else UNIT) + "\n")
    if case == "unit file present":
        (systemd / UNIT).write_text(f"[Service]\nWorkingDirectory={runner_dir}\n")
    elif case == "unit file a link":
        (systemd / UNIT).symlink_to(tmp_path / "nowhere")
    elif case == "another unit runs the directory":
        other = "actions.runner.acme-kernel-ci.assay-bpf-runner-4821.service"
        (systemd / other).write_text(f"[Service]\nWorkingDirectory={runner_dir}\n")
    assert lost_unit(runner_at(dirs)) is None
