"""df output parsing (POSIX format), and df failures as "could not observe", not a full disk."""

import importlib.util
import os
from pathlib import Path

import pytest

from runner_health.config import load
from runner_health.disk import (
    DU_SECONDS,
    GIB,
    largest,
    parse_df,
    parse_df_inodes,
    parse_largest,
    usage,
)
from runner_health.observe import CannotObserve
from runner_health.targets import target

DF = """Filesystem        1-blocks      Used  Available Capacity Mounted on
/dev/vdb         260046848 250000000   10046848      97% /opt/actions-runner/_work
"""


def test_parse_df():
    usage = parse_df(DF, "/opt/actions-runner/_work")
    assert usage.total == 260046848
    assert usage.free == 10046848
    assert round(usage.free_percent) == 4
    assert "0.01 GiB free" in usage.describe()
    assert GIB == 1073741824


@pytest.mark.parametrize(
    "output",
    ["", "df: cannot read table of mounted file systems\n", "Filesystem 1-blocks\n/dev/x - - -\n"],
)
def test_unparseable_df_output_is_cannot_observe(output):
    with pytest.raises(CannotObserve, match="unexpected output"):
        parse_df(output, "/")


def test_a_size_zero_filesystem_is_cannot_observe():
    with pytest.raises(CannotObserve, match="size 0"):
        parse_df(
            "Filesystem 1-blocks Used Available Capacity Mounted on\nproc 0 0 0 - /proc\n", "/"
        )


def test_df_failing_on_a_mistyped_path_is_cannot_observe_not_a_full_disk(tmp_path):
    with pytest.raises(CannotObserve, match=r"df -P -B1 .*/typo` exited 1"):
        usage(target("local://"), str(tmp_path / "typo"))


# --- inodes, and what fills a filesystem ---------------------------------------------------

DF_INODES = """Filesystem     Inodes  IUsed IFree IUse% Mounted on
/dev/vdb        65536  64302  1234   99% /opt/actions-runner/_work
"""


def test_parse_df_inodes():
    found = parse_df_inodes(DF_INODES, "/opt/actions-runner/_work")
    assert (found.total, found.free) == (65536, 1234)
    assert found.describe() == "/opt/actions-runner/_work: 2% of inodes free (1,234 of 65,536)"
    # btrfs has no inode table: df -i says 0, and it never runs out.
    btrfs = parse_df_inodes(
        "Filesystem Inodes IUsed IFree IUse% Mounted on\n/dev/x 0 0 0 - /\n", "/"
    )
    assert btrfs.free_percent == 100


@pytest.mark.parametrize(
    "output", ["", "df: /x: No such file or directory\n", "a b c d\nx y - -\n"]
)
def test_unparseable_df_inodes_is_cannot_observe(output):
    with pytest.raises(CannotObserve, match="df -i /: unexpected output"):
        parse_df_inodes(output, "/")


def du(*entries: tuple[int, str], mount: str = "/") -> bytes:
    """largest_command's output: du's NUL-separated lines, then the mount point."""
    return b"".join(f"{size}\t{path}\0".encode() for size, path in entries) + mount.encode()


def test_parse_largest_names_the_biggest_directories_under_the_mount():
    output = du(
        (2_000_000_000, "/"),
        (1_825_361_920, "/srv"),
        (1_825_357_824, "/srv/data"),
        (431_000_000, "/usr"),
        (50_000, "/var/lib"),
        (4096, "/home"),
        (2048, "/etc"),
    )
    assert parse_largest(output, by_inodes=False) == (
        "/srv 1.70 GiB, /srv/data 1.70 GiB, /usr 411.03 MiB, /var/lib 48.83 KiB, /home 4.00 KiB"
    )


def test_parse_largest_inodes_partial_and_hostile_names():
    # du stopped by its timeout: no total for the mount; a name with a terminal escape and a
    # newline, and bytes that are not UTF-8.
    output = b"2\t/w/\xff\0" + du(
        (60000, "/w/old-repo/node_modules"), (300, "/w/\x1b[2J\nx"), mount="/w"
    )
    text = parse_largest(output, by_inodes=True)
    # Sorted by du's sort on the VM, not here: the order given is the order shown.
    assert text.startswith("/w/\ufffd 2 inodes, /w/old-repo/node_modules 60,000 inodes, ")
    assert "/w/?[2J?x 300 inodes" in text
    assert "\x1b" not in text and "\n" not in text
    assert text.endswith(f"(partial: du stopped after {DU_SECONDS} s)")
    assert parse_largest(du(mount="/"), by_inodes=False) == "nothing listed"
    long = parse_largest(du((1, "/" + "a" * 5000), mount="/"), by_inodes=True)
    assert len(long) < 300


def test_largest_runs_du_on_the_filesystem_and_bounds_it(tmp_path, monkeypatch):
    # df names tmp_path as the mount point (a fake df first on PATH): du lists its folders.
    (tmp_path / "mnt" / "srv").mkdir(parents=True)
    (tmp_path / "mnt" / "srv" / "dump").write_bytes(b"x" * 2_000_000)
    (tmp_path / "mnt" / "etc").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "df").write_text(f"#!/bin/sh\nprintf 'Mounted on\\n%s\\n' '{tmp_path / 'mnt'}'\n")
    (bin_dir / "df").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    text = largest(target("local://"), "/anything", by_inodes=False)
    assert text.startswith(f"{tmp_path / 'mnt'}/srv 1.9")
    assert "partial" not in text
    assert f"{tmp_path / 'mnt'} " not in text  # the mount's own total is not a directory on it


CHECK = Path(__file__).parents[2] / "checks" / "test_disk.py"
FAKE_DF = """#!/bin/sh
# df -P -B1 PATH, df -P -i PATH, df --output=target -- PATH, as coreutils prints them.
case "$*" in
*--output=target*) printf 'Mounted on\\n%s\\n' "$FAKE_MOUNT" ;;
*-i*) printf 'Filesystem Inodes IUsed IFree IUse%% Mounted on\\n/dev/vdb %s\\n' "$FAKE_INODES" ;;
*) printf 'Filesystem 1-blocks Used Available Capacity Mounted on\\n/dev/vdb %s\\n' "$FAKE_BYTES" ;;
esac
"""


@pytest.fixture
def disk_check(tmp_path, monkeypatch):
    """The disk check of checks/, on this machine (local://) with a fake df first on PATH,
    a runner directory with its _work, and the files df names as the mount: many small ones."""
    spec = importlib.util.spec_from_file_location("disk_check", CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "df").write_text(FAKE_DF)
    (bin_dir / "df").chmod(0o755)
    mount = tmp_path / "mnt"
    (mount / "old-repo" / "node_modules").mkdir(parents=True)
    for i in range(200):
        (mount / "old-repo" / "node_modules" / str(i)).touch()
    (mount / "big").mkdir()
    (mount / "big" / "img").write_bytes(b"x" * 3_000_000)
    (tmp_path / "runner" / "_work").mkdir(parents=True)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MOUNT", str(mount))
    config = tmp_path / "runner-health.toml"
    config.write_text(
        '[github]\nrepository = "acme/kernel-ci"\n'
        f'[runner]\nname = "vm"\ndirectory = "{tmp_path / "runner"}"\n'
        "[thresholds]\ndisk_free_gib = 1\ndisk_free_percent = 10\n"
    )
    settings = load(config)

    def check(bytes_: str, inodes: str) -> dict[str, float]:
        monkeypatch.setenv("FAKE_BYTES", bytes_)
        monkeypatch.setenv("FAKE_INODES", inodes)
        found: dict[str, float] = {}
        module.test_disk_headroom(target("local://"), settings, "work", found.__setitem__)
        return found

    return check, mount


ROOMY = f"{100 * GIB} {50 * GIB} {50 * GIB} 50% /w"


def test_the_check_fails_on_few_free_inodes_and_names_where_they_are(disk_check):
    check, mount = disk_check
    with pytest.raises(AssertionError) as failed:
        check(ROOMY, "65536 64302 1234 99% /w")
    message = str(failed.value)
    assert message.startswith(
        f"{mount.parent}/runner/_work: 2% of inodes free (1,234 of 65,536): below 10%: "
        "many small files, not big ones; holding the most inodes (du -x, 3 levels): "
        f"{mount}/old-repo 202 inodes, {mount}/old-repo/node_modules 201 inodes, "
    )
    assert "\n" not in message  # one line: the alert and the issue show it whole


def test_the_check_fails_on_space_and_names_the_largest_directories(disk_check):
    check, mount = disk_check
    with pytest.raises(AssertionError) as failed:
        check(f"{100 * GIB} {95 * GIB} {5 * GIB} 95% /w", "65536 1000 64536 2% /w")
    assert "(5%): below 10%; holding the most space (du -x, 3 levels): " in str(failed.value)
    assert f"{mount}/big 2.87 MiB" in str(failed.value)


def test_the_check_passes_with_room_and_inodes_and_runs_no_du(disk_check, monkeypatch):
    check, _ = disk_check
    monkeypatch.setenv("FAKE_MOUNT", "/nonexistent")  # a du would say "nothing listed"
    found = check(ROOMY, "65536 1000 64536 2% /w")
    assert found[next(k for k in found if k.startswith("free_inodes:"))] == 64536
