"""df output parsing (POSIX format), and df failures as "could not observe", not a full disk."""

import pytest

from runner_health.disk import GIB, parse_df, usage
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
