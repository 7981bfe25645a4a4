"""The runner stand-in's self-update (tests/testbed/runner/bin/update.sh): the real layout
after an update (actions/runner SelfUpdater.cs, update.sh.template), and the two broken ones
runner_health.release recognises."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from runner_health import release
from runner_health.runner import RunnerInstall
from runner_health.targets import target
from tests.testbed.fake_github import releases


def update(tmp_path: Path, fail: str = "") -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A stand-in install (bin a real folder, as unpacked) updated to 2.336.0."""
    root = tmp_path / "actions-runner"
    shutil.copytree(releases.RUNNER_STANDIN, root, symlinks=True)
    (root / "externals").mkdir()
    (root / "_work").mkdir()
    tarball = tmp_path / "actions-runner-linux-x64-2.336.0.tar.gz"
    tarball.write_bytes(releases.tarball("2.336.0"))
    done = subprocess.run(
        ["bin/update.sh", "2.336.0", str(tarball)],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "RUNNER_STANDIN_UPDATE_FAIL": fail},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return root, done


def test_an_update_swaps_bin_and_externals_for_links_and_keeps_its_staging(tmp_path):
    root, done = update(tmp_path)
    assert done.returncode == 0, done.stderr
    for kind in ("bin", "externals"):
        assert (root / kind).readlink() == root / f"{kind}.2.336.0"
    old = [p.name for p in root.glob("bin.*") if p.name != "bin.2.336.0"]
    assert len(old) == 1 and (root / old[0] / "Runner.Listener").is_file()  # moved aside
    assert 'VERSION = "2.336.0"' in (root / "bin/Runner.Listener").read_text()
    assert (root / "_work/_update/bin/Runner.Listener").is_file()  # the staging stays
    logs = [p.name for p in (root / "_diag").iterdir()]
    assert len(logs) == 1 and logs[0].startswith("SelfUpdate-") and logs[0].endswith(".log")
    install = RunnerInstall(target("local://"), str(root), "root")
    assert release.self_update_failed(install, "") == []


@pytest.mark.parametrize(
    ("fail", "signs"),
    [
        ("bin-copy", ["bin is a link to nothing"]),
        ("bin-copy,externals-junction", ["bin is a link to nothing", "failed"]),
    ],
)
def test_a_failed_update_leaves_the_signs(tmp_path, fail, signs):
    root, done = update(tmp_path, fail)
    assert (root / "bin").is_symlink() and not (root / "bin").exists()
    found = release.self_update_failed(RunnerInstall(target("local://"), str(root), "root"), "")
    assert [s if "SelfUpdate" not in s else "failed" for s in found] == signs
    assert done.returncode == (1 if "junction" in fail else 0)
