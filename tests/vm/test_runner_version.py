"""A failed self-update on the real VM (issue 7, 2.7): the stand-in's update (bin/update.sh,
after actions/runner SelfUpdater.cs + update.sh.template) loses bin.<version> and can't make
the externals link, so bin points at nothing, the log is renamed .failed and the service
relaunches a listener that exits 127. One `pytest checks -k version` run with a wrong digest
at the fake GitHub refuses and changes nothing; one with the right digest reinstalls the
release and the runner is back online, its registration, credentials, environment and work
folder as they were. Each run has its own Suite (own state file)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.testbed.fake_github import FakeGitHub, releases
from tests.testbed.harness import RUNNER_DIR, Suite
from tests.testbed.vm import TestbedVM
from tests.vm.test_faults import UNHEALTHY, assert_healed

VERSION = "2.336.0"
CHECK = "test_runner_self_update_not_failed"
# What the reinstall must not touch, and what a refusal must leave exactly as it was.
KEPT = (
    f"cd {RUNNER_DIR} && sha256sum .runner .credentials* .path .env .service 2>&1; "
    "find _work -printf '%p %s\\n' | sort | sha256sum"
)
SAVED = "/root/runner-version-test"
LAYOUT = f"cd {RUNNER_DIR} && ls -la --time-style=+ . | grep -v ' _diag$'; readlink bin"


def test_failed_self_update_refused_on_a_wrong_digest_then_reinstalled(
    healthy: TestbedVM, fake_github: FakeGitHub, tmp_path: Path
):
    vm = healthy
    published = releases.of(fake_github)
    published.download_host = "10.0.2.2"  # the guest's way to this host
    url = published.publish(VERSION, days_ago=2)["assets"][0]["browser_download_url"]
    unit = vm.ssh(f"cat {RUNNER_DIR}/.service").stdout.strip()
    started = time.monotonic()
    vm.ssh(  # the image's bin and externals (real folders) are put back afterwards
        f"rm -rf {SAVED} && mkdir {SAVED} && cd {RUNNER_DIR} && "
        f"for d in bin externals; do if [ -e $d ]; then cp -a $d {SAVED}/; fi; done"
    )
    vm.ssh(
        f"cd {RUNNER_DIR} && sudo -u github-runner curl -fsS -o /tmp/runner-update.tar.gz {url} && "
        "sudo -u github-runner env RUNNER_STANDIN_UPDATE_FAIL=bin-copy,externals-junction "
        f"bin/update.sh {VERSION} /tmp/runner-update.tar.gz; "
        f"systemctl restart {unit}; sleep 8; journalctl -u {unit} -n 5 --no-pager -o cat",
        check=False,
    )
    try:
        assert (
            vm.ssh(
                f"test -L {RUNNER_DIR}/bin && ! test -e {RUNNER_DIR}/bin", check=False
            ).returncode
            == 0
        )
        assert "SelfUpdate-" in vm.ssh(f"ls {RUNNER_DIR}/_diag").stdout
        layout = vm.ssh(LAYOUT).stdout
        kept = vm.ssh(KEPT).stdout  # after the update: its staging in _work/_update stays

        published.digest = "sha256:" + "0" * 64
        (tmp_path / "wrong").mkdir()
        refused = Suite(vm, fake_github, tmp_path / "wrong").run("-k", "version")
        assert refused.returncode == UNHEALTHY, f"exit {refused.returncode}, expected 1"
        record = refused.record(CHECK)
        assert record["outcome"] == "failed" and record["fix_result"] == "refused", record
        assert "bin is a link to nothing" in record["failure"]
        assert "SHA-256 mismatch" in refused.steps()
        assert vm.ssh(LAYOUT).stdout == layout and vm.ssh(KEPT).stdout == kept

        published.digest = None
        (tmp_path / "right").mkdir()
        healed = Suite(vm, fake_github, tmp_path / "right").run("-k", "version")
        assert_healed(healed, fake_github, CHECK, "reinstall_runner")
        print(f"fault to healed: {time.monotonic() - started:.0f} s")
        assert "SHA-256 verified: actions-runner-linux-" in healed.steps()
        assert (
            vm.ssh(
                f"test -d {RUNNER_DIR}/bin && ! test -L {RUNNER_DIR}/bin", check=False
            ).returncode
            == 0
        )
        assert f'VERSION = "{VERSION}"' in vm.ssh(f"cat {RUNNER_DIR}/bin/Runner.Listener").stdout
        assert vm.ssh(KEPT).stdout == kept
    finally:  # the next test finds the image's 2.334 runner, whatever happened here
        published.digest = None
        vm.ssh(
            f"cd {RUNNER_DIR} && rm -rf bin externals bin.* externals.* _work/_update "
            f"/tmp/runner-update.tar.gz && cp -a {SAVED}/. . && "
            f"systemctl restart {unit}",
            check=False,
        )
