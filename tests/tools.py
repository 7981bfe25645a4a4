"""Host tools some tests need (Chromium, promtool): skipped where missing, unless required.

CI installs them and sets $RUNNER_HEALTH_REQUIRE_<NAME>=1 (or $CI), so a missing tool there
fails the test instead of passing it quietly.
"""

from __future__ import annotations

import os
import shutil

import pytest


def required(command: str, install: str, variable: str) -> str:
    """``command``'s path; skips the test without it, or fails it where ``variable`` (or $CI)
    says it is required."""
    found = shutil.which(command)
    if found:
        return found
    why = f"{command} is not installed (Debian: {install})"
    if os.environ.get(variable) == "1" or os.environ.get("CI"):
        pytest.fail(f"{why}; required here (${variable} or $CI is set)")
    pytest.skip(why)
