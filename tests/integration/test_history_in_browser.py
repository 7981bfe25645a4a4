"""reports/index.html as a person sees it in a browser, in headless Chromium: five runs made
by hand (healthy, a failure, its fix healing it, the fix then held, a run killed before its
summary), then two real `pytest checks` runs with the metrics file they leave."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from runner_health import history
from tests.browser import render
from tests.integration.test_report_in_browser import ARTIFACTS, text_of
from tests.plugin.test_healing import (
    HEALABLE,
    project,  # noqa: F401 (the fixture: a throwaway project)
    write_check,
)
from tests.unit.test_history import HISTORY, make_run
from tests.unit.test_metrics import check_with_promtool, samples

pytest_plugins = ["pytester"]


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
    (base / "20261129T012000Z").mkdir()  # killed before its summary and report

    page = history.write_index(base, HISTORY)
    seen = render(page, tmp_path / "browser")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kept = shutil.copy(seen.screenshot, ARTIFACTS / "history-in-browser.png")
    print(f"screenshot: {seen.screenshot} (copy: {kept})")

    text = text_of(seen.dom)
    assert "runner-health: recent runs" in text
    assert (
        "check 20261129T012000Z no summary 11-29 01:15 UTC unhealthy 11-29 01:10 UTC healed"
        " 11-29 01:05 UTC unhealthy 11-29 01:00 UTC healthy" in text
    )
    assert "test_vm_running passed passed passed passed" in text
    assert "test_disk_headroom[/] held healed failed passed" in text
    assert (
        "test_disk_headroom[/] disk healed 2 3 2026-11-29 01:10 UTC 5.0 min done" in text
    )  # the fixes table
    links = re.findall(r'<a href="([^"]+)"', seen.dom)
    assert links, "no cell links to a report"
    assert all((base / link).is_file() for link in links), links
    assert "20261129T011500Z/report.html" in links
    assert not any("20261129T012000Z" in link for link in links)  # no report to open


@pytest.mark.usefixtures("project")  # makes pytester's folder that project
def test_real_runs_leave_the_history_page_and_the_metrics_file(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    config = pytester.path / "runner-health.toml"
    state = pytester.path / "state" / "state.json"
    config.write_text(config.read_text().replace("[github]", f'state_file = "{state}"\n[github]'))
    write_check(pytester, "thing", HEALABLE)
    assert pytester.runpytest_subprocess("checks").ret == 7  # failed, then healed
    assert pytester.runpytest_subprocess("checks").ret == 0

    seen = render(pytester.path / "reports" / "index.html", tmp_path / "browser")
    text = text_of(seen.dom)
    assert re.search(r"check \S+ \S+ UTC healthy \S+ \S+ UTC healed test_thing passed healed", text)
    assert "test_thing thing passed 1 1" in text  # the fixes table: 1 heal, 1 attempt
    links = re.findall(r'<a href="([^"]+)"', seen.dom)
    assert len(set(links)) == 2
    assert all((pytester.path / "reports" / link).is_file() for link in links), links

    written = state.parent / "runner_health.prom"
    check_with_promtool(written)
    found = samples(written)
    labels = (("check", "test_thing"), ("condition", "thing"))
    assert found[("runner_health_check_up", labels)] == 1
    assert found[("runner_health_last_run_exit_code", ())] == 0
    done = (("remediation", "make_healthy"), ("result", "done"))
    assert found[("runner_health_remediations_total", done)] == 1
    assert found[("runner_health_time_to_heal_seconds", labels)] >= 0
