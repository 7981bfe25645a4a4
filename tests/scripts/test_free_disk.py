"""free_disk.sh on a temp runner tree: what it deletes, what it keeps, and never under a job.

The system cleaners (docker, apt-get, journalctl) are fakes on PATH: the host's own caches
are never touched. The script runs as the suite sends it: ``bash -s -- ARGS < free_disk.sh``.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.scripts.conftest import ROOT, run_script, write_fake

SCRIPT = ROOT / "remediations" / "free_disk.sh"


@pytest.fixture
def cleaners(fakes):
    """Fake docker (daemon answers), apt-get and journalctl that only log their calls."""
    bin_dir, _ = fakes
    write_fake(bin_dir, "docker", "exit 0")
    write_fake(bin_dir, "apt-get", "exit 0")
    write_fake(bin_dir, "journalctl", 'echo "Vacuuming done, freed 0B"')
    return fakes


@pytest.fixture
def runner_dir(tmp_path: Path) -> Path:
    """A runner install after some jobs: workspaces, caches, many _diag logs."""
    root = tmp_path / "actions-runner"
    work = root / "_work"
    for sub in (
        "kernel-ci/kernel-ci/src",
        "other-repo/other-repo",
        "_temp/job-script",
        "_tool/Python/3.12.1",
        "_actions/actions/checkout",
        "_PipelineMapping/acme/kernel-ci",
        "lost+found",
    ):
        (work / sub).mkdir(parents=True)
    (work / "kernel-ci/kernel-ci/src/vmlinux.o").write_bytes(os.urandom(200_000))
    (work / "_tool/Python/3.12.1/python").write_bytes(b"x" * 1000)
    diag = root / "_diag"
    diag.mkdir()
    now = time.time()
    for i in range(8):
        for kind in ("Runner", "Worker"):
            log = diag / f"{kind}_2025010{i}-000000-utc.log"
            log.write_text("log\n")
            os.utime(log, (now - 3600 * (8 - i),) * 2)  # i = 7 is the newest
    update = root / "_update"
    update.mkdir()
    (update / "bin.tar.gz").write_text("old update")
    os.utime(update / "bin.tar.gz", (now - 7200,) * 2)
    (root / "config.sh").write_text("#!/bin/sh\n")
    return root


def free_disk(args: list[str], fakes, **kwargs) -> subprocess.CompletedProcess[str]:
    """Send the script on stdin, as the remediation and the seed's multipass exec do."""
    return run_script(["bash", "-s", "--", *args], fakes=fakes, stdin=SCRIPT.read_text(), **kwargs)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_without_a_job_finished_workspaces_and_caches_go(runner_dir, cleaners):
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    work = runner_dir / "_work"
    assert not (work / "kernel-ci").exists()
    assert not (work / "other-repo").exists()
    # The runner's own folders stay (emptied); the work disk's lost+found is not ours.
    for kept in ("_temp", "_tool", "_actions", "_PipelineMapping/acme/kernel-ci", "lost+found"):
        assert (work / kept).exists(), kept
    assert not any((work / "_tool").iterdir())
    assert not any((work / "_temp").iterdir())
    # The newest five of each log kind stay; a stale _update goes; the install is untouched.
    logs = sorted(p.name for p in (runner_dir / "_diag").iterdir())
    assert logs == [
        f"{k}_2025010{i}-000000-utc.log" for k in ("Runner", "Worker") for i in (3, 4, 5, 6, 7)
    ]
    assert not (runner_dir / "_update").exists()
    assert (runner_dir / "config.sh").exists()
    # It says what it freed, step by step, with df before and after.
    assert "removed " + str(work / "kernel-ci") in result.stdout
    assert result.stdout.count("free: /") >= 6
    calls = cleaners[1].read_text()
    assert "docker container prune --force\n" in calls
    assert "docker image prune --force" in calls
    assert "docker builder prune --force" in calls
    assert "apt-get clean" in calls
    assert "journalctl --vacuum-size=200M" in calls


def test_a_running_job_keeps_every_workspace(runner_dir, cleaners):
    # A process whose command line says Runner.Worker: what the real runner runs per job.
    worker = subprocess.Popen(["bash", "-c", "exec -a Runner.Worker sleep 30"])
    try:
        time.sleep(0.2)
        result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    finally:
        worker.kill()
        worker.wait()
    assert result.returncode == 0, result.stderr
    work = runner_dir / "_work"
    assert (work / "kernel-ci/kernel-ci/src/vmlinux.o").exists()
    assert (work / "other-repo/other-repo").exists()
    assert (work / "_temp/job-script").exists()
    assert (work / "_tool/Python/3.12.1/python").exists()
    assert (work / "_actions/actions/checkout").exists()
    assert "A job is running" in result.stdout
    assert "every job workspace" in result.stdout
    # What no job needs still goes: old logs beyond the newest five.
    assert len(list((runner_dir / "_diag").iterdir())) == 10
    # Containers the job may have just stopped are kept.
    assert "docker container prune --force --filter until=1h" in cleaners[1].read_text()


def test_a_worker_of_another_runner_does_not_count(runner_dir, cleaners, tmp_path):
    # Started by path, as the real listener starts it: it belongs to the runner installed there.
    other = subprocess.Popen(
        ["bash", "-c", f"exec -a {tmp_path}/other-runner/bin/Runner.Worker sleep 30"]
    )
    ours = runner_dir / "bin" / "Runner.Worker"
    try:
        time.sleep(0.2)
        result = free_disk(["--runner-dir", str(runner_dir), "--dry-run"], cleaners)
        assert "A job is running" not in result.stdout
        assert "would remove " + str(runner_dir / "_work" / "kernel-ci") in result.stdout
        mine = subprocess.Popen(["bash", "-c", f"exec -a {ours} sleep 30"])
        try:
            time.sleep(0.2)
            result = free_disk(["--runner-dir", str(runner_dir), "--dry-run"], cleaners)
        finally:
            mine.kill()
            mine.wait()
        assert f"A job is running (Runner.Worker pid {mine.pid})" in result.stdout
    finally:
        other.kill()
        other.wait()


def test_dry_run_deletes_nothing_and_runs_no_cleaner(runner_dir, cleaners):
    before = tree(runner_dir)
    result = free_disk(["--runner-dir", str(runner_dir), "--dry-run"], cleaners)
    assert result.returncode == 0, result.stderr
    assert tree(runner_dir) == before
    assert "would remove " + str(runner_dir / "_work" / "kernel-ci") in result.stdout
    assert "would run: apt-get clean" in result.stdout
    # docker info is a read; nothing that changes anything ran.
    calls = cleaners[1].read_text().splitlines()
    assert [c for c in calls if not c.startswith("docker info")] == []


def test_runner_dir_from_env_and_no_docker(runner_dir, fakes):
    bin_dir, _ = fakes
    write_fake(bin_dir, "apt-get", "exit 0")
    write_fake(bin_dir, "journalctl", "exit 0")
    # A PATH without docker: only the fakes and coreutils.
    path = f"{bin_dir}:/usr/bin:/bin"
    result = run_script(
        ["bash", str(SCRIPT)],
        fakes=fakes,
        env={"RUNNER_DIR": str(runner_dir), "PATH": path},
    )
    assert result.returncode == 0, result.stderr
    if Path("/usr/bin/docker").exists():
        pytest.skip("docker is installed in /usr/bin here")
    assert "docker is not installed" in result.stdout
    assert not (runner_dir / "_work" / "kernel-ci").exists()


def test_a_failing_cleaner_is_a_warning_not_the_end(runner_dir, fakes):
    bin_dir, _ = fakes
    write_fake(
        bin_dir, "docker", 'case $1 in info) exit 0;; *) echo "disk full" >&2; exit 1;; esac'
    )
    write_fake(bin_dir, "apt-get", "exit 100")
    write_fake(bin_dir, "journalctl", "exit 0")
    result = free_disk(["--runner-dir", str(runner_dir)], fakes)
    assert result.returncode == 0
    assert "WARNING: 'apt-get clean' failed" in result.stderr
    assert not (runner_dir / "_work" / "kernel-ci").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown argument '--bogus'"),
        (["--runner-dir"], "--runner-dir needs a directory"),
        (["--runner-dir", "relative/dir"], "must be an absolute path"),
        (["--runner-dir", "/"], "refusing to treat / as the runner directory"),
    ],
)
def test_bad_arguments_exit_2_and_touch_nothing(args, message, runner_dir, cleaners):
    before = tree(runner_dir)
    result = free_disk(args, cleaners)
    assert result.returncode == 2
    assert message in result.stderr
    assert tree(runner_dir) == before
    assert cleaners[1].read_text() == ""


def test_help(cleaners):
    result = run_script(["bash", str(SCRIPT), "--help"], fakes=cleaners)
    assert result.returncode == 0
    assert "--runner-dir DIR" in result.stdout
    assert "--dry-run" in result.stdout
