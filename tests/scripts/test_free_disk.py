"""free_disk.sh on a temp runner tree: what it deletes, what it keeps, and never under a job.

The system cleaners (docker, apt-get, journalctl) are fakes on PATH: the host's own caches
are never touched. The script runs as the suite sends it: ``bash -s -- ARGS < free_disk.sh``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
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


def free_disk(args: list[str], fakes, **kwargs) -> subprocess.CompletedProcess[str]:
    """Send the script on stdin, as the remediation and the seed's multipass exec do."""
    return run_script(["bash", "-s", "--", *args], fakes=fakes, stdin=SCRIPT.read_text(), **kwargs)


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
    """The fake cleaners and a fake ``df -P -B1`` whose figures (size and available GiB) are set per test: those of
    the work folder's filesystem for a path in the runner dir, those of / for any other."""
    write_fake(
        cleaners[0],
        "df",
        f"""case "${{*: -1}}" in {runner_dir}*) set -- $FAKE_DF_WORK ;; *) set -- $FAKE_DF_ROOT ;; esac
echo "Filesystem 1-blocks Used Available Capacity Mounted on"
echo "/dev/fake $(($1 * {GIB})) $((($1 - $2) * {GIB})) $(($2 * {GIB})) 50% /"
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
