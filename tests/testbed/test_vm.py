"""Tests of the test-bed itself: the VM (runner VM stand-in) and bin/multipass (CLI stand-in).

They share one booted VM (session fixture) and keep restarts few: under TCG each costs ~25 s.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.testbed.vm import DEFAULT_LSM, VM_NAME, TestbedVM, multipass_env

pytestmark = pytest.mark.vm
# testbed_vm, testbed_vm_running (a conftest importing them as well does no harm: one VM).
pytest_plugins = ("tests.testbed.fixtures",)

NO_BPF_LSM = "lockdown,capability,landlock,yama,apparmor"


def multipass(
    vm: TestbedVM, *args: str, stdin: Path | None = None
) -> subprocess.CompletedProcess[str]:
    with open(stdin or "/dev/null", "rb") as fh:
        done = subprocess.run(
            ["multipass", *args],
            env=multipass_env(vm),
            stdin=fh,
            capture_output=True,
            timeout=400,
            check=False,
        )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}")
        time.sleep(1)


def lsm_list(vm: TestbedVM) -> list[str]:
    return vm.ssh("cat /sys/kernel/security/lsm").stdout.strip().split(",")


def test_guest_matches_the_runner_vm(testbed_vm_running: TestbedVM) -> None:
    vm = testbed_vm_running
    assert vm.ssh("hostname").stdout.strip() == VM_NAME
    assert vm.ssh("id -u github-runner; id -u ubuntu").stdout.split() == ["1001", "1000"]
    assert vm.ssh("sudo -n id -un", user="ubuntu").stdout.strip() == "root"
    assert vm.ssh("stat -c %U /opt/actions-runner").stdout.strip() == "github-runner"
    mount = vm.ssh("findmnt -no SOURCE,FSTYPE,SIZE /opt/actions-runner/_work").stdout.split()
    assert mount[:2] == ["/dev/vdb", "ext4"]
    assert vm.ssh("python3 -c 'print(6 * 7)'", user="github-runner").stdout.strip() == "42"
    assert vm.ssh_target("ubuntu") == "ssh://ubuntu@testbed"


def test_bpf_lsm_is_active(testbed_vm_running: TestbedVM) -> None:
    vm = testbed_vm_running
    assert lsm_list(vm) == DEFAULT_LSM.split(",")
    assert vm.ssh("test -e /sys/kernel/btf/vmlinux", check=False).returncode == 0


def test_chrony_syncs_to_the_host_and_makestep_undoes_a_skew(testbed_vm_running: TestbedVM) -> None:
    vm = testbed_vm_running

    def synced() -> bool:
        tracking = vm.ssh("chronyc -n tracking", check=False).stdout
        return "10.0.2.2" in tracking and "Leap status     : Normal" in tracking

    eventually(synced, 60, "guest chrony synced to the host chronyd at 10.0.2.2:11123")
    assert abs(vm.clock_offset()) < 1
    vm.ssh("date -s '+2 hours'")
    assert 7100 < vm.clock_offset() < 7300

    def stepped_back() -> bool:
        vm.ssh("chronyc makestep")
        return abs(vm.clock_offset()) < 1

    eventually(stepped_back, 30, "chronyc makestep brings the guest clock back to host time")


def test_work_disk_fills_to_a_real_enospc(testbed_vm_running: TestbedVM) -> None:
    vm = testbed_vm_running
    fill = "dd if=/dev/zero of=/opt/actions-runner/_work/fill bs=1M count=400 conv=fsync"
    result = vm.ssh(fill, user="github-runner", check=False)
    try:
        assert result.returncode != 0
        assert "No space left on device" in result.stderr
        avail = vm.ssh("df -B1 --output=avail /opt/actions-runner/_work | tail -n 1").stdout
        assert int(avail) < 1024 * 1024
        assert vm.ssh("df --output=pcent / | tail -n 1").stdout.strip() != "100%"
    finally:
        vm.ssh("rm -f /opt/actions-runner/_work/fill")


def test_multipass_info_and_list_when_running(testbed_vm_running: TestbedVM) -> None:
    result = multipass(testbed_vm_running, "info", VM_NAME, "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["errors"] == []
    info = doc["info"][VM_NAME]
    assert info["state"] == "Running"
    assert info["cpu_count"] == "2"
    assert set(info["disks"]) == {"sda1"}
    assert all(isinstance(v, str) for v in info["disks"]["sda1"].values())
    assert all(isinstance(v, int) for v in info["memory"].values())
    assert info["memory"]["total"] > info["memory"]["used"] > 0
    assert len(info["load"]) == 3
    assert info["ipv4"] == ["10.0.2.15"]
    assert info["release"] == "Debian GNU/Linux 12 (bookworm)"
    assert info["mounts"] == {}
    assert info["snapshot_count"] == "0"
    assert len(info["image_hash"]) == 64

    listed = json.loads(multipass(testbed_vm_running, "list", "--format", "json").stdout)
    assert listed["list"] == [
        {
            "ipv4": ["10.0.2.15"],
            "name": VM_NAME,
            "release": "Debian 12 (bookworm)",
            "state": "Running",
        }
    ]


def test_multipass_exec_passes_exit_codes_and_stdin(
    testbed_vm_running: TestbedVM, tmp_path: Path
) -> None:
    vm = testbed_vm_running
    assert multipass(vm, "exec", VM_NAME, "--", "whoami").stdout == "ubuntu\n"
    assert multipass(vm, "exec", VM_NAME, "--", "sh", "-c", "exit 33").returncode == 33
    assert multipass(vm, "exec", VM_NAME, "-d", "/tmp", "--", "pwd").stdout == "/tmp\n"
    assert multipass(vm, "exec", VM_NAME, "--", "echo", "a b", "$HOME").stdout == "a b $HOME\n"
    script = tmp_path / "guest.sh"
    script.write_text("id -un\nhostname\nexit 7\n")
    result = multipass(vm, "exec", VM_NAME, "--", "sudo", "bash", "-s", stdin=script)
    assert (result.returncode, result.stdout) == (7, f"root\n{VM_NAME}\n")


def test_multipass_unknown_instance_exits_2(testbed_vm: TestbedVM) -> None:
    info = multipass(testbed_vm, "info", "nope", "--format", "json")
    assert (info.returncode, info.stdout) == (2, "")
    assert (
        info.stderr
        == 'info failed: The following errors occurred:\ninstance "nope" does not exist\n'
    )
    both = multipass(testbed_vm, "info", VM_NAME, "nope", "--format", "json")
    assert (both.returncode, both.stdout) == (2, "")
    exe = multipass(testbed_vm, "exec", "nope", "--", "true")
    assert (exe.returncode, exe.stderr) == (2, 'exec failed: instance "nope" does not exist\n')
    assert multipass(testbed_vm, "start", "nope").returncode == 2
    assert multipass(testbed_vm, "stop", "nope").returncode == 2


def test_lsm_without_bpf_then_multipass_stop_start(testbed_vm_running: TestbedVM) -> None:
    vm = testbed_vm_running
    vm.stop()
    vm.start(lsm=NO_BPF_LSM)
    assert "bpf" not in lsm_list(vm)

    began = time.monotonic()
    assert multipass(vm, "stop", VM_NAME).returncode == 0
    stopped_after = time.monotonic() - began
    assert not vm.is_running()
    assert multipass(vm, "stop", VM_NAME).returncode == 0  # already stopped: nothing to do
    info = json.loads(multipass(vm, "info", VM_NAME, "--format", "json").stdout)["info"][VM_NAME]
    assert info["state"] == "Stopped"
    assert (
        info["cpu_count"],
        info["disks"],
        info["memory"],
        info["load"],
        info["ipv4"],
        info["release"],
    ) == (
        "",
        {"sda1": {}},
        {},
        [],
        [],
        "",
    )
    began = time.monotonic()
    started = multipass(vm, "start", VM_NAME)
    assert started.returncode == 0, started.stderr
    print(f"multipass stop {stopped_after:.1f} s, start {time.monotonic() - began:.1f} s")
    assert lsm_list(vm)[-1] == "bpf"  # a plain start goes back to the boot-time lsm= list
    assert multipass(vm, "start", VM_NAME).returncode == 0  # already running: nothing to do


def test_multipass_exec_starts_a_stopped_instance(testbed_vm_running: TestbedVM) -> None:
    vm = testbed_vm_running
    assert multipass(vm, "stop", VM_NAME).returncode == 0
    result = multipass(vm, "exec", VM_NAME, "--", "cat", "/sys/kernel/security/lsm")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Starting {VM_NAME}")  # the spinner comes first, on stdout
    assert result.stdout.endswith(DEFAULT_LSM)
    assert vm.is_running()
