"""Disk headroom on / and on the runner's work dir ("No space left on device" before any step)."""

import pytest

from runner_health import disk

pytestmark = pytest.mark.needs("vm")


@pytest.mark.remediation("free_disk")
@pytest.mark.parametrize("where", ["root", "work"])
def test_disk_headroom(target, settings, where, record_property):
    path = "/" if where == "root" else f"{settings.runner.directory}/_work"
    if where == "work" and not disk.is_directory(target, path):
        path = settings.runner.directory
    found = disk.usage(target, path)
    record_property(f"free_bytes:{path}", found.free)
    record_property(f"free_inodes:{path}", disk.free_inodes(target, path))
    record_property(f"free_percent:{path}", round(found.free_percent, 1))
    limits = settings.thresholds
    assert found.free >= limits.disk_free_gib * disk.GIB, (
        f"{found.describe()}: below {limits.disk_free_gib} GiB"
    )
    assert found.free_percent >= limits.disk_free_percent, (
        f"{found.describe()}: below {limits.disk_free_percent:.0f}%"
    )
