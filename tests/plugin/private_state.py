"""Loaded into each throwaway project's `pytest checks` (PYTEST_PLUGINS, see conftest.py): its
state file lives next to its reports, as for a user-level install. Root's default,
/var/lib/runner-health/state.json, would be one memory shared by every test (and every run of
the suite): a fix counted in one test would be held in the next."""

from pathlib import Path

from runner_health import config


def _beside_the_reports(reports_directory: Path) -> Path:
    return reports_directory / "state.json"


config.default_state_file = _beside_the_reports
