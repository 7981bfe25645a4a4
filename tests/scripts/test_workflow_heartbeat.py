"""Issue 9 item 4, the workflow's side of the dead man's switch: runner-health.yml hands the
VM's heartbeat variable to the alert step through the environment, and that step, run as the
workflow runs it against the fake GitHub, opens the issue once the heartbeat is stale."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from runner_health.plugin import CheckRecord
from tests.scripts.conftest import ROOT, run_script
from tests.scripts.test_alert import KNOWN, ONLINE, RUNNER, WORKFLOW, config, fake, summary

__all__ = ["config", "fake"]  # fixtures, shared with the alert's own tests

VARIABLE = "${{ vars[vars.RUNNER_HEALTH_HEARTBEAT_VARIABLE || 'RUNNER_HEALTH_HEARTBEAT'] }}"


def alert_step() -> tuple[str, str]:
    """The alert step's HEARTBEAT expression and its command, folded as YAML folds ``>-``."""
    step = WORKFLOW.read_text().split("- name: Open, update or close the runner-offline issue\n")[1]
    step = step.split("\n      - name: ")[0]
    match = re.search(r"^ +HEARTBEAT: (.+)$", step, re.MULTILINE)
    assert match is not None, "the alert step has no HEARTBEAT in its env"
    lines = step.split("run: >-\n")[1].splitlines()
    return match[1], " ".join(line.strip() for line in lines if line.strip())


def heartbeat(age: timedelta) -> str:
    at = datetime.now(timezone.utc) - age
    return json.dumps(
        {
            "at": at.isoformat(timespec="seconds"),
            "status": "healthy",
            "runner": RUNNER,
            "interval_minutes": 5,
            "version": "0.2.0",
        }
    )


def test_the_heartbeat_reaches_the_alert_through_the_environment_only():
    expression, command = alert_step()
    assert expression == VARIABLE  # the variable the VM writes, its name overridable
    assert '--heartbeat "$HEARTBEAT"' in command
    assert "${{" not in command  # a variable's text never becomes script text


def run_workflow_alert(tmp_path: Path, config: Path, token: str, value: str):
    """The alert step's command, in a checkout laid out as the workflow's, with ``value`` as
    the heartbeat variable and the runner online at GitHub."""
    checkout = tmp_path / "checkout"
    (checkout / "reports/health").mkdir(parents=True)
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    (checkout / "runner-health.toml").write_text(config.read_text())
    back = summary(tmp_path, CheckRecord(KNOWN, "registration"), CheckRecord(ONLINE, "online"))
    summary_path = checkout / "reports/health/summary.json"
    summary_path.write_text(back.read_text())
    return run_script(
        ["bash", "-c", alert_step()[1]],
        env={"GITHUB_TOKEN": token, "GITHUB_REPOSITORY": "acme/kernel-ci", "HEARTBEAT": value},
        cwd=checkout,
    )


def test_a_stale_heartbeat_opens_the_issue_a_fresh_or_missing_one_does_not(fake, config, tmp_path):
    for value in ("", heartbeat(timedelta(minutes=14))):
        result = run_workflow_alert(tmp_path / str(len(value)), config, fake.actions_token, value)
        assert result.returncode == 0, result.stderr
        assert fake.issues() == []

    result = run_workflow_alert(
        tmp_path / "stale", config, fake.actions_token, heartbeat(timedelta(minutes=16))
    )
    assert result.returncode == 0, result.stderr
    [issue] = fake.issues()
    assert "no heartbeat from runner-health on assay-bpf-runner for 16 min" in issue["body"]
