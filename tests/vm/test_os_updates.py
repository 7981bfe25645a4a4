"""OS updates on the real VM: a dpkg lock held for long is reported (never broken), and a
pending reboot is healed by the opt-in reboot only while no job runs.

The test bed's qemu runs with -no-reboot: a guest reboot ends qemu, and this test starts the
VM again (what a real reboot does by itself), while `pytest checks` waits for it to come back.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.harness import LABELS, RUNNER_NAME, Suite, wait_online
from tests.testbed.vm import TestbedVM

UNHEALTHY, HEALED = 1, 7
PENDING = (
    "printf 'linux-image-6.1.0-99-amd64\\nlibc6\\n' > /var/run/reboot-required.pkgs && "
    "touch /var/run/reboot-required"
)
CLEAR = "rm -f /var/run/reboot-required /var/run/reboot-required.pkgs"


@pytest.fixture
def opted_in(healthy: TestbedVM, fake_github: FakeGitHub, tmp_path: Path) -> Suite:
    """A suite that may reboot, and reports a dpkg lock held for more than a minute."""
    suite = Suite(healthy, fake_github, tmp_path, remediation="reboot_when_required = true")
    text = suite.config.read_text()
    suite.config.write_text(
        text.replace("[thresholds]\n", "[thresholds]\ndpkg_lock_max_minutes = 1\n")
    )
    return suite


def test_held_dpkg_lock_is_reported_never_broken_and_reboot_needs_opt_in(
    healthy: TestbedVM, suite: Suite, opted_in: Suite
):
    holder = healthy.ssh(
        "flock /var/lib/dpkg/lock-frontend sleep 300 </dev/null >/dev/null 2>&1 & echo $!"
    ).stdout.strip()
    started = time.monotonic()
    healthy.ssh(PENDING)
    try:
        # Not opted in (the shared suite): the reboot is refused with both ways out; a young
        # lock is no finding.
        first = suite.run("-k", "os_updates")
        assert first.returncode == UNHEALTHY
        assert first.record("test_dpkg_lock_not_held_long")["outcome"] == "passed"
        pending = first.record("test_no_reboot_pending")
        assert pending["fix_result"] == "refused", pending
        assert "linux-image-6.1.0-99-amd64, libc6" in pending["failure"]
        assert "set remediation.reboot_when_required = true" in first.steps()
        assert "sudo systemctl reboot" in first.steps()
        # Held for over a minute: reported with its holder, which is left running.
        time.sleep(max(0.0, 62 - (time.monotonic() - started)))
        healthy.ssh(CLEAR)
        old = opted_in.run("-k", "dpkg_lock")
        assert old.returncode == UNHEALTHY
        failure = old.record("test_dpkg_lock_not_held_long")["failure"]
        assert f"/var/lib/dpkg/lock-frontend held by PID {holder} (flock) for 1 min" in failure
        assert healthy.ssh(f"kill -0 {holder}", check=False).returncode == 0
    finally:
        healthy.ssh(f"kill {holder}; {CLEAR}", check=False)


def restart_when_stopped(vm: TestbedVM, done: threading.Event) -> None:
    """What a reboot does on a real VM: the guest comes back (here qemu exits, -no-reboot)."""
    while not done.wait(2):
        if not vm.is_running():
            vm.start()
            return


def test_pending_reboot_waits_for_the_job_then_reboots(
    healthy: TestbedVM, opted_in: Suite, fake_github: FakeGitHub
):
    healthy.ssh(PENDING)
    # The job outlasts the run however slow it is (a 15-s job once ended before the run's
    # fix looked, and the VM rebooted rightly); the test ends it afterwards (SIGINT: the
    # stand-in Worker's cancel).
    job = fake_github.queue_job(LABELS[:1], duration=900, name="kernel-matrix")
    fake_github.wait_for(lambda: fake_github.runner(RUNNER_NAME)["busy"], timeout=60)
    worker = fake_github.wait_for(
        lambda: healthy.ssh("pgrep -x Runner.Worker", check=False).stdout.strip(), 60
    )
    try:
        busy = opted_in.run("-k", "reboot")
    finally:
        healthy.ssh(f"kill -INT {worker}", check=False)
    assert busy.returncode == UNHEALTHY
    assert busy.record("test_no_reboot_pending")["fix_result"] == "refused"
    assert "a job is running: not rebooting under it" in busy.steps()
    assert "systemctl reboot" not in busy.steps()
    done = fake_github.wait_for(
        lambda: (j := fake_github.job(job["id"])) and j["status"] == "completed" and j, 60
    )
    assert done["conclusion"] == "cancelled"  # by the test: the job ran through the run
    boot_id = healthy.ssh("cat /proc/sys/kernel/random/boot_id").stdout
    stop = threading.Event()
    watcher = threading.Thread(target=restart_when_stopped, args=(healthy, stop), daemon=True)
    watcher.start()
    try:
        idle = opted_in.run("-k", "reboot")
    finally:
        stop.set()
        watcher.join(timeout=300)
    assert idle.returncode == HEALED, idle.output
    assert idle.record("test_no_reboot_pending")["outcome"] == "healed"
    assert "the VM is back without a pending reboot" in idle.steps()
    assert healthy.ssh("cat /proc/sys/kernel/random/boot_id").stdout != boot_id
    wait_online(fake_github, timeout=180)  # the runner's unit is enabled: it starts at boot
