"""Every way a disk fills (issue 10, items 8 and 9), on the real VM through `pytest checks`:
inodes exhausted on the work folder (healed by free_disk), and / filled with data free_disk.sh
must not touch (still failing after the fix, and the report names the directory).

Each test has its own Suite (own state file: the session suite's fix budget stays whole) and
runs only the disk checks (-k disk): one `pytest checks` run per fault."""

from __future__ import annotations

from pathlib import Path

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.harness import RUNNER_DIR, Suite
from tests.testbed.vm import TestbedVM
from tests.vm.test_faults import HEALED, UNHEALTHY, assert_healed

WORK = f"{RUNNER_DIR}/_work"
# A work folder of few inodes: a tmpfs mounted over _work (a real filesystem that runs out of
# inodes with bytes to spare, in a second under TCG; filling the 256 MiB ext4 work disk's
# 65,536 inodes, then removing them, takes minutes there).
INODES = 2000


def test_inodes_exhausted_on_the_work_folder(
    healthy: TestbedVM, fake_github: FakeGitHub, tmp_path: Path
):
    vm = healthy
    vm.ssh(
        f"mount -t tmpfs -o size=64m,nr_inodes={INODES},mode=755,"
        f"uid=$(id -u github-runner),gid=$(id -g github-runner) runner-work-inodes {WORK}"
    )
    try:
        # A finished job's workspace of small files, until the filesystem says no more.
        filled = vm.ssh(
            f"sudo -u github-runner sh -c 'mkdir -p {WORK}/old-project/old-project && "
            f"cd {WORK}/old-project/old-project && seq 1 {INODES} | xargs touch 2>&1'",
            check=False,
        )
        assert "No space left on device" in filled.stdout
        vm.ssh(f"find {WORK}/old-project -exec touch -h -d '1 hour ago' {{}} +")
        outcome = Suite(vm, fake_github, tmp_path).run("-k", "disk")
        assert_healed(outcome, fake_github, "test_disk_headroom[work]", "free_disk")
        failure = outcome.record("test_disk_headroom[work]")["failure"]
        assert f"{WORK}: 0% of inodes free (0 of {INODES:,})" in failure
        assert "many small files, not big ones" in failure
        assert f"holding the most inodes (du -x, 3 levels): {WORK}/old-project " in failure
        steps = outcome.steps()
        assert f"removed {WORK}/old-project" in steps
        assert "inodes" in steps  # free_disk.sh's report counts them
        assert "--tmp-max-age-days 7" in steps
    finally:
        vm.ssh(f"umount {WORK}", check=False)


def test_root_filled_with_data_free_disk_must_not_touch(
    healthy: TestbedVM, fake_github: FakeGitHub, tmp_path: Path
):
    vm = healthy
    dump = "/srv/data/dump.img"
    # Leave 5% of / free (disk_free_percent is 10): fallocate takes the blocks without writing.
    vm.ssh(
        "set -e; mkdir -p /srv/data; size=$(df -P -B1 / | awk 'NR == 2 { print $2 }'); "
        "avail=$(df -P -B1 / | awk 'NR == 2 { print $4 }'); "
        f"fallocate -l $((avail - size / 20)) {dump}"
    )
    try:
        outcome = Suite(vm, fake_github, tmp_path).run("-k", "disk")
        assert outcome.returncode == UNHEALTHY, f"exit {outcome.returncode}, expected 1"
        assert outcome.returncode != HEALED
        record = outcome.record("test_disk_headroom[root]")
        assert record["outcome"] == "failed" and record["fix_result"] == "done", record
        # After the fix, the check's one line (what the alert and the issue show) names /srv.
        assert "below 10%; holding the most space (du -x, 3 levels): /srv " in record["failure"]
        assert "== still short: / " in outcome.steps()  # and free_disk.sh's own report
        assert vm.ssh(f"test -f {dump}", check=False).returncode == 0  # not its to delete
    finally:
        vm.ssh("rm -rf /srv/data", check=False)
