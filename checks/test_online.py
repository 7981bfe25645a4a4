"""GitHub shows the runner online: the one fact that decides whether jobs run."""

import pytest

pytestmark = pytest.mark.needs("vm", "clock", "registration", "service")


@pytest.mark.github
@pytest.mark.remediation("diagnose_offline")
def test_runner_online_at_github(github, settings, record_property):
    runner = github.runner(settings.runner.name)
    record_property("runner_online", int(runner is not None and runner["status"] == "online"))
    record_property("runner_busy", int(runner is not None and runner["busy"]))
    assert runner is not None, f"GitHub has no runner named {settings.runner.name!r}"
    assert runner["status"] == "online", (
        f"GitHub shows runner {settings.runner.name!r} {runner['status']}"
    )
