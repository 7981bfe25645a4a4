"""The runner is configured on the VM as the config names it, and GitHub knows that same
runner with the config's labels."""

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
        f"config says {settings.runner.name!r}, this VM is registered as "
        f"{registration.get('agentName')!r}"
    )


@pytest.mark.github
@pytest.mark.remediation("reconfigure_runner")
def test_runner_known_to_github(github, settings):
    assert github.runner(settings.runner.name) is not None, (
        f"GitHub has no runner named {settings.runner.name!r} (deleted, or never registered)"
    )


@pytest.mark.github
@pytest.mark.remediation("sync_labels")
def test_runner_has_config_labels(github, settings):
    runner = github.runner(settings.runner.name)
    if runner is None:
        pytest.skip("GitHub has no such runner: see test_runner_known_to_github")
    missing = {label.lower() for label in settings.runner.labels} - runner_label_names(runner)
    assert not missing, f"runner {settings.runner.name!r} lacks labels {sorted(missing)} at GitHub"


@pytest.mark.remediation("reconfigure_runner")
def test_local_registration_is_current(runner_install, github, settings):
    registration = runner_install.registration() or {}
    runner = github.runner(settings.runner.name)
    named = registration.get("agentName") == settings.runner.name
    if runner is None or not named or "agentId" not in registration:
        pytest.skip("nothing to compare: see the checks above")
    assert registration["agentId"] == runner["id"], (
        f"stale config: .runner holds runner id {registration['agentId']}, GitHub's {settings.runner.name!r} is id {runner['id']}"
    )
