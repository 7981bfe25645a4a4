"""health_check.sh --grow-disk on the test-bed VM, through the multipass stand-in: one stop and
start of the VM (the stand-in's `set` grows its qcow2 overlay, as Multipass's qemu backend
does with `qemu-img resize`); / must be larger after, and the runner back online."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.scripts.conftest import ROOT
from tests.testbed.fake_github import FakeGitHub
from tests.testbed.harness import wait_online
from tests.testbed.vm import VM_NAME, TestbedVM, multipass_env

GROWTH_MIB = 256


def root_bytes(vm: TestbedVM) -> int:
    return int(vm.ssh("df -B1 --output=size / | tail -n 1").stdout)


def disk_mib(env: dict[str, str]) -> int:
    shown = subprocess.run(
        ["multipass", "get", f"local.{VM_NAME}.disk"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    value, unit = float(shown[:-3]), shown[-3:]
    return round(value * {"GiB": 1024, "MiB": 1}[unit])


def test_grow_disk_grows_root_and_the_runner_comes_back(
    healthy: TestbedVM, fake_github: FakeGitHub
):
    vm, env = healthy, multipass_env(healthy)
    before, listener = root_bytes(vm), vm.ssh("pgrep -x Runner.Listener").stdout.split()
    size = f"{disk_mib(env) + GROWTH_MIB}M"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "runner_health.grow_disk", "--name", VM_NAME, size],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    print(f"grow_disk took {time.monotonic() - started:.0f} s\n{result.stdout}{result.stderr}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert vm.is_running()
    after = root_bytes(vm)
    assert after >= before + (GROWTH_MIB - 16) * 1024**2, (before, after)
    assert f"multipass set local.{VM_NAME}.disk={size}" in result.stdout
    assert "resize2fs /dev/vda" in result.stdout
    wait_online(fake_github, timeout=180)
    assert vm.ssh("pgrep -x Runner.Listener").stdout.split() != listener  # a new one, after boot
