"""Loaded into every `pytest checks` a test starts (PYTEST_PLUGINS, see tests/conftest.py): its
state file lives next to its reports, as for a user-level install. Root's default,
/var/lib/runner-health/state.json, would be one memory shared by every test (and every run of
the suite): a fix counted in one test would be held in another. A Python without
runner-health (a bare venv a test builds) is left alone."""

from pathlib import Path

try:
    from runner_health import config
except ImportError:
    config = None


def _beside_the_reports(reports_directory: Path) -> Path:
    return reports_directory / "state.json"


if config is not None:
    config.default_state_file = _beside_the_reports
