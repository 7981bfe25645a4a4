"""The runner version is not deprecated: GitHub stops sending jobs to a runner 30 days behind."""

import pytest

from runner_health.runner import diagnose

pytestmark = pytest.mark.needs("vm")


def test_runner_version_supported(runner_install):
    deprecated = [f.line for f in diagnose(runner_install.recent_log()) if f.cause == "deprecated"]
    assert not deprecated, (
        f"{deprecated[-1]}\nFix: install the current actions/runner release in {runner_install.directory} "
        "(download, check its SHA-256, unpack over the old one, restart the service) and do not "
        "configure it with --disableupdate."
    )
