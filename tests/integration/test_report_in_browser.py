"""report.html as a person sees it in a browser: a real `pytest checks` run (one check failed
and was healed, one skipped), its report opened in headless Chromium."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.browser import render
from tests.plugin.test_healing import (
    HEALABLE,
    project,  # noqa: F401 (the fixture: a throwaway project)
    write_check,
)

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "reports" / "test-artifacts"  # git-ignored (reports/*)

SKIPPED = """
import pytest

def test_other():
    pytest.skip("nothing to look at here")
"""


def text_of(dom: str) -> str:
    """The page's visible words, one space apart."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


@pytest.mark.usefixtures("project")  # makes pytester's folder that project
def test_a_healed_run_reads_as_a_verdict(pytester: pytest.Pytester, tmp_path: Path) -> None:
    write_check(pytester, "thing", HEALABLE)
    write_check(pytester, "other", SKIPPED)
    result = pytester.runpytest_subprocess("checks")
    assert result.ret == 7, result.stdout.str()
    (report,) = (pytester.path / "reports").glob("*/report.html")

    seen = render(report, tmp_path / "browser")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kept = shutil.copy(seen.screenshot, ARTIFACTS / "report-in-browser.png")
    print(f"screenshot: {seen.screenshot} (copy: {kept})")

    verdict = seen.dom[seen.dom.index('class="runner-health-verdict"') :]
    verdict = text_of(verdict[: verdict.index("</section>")])
    assert "Healed (exit 7): a check failed and its fix healed it" in verdict
    assert "mode: heal" in verdict
    assert "What failed test_thing (thing): not healthy yet" in verdict
    assert "What was done make_healthy: done (for test_thing (thing))" in verdict
    assert "What changed test_thing (thing): healed" in verdict
    assert "What is still wrong nothing" in verdict
    assert "Skipped test_other (other): skipped: nothing to look at here" in verdict
    assert "Rerun" not in verdict
    # The verdict comes before pytest-html's results table, where the healed check is one row
    # saying so (not pytest-rerunfailures' "Rerun" then "Passed").
    assert seen.dom.index("runner-health-verdict") < seen.dom.index('id="results-table"')
    rows = {
        test_id: text_of(cells).split()[:2]  # verdict, result (not the duration)
        for test_id, cells in re.findall(
            r'<tbody class="results-table-row[^"]*" id="([^"]+)">\s*<tr[^>]*>(.*?)</tr>',
            seen.dom,
            flags=re.S,
        )
    }
    assert rows == {
        "checks/test_thing.py::test_thing": ["healed", "Passed"],
        "checks/test_other.py::test_other": ["skipped", "Skipped"],
    }
