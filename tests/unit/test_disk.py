"""df output parsing (POSIX format)."""

from runner_health.disk import GIB, parse_df

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
