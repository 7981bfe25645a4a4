"""The scripts on the test-bed VM, driven as a user drives them: free_disk.sh through
`multipass exec` on a really full disk, setup_local_multipass.sh against the multipass
stand-in, register_local.sh against the fake GitHub. Slow: marked vm."""

from __future__ import annotations

import subprocess

import pytest

import runner_health
from tests.scripts.conftest import ROOT, LocalSources
from tests.testbed.fake_github import FakeGitHub
from tests.testbed.vm import VM_NAME, TestbedVM

# The session's one test-bed VM and a multipass stand-in environment for it.
pytest_plugins = ("tests.testbed.fixtures",)
pytestmark = pytest.mark.vm

WORK = "/opt/actions-runner/_work"
FREE_DISK = (ROOT / "remediations" / "free_disk.sh").read_text()


def multipass(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 300):
    return subprocess.run(
        ["multipass", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def avail(vm: TestbedVM) -> int:
    return int(vm.ssh(f"df -P -B1 {WORK} | awk 'NR == 2 {{ print $4 }}'").stdout.strip())


def age(vm: TestbedVM, path: str) -> None:
    """Make everything in ``path`` an hour old: free_disk.sh keeps what changed lately."""
    vm.ssh(f"find {path} -exec touch -h -d '1 hour ago' {{}} +")


def test_free_disk_on_a_full_work_disk(testbed_vm_running: TestbedVM, testbed_multipass_env):
    vm = testbed_vm_running
    vm.ssh(
        f"mkdir -p {WORK}/old-repo/old-repo && "
        f"(dd if=/dev/zero of={WORK}/old-repo/old-repo/fill bs=1M 2>/dev/null || true); sync",
        timeout=120,
    )
    assert avail(vm) < 1024 * 1024, "the work disk should be full"
    age(vm, f"{WORK}/old-repo")
    # A job is running: its Runner.Worker, started by path like the listener starts it.
    pid = vm.ssh(
        "nohup bash -c 'exec -a /opt/actions-runner/bin/Runner.Worker sleep 300' "
        ">/dev/null 2>&1 & echo $!"
    ).stdout.strip()
    try:
        busy = multipass(
            testbed_multipass_env, "exec", VM_NAME, "--", "sudo", "bash", "-s", stdin=FREE_DISK
        )
        assert busy.returncode == 0, busy.stdout + busy.stderr
        assert "A job is running" in busy.stdout
        assert vm.ssh(f"test -f {WORK}/old-repo/old-repo/fill", check=False).returncode == 0
    finally:
        vm.ssh(f"kill {pid}", check=False)
    done = multipass(
        testbed_multipass_env, "exec", VM_NAME, "--", "sudo", "bash", "-s", stdin=FREE_DISK
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"removed {WORK}/old-repo" in done.stdout
    assert vm.ssh(f"test -e {WORK}/old-repo", check=False).returncode != 0
    assert avail(vm) > 100 * 1024 * 1024


# A second runner directory, github-runner's like the real one, that jobs have made hostile.
HOSTILE = "/opt/hostile-runner"
# What a job (as github-runner) leaves behind: an old workspace and one written just now,
# names with a newline, links out of _work, and a .runner whose workFolder is /home.
HOSTILE_TREE = rf"""
set -e
cd {HOSTILE}
mkdir -p _work/old-repo/old-repo _work/_temp/job _work/_actions/actions/checkout
mkdir "_work/$(printf 'x\n.ssh')" "_work/_temp/$(printf 'y\n.ssh')"
head -c 1048576 /dev/zero > _work/old-repo/old-repo/build.img
ln -s /root _work/to-root
ln -s / _work/_tool
find _work -exec touch -h -d '1 hour ago' {{}} +
mkdir -p _work/fresh-repo/fresh-repo/build
echo written-just-now > _work/fresh-repo/fresh-repo/build/x.o
touch -d '1 hour ago' _work/fresh-repo _work/fresh-repo/fresh-repo _work/fresh-repo/fresh-repo/build
printf '\357\273\277{{\n  "agentId": 1,\n  "workFolder": "/home"\n}}\n' > .runner
"""
# What root must never lose: the home folders, / itself, and the files in its working folder.
PRECIOUS = "find /home /root/decoy -xdev | sort; ls -a /"


def hostile_runner(vm: TestbedVM) -> None:
    """HOSTILE, built as the runner user builds it; a decoy /root/decoy/.ssh to run from."""
    vm.ssh(
        f"rm -rf {HOSTILE} /root/decoy && mkdir -p {HOSTILE} /root/decoy/.ssh && "
        f"chown github-runner: {HOSTILE} && echo key > /root/decoy/.ssh/authorized_keys"
    )
    vm.ssh("bash -s", input=HOSTILE_TREE.encode(), user="github-runner")


def free_disk_as_root(vm: TestbedVM, path: str = "$PATH") -> subprocess.CompletedProcess[str]:
    """free_disk.sh on stdin as root, from /root/decoy, on HOSTILE; it must exit 0."""
    run = vm.ssh(
        f"cd /root/decoy && PATH={path} bash -s -- --runner-dir {HOSTILE}",
        input=FREE_DISK.encode(),
        check=False,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def test_free_disk_on_a_hostile_runner_dir(testbed_vm_running: TestbedVM):
    """Items 1-3 of issue 8 on a real guest, as root, run from a folder holding a .ssh (the
    hourly cron runs from /root): nothing outside the work folder goes, links are not followed,
    names with a newline are one name, and a workspace written just now stays."""
    vm = testbed_vm_running
    hostile_runner(vm)
    before = vm.ssh(PRECIOUS).stdout
    try:
        run = free_disk_as_root(vm)
        assert vm.ssh(PRECIOUS).stdout == before
        assert "ignoring workFolder '/home'" in run.stderr
        left = vm.ssh(f"cd {HOSTILE}/_work && find . -mindepth 1 -maxdepth 2").stdout
        assert set(left.splitlines()) == {
            "./_actions",
            "./_temp",
            "./_tool",  # the link to /, itself
            "./fresh-repo",
            "./fresh-repo/fresh-repo",
            "./to-root",  # the link to /root: not a workspace
        }
        assert f"kept {HOSTILE}/_work/fresh-repo: changed in the last 5 minutes" in run.stdout
    finally:
        vm.ssh(f"rm -rf {HOSTILE} /root/decoy", check=False)


def test_free_disk_keeps_the_workspace_of_a_job_that_starts_mid_run(
    testbed_vm_running: TestbedVM,
):
    """A job starts while journalctl vacuums (a journalctl first on PATH starts its
    Runner.Worker): no workspace, _temp or _actions entry is removed after that."""
    vm = testbed_vm_running
    hostile_runner(vm)
    vm.ssh(f"rm {HOSTILE}/.runner")  # this test is about _work itself
    age(vm, f"{HOSTILE}/_work")
    journalctl = (
        "#!/bin/bash\n"
        f"bash -c 'exec -a {HOSTILE}/bin/Runner.Worker sleep 300' </dev/null >/dev/null 2>&1 &\n"
        "echo $! > /run/hostile-worker.pid\n"
        "sleep 1\n"
        'exec /usr/bin/journalctl "$@"\n'
    )
    vm.ssh(
        "mkdir -p /opt/hostile-bin && cat > /opt/hostile-bin/journalctl && "
        "chmod +x /opt/hostile-bin/journalctl",
        input=journalctl.encode(),
    )
    tree = f"cd {HOSTILE}/_work && find . | sort"
    before = vm.ssh(tree).stdout
    try:
        run = free_disk_as_root(vm, path="/opt/hostile-bin:$PATH")
        assert vm.ssh(tree).stdout == before
        assert "A job is running" in run.stdout
    finally:
        vm.ssh(
            f"kill $(cat /run/hostile-worker.pid); rm -rf {HOSTILE} /opt/hostile-bin /root/decoy "
            "/run/hostile-worker.pid",
            check=False,
        )


def test_setup_local_multipass_against_the_stand_in(
    testbed_vm_running: TestbedVM,
    testbed_multipass_env,
    local_sources: LocalSources,
):
    """The Mac's setup against the multipass stand-in: setup.sh --no-admin-token runs in the
    VM (runner-health, a config without a token, the timer, the hourly cleanup); a second run
    changes nothing; a stopped VM is started, not re-created. Then health_check.sh
    --uninstall --purge in the VM removes all of it (the session VM goes on to the fault suite,
    whose faults a 5-minute timer would fight)."""
    vm = testbed_vm_running
    script = [str(ROOT / "provision" / "setup_local_multipass.sh")]
    env = {
        **testbed_multipass_env,
        **local_sources.pip_env(),  # passed on to the .venv build in the VM
        "WAIT_STEP": "1",
        "REPO_URL": "https://github.com/acme/kernel-ci",
    }
    try:
        first = subprocess.run(
            script, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        assert first.returncode == 0, first.stdout + first.stderr
        assert "already exists and is running: not launched again" in first.stdout
        assert (
            "gh api -X POST repos/acme/kernel-ci/actions/runners/registration-token" in first.stdout
        )
        assert 'target = "multipass://' in first.stdout  # the Mac's config, with the token
        config = vm.ssh("cat /etc/runner-health/config.toml").stdout
        assert "use_token = false" in config
        assert vm.ssh("test -e /etc/runner-health/token", check=False).returncode != 0
        cron = vm.ssh("cat /etc/cron.d/runner-health-free-disk").stdout
        assert "free_disk.sh --runner-dir /opt/actions-runner" in cron
        status = vm.ssh("/opt/runner-health/health_check.sh --version").stdout.strip()
        assert status == runner_health.__version__
        second = subprocess.run(
            script, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert second.returncode == 0, second.stdout + second.stderr
        assert "its .venv is up to date" in second.stdout
        assert "config.toml unchanged" in second.stdout
        # Stopped: started, not re-created.
        vm.stop()
        third = subprocess.run(
            script, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert third.returncode == 0, third.stdout + third.stderr
        assert "already exists (Stopped): starting it" in third.stdout
        assert vm.is_running()
    finally:
        if vm.is_running():
            vm.ssh("/opt/runner-health/health_check.sh --uninstall --purge", check=False)
    left = "/opt/runner-health /etc/runner-health /etc/cron.d/runner-health-free-disk"
    left += " /etc/systemd/system/runner-health.timer /etc/systemd/system/runner-health.service"
    assert vm.ssh(f"ls -d {left} 2>/dev/null", check=False).stdout == ""


def test_register_local_in_the_vm(testbed_vm_running: TestbedVM):
    """A second copy of the runner stand-in, registered by register_local.sh with the token
    on stdin, shows online at the fake GitHub; a second run changes nothing."""
    vm = testbed_vm_running
    copy = "/opt/actions-runner-register-test"
    vm.ssh(
        f"rm -rf {copy} && mkdir {copy} && tar -C /opt/actions-runner --exclude=./_work "
        f"--exclude=./.runner --exclude=./.credentials* --exclude=./.service --exclude=./_diag "
        f"-cf - . | tar -C {copy} -xf - && chown -R github-runner: {copy}"
    )
    # register_local.sh sources guards.sh from its own folder, as in a checkout.
    for name in ("register_local.sh", "guards.sh"):
        body = (ROOT / "provision" / name).read_bytes()
        vm.ssh(f"mkdir -p /tmp/provision && cat > /tmp/provision/{name}", input=body)
    vm.ssh("chmod +x /tmp/provision/register_local.sh")
    with FakeGitHub() as fake:
        env = (
            f"REPO_URL={fake.runner_url()} RUNNER_NAME=register-test RUNNER_DIR={copy} "
            "RUNNER_LABELS=bpf-lsm"
        )
        token = fake.create_registration_token()
        try:
            first = vm.ssh(
                f"{env} /tmp/provision/register_local.sh",
                input=(token + "\n").encode(),
                check=False,
                timeout=180,
            )
            assert first.returncode == 0, first.stdout + first.stderr
            assert token not in first.stdout + first.stderr
            online = fake.wait_for(
                lambda: (r := fake.runner("register-test")) and r["status"] == "online" and r, 90
            )
            assert "bpf-lsm" in {label["name"] for label in online["labels"]}
            second = vm.ssh(
                f"{env} /tmp/provision/register_local.sh </dev/null", check=False, timeout=120
            )
            assert second.returncode == 0, second.stdout + second.stderr
            assert "already registered as register-test" in second.stdout
            assert len(fake.runners()) == 1
        finally:
            vm.ssh(
                f"cd {copy} && (./svc.sh stop; ./svc.sh uninstall) >/dev/null 2>&1; rm -rf {copy}",
                check=False,
                timeout=120,
            )
