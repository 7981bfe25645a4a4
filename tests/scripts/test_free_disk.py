"""free_disk.sh on a temp runner tree: what it deletes, what it keeps, and never under a job.

The system cleaners (docker, apt-get, journalctl) are fakes on PATH: the host's own caches
are never touched. The script runs as the suite sends it: ``bash -s -- ARGS < free_disk.sh``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.scripts.conftest import ROOT, run_script, write_fake

SCRIPT = ROOT / "remediations" / "free_disk.sh"
DOCKER_STAND_IN = Path(__file__).with_name("docker_stand_in.py")
# What free_disk.sh only reads from docker: a dry run may ask these.
DOCKER_READS = ("docker info", "docker version", "docker ps")


def docker_state(fakes, state: dict) -> Path:
    """The docker stand-in's state (API 1.45 unless given, nothing in it unless given)."""
    path = fakes[1].parent / "docker.json"
    base = {"api": "1.45", "containers": [], "volumes": [], "networks": []}
    path.write_text(json.dumps({**base, **state}))
    return path


@pytest.fixture
def cleaners(fakes):
    """The docker stand-in (a daemon with nothing in it: docker_state() fills it), fake apt-get
    and journalctl that only log their calls."""
    bin_dir, _ = fakes
    shutil.copy(DOCKER_STAND_IN, bin_dir / "docker")
    docker_state(fakes, {})
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
    update = work / "_update"  # the self-update's staging folder (SelfUpdater.cs)
    update.mkdir()
    (update / "bin.tar.gz").write_text("old update")
    os.utime(update / "bin.tar.gz", (now - 7200,) * 2)
    (root / "config.sh").write_text("#!/bin/sh\n")
    (root / "bin").mkdir()
    (root / "bin" / "Runner.Listener").write_text("#!/bin/sh\n")
    (root / "externals" / "node20" / "bin").mkdir(parents=True)
    age(work)  # the last job ended two hours ago
    return root


def age(path: Path, seconds: float = 7200) -> None:
    """Set the mtime of ``path`` and of everything in it ``seconds`` back (links themselves)."""
    then = time.time() - seconds
    for item in [*path.rglob("*"), path]:
        os.utime(item, (then, then), follow_symlinks=False)


@pytest.fixture
def victims(tmp_path: Path) -> Path:
    """What root must never delete: home folders outside the runner directory."""
    home = tmp_path / "home"
    for user in ("alice", "bob"):
        (home / user / ".ssh").mkdir(parents=True)
        (home / user / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA\n")
    age(home)
    return home


def write_runner_file(runner_dir: Path, work_folder: str) -> None:
    """``.runner`` as config.sh writes it (UTF-8 with a BOM, indented JSON)."""
    data = {"agentId": 7, "agentName": "r", "poolId": 1, "workFolder": work_folder}
    (runner_dir / ".runner").write_text("\ufeff" + json.dumps(data, indent=2))


@pytest.fixture
def worker_pids(tmp_path: Path):
    """A file where fakes note the Runner.Worker processes they start; killed afterwards."""
    pids = tmp_path / "worker.pids"
    pids.touch()
    yield pids
    for pid in pids.read_text().split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def start_worker(runner_dir: Path, pids: Path) -> str:
    """Bash that starts a Runner.Worker of ``runner_dir`` in the background: a job begins."""
    program = runner_dir / "bin" / "Runner.Worker"
    return (
        f"bash -c 'exec -a {program} sleep 30' </dev/null >/dev/null 2>&1 &\n"
        f"echo $! >> {pids}\n"
        "sleep 0.2\n"
    )


def hook(bin_dir: Path, program: str, when: str, action: str) -> None:
    """``program`` that first runs ``action`` when its last argument ends in ``when``: another
    process acting at that moment of a free_disk.sh run (``du`` measures an entry just before
    its removal, ``rm`` removes it)."""
    real = shutil.which(program)
    body = f'case "${{*: -1}}" in *{when}) {action} ;; esac\nexec {real} "$@"'
    write_fake(bin_dir, program, body)


def free_disk(
    args: list[str], fakes, env: dict[str, str] | None = None, **kwargs
) -> subprocess.CompletedProcess[str]:
    """Send the script on stdin, as the remediation and the seed's multipass exec do; its /tmp
    is a folder of the test's, the docker stand-in's state the test's."""
    env = {
        "TMP_DIR": str(fakes[1].parent / "tmp"),
        "FAKE_DOCKER_STATE": str(fakes[1].parent / "docker.json"),
        **(env or {}),
    }
    return run_script(
        ["bash", "-s", "--", *args], fakes=fakes, stdin=SCRIPT.read_text(), env=env, **kwargs
    )


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_work_kept(runner_dir: Path) -> None:
    """Every workspace and cache of the fixture's _work is still there (a job may use them)."""
    work = runner_dir / "_work"
    assert (work / "kernel-ci/kernel-ci/src/vmlinux.o").exists()
    assert (work / "other-repo/other-repo").exists()
    assert (work / "_temp/job-script").exists()
    assert (work / "_tool/Python/3.12.1/python").exists()
    assert (work / "_actions/actions/checkout").exists()


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
    # The newest five of each log kind stay; the update's staging goes; the install is untouched.
    logs = sorted(p.name for p in (runner_dir / "_diag").iterdir())
    assert logs == [
        f"{k}_2025010{i}-000000-utc.log" for k in ("Runner", "Worker") for i in (3, 4, 5, 6, 7)
    ]
    assert not (runner_dir / "_work/_update").exists()
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


def updated(runner_dir: Path, bin_target: str | None = None) -> None:
    """The runner after two self-updates (update.sh.template): bin and externals are links to
    the 2.336.0 copies (absolute, as the template makes them), 2.334.0's and 2.335.0's stay."""
    for kind in ("bin", "externals"):
        shutil.rmtree(runner_dir / kind)
        for version in ("2.334.0", "2.335.0", "2.336.0"):
            (runner_dir / f"{kind}.{version}").mkdir()
            (runner_dir / f"{kind}.{version}" / "file").write_text(version)
        (runner_dir / kind).symlink_to(runner_dir / f"{kind}.2.336.0")
    if bin_target is not None:
        (runner_dir / "bin").unlink()
        (runner_dir / "bin").symlink_to(bin_target)


def test_old_runner_versions_and_the_update_staging_go(runner_dir, cleaners):
    updated(runner_dir)
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    names = {p.name for p in runner_dir.iterdir()}
    assert {"bin", "bin.2.336.0", "externals", "externals.2.336.0"} <= names
    assert not names & {"bin.2.334.0", "bin.2.335.0", "externals.2.334.0", "externals.2.335.0"}
    assert (runner_dir / "bin/file").read_text() == "2.336.0"
    assert not (runner_dir / "_work/_update").exists()
    assert f"removed {runner_dir}/bin.2.334.0" in result.stdout


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("bin.2.337.0", id="dangling"),  # a failed update: which copy works?
        pytest.param("/elsewhere/bin.2.336.0", id="outside"),
        pytest.param("../bin.2.336.0", id="above"),
        pytest.param("", id="plain-folder"),
    ],
)
def test_versions_stay_unless_the_live_link_is_clear(target, runner_dir, cleaners):
    updated(runner_dir, bin_target=target or None)
    if not target:
        (runner_dir / "bin").unlink()
        (runner_dir / "bin").mkdir()
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    for version in ("2.334.0", "2.335.0", "2.336.0"):
        assert (runner_dir / f"bin.{version}/file").exists(), version
    # externals is a clear link: its old copies go all the same
    assert not (runner_dir / "externals.2.334.0").exists()
    assert (runner_dir / "externals.2.336.0/file").exists()


def test_an_update_under_way_keeps_its_staging_and_versions(runner_dir, cleaners, worker_pids):
    updated(runner_dir)
    (runner_dir / "_work/_update/runner2.336.0.tar.gz").write_bytes(b"downloading")
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    assert "a runner self-update is under way" in result.stdout
    assert (runner_dir / "_work/_update/bin.tar.gz").exists()
    assert (runner_dir / "bin.2.334.0").exists()
    # The update script runs (the listener started <work>/_update.sh), the staging is old.
    age(runner_dir / "_work/_update")
    script = runner_dir / "_work/_update.sh"
    script.write_text("sleep 30\n")
    update = subprocess.Popen(["bash", str(script)], start_new_session=True)
    worker_pids.write_text(f"{update.pid}\n")
    try:
        result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    finally:
        update.kill()
        update.wait()
    assert "a runner self-update is under way" in result.stdout
    assert (runner_dir / "bin.2.334.0").exists()


def test_only_versions_lower_than_the_live_one_go(runner_dir, cleaners):
    # SelfUpdater.cs copies the new version to bin.<new>/externals.<new>, then waits for the
    # running job (hours, maybe), bin still linked to the current one: 2.335.0, 2.336.0 staged.
    updated(runner_dir)
    for kind in ("bin", "externals"):
        (runner_dir / kind).unlink()
        (runner_dir / kind).symlink_to(runner_dir / f"{kind}.2.335.0")
    # Compared as versions: 2.9.0 is lower, 2.1000.0 higher; other names are no versions.
    for name in ("2.9.0", "2.1000.0", "02.1.0", "2.336.0-rc1"):
        (runner_dir / f"bin.{name}").mkdir()
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    names = {p.name for p in runner_dir.iterdir()}
    kept = {"2.335.0", "2.336.0", "2.1000.0", "02.1.0", "2.336.0-rc1"}
    assert {f"bin.{v}" for v in kept} | {"externals.2.335.0", "externals.2.336.0"} <= names
    assert not names & {"bin.2.334.0", "bin.2.9.0", "externals.2.334.0"}


def test_a_running_job_keeps_every_runner_version(runner_dir, cleaners):
    updated(runner_dir)
    result = during_a_job(runner_dir, cleaners, "Runner.Worker")
    for kind in ("bin", "externals"):
        for version in ("2.334.0", "2.335.0", "2.336.0"):
            assert (runner_dir / f"{kind}.{version}/file").exists(), (kind, version)
    assert "a job is running: old bin.*/externals.* kept" in result.stdout


def test_a_job_that_starts_mid_run_keeps_every_runner_version(runner_dir, cleaners, worker_pids):
    # Removed after _work/_update: the job starts while the staging folder is being removed.
    updated(runner_dir)
    hook(cleaners[0], "rm", "/_update", start_worker(runner_dir, worker_pids))
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    assert not (runner_dir / "_work/_update").exists()
    for kind in ("bin", "externals"):
        assert (runner_dir / f"{kind}.2.334.0/file").exists(), kind
    assert f"kept {runner_dir}/bin.2.334.0: a job is running" in result.stdout


def during_a_job(runner_dir: Path, fakes, worker: str) -> subprocess.CompletedProcess[str]:
    """free_disk.sh while a process whose command line is ``worker`` runs: a job."""
    process = subprocess.Popen(["bash", "-c", f"exec -a {worker} sleep 30"])
    try:
        time.sleep(0.2)
        result = free_disk(["--runner-dir", str(runner_dir)], fakes)
    finally:
        process.kill()
        process.wait()
    assert result.returncode == 0, result.stderr
    return result


def test_a_running_job_keeps_every_workspace(runner_dir, cleaners):
    # A process whose command line says Runner.Worker: what the real runner runs per job.
    result = during_a_job(runner_dir, cleaners, "Runner.Worker")
    assert_work_kept(runner_dir)
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
    # docker info, version and ps are reads; nothing that changes anything ran.
    calls = cleaners[1].read_text().splitlines()
    assert [c for c in calls if not c.startswith(DOCKER_READS)] == []


def test_runner_dir_from_env_and_no_docker(runner_dir, fakes):
    bin_dir, _ = fakes
    write_fake(bin_dir, "apt-get", "exit 0")
    write_fake(bin_dir, "journalctl", "exit 0")
    # A PATH without docker: only the fakes and coreutils.
    path = f"{bin_dir}:/usr/bin:/bin"
    result = run_script(
        ["bash", str(SCRIPT)],
        fakes=fakes,
        env={"RUNNER_DIR": str(runner_dir), "PATH": path, "TMP_DIR": str(runner_dir / "tmp")},
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
    ("args", "env", "message"),
    [
        (["--bogus"], {}, "unknown argument '--bogus'"),
        (["--runner-dir"], {}, "--runner-dir needs a directory"),
        (["--runner-dir", "relative/dir"], {}, "must be an absolute path"),
        (["--runner-dir", "/"], {}, "refusing to treat / as the runner directory"),
        (["--work-dir"], {}, "--work-dir needs a directory"),
        (["--work-dir", "_work"], {}, "--work-dir must be an absolute path"),
        (["--work-dir", "/"], {}, "refusing to treat / as the work directory"),
        (["--work-dir", "{runner}"], {}, "must not hold the runner directory"),
        (["--work-dir", "{runner}/.."], {}, "must not hold the runner directory"),
        ([], {"RECENT_MINUTES": "ten"}, "RECENT_MINUTES must be a number"),
        ([], {"RECENT_MINUTES": "99999999999999999999"}, "RECENT_MINUTES must be a number"),
        ([], {"DIAG_KEEP": "-1"}, "DIAG_KEEP must be a number"),
        (["--if-free-below-percent"], {}, "--if-free-below-percent needs a number"),
        (["--if-free-below-percent", "ten"], {}, "needs a whole number, got 'ten'"),
        (["--if-free-below-percent=101"], {}, "is a percentage (0 to 100)"),
        (["--if-free-below-gib", "2.5"], {}, "needs a whole number, got '2.5'"),
    ],
)
def test_bad_arguments_exit_2_and_touch_nothing(args, env, message, runner_dir, cleaners):
    before = tree(runner_dir)
    args = [a.format(runner=runner_dir) for a in args]
    if "--runner-dir" not in args:
        args = ["--runner-dir", str(runner_dir), *args]
    result = free_disk(args, cleaners, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert tree(runner_dir) == before
    assert cleaners[1].read_text() == ""


def test_help(cleaners):
    result = run_script(["bash", str(SCRIPT), "--help"], fakes=cleaners)
    assert result.returncode == 0
    assert "--runner-dir DIR" in result.stdout
    assert "--work-dir DIR" in result.stdout
    assert "RECENT_MINUTES" in result.stdout
    assert "--dry-run" in result.stdout
    assert "--if-free-below-percent P" in result.stdout
    assert "--if-free-below-gib G" in result.stdout


GIB = 1024**3


@pytest.fixture
def df(cleaners, runner_dir):
    """The fake cleaners and a fake ``df`` whose figures are set per test: those of the work
    folder's filesystem for a path in the runner dir, those of / for any other. $FAKE_DF_ROOT
    and $FAKE_DF_WORK: size and available GiB (``df -P -B1``); ..._INODES: inodes and free
    inodes (``df -P -i``; 100 50 unless set); $FAKE_MOUNT_ROOT and ..._WORK: the mount point
    (``df --output=target``; none unless set: no du of this machine's /)."""
    write_fake(
        cleaners[0],
        "df",
        f"""case "${{*: -1}}" in {runner_dir}*) fs=WORK ;; *) fs=ROOT ;; esac
case " $* " in
*" --output=target "*)
	mount=FAKE_MOUNT_$fs
	printf 'Mounted on\\n%s\\n' "${{!mount:-/nonexistent-mount}}" ;;
*" -i "*)
	figures=FAKE_DF_${{fs}}_INODES
	set -- ${{!figures:-100 50}}
	echo "Filesystem Inodes IUsed IFree IUse% Mounted on"
	echo "/dev/fake $1 $(($1 - $2)) $2 50% /" ;;
*)
	figures=FAKE_DF_$fs
	set -- ${{!figures}}
	echo "Filesystem 1-blocks Used Available Capacity Mounted on"
	echo "/dev/fake $(($1 * {GIB})) $((($1 - $2) * {GIB})) $(($2 * {GIB})) 50% /" ;;
esac
""",
    )
    return cleaners


@pytest.mark.parametrize(
    ("root", "work", "args"),
    [
        ("100 50", "100 50", ["--if-free-below-percent", "10", "--if-free-below-gib", "5"]),
        ("100 10", "20 2", ["--if-free-below-percent=10"]),
        ("100 10", "20 5", ["--if-free-below-gib=5"]),
    ],
)
def test_enough_free_space_touches_nothing(root, work, args, runner_dir, df):
    before = tree(runner_dir)
    result = free_disk(
        ["--runner-dir", str(runner_dir), *args],
        df,
        env={"FAKE_DF_ROOT": root, "FAKE_DF_WORK": work},
    )
    assert result.returncode == 0, result.stderr
    assert "enough free space (/ " in result.stdout
    assert "nothing to do" in result.stdout
    assert tree(runner_dir) == before  # tool caches and workspaces stay
    assert [c for c in df[1].read_text().splitlines() if not c.startswith("df ")] == []


@pytest.mark.parametrize(
    ("root", "work", "args"),
    [
        ("100 9", "100 50", ["--if-free-below-percent", "10"]),  # / short
        ("100 50", "100 4", ["--if-free-below-gib", "5"]),  # the work disk short
        ("100 50", "20 1", ["--if-free-below-percent", "1", "--if-free-below-gib", "2"]),
        ("100 50", "garbage", ["--if-free-below-percent", "1"]),  # unmeasured: short
    ],
)
def test_below_a_threshold_it_cleans(root, work, args, runner_dir, df):
    result = free_disk(
        ["--runner-dir", str(runner_dir), *args],
        df,
        env={"FAKE_DF_ROOT": root, "FAKE_DF_WORK": work},
    )
    assert result.returncode == 0, result.stderr
    assert "short of space" in result.stdout
    assert not (runner_dir / "_work" / "kernel-ci").exists()
    assert "apt-get clean" in df[1].read_text()


# --- inodes: a disk full of small files has bytes to spare ----------------------------------

CRON = ["--if-free-below-percent", "15", "--if-free-below-gib", "10"]  # the hourly cron's


@pytest.mark.parametrize(
    ("inodes", "args", "cleans"),
    [
        (
            "65536 1234",
            CRON,
            True,
        ),  # 1.9% of inodes free: short, with the cron's options as they are
        ("65536 32768", CRON, False),
        ("65536 13000", [*CRON, "--if-inodes-below-percent", "20"], True),
        ("65536 13000", [*CRON, "--if-inodes-below-percent=15"], False),
        ("0 0", CRON, False),  # no inode table (btrfs): inodes never run out
    ],
)
def test_few_free_inodes_trigger_the_cleanup(inodes, args, cleans, runner_dir, df):
    result = free_disk(
        ["--runner-dir", str(runner_dir), *args],
        df,
        env={"FAKE_DF_ROOT": "100 50", "FAKE_DF_WORK": "100 50", "FAKE_DF_WORK_INODES": inodes},
    )
    assert result.returncode == 0, result.stderr
    assert ("short of space" in result.stdout) == cleans, result.stdout
    assert (runner_dir / "_work" / "kernel-ci").exists() != cleans
    if inodes == "65536 1234":
        assert f"{runner_dir}/_work 50GiB (50%), 1% of inodes" in result.stdout
        assert "cleaning starts below 15% or 10GiB or 10% of inodes" in result.stdout


def test_the_report_shows_free_inodes_and_what_was_freed(runner_dir, cleaners):
    # The real df: each step's line shows both; removing workspaces frees inodes.
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    assert re.search(r"free: / \S+ \(\d+%\), \d+% of inodes", result.stdout)
    assert re.search(r"freed \d+ inodes", result.stdout)


@pytest.mark.parametrize(
    "args",
    [
        ["--if-inodes-below-percent", "101"],
        ["--tmp-max-age-days", "0"],
        ["--tmp-max-age-days", "x"],
    ],
)
def test_bad_new_arguments_exit_2(args, runner_dir, cleaners):
    result = free_disk(["--runner-dir", str(runner_dir), *args], cleaners)
    assert result.returncode == 2
    assert (runner_dir / "_work" / "kernel-ci").exists()


# --- still short: name what fills the filesystem, delete none of it -------------------------


@pytest.fixture
def full_mount(tmp_path: Path) -> Path:
    """What a filesystem holds that free_disk.sh doesn't own: a person's data, a deep tree,
    a folder whose name carries a terminal escape, and many small files."""
    mount = tmp_path / "mnt"
    (mount / "srv" / "data").mkdir(parents=True)
    (mount / "srv" / "data" / "dump.img").write_bytes(b"x" * 3_000_000)
    (mount / "home" / "alice" / "a" / "b").mkdir(parents=True)  # depth 5: shown at depth 3
    (mount / "opt" / "1" / "2").mkdir(parents=True)  # 12 directories in all: 10 are shown
    (mount / "home" / "alice" / "a" / "b" / "big").write_bytes(b"x" * 1_000_000)
    (mount / "evil\x1b[2J\nname").mkdir()
    (mount / "evil\x1b[2J\nname" / "f").write_bytes(b"x" * 500_000)
    many = mount / "var" / "spool" / "many"
    many.mkdir(parents=True)
    for i in range(300):
        (many / str(i)).touch()
    return mount


def measured(runner_dir: Path, fakes, **figures: str) -> subprocess.CompletedProcess[str]:
    """free_disk.sh with the fake df's figures (both filesystems half free unless given)."""
    env = {"FAKE_DF_ROOT": "100 50", "FAKE_DF_WORK": "100 50", **figures}
    result = free_disk(["--runner-dir", str(runner_dir)], fakes, env=env)
    assert result.returncode == 0, result.stderr
    return result


def test_still_short_names_the_largest_directories_and_removes_none(runner_dir, df, full_mount):
    before = tree(full_mount)
    result = measured(runner_dir, df, FAKE_DF_ROOT="100 5", FAKE_MOUNT_ROOT=str(full_mount))
    assert tree(full_mount) == before
    report = result.stdout.split("== still short: ", 1)[1]
    assert report.startswith("/ 5.0GiB (5%)")
    assert f"the directories holding the most bytes on {full_mount} (du -x, 3 levels):" in report
    listed = [line.split(None, 1)[1] for line in report.splitlines()[2:] if line.startswith("    ")]
    assert listed[:3] == [f"{full_mount}/srv", f"{full_mount}/srv/data", f"{full_mount}/home"]
    assert f"{full_mount}/home/alice/a" in listed
    assert f"{full_mount}/home/alice/a/b" not in listed  # deeper than 3 levels
    assert f"{full_mount}/evil?[2J?name" in listed  # no escape reaches the terminal
    assert str(full_mount) not in [line.strip() for line in listed]  # the mount's own total
    assert len(listed) == 10
    assert "\x1b" not in result.stdout
    assert "partial" not in report
    # The work folder's filesystem has room: nothing said about it.
    assert result.stdout.count("== still short") == 1


def test_short_of_inodes_names_the_directories_with_most_files(runner_dir, df, full_mount):
    result = measured(
        runner_dir, df, FAKE_DF_WORK_INODES="65536 1234", FAKE_MOUNT_WORK=str(full_mount)
    )
    report = result.stdout.split("== still short: ", 1)[1]
    assert report.startswith(f"{runner_dir}/_work 50GiB (50%), 1% of inodes")
    assert "the directories holding the most inodes" in report
    first = report.splitlines()[2].split()
    assert first[1] == f"{full_mount}/var" and int(first[0]) > 300


def test_a_du_cut_short_is_said_to_be_partial(runner_dir, df, full_mount):
    # What du printed before its time ran out: some directories, never the mount's total.
    write_fake(df[0], "du", f"printf '5\\t{full_mount}/srv\\0003\\t{full_mount}/home\\000'")
    result = measured(runner_dir, df, FAKE_DF_ROOT="100 5", FAKE_MOUNT_ROOT=str(full_mount))
    assert "(partial: du did not finish within 30 s)" in result.stdout
    assert f"{full_mount}/srv" in result.stdout


def test_enough_room_after_the_cleanup_runs_no_du(runner_dir, df, full_mount):
    result = measured(runner_dir, df, FAKE_MOUNT_ROOT=str(full_mount))
    assert "still short" not in result.stdout


# --- Docker: finished jobs' containers, unused volumes --------------------------------------

RUNNER_JSON = '{\n  "agentId": 7,\n  "agentName": "vm",\n  "workFolder": "_work"\n}'
LABEL = hashlib.sha256(RUNNER_JSON.lower().encode()).hexdigest()[:6]


def a_container(n: int, state: str, labels: dict[str, str]) -> dict:
    return {"ID": f"{n:064x}", "Names": f"c{n}", "State": state, "Labels": labels}


@pytest.fixture
def docker_vm(runner_dir, cleaners) -> Path:
    """A runner whose .runner gives LABEL (written with a BOM, as config.sh does), and a Docker
    holding what jobs leave: a finished job's service still running, a step's `docker run -d`,
    another runner's job container, stopped ones; anonymous and named volumes, used and not."""
    (runner_dir / ".runner").write_text("\ufeff" + RUNNER_JSON, encoding="utf-8")
    return docker_state(
        cleaners,
        {
            "containers": [
                a_container(1, "running", {LABEL: ""}),
                a_container(2, "running", {}),
                a_container(3, "running", {"0badc0": ""}),
                a_container(4, "exited", {}),
                a_container(5, "exited", {LABEL: ""}),
            ],
            "volumes": [
                {"Name": "f" * 64, "Anonymous": True},
                {"Name": "e" * 64, "Anonymous": True, "UsedBy": ["c2"]},
                {"Name": "pgdata", "Anonymous": False},
            ],
        },
    )


def docker_now(path: Path) -> tuple[set[str], set[str]]:
    state = json.loads(path.read_text())
    return {c["Names"] for c in state["containers"]}, {v["Name"] for v in state["volumes"]}


def test_containers_of_finished_jobs_and_anonymous_volumes_go(runner_dir, cleaners, docker_vm):
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    containers, volumes = docker_now(docker_vm)
    # The finished job's service goes; a step's container and another runner's stay running.
    assert containers == {"c2", "c3"}
    assert volumes == {"e" * 64, "pgdata"}  # in use, or named: a person's data
    assert (
        f"container c1 (running) carries the runner's label {LABEL}: its job is over"
        in result.stdout
    )
    calls = cleaners[1].read_text()
    assert f"docker rm --force {1:064x}" in calls
    assert f"docker network prune --force --filter label={LABEL}" in calls


def test_a_running_job_keeps_its_containers_and_volumes(runner_dir, cleaners, docker_vm):
    result = during_a_job(runner_dir, cleaners, f"{runner_dir}/bin/Runner.Worker")
    assert "kept container" not in result.stdout  # not even listed: a job runs
    containers, volumes = docker_now(docker_vm)
    assert {"c1", "c2", "c3"} <= containers
    assert volumes == {"f" * 64, "e" * 64, "pgdata"}
    calls = cleaners[1].read_text()
    assert "docker rm" not in calls and "volume prune" not in calls


def test_old_docker_prunes_no_volume(runner_dir, cleaners, docker_vm):
    # Before API 1.42 (Docker 23) volume prune took named volumes too.
    docker_vm.write_text(json.dumps({**json.loads(docker_vm.read_text()), "api": "1.41"}))
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    assert "pgdata" in docker_now(docker_vm)[1]
    assert "Docker API '1.41' is not 1.42 or later" in result.stdout


def test_without_a_runner_file_no_running_container_goes(runner_dir, cleaners, docker_vm):
    (runner_dir / ".runner").unlink()
    os.mkfifo(runner_dir / ".runner")  # nor from a FIFO a job put there
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners, timeout=30)
    assert result.returncode == 0, result.stderr
    assert {"c1", "c2", "c3"} <= docker_now(docker_vm)[0]
    assert "no runner label" in result.stdout


# --- /tmp: files nobody touched for days ------------------------------------------------------


@pytest.fixture
def tmp_dir(cleaners) -> Path:
    """A /tmp after weeks: old files (mtime set back), a socket, a FIFO, a link to a victim,
    a service's private /tmp, and a fresh file."""
    tmp = cleaners[1].parent / "tmp"
    (tmp / "old-dir").mkdir(parents=True)
    (tmp / "systemd-private-123-chrony.service-x" / "tmp").mkdir(parents=True)
    for name in ("old.log", "old-dir/old.o", "systemd-private-123-chrony.service-x/tmp/f", "fresh"):
        (tmp / name).write_bytes(b"x" * 1000)
    socket.socket(socket.AF_UNIX).bind(str(tmp / "svc.sock"))
    os.mkfifo(tmp / "fifo")
    victim = cleaners[1].parent / "victim"
    victim.write_text("keep")
    (tmp / "to-victim").symlink_to(victim)
    for path in [*tmp.rglob("*"), victim]:
        if path.name != "fresh":
            os.utime(path, (time.time() - 30 * 86400,) * 2, follow_symlinks=False)
    return tmp


def test_tmp_files_changed_lately_stay_whatever_their_mtime(runner_dir, cleaners, tmp_dir):
    # Every file here was created just now: a job's tar sets an old mtime, never an old ctime.
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    assert (tmp_dir / "old.log").exists()
    assert f"no file in {tmp_dir} older than 7 days" in result.stdout


def test_old_tmp_files_go_and_nothing_else(runner_dir, cleaners, tmp_dir):
    # No clock to turn back here: a find that takes every status change as old enough (the
    # -cmin test itself is the case above).
    real = shutil.which("find")
    write_fake(
        cleaners[0],
        "find",
        "args=() prev=\n"
        'for a in "$@"; do [[ $prev == -cmin ]] && a=-100000000; args+=("$a"); prev=$a; done\n'
        f'exec {real} "${{args[@]}}"',
    )
    result = free_disk(["--runner-dir", str(runner_dir), "--tmp-max-age-days", "10"], cleaners)
    assert result.returncode == 0, result.stderr
    left = {str(p.relative_to(tmp_dir)) for p in tmp_dir.rglob("*")}
    assert left == {
        "old-dir",  # folders stay (empty)
        "systemd-private-123-chrony.service-x",
        "systemd-private-123-chrony.service-x/tmp",
        "systemd-private-123-chrony.service-x/tmp/f",  # a service's private /tmp
        "fresh",
        "svc.sock",
        "fifo",
        "to-victim",  # a link: not a regular file
    }
    assert (cleaners[1].parent / "victim").read_text() == "keep"
    assert f"removed 2 files in {tmp_dir} older than 10 days (2.0KiB)" in result.stdout
    assert "-mmin +14400" in cleaners[1].read_text()


# --- hostile trees: the runner user (every CI job) writes the runner dir, .runner and _work --


@pytest.mark.parametrize(
    "work_folder",
    ["..", "../home", "{home}", "linked", ".", "bin", "externals", "_work/../externals"],
)
def test_a_work_folder_outside_the_runner_dir_is_not_cleaned(
    work_folder, runner_dir, victims, cleaners
):
    (runner_dir / "linked").symlink_to(victims, target_is_directory=True)
    write_runner_file(runner_dir, work_folder.format(home=victims))
    before = tree(victims)
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    assert tree(victims) == before
    assert (runner_dir / "bin" / "Runner.Listener").exists()
    assert (runner_dir / "externals" / "node20" / "bin").exists()
    # It says so, and cleans the runner's default work folder instead.
    assert "ignoring workFolder" in result.stderr
    assert f"work dir {runner_dir / '_work'}" in result.stdout
    assert not (runner_dir / "_work" / "kernel-ci").exists()


def test_a_runner_file_that_never_ends_does_not_hang_the_run(runner_dir, cleaners):
    os.mkfifo(runner_dir / ".runner")  # reading it would wait for a writer for ever
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners, timeout=30)
    assert result.returncode == 0, result.stderr
    assert not (runner_dir / "_work" / "kernel-ci").exists()


def test_a_work_folder_that_links_out_is_not_cleaned(runner_dir, victims, cleaners):
    (runner_dir / "_work").rename(runner_dir / "_work.old")
    (runner_dir / "_work").symlink_to(victims, target_is_directory=True)
    before = tree(victims)
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    assert tree(victims) == before
    assert "not inside the runner directory" in result.stderr
    assert "--work-dir" in result.stderr  # how to clean a work folder kept elsewhere
    # The rest still runs: old logs go.
    assert len(list((runner_dir / "_diag").iterdir())) == 10


def test_links_inside_the_work_folder_are_never_followed(runner_dir, victims, cleaners):
    work = runner_dir / "_work"
    (work / "to-home").symlink_to(victims, target_is_directory=True)
    shutil.rmtree(work / "_tool")
    (work / "_tool").symlink_to(victims / "alice", target_is_directory=True)
    (work / "_temp" / "to-bob").symlink_to(victims / "bob", target_is_directory=True)
    age(work)
    before = tree(victims)
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    assert tree(victims) == before
    assert not (work / "kernel-ci").exists()
    assert not (work / "_temp" / "to-bob").is_symlink()  # the link itself may go


@pytest.mark.parametrize(
    ("measured", "folder", "target"),
    [
        # Removing _temp/.ssh must not remove alice/.ssh.
        ("/.ssh", "_temp", "alice"),
        # Removing the next workspace, other-repo, must not remove home/other-repo.
        ("/kernel-ci", "", ""),
    ],
)
def test_a_folder_swapped_for_a_link_mid_run_is_not_followed(
    measured, folder, target, runner_dir, victims, cleaners
):
    # A leftover job process swaps a folder of _work for a link to a home folder while
    # free_disk.sh measures an entry: the one being removed, and the ones after it.
    work = runner_dir / "_work"
    (work / "_temp" / ".ssh").mkdir()
    (victims / "other-repo").mkdir()
    age(work)
    age(victims)
    swapped = work / folder
    swap = f"mv {swapped} {swapped}.moved && ln -s {victims / target} {swapped}"
    hook(cleaners[0], "du", measured, swap)
    before = tree(victims)
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    assert tree(victims) == before
    assert "not where it was" in result.stderr


def test_work_dir_option_is_trusted_and_runner_file_is_not_read(
    runner_dir, victims, cleaners, tmp_path
):
    data = tmp_path / "data-work"
    (data / "big-repo" / "big-repo").mkdir(parents=True)
    (data / "_temp" / "x").mkdir(parents=True)
    age(data)
    write_runner_file(runner_dir, str(victims))
    result = free_disk(["--runner-dir", str(runner_dir), "--work-dir", str(data)], cleaners)
    assert result.returncode == 0, result.stderr
    assert not (data / "big-repo").exists()
    assert not (data / "_temp" / "x").exists()
    assert (runner_dir / "_work" / "kernel-ci").exists()  # not the work dir given
    assert (victims / "alice" / ".ssh").exists()
    assert "workFolder" not in result.stderr
    # As written by root: a link on the way (the runner user's, maybe) is refused.
    (runner_dir / "_work").rename(runner_dir / "_work.old")
    (runner_dir / "_work").symlink_to(victims, target_is_directory=True)
    result = free_disk(
        ["--runner-dir", str(runner_dir), "--work-dir", str(runner_dir / "_work")], cleaners
    )
    assert result.returncode == 2
    assert "--work-dir must be a path without links" in result.stderr
    assert (victims / "alice" / ".ssh").exists()


def test_names_are_bytes_and_never_relative(runner_dir, cleaners, tmp_path):
    # The hourly cron runs from /root: a name with a newline must not become ".ssh" there.
    cwd = tmp_path / "root"
    for dot in (".ssh", ".gnupg", ".profile"):
        (cwd / dot).mkdir(parents=True)
    work = runner_dir / "_work"
    (work / "x\n.ssh").mkdir()
    (work / "_temp" / "y\n.gnupg").mkdir()
    pages = runner_dir / "_diag" / "pages"
    pages.mkdir()
    (pages / "p\n.profile").write_text("step log\n")
    age(work)
    age(pages, 2 * 86400)  # step logs go after a day
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners, cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in cwd.iterdir()) == [".gnupg", ".profile", ".ssh"]
    # The odd names themselves are the runner's, and go.
    assert not (work / "x\n.ssh").exists()
    assert not (work / "_temp" / "y\n.gnupg").exists()
    assert not (pages / "p\n.profile").exists()


@pytest.mark.parametrize("cleaner", ["docker", "apt-get", "journalctl"])
def test_a_job_that_starts_mid_run_keeps_its_workspace(cleaner, runner_dir, cleaners, worker_pids):
    write_fake(cleaners[0], cleaner, start_worker(runner_dir, worker_pids) + "exit 0")
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    assert worker_pids.read_text().strip(), f"the fake {cleaner} should have started a job"
    assert_work_kept(runner_dir)
    assert "A job is running" in result.stdout


def test_a_job_that_starts_between_two_removals_keeps_the_rest(runner_dir, cleaners, worker_pids):
    work = runner_dir / "_work"
    # Removed in name order: the job starts while the first workspace is being removed.
    hook(cleaners[0], "rm", "/kernel-ci", start_worker(runner_dir, worker_pids))
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    assert not (work / "kernel-ci").exists()
    assert (work / "other-repo/other-repo").exists()
    assert "A job is running" in result.stdout


def test_recently_changed_entries_are_kept(runner_dir, cleaners):
    work = runner_dir / "_work"
    deep = work / "fresh-repo/fresh-repo/build/obj/drivers"
    deep.mkdir(parents=True)
    age(work / "fresh-repo")
    (deep / "x.o").write_bytes(b"written a minute ago")  # only deep inside: dirs look old
    os.utime(deep / "x.o", (time.time() - 60,) * 2)
    (work / "_tool/Node/20.1/x64").mkdir(parents=True)
    age(work / "_tool/Node")
    (work / "_tool/Node/20.1/x64.complete").touch()
    # A clock that once ran ahead leaves future dates: they don't keep a workspace forever.
    future = work / "future-repo/future-repo/file"
    future.parent.mkdir(parents=True)
    future.touch()
    age(work / "future-repo", -365 * 86400)
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners)
    assert result.returncode == 0, result.stderr
    assert (deep / "x.o").exists()
    assert (work / "_tool/Node/20.1/x64.complete").exists()
    assert f"kept {work / 'fresh-repo'}: changed in the last 5 minutes" in result.stdout
    assert not (work / "kernel-ci").exists()
    assert not (work / "future-repo").exists()
    assert not (work / "_tool/Python").exists()
    # RECENT_MINUTES=0 turns the rule off.
    result = free_disk(["--runner-dir", str(runner_dir)], cleaners, env={"RECENT_MINUTES": "0"})
    assert result.returncode == 0, result.stderr
    assert not (work / "fresh-repo").exists()
    assert not (work / "_tool/Node").exists()
