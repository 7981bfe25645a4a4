"""The runner's version lifecycle (issue 7, 2.7): the latest release (cached, conditional), the
signs of a failed self-update, and the reinstall that heals it, verified against the release
asset's SHA-256 digest.

The fix runs for real on this machine (testinfra local://) with fake systemctl, pgrep and
sudo on PATH (tests/unit/test_runner_install.py); curl downloads from the fake GitHub's
release server on 127.0.0.1 (tests/testbed/fake_github/releases.py).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from checks.test_version import test_runner_version_current as version_current
from remediations import version
from remediations.version import reinstall
from runner_health import release
from runner_health.github import GitHub
from runner_health.runner import RunnerInstall
from runner_health.steps import RemediationFailed, RemediationRefused
from runner_health.targets import target
from tests.scripts.conftest import write_fake
from tests.testbed.fake_github import FakeGitHub, releases
from tests.unit import test_runner_install as base

REGISTRATION, UNIT = base.REGISTRATION, base.UNIT
calls, steps_on = base.calls, base.steps_on
dirs, fake_path, settings = base.dirs, base.fake_path, base.settings  # fixtures

KEPT = {
    ".runner": REGISTRATION,
    ".credentials": '{"scheme": "OAuth"}',
    ".credentials_rsaparams": '{"d": "secret"}',
    ".path": "/home/github-runner/.cargo/bin:/usr/bin:/bin\n",
    ".env": "LANG=C.UTF-8\n",
    "_work/kernel-ci/kernel-ci/src.c": "int main;\n",
}


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as github:
        releases.of(github).publish("2.336.0", days_ago=3)
        yield github
        releases.of(github).stop()


def client(fake: FakeGitHub, etags: dict | None = None) -> GitHub:
    """The product's client on the fake; GitHub shows the runner online and idle."""
    github = GitHub(
        SimpleNamespace(api_url=fake.url, timeout_seconds=10), fake.admin_token, etags=etags
    )
    github.runner = lambda name: {"busy": False, "status": "online"}  # type: ignore[method-assign]
    return github


@pytest.fixture
def broken(dirs: tuple[Path, Path], fake_path: Path) -> Path:
    """A runner whose self-update to 2.337.0 failed (update.sh.template): bin and externals
    link to folders that aren't there, the update log renamed .failed after the last start.
    No Runner.Listener runs until ``systemctl start`` (bin is a link to nothing)."""
    runner, systemd = dirs
    fakebin, started = fake_path.parent / "fakebin", f"{fake_path}.started"
    write_fake(fakebin, "pgrep", f'[ "$2" = Runner.Listener ] && [ -e {started} ]')
    write_fake(
        fakebin,
        "systemctl",
        f'[ "$1" != is-active ] || exit 3; [ "$1" != start ] || touch {started}',
    )
    for name, text in KEPT.items():
        (runner / name).parent.mkdir(parents=True, exist_ok=True)
        (runner / name).write_text(text)
    (runner / ".service").write_text(UNIT + "\n")
    (systemd / UNIT).write_text(f"[Service]\nWorkingDirectory={runner}\n")
    (runner / "bin.2.334.0").mkdir()
    (runner / "bin").symlink_to(runner / "bin.2.337.0")
    (runner / "externals").symlink_to(runner / "externals.2.337.0")
    (runner / "_diag").mkdir()
    (runner / "_diag/Runner_20261128-100000-utc.log").write_text("started\n")
    (runner / "_diag/SelfUpdate-20261128-110000.log.failed").write_text("Can't create junction\n")
    return runner


def runner_at(dirs: tuple[Path, Path]) -> RunnerInstall:
    return RunnerInstall(target("local://"), str(dirs[0]), "github-runner", str(dirs[1]))


def snapshot(runner: Path) -> dict[str, str]:
    return {name: (runner / name).read_text() for name in KEPT}


def test_reinstall_heals_a_failed_self_update(dirs, broken, fake, fake_path, settings):
    runner = runner_at(dirs)
    assert release.self_update_failed(runner, "") == [
        "bin is a link to nothing",
        "externals is a link to nothing",
        "_diag/SelfUpdate-20261128-110000.log.failed, and no listener started since",
    ]
    steps = steps_on(runner)
    reinstall(client(fake), runner, settings, steps)
    assert not (broken / "bin").is_symlink() and not (broken / "externals").is_symlink()
    assert (broken / "externals").is_dir()
    assert 'VERSION = "2.336.0"' in (broken / "bin/Runner.Listener").read_text()
    assert snapshot(broken) == KEPT
    digest = hashlib.sha256(releases.tarball("2.336.0")).hexdigest()
    assert f"SHA-256 verified: actions-runner-linux-x64-2.336.0.tar.gz {digest}" in steps.text
    # unpacked by the runner user; the service stopped first, then started again
    assert any("github-runner" in c and "tar -xzf" in c for c in calls(fake_path, "sudo"))
    assert calls(fake_path, "systemctl")[0] == f"stop {UNIT}"
    assert calls(fake_path, "systemctl")[-1] in (f"start {UNIT}", f"restart {UNIT}")
    assert "GitHub shows assay-bpf-runner online" in steps.text
    assert not list(Path("/var/tmp").glob("runner-health-release.*"))
    # the links are healed; the .failed log counts until the started listener writes its log
    assert release.self_update_failed(runner, "") == [
        "_diag/SelfUpdate-20261128-110000.log.failed, and no listener started since"
    ]


@pytest.mark.parametrize(
    ("digest", "refusal"),
    [
        pytest.param("sha256:" + "0" * 64, "is not the release's digest", id="mismatch"),
        pytest.param("", "has no SHA-256 digest", id="missing"),
    ],
)
def test_a_wrong_or_missing_digest_changes_nothing(
    digest, refusal, dirs, broken, fake, fake_path, settings
):
    releases.of(fake).digest = digest
    before = sorted(str(p) for p in broken.rglob("*"))
    with pytest.raises(RemediationRefused, match=refusal):
        reinstall(client(fake), runner_at(dirs), settings, steps_on(runner_at(dirs)))
    assert sorted(str(p) for p in broken.rglob("*")) == before
    assert (broken / "bin").is_symlink() and snapshot(broken) == KEPT
    assert calls(fake_path, "systemctl") == []
    assert not list(Path("/var/tmp").glob("runner-health-release.*"))


def test_never_under_a_job_nor_when_switched_off(dirs, broken, fake, fake_path, settings):
    write_fake(fake_path.parent / "fakebin", "pgrep", "exit 0")  # a Runner.Worker runs
    with pytest.raises(RemediationRefused, match="running a job"):
        reinstall(client(fake), runner_at(dirs), settings, steps_on(runner_at(dirs)))
    off = SimpleNamespace(**vars(settings))
    off.remediation = SimpleNamespace(reinstall_runner=False)
    with pytest.raises(RemediationRefused, match="reinstall_runner = false"):
        reinstall(client(fake), runner_at(dirs), off, steps_on(runner_at(dirs)))
    assert (broken / "bin").is_symlink() and calls(fake_path, "systemctl") == []


def test_signs_of_a_healthy_runner_and_of_a_relaunch_loop(dirs, fake_path):
    runner_dir = dirs[0]
    for name in ("bin.2.336.0", "externals.2.336.0"):
        (runner_dir / name).mkdir()
    (runner_dir / "bin").symlink_to(runner_dir / "bin.2.336.0")  # an update that worked
    (runner_dir / "externals").symlink_to("externals.2.336.0")
    (runner_dir / "_diag").mkdir()
    (runner_dir / "_diag/SelfUpdate-20261120-110000.log.failed").write_text("old\n")
    (runner_dir / "_diag/Runner_20261128-100000-utc.log").write_text("started since\n")
    runner = runner_at(dirs)
    assert release.self_update_failed(runner, "") == []
    journal = (
        "Runner listener exited with error code 127\n"
        "Runner listener exit with undefined return code, re-launch runner in 5 seconds.\n"
    )
    assert release.self_update_failed(runner, journal) == [
        "the service relaunches a listener that can't run (exit 127)"
    ]
    later = journal + "Runner listener exited with error code 2\n"
    assert release.self_update_failed(runner, later) == []


def test_the_latest_release_is_cached_and_asked_conditionally(fake):
    etags: dict = {}
    now = datetime.now(timezone.utc)
    first = release.latest(client(fake, etags), now)
    assert first.version == "2.336.0"
    assert first.asset("x64").sha256 == hashlib.sha256(releases.tarball("2.336.0")).hexdigest()
    asked = len(fake.requests)
    assert release.latest(client(fake, etags), now + timedelta(hours=5)) == first
    assert len(fake.requests) == asked  # within RECHECK: not asked at all
    assert release.latest(client(fake, etags), now + timedelta(hours=7)) == first
    assert fake.requests[-1][2] == 304  # asked again, conditionally: no rate limit spent
    etags[next(iter(etags))]["body"]["tag_name"] = "v9; rm -rf /"  # the state file is data
    assert release.latest(client(fake, etags), now).version == "2.336.0"


@pytest.mark.parametrize(
    ("installed", "days_ago", "fails"),
    [
        ("2.336.0", 40, False),  # current
        ("2.334.0", 3, False),  # behind, 27 days to go: auto-update has time
        ("2.334.0", 24, True),  # behind, 6 days to go
        ("2.334.0", 31, True),  # past the cutoff
    ],
)
def test_the_version_check_warns_before_the_cutoff(
    installed, days_ago, fails, dirs, fake_path, settings
):
    with FakeGitHub() as fake:
        releases.of(fake).publish("2.336.0", days_ago=days_ago)
        (dirs[0] / "_diag").mkdir()
        (dirs[0] / "_diag/Runner_20261128-100000-utc.log").write_text(
            "[2026-11-28 10:00:00Z INFO Listener] Runner is built for Linux (X64)\n"
            f"[2026-11-28 10:00:00Z INFO Listener] Version: {installed}\n"
        )
        recorded: dict = {}
        try:
            version_current(runner_at(dirs), client(fake), settings, recorded.__setitem__)
        except AssertionError as exc:
            assert fails, exc
            assert f"runner {installed} is behind 2.336.0" in str(exc)
        else:
            assert not fails
        releases.of(fake).stop()


def leftovers() -> list[Path]:
    return list(Path("/var/tmp").glob("runner-health-release.*"))


def test_no_reinstall_while_a_listener_runs(dirs, broken, fake, fake_path, settings):
    """A self-update that failed leaves no listener that works: one running means the signs
    are stale, or planted by a job (_diag is the runner user's). Review 7, item 3."""
    write_fake(fake_path.parent / "fakebin", "pgrep", '[ "$2" = Runner.Listener ]')
    with pytest.raises(RemediationRefused, match=r"Runner\.Listener is running"):
        reinstall(client(fake), runner_at(dirs), settings, steps_on(runner_at(dirs)))
    assert (broken / "bin").is_symlink() and calls(fake_path, "systemctl") == []
    assert not leftovers()


def test_a_failed_update_log_dated_in_the_future_is_no_sign(dirs, fake_path):
    """A job can name a file SelfUpdate-99991231-235959.log.failed: no listener start would
    ever clear it. Names beyond the VM's clock (plus a tolerance) are ignored."""
    diag = dirs[0] / "_diag"
    diag.mkdir()
    (diag / "Runner_20261128-100000-utc.log").write_text("started\n")
    (diag / "SelfUpdate-99991231-235959.log.failed").write_text("planted\n")
    runner = runner_at(dirs)
    assert release.self_update_failed(runner, "") == []
    soon = f"{datetime.now(timezone.utc) + timedelta(minutes=5):%Y%m%d-%H%M%S}"
    (diag / f"SelfUpdate-{soon}.log.failed").write_text("a VM clock a little behind\n")
    assert release.self_update_failed(runner, "") == [
        f"_diag/SelfUpdate-{soon}.log.failed, and no listener started since"
    ]


@pytest.mark.parametrize("seen_by", ["github", "worker"])
def test_a_job_started_during_the_download_stops_the_reinstall(
    seen_by, dirs, broken, fake, fake_path, settings
):
    """The download takes minutes: idle before it is no promise for the stop after it."""
    runner, github = runner_at(dirs), client(fake)
    asked: list[str] = []

    def busy_on_second_ask(*_: object) -> bool:
        asked.append("once")
        return len(asked) > 1

    if seen_by == "github":
        github.runner = lambda name: {"busy": busy_on_second_ask(), "status": "online"}
    else:
        runner.job_running = busy_on_second_ask  # type: ignore[method-assign]
    steps = steps_on(runner)
    with pytest.raises(RemediationRefused, match="started a job during the download"):
        reinstall(github, runner, settings, steps)
    assert "SHA-256 verified" in steps.text  # downloaded, then refused
    assert calls(fake_path, "systemctl") == [] and (broken / "bin").is_symlink()
    assert not leftovers()


def test_the_download_may_take_its_whole_max_time_and_leaves_nothing(
    dirs, broken, fake, fake_path, settings, monkeypatch
):
    """curl's --max-time fits in the step's timeout (else the step is killed first), and the
    download folder goes on every way out: here a stop that fails after the download."""
    runner = runner_at(dirs)
    steps = steps_on(runner)
    timeouts: dict[str, float | None] = {}
    run = steps.run

    def recorded(command: str, **kwargs):
        timeouts[command] = kwargs.get("timeout")
        return run(command, **kwargs)

    monkeypatch.setattr(steps, "run", recorded)
    write_fake(fake_path.parent / "fakebin", "systemctl", '[ "$1" != stop ] || exit 1')
    with pytest.raises(RemediationFailed):
        reinstall(client(fake), runner, settings, steps)
    download = next(c for c in timeouts if "curl " in c)
    max_time = float(download.split("--max-time ", 1)[1].split()[0])
    assert (timeouts[download] or steps.timeout) > max_time
    assert not leftovers()


def test_a_download_killed_midway_removes_its_folder(tmp_path):
    """A signal (the session dropped, a stop) during curl: the trap removes the folder."""
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    write_fake(fakebin, "curl", "exec sleep 30")
    log = tmp_path / "fake.log"
    log.touch()
    asset = release.Asset("actions-runner-linux-x64-2.336.0.tar.gz", "https://x/y", 10, "0" * 64)
    before = set(leftovers())
    env = {**os.environ, "PATH": f"{fakebin}:{os.environ['PATH']}", "FAKE_LOG": str(log)}
    with subprocess.Popen(
        ["sh", "-c", version._download(asset)], env=env, start_new_session=True
    ) as shell:
        deadline = time.monotonic() + 10
        while "curl " not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the fake curl is sleeping
        assert set(leftovers()) - before, "the download made no folder"
        os.killpg(shell.pid, signal.SIGTERM)
        shell.wait(timeout=10)
    assert set(leftovers()) == before
