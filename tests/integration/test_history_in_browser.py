"""reports/index.html as a person sees it in a browser: four runs (healthy, a failure, its fix
healing it, the fix then held), opened in headless Chromium."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from runner_health import history
from tests.browser import render
from tests.integration.test_report_in_browser import ARTIFACTS, text_of
from tests.unit.test_history import HISTORY, make_run


def test_the_history_page_shows_runs_outcomes_and_fixes(tmp_path: Path) -> None:
    base = tmp_path / "reports"
    for name, disk, status in (
        ("20261129T010000Z", "passed", "healthy"),
        ("20261129T010500Z", "failed", "unhealthy"),
        ("20261129T011000Z", "healed", "healed"),
        ("20261129T011500Z", "held", "unhealthy"),
    ):
        finished = f"2026-11-29T{name[9:11]}:{name[11:13]}:40+00:00"
        outcomes = {"test_vm_running": "passed", "test_disk_headroom[/]": disk}
        make_run(base, name, outcomes, status=status, finished=finished)
    make_run(
        base,
        "20261129T012000Z",
        {"test_vm_running": "unknown"},
        status="unknown",
        finished="2026-11-29T01:20:40+00:00",
        report=False,
    )  # fmt: skip  (killed mid-report)

    page = history.write_index(base, HISTORY)
    seen = render(page, tmp_path / "browser")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kept = shutil.copy(seen.screenshot, ARTIFACTS / "history-in-browser.png")
    print(f"screenshot: {seen.screenshot} (copy: {kept})")

    text = text_of(seen.dom)
    assert "runner-health: recent runs" in text
    assert (
        "check 11-29 01:20 UTC unknown 11-29 01:15 UTC unhealthy 11-29 01:10 UTC healed"
        " 11-29 01:05 UTC unhealthy 11-29 01:00 UTC healthy" in text
    )
    assert "test_vm_running unknown passed passed passed passed" in text
    assert "test_disk_headroom[/] held healed failed passed" in text
    assert (
        "test_disk_headroom[/] disk healed 2 3 2026-11-29 01:10 UTC 5.0 min done" in text
    )  # the fixes table
    links = re.findall(r'<a href="([^"]+)"', seen.dom)
    assert links, "no cell links to a report"
    assert all((base / link).is_file() for link in links), links
    assert "20261129T011500Z/report.html" in links
    assert not any("20261129T012000Z" in link for link in links)  # no report to open
