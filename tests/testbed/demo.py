"""`make demo`: boot the test bed, break the runner several ways at once, heal it, show the report.

Everything here is test infrastructure (the VM, the fake GitHub, the runner and multipass
stand-ins); the healing is the real product, run as a user runs it: `pytest checks`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.harness import RUNNER_DIR, RUNNER_NAME, Suite, register, unit_name, wait_online
from tests.testbed.vm import TestbedVM

REPORTS = Path(__file__).resolve().parents[2] / "reports" / "demo"


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="runner-health-demo-"))
    vm = TestbedVM(state)
    started = time.monotonic()
    with FakeGitHub() as fake:
        try:
            say("booting the test-bed VM (Debian 12, BPF LSM on; first run builds the image)")
            vm.boot()
            say(
                f"VM up after {time.monotonic() - started:.0f}s; registering the runner with the fake GitHub"
            )
            done = register(vm, fake, fake.create_registration_token())
            if done.returncode != 0:
                print(done.stdout + done.stderr)
                return 1
            vm.ssh(
                f"cd {RUNNER_DIR} && ./svc.sh install github-runner >/dev/null && ./svc.sh start >/dev/null"
            )
            wait_online(fake)
            print(f"runner {RUNNER_NAME!r} is online at the fake GitHub")

            say("breaking it: clock +3 h, runner service stopped, _work filled to ENOSPC")
            vm.ssh("date -s '+3 hours' >/dev/null")
            vm.ssh(f"systemctl stop {unit_name(vm)}")
            vm.ssh(
                f"sudo -u github-runner sh -c 'mkdir -p {RUNNER_DIR}/_work/old/old && "
                f"dd if=/dev/zero of={RUNNER_DIR}/_work/old/old/fill bs=1M >/dev/null 2>&1'",
                check=False,
            )
            # A finished job's workspace: free_disk.sh keeps anything changed in the last minutes.
            vm.ssh(f"find {RUNNER_DIR}/_work/old -exec touch -h -d '4 hours ago' {{}} +")
            fake.wait_for(lambda: fake.runner(RUNNER_NAME)["status"] == "offline", timeout=30)
            print("GitHub now shows the runner offline")

            say("running `pytest checks --hosts=multipass://assay-bpf-runner` (the real product)")
            suite = Suite(vm, fake, state)
            outcome = suite.run(live=True, report_dir=REPORTS)
            runner = fake.runner(RUNNER_NAME)
            say(
                f"exit {outcome.returncode} ({outcome.summary['status']}); GitHub shows the runner {runner['status']}"
            )
            print(f"HTML report: {REPORTS / 'report.html'}")
            print(f"JSON summary: {REPORTS / 'summary.json'}")
            return 0 if outcome.returncode in (0, 7) else 1
        finally:
            say("shutting the VM down")
            vm.shutdown()


if __name__ == "__main__":
    sys.exit(main())
