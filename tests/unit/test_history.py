"""reports/index.html: the grid of recent runs and the fixes per check, from files that may be
missing, garbled or shaped by a hostile job."""

from __future__ import annotations

import json
import os
import stat
from html.parser import HTMLParser
from pathlib import Path

import pytest

from runner_health import history, redact

HISTORY = {
    "test_disk_headroom[/]": {
        "condition": "disk",
        "outcome": "healed",
        "first_failure": None,
        "last_heal": "2026-11-29T01:10:00+00:00",
        "heals": 2,
        "attempts": 3,
        "last_result": "done",
        "time_to_heal_seconds": 300.0,
    },
}


def make_run(
    base: Path,
    name: str,
    outcomes: dict[str, str],
    *,
    status: str = "healthy",
    finished: str = "2026-11-29T01:00:00+00:00",
    report: bool = True,
) -> Path:
    """A run folder as the plugin leaves it: summary.json and (unless killed) report.html."""
    run = base / name
    run.mkdir(parents=True)
    checks = [{"name": n, "condition": "c", "outcome": o} for n, o in outcomes.items()]
    summary = {"status": status, "exit_code": 0, "finished_at": finished, "checks": checks}
    (run / "summary.json").write_text(json.dumps(summary))
    if report:
        (run / "report.html").write_text("<html>report</html>")
    return run


class Page(HTMLParser):
    """The page as a reader meets it: each table's rows of cell texts, and each cell's link."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.links: list[list[list[str | None]]] = []
        self.tags: set[str] = set()
        self.in_cell = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "table":
            self.tables.append([])
            self.links.append([])
        elif tag == "tr":
            self.tables[-1].append([])
            self.links[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
            self.links[-1][-1].append(None)
            self.in_cell = True
        elif tag == "a" and self.in_cell:
            self.links[-1][-1][-1] = dict(attrs).get("href")
        elif tag == "br" and self.in_cell:
            self.tables[-1][-1][-1] += " "

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self.in_cell = False

    def handle_data(self, data: str) -> None:
        if self.in_cell:
            self.tables[-1][-1][-1] += data


def read(base: Path) -> Page:
    return Page((base / "index.html").read_text())


def test_the_grid_shows_each_run_newest_first_each_cell_linking_to_its_report(tmp_path):
    make_run(tmp_path, "20261129T010000Z", {"test_a": "failed", "test_b": "passed"},
             status="unhealthy", finished="2026-11-29T01:00:30+00:00")  # fmt: skip
    make_run(tmp_path, "20261129T010500Z", {"test_a": "healed", "test_b": "passed"},
             status="healed", finished="2026-11-29T01:05:30+00:00")  # fmt: skip
    make_run(tmp_path, "20261129T010500Z-1", {"test_a": "held", "test_b": "unknown"},
             status="unhealthy", finished="2026-11-29T01:05:59+00:00")  # fmt: skip
    (tmp_path / "test-artifacts").mkdir()  # not a run folder

    path = history.write_index(tmp_path, HISTORY)

    assert path == tmp_path / "index.html"
    grid, fixes = read(tmp_path).tables
    assert grid == [
        ["check", "11-29 01:05 UTC unhealthy", "11-29 01:05 UTC healed", "11-29 01:00 UTC unhealthy"],
        ["test_a", "held", "healed", "failed"],
        ["test_b", "unknown", "passed", "passed"],
    ]  # fmt: skip
    links = read(tmp_path).links[0]
    assert links[1][1:] == [
        "20261129T010500Z-1/report.html",
        "20261129T010500Z/report.html",
        "20261129T010000Z/report.html",
    ]
    assert links[0][1:] == links[1][1:]  # the header opens the report too
    assert all((tmp_path / link).is_file() for link in links[1][1:])
    assert fixes[0][:7] == ["check", "condition", "last outcome", "heals", "fix attempts",
                            "last heal", "time to heal (last)"]  # fmt: skip
    assert fixes[1] == ["test_disk_headroom[/]", "disk", "healed", "2", "3",
                        "2026-11-29 01:10 UTC", "5.0 min", "done", ""]  # fmt: skip


def test_the_page_is_self_contained_and_readable_by_anyone(tmp_path):
    make_run(tmp_path, "20261129T010000Z", {"test_a": "passed"})
    history.write_index(tmp_path, HISTORY)
    text = (tmp_path / "index.html").read_text()
    assert "<script" not in text
    assert "http" not in text  # no font, image, style or script from elsewhere
    assert "url(" not in text
    assert stat.S_IMODE((tmp_path / "index.html").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20261129T010000Z", "index.html"]


def test_a_killed_run_has_no_link_and_the_current_run_links_its_coming_report(tmp_path):
    (tmp_path / "20261129T010000Z").mkdir()  # killed before its summary and report
    make_run(tmp_path, "20261129T020000Z", {"test_a": "failed"}, report=False)  # this run
    history.write_index(tmp_path, {})
    page = read(tmp_path)
    assert page.tables[0] == [
        ["check", "11-29 01:00 UTC healthy", "20261129T010000Z no summary"],
        ["test_a", "failed", ""],
    ]
    # pytest-html writes report.html after runner-health's end of the run, which wrote summary.json
    assert page.links[0][0][1:] == ["20261129T020000Z/report.html", None]
    assert page.links[0][1][1:] == ["20261129T020000Z/report.html", None]


@pytest.mark.parametrize(
    "content",
    [
        None,  # no summary.json at all (killed before it was written)
        b"{not json",
        b"[1, 2, 3]",
        b'{"status": "healthy", "checks": "garbage"}',
        b'{"checks": [1, null, {"name": 5}, {"name": "x", "outcome": {"a": 1}}]}',
        b"[" * 100_000,  # deeper than the parser goes
        b'{"checks": []}' + b" " * history.MAX_SUMMARY_BYTES,  # too big to be ours
    ],
    ids=["missing", "garbled", "list", "checks-not-list", "odd-checks", "deep", "huge"],
)
def test_a_garbled_summary_is_one_column_saying_so(tmp_path, content):
    make_run(tmp_path, "20261129T010000Z", {"test_a": "passed"})
    broken = tmp_path / "20261129T020000Z"
    broken.mkdir()
    if content is not None:
        (broken / "summary.json").write_bytes(content)

    history.write_index(tmp_path, {"test_a": "not a mapping", "test_b": {"heals": [1] * 1000}})

    grid = read(tmp_path).tables[0]
    assert grid[0][1].split()[0] == "20261129T020000Z"  # no time to show: the folder's name
    assert grid[0][2] == "11-29 01:00 UTC healthy"
    rows = {row[0]: row[1:] for row in grid[1:]}
    assert rows["test_a"] == ["", "passed"]
    assert set(rows) <= {"test_a", "x"}
    assert rows.get("x", ["unknown"])[0] == "unknown"


def test_a_fifo_or_link_in_place_of_summary_json_is_not_read(tmp_path):
    fifo = tmp_path / "20261129T010000Z"
    fifo.mkdir()
    os.mkfifo(fifo / "summary.json")  # opening it for reading would block without O_NONBLOCK
    linked = tmp_path / "20261129T020000Z"
    linked.mkdir()
    elsewhere = make_run(tmp_path / "elsewhere", "20261129T030000Z", {"test_secret": "passed"})
    (linked / "summary.json").symlink_to(elsewhere / "summary.json")
    (tmp_path / "20261129T040000Z").symlink_to(elsewhere)  # a linked run folder

    history.write_index(tmp_path, {})

    grid = read(tmp_path).tables[0]
    assert [cell.split()[-1] for cell in grid[0][1:]] == ["summary", "summary"]
    assert "test_secret" not in (tmp_path / "index.html").read_text()


def test_text_from_a_hostile_job_is_escaped_and_secrets_are_masked(tmp_path):
    redact.register("webhook-secret-1234")
    script = "<script>alert(1)</script>"
    make_run(tmp_path, "20261129T010000Z", {f"test_x[{script}]": "failed"}, status=script)
    entry = {**HISTORY["test_disk_headroom[/]"], "last_result": "failed: webhook-secret-1234"}

    history.write_index(tmp_path, {script: entry, "test_y": {"condition": '"><img src=x>'}})

    text = (tmp_path / "index.html").read_text()
    assert "<script" not in text
    assert "<img" not in text
    assert "webhook-secret-1234" not in text
    page = read(tmp_path)
    assert page.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "div",
                         "table", "thead", "tbody", "tr", "th", "td", "a", "br", "span"}  # fmt: skip
    assert page.tables[0][1][0] == f"test_x[{script}]"
    assert page.tables[1][1][0] == script
    assert page.tables[1][1][7] == "failed: ***"


def test_the_page_is_bounded(tmp_path):
    long_name = "test_" + "x" * 10_000
    for minute in range(history.MAX_RUNS + 10):
        checks = {long_name: "passed"} | {f"test_{i}": "passed" for i in range(150)}
        make_run(tmp_path, f"20261129T01{minute // 60:02}{minute % 60:02}Z", {})
        (tmp_path / f"20261129T01{minute // 60:02}{minute % 60:02}Z" / "summary.json").write_text(
            json.dumps({"checks": [{"name": n, "outcome": o} for n, o in checks.items()]})
        )

    history.write_index(tmp_path, {f"test_{i}": {"heals": 1} for i in range(500)})

    grid, fixes = read(tmp_path).tables
    assert len(grid[0]) == 1 + history.MAX_RUNS
    assert grid[0][1].startswith("20261129T010059Z")  # the newest run comes first
    assert grid[0][-1].startswith("20261129T010010Z")  # the 10 oldest are left out
    assert len(grid) == 1 + history.MAX_CHECKS
    assert len(grid[1][0]) == history.MAX_TEXT
    assert len(fixes) == 1 + history.MAX_CHECKS
    assert (tmp_path / "index.html").stat().st_size < 1_000_000


def test_without_runs_or_history_the_page_says_so(tmp_path):
    history.write_index(tmp_path, {})
    text = (tmp_path / "index.html").read_text()
    assert "No runs yet." in text
    assert "No check has been remembered yet." in text


def test_a_failed_write_leaves_the_old_page_and_no_temporary_file(tmp_path, monkeypatch):
    make_run(tmp_path, "20261129T010000Z", {"test_a": "passed"})
    history.write_index(tmp_path, {})
    before = (tmp_path / "index.html").read_text()
    make_run(tmp_path, "20261129T020000Z", {"test_a": "failed"})

    def broken_replace(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        history.write_index(tmp_path, {})
    assert (tmp_path / "index.html").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["index.html"]
