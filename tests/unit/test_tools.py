"""A host tool a test needs is skipped where missing, and fails where CI requires it."""

import pytest

from tests.browser import browser
from tests.unit.test_metrics import promtool


@pytest.mark.parametrize(
    ("find", "name", "variable"),
    [
        (browser, "chromium", "RUNNER_HEALTH_REQUIRE_BROWSER"),
        (promtool, "promtool", "RUNNER_HEALTH_REQUIRE_PROMTOOL"),
    ],
)
@pytest.mark.parametrize("required_by", [None, "variable", "CI"])
def test_a_missing_tool_skips_only_where_none_is_required(
    monkeypatch, tmp_path, find, name, variable, required_by
):
    monkeypatch.setenv("PATH", str(tmp_path))  # no tool here
    for each in (variable, "CI"):
        monkeypatch.delenv(each, raising=False)
    if required_by == "variable":
        monkeypatch.setenv(variable, "1")
    elif required_by == "CI":
        monkeypatch.setenv("CI", "true")
    outcome = pytest.skip.Exception if required_by is None else pytest.fail.Exception
    with pytest.raises(outcome, match=f"{name} is not installed"):
        find()
