"""The runner is configured on the VM, and GitHub knows that same runner with our labels."""

import pytest

from runner_health.github import runner_label_names

pytestmark = pytest.mark.needs("vm", "clock")


@pytest.mark.remediation("reconfigure_runner")
def test_runner_is_configured(runner_install, settings, request):
    if request.config.option.recover and getattr(request.node, "execution_count", 1) == 1:
        pytest.fail("--recover: forcing a full re-registration")
    registration = runner_install.registration()
    assert registration is not None, (
        f"{settings.runner.directory}/.runner is missing: the runner is not configured"
    )
    assert registration.get("agentName") == settings.runner.name, (
        f".runner names {registration.get('agentName')!r}, config says {settings.runner.name!r}"
    )


@pytest.mark.github
@pytest.mark.remediation("reconfigure_runner")
def test_runner_known_to_github(github, settings):
    runner = github.runner(settings.runner.name)
    assert runner is not None, (
        f"GitHub has no runner named {settings.runner.name!r} (deleted, or never registered)"
    )
    missing = {label.lower() for label in settings.runner.labels} - runner_label_names(runner)
    assert not missing, f"runner {settings.runner.name!r} lacks labels {sorted(missing)} at GitHub"


@pytest.mark.remediation("reconfigure_runner")
def test_local_registration_is_current(runner_install, github, settings):
    registration = runner_install.registration() or {}
    runner = github.runner(settings.runner.name)
    if runner is None or "agentId" not in registration:
        pytest.skip("nothing to compare: see the two checks above")
    assert registration["agentId"] == runner["id"], (
        f"stale config: .runner holds runner id {registration['agentId']}, GitHub's {settings.runner.name!r} is id {runner['id']}"
    )
