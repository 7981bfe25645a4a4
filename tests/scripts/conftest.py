"""Shared helpers for the shell-script tests: fake commands on PATH, a runner dir tree."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def write_fake(bin_dir: Path, name: str, body: str) -> Path:
    """An executable ``bin_dir/name`` running ``body`` (bash); it logs its argv to $FAKE_LOG."""
    path = bin_dir / name
    path.write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "{name} $*" >> "${{FAKE_LOG:-/dev/null}}"\n' + body + "\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fakes(tmp_path: Path) -> tuple[Path, Path]:
    """A bin dir to put fakes in (first on PATH) and the log every fake appends to."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    log = tmp_path / "fake.log"
    log.touch()
    return bin_dir, log


def run_script(
    argv: list[str],
    *,
    fakes: tuple[Path, Path] | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a script with the fakes first on PATH and a controlled environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_"))}
    if fakes is not None:
        full_env["PATH"] = f"{fakes[0]}:{full_env['PATH']}"
        full_env["FAKE_LOG"] = str(fakes[1])
    full_env.update(env or {})
    return subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd or ROOT,
        check=False,
    )
