"""BPF LSM is active and the kernel is the one the runner advertises (kernel-matrix CI needs both)."""

import pytest

from runner_health import bpf_lsm

pytestmark = pytest.mark.needs("vm")


@pytest.mark.remediation("enable_bpf_lsm")
def test_bpf_lsm_active(target, settings):
    active = bpf_lsm.active(target)
    assert "bpf" in active, (
        f"bpf is not an active LSM ({','.join(active)}).\n"
        + bpf_lsm.fix_instructions(settings.remediation.lsm)
    )


def test_kernel_btf_present(target):
    assert bpf_lsm.btf_present(target), (
        "/sys/kernel/btf/vmlinux is missing: the kernel lacks CONFIG_DEBUG_INFO_BTF"
    )


def test_kernel_matches_runner_label(target, settings):
    wanted = [v for label in settings.runner.labels if (v := bpf_lsm.kernel_version(label))]
    if not wanted:
        pytest.skip("the runner advertises no kernel-X.Y label")
    release = bpf_lsm.kernel_release(target)
    assert any(bpf_lsm.runs_kernel(release, version) for version in wanted), (
        f"kernel {release} does not match the runner's label(s) {', '.join('kernel-' + v for v in wanted)}"
    )
