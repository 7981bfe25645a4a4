"""What every test shares: no `pytest checks` a test starts uses root's machine-wide state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ISOLATED_STATE = Path(__file__).parent / "isolated_state"


@pytest.fixture(autouse=True)
def _private_state_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each project's state file goes next to its reports (isolated_state_plugin.py): only
    that one module is put on the path, nothing that could shadow an installed package."""
    monkeypatch.setenv("PYTEST_PLUGINS", "isolated_state_plugin")
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(filter(None, [str(ISOLATED_STATE), os.environ.get("PYTHONPATH")])),
    )


@pytest.fixture(scope="session", autouse=True)
def _roots_state_file_untouched() -> Iterator[None]:
    """A test whose `pytest checks` escaped the isolation (a bare environment, say) would
    write root's machine-wide state: fail the session's last test instead of leaking."""
    roots = Path("/var/lib/runner-health/state.json")
    existed = roots.exists()
    yield
    assert existed or not roots.exists(), f"a test wrote {roots}: give its config a state_file"
