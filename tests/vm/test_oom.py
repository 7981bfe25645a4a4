"""A real OOM kill of a Runner.Worker (issue 10): a memory hog named Runner.Worker, as the
runner user, in a scope with a 32 MiB memory limit, while a job's Worker log (in the real
runner's format) says which job runs. One `pytest checks` run reports it with its time and
job; the next one, started after it, passes: a kill is reported once."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from pathlib import Path

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.harness import RUNNER_DIR, Suite
from tests.testbed.vm import TestbedVM
from tests.unit.test_oom import JOB_ID, worker_log

CHECK = "test_no_oom_kills_since_the_last_run"
# The kernel picks the scope's biggest process: python, renamed (PR_SET_NAME) before it
# allocates 256 MiB it touches.
HOG = (
    "import ctypes; ctypes.CDLL(None).prctl(15, b'Runner.Worker', 0, 0, 0); "
    "data = b'x' * (256 << 20)"
)


def vm_now(vm: TestbedVM) -> datetime:
    return datetime.fromtimestamp(float(vm.ssh("date +%s.%N").stdout), timezone.utc)


def test_an_oom_killed_worker_is_reported_once_with_its_time_and_job(
    healthy: TestbedVM, fake_github: FakeGitHub, tmp_path: Path
):
    suite = Suite(healthy, fake_github, tmp_path)  # its own state: no run before this one
    started = vm_now(healthy)
    log = f"Worker_{started:%Y%m%d-%H%M%S}-utc.log"
    healthy.ssh(
        f"sudo -u github-runner sh -c 'cat > {RUNNER_DIR}/_diag/{log}'", input=worker_log().encode()
    )
    try:
        hog = healthy.ssh(
            "systemd-run --scope -q -p MemoryMax=32M -p MemorySwapMax=0 "
            f'runuser -u github-runner -- python3 -c "{HOG}"',
            check=False,
        )
        assert hog.returncode != 0, "the hog was not killed"
        print(healthy.ssh("journalctl -k -o cat | grep -E 'oom-kill:|Killed process'").stdout)
        ended = vm_now(healthy)
        time.sleep(max(0.0, healthy.clock_offset()) + 1)  # the run starts after the kill
        first = suite.run("-k", "test_no_oom_kills")
        second = suite.run("-k", "test_no_oom_kills")
    finally:
        healthy.ssh(
            f"rm -f {RUNNER_DIR}/_diag/{log}; "
            # fresh runner-health states (other tests') would see it for a day
            "journalctl --rotate -q && journalctl --vacuum-time=1s -q"
        )
    assert first.returncode == 1, first.output
    record = first.record(CHECK)
    assert record["outcome"] == "failed" and record["remediation"] is None
    failure = record["failure_text"]
    (when,) = re.findall(
        r"^OOM kills of the runner in the last 24 h: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ): "
        r"Runner\.Worker \(pid \d+, uid 1001\) killed: Memory cgroup out of memory, "
        r"cgroup /\S+/run-\w+\.scope; "
        rf"job 'kernel-matrix \(6\.1\)' \(jobId {JOB_ID}\), its log _diag/{log}",
        failure,
        re.MULTILINE,
    )
    at = datetime.strptime(when, "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert started.replace(microsecond=0) <= at <= ended
    assert second.returncode == 0, second.output
    assert second.record(CHECK)["outcome"] == "passed"
