"""Disk headroom on / and on the runner's work dir ("No space left on device" before any step):
free space, and free inodes (a disk full of small files has bytes to spare). A failure names
what fills the filesystem, so that a person knows what to delete where free_disk can't."""

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
    inodes = disk.inodes(target, path)
    record_property(f"free_bytes:{path}", found.free)
    record_property(f"free_inodes:{path}", inodes.free)
    record_property(f"free_percent:{path}", round(found.free_percent, 1))
    limits = settings.thresholds
    short = []
    if found.free < limits.disk_free_gib * disk.GIB:
        short.append(f"{found.describe()}: below {limits.disk_free_gib} GiB")
    elif found.free_percent < limits.disk_free_percent:
        short.append(f"{found.describe()}: below {limits.disk_free_percent:.0f}%")
    few_inodes = inodes.free_percent < limits.disk_free_inodes_percent
    if few_inodes:
        short.append(
            f"{inodes.describe()}: below {limits.disk_free_inodes_percent:.0f}%: "
            "many small files, not big ones"
        )
    if short:
        by_inodes = few_inodes and len(short) == 1
        what = "inodes" if by_inodes else "space"
        fills = disk.largest(target, path, by_inodes=by_inodes)
        raise AssertionError(
            f"{'; '.join(short)}; holding the most {what} (du -x, 3 levels): {fills}"
        )
