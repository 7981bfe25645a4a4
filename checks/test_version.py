"""The runner's version lifecycle: not deprecated, not about to be, and not broken by a failed
self-update. GitHub stops sending jobs to a runner 30 days after a newer release (release.py)."""

from datetime import datetime, timezone

import pytest

from runner_health import release
from runner_health.runner import diagnose

pytestmark = pytest.mark.needs("vm")


def test_runner_version_supported(runner_install):
    deprecated = [f.line for f in diagnose(runner_install.recent_log()) if f.cause == "deprecated"]
    assert not deprecated, (
        f"{deprecated[-1]}\nFix: install the current actions/runner release in {runner_install.directory} "
        "(download, check its SHA-256, unpack over the old one, restart the service) and do not "
        "configure it with --disableupdate."
    )


@pytest.mark.remediation("reinstall_runner")
def test_runner_self_update_not_failed(runner_install):
    signs = release.self_update_failed(runner_install, runner_install.recent_log().journal)
    assert not signs, f"a self-update of the runner failed and left it broken: {'; '.join(signs)}"


def test_runner_version_current(runner_install, github, settings, record_property):
    if settings.github.api_url.endswith("/api/v3"):
        pytest.skip("GitHub Enterprise Server: the runner versions it accepts come with it")
    now = datetime.now(timezone.utc)
    latest = release.latest(github, now)
    installed = release.installed_version(runner_install)
    if installed is None:  # nothing to compare: the runner's log doesn't say
        pytest.skip(f"no _diag/Runner_*.log in {runner_install.directory} names a version")
    days_left = (latest.cutoff - now).total_seconds() / 86400
    record_property("runner_version_days_left", round(days_left, 1))
    behind = release.key(installed) < release.key(latest.version)
    assert not (behind and latest.cutoff - now <= release.WARN), (
        f"runner {installed} is behind {latest.version} (released "
        f"{latest.published_at:%Y-%m-%d}): GitHub stops sending it jobs "
        + ("by now" if days_left <= 0 else f"by {latest.cutoff:%Y-%m-%d} ({days_left:.0f} days)")
        + ", 30 days after a newer release. Its self-update has not happened: see "
        f"{runner_install.directory}/_diag/SelfUpdate-*.log, or install {latest.version} "
        "(check its SHA-256) and restart the service"
    )
