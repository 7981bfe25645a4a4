"""Every plugin test's throwaway project remembers only its own runs."""

from __future__ import annotations

import os

import pytest

from tests.scripts.conftest import ROOT


@pytest.fixture(autouse=True)
def _private_state_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Root's default state file is machine-wide: point each project's at its reports."""
    monkeypatch.setenv("PYTEST_PLUGINS", "tests.plugin.private_state")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
