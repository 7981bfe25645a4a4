"""job_completed.sh, the runner's job-completed hook: run as a child of a Runner.Worker (as the
real runner runs it), against the docker stand-in and a temp folder standing for /tmp."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.scripts.conftest import ROOT, run_script

HOOK = ROOT / "remediations" / "job_completed.sh"
STAND_IN = Path(__file__).with_name("docker_stand_in.py")
RUNNER_FILE = (
    '\ufeff{\n  "agentId": 7,\n  "agentName": "Assay-BPF-Runner",\n  "workFolder": "_work"\n}'
)


def label_of(runner_file: str) -> str:
    """DockerInstanceLabel as actions/runner computes it (DockerCommandManager.cs: the .runner
    text as File.ReadAllText gives it, BOM dropped; IOUtil.GetSha256Hash: lowercased, SHA-256
    of its UTF-8, lowercase hex), first 6 digits."""
    return hashlib.sha256(runner_file.lstrip("\ufeff").lower().encode()).hexdigest()[:6]


def container(n: int, state: str, labels: dict[str, str], networks: str = "bridge") -> dict:
    return {
        "ID": f"{n:064x}",
        "Names": f"c{n}",
        "State": state,
        "Labels": labels,
        "Networks": networks,
    }


@pytest.fixture
def docker(fakes) -> Path:
    """The docker stand-in first on PATH; returns its state file."""
    bin_dir, _ = fakes
    shutil.copy(STAND_IN, bin_dir / "docker")
    (bin_dir / "docker").chmod(0o755)
    state = bin_dir.parent / "docker.json"
    state.write_text(json.dumps({"api": "1.45", "containers": [], "volumes": [], "networks": []}))
    return state


@pytest.fixture
def runner(tmp_path: Path) -> Path:
    """A runner directory with its .runner (as config.sh writes it) and a Runner.Worker that
    runs the hook as the real one does: as a child, with the job's environment."""
    root = tmp_path / "actions-runner"
    (root / "bin").mkdir(parents=True)
    (root / ".runner").write_text(RUNNER_FILE, encoding="utf-8")
    worker = root / "bin" / "Runner.Worker"
    worker.write_text(
        f'#!/bin/bash\nsleep "${{WORK_SECONDS:-0}}"\neval "$JOB_STEP"\nbash {HOOK} "$@"\n'
    )
    worker.chmod(0o755)
    return root


def job(runner: Path, fakes, tmp: Path, docker: Path, step: str = "", *args: str):
    """A job on ``runner``: its Worker runs ``step`` (bash), then the hook."""
    return run_script(
        [str(runner / "bin" / "Runner.Worker"), *args],
        fakes=fakes,
        env={"TMP_DIR": str(tmp), "JOB_STEP": step, "FAKE_DOCKER_STATE": str(docker)},
    )


def containers(docker: Path) -> set[str]:
    return {c["Names"] for c in json.loads(docker.read_text())["containers"]}


def test_the_label_is_the_runners(runner):
    # The label the real runner computed for this .runner (sha256sum of the lowercased text).
    assert label_of(RUNNER_FILE) == hashlib.sha256(RUNNER_FILE[1:].lower().encode()).hexdigest()[:6]


def test_containers_with_the_runners_label_go_others_stay(runner, fakes, docker, tmp_path):
    label = label_of(RUNNER_FILE)
    state = json.loads(docker.read_text())
    state["containers"] = [
        container(1, "running", {label: ""}, "github_network_0123"),  # a service left running
        container(2, "exited", {label: ""}),
        container(3, "running", {}),  # a step's docker run -d: nothing says whose
        container(4, "running", {"0badc0": ""}),  # another runner's job
        container(5, "running", {f"x{label}": ""}),
    ]
    state["networks"] = [{"Name": "github_network_0123", "Labels": {label: ""}}]
    docker.write_text(json.dumps(state))
    result = job(runner, fakes, tmp_path / "tmp", docker)
    assert result.returncode == 0, result.stderr
    assert containers(docker) == {"c3", "c4", "c5"}
    assert (
        f"removing container c1 (running): it carries the runner's label {label}" in result.stdout
    )
    calls = fakes[1].read_text()
    assert f"docker rm --force {1:064x}" in calls
    assert f"docker network prune --force --filter label={label}" in calls
    assert json.loads(docker.read_text())["networks"] == []


def test_files_the_job_made_in_tmp_go_older_ones_stay(runner, fakes, docker, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp / "before-the-job").write_text("a person's")
    (tmp / "systemd-private-abc").mkdir()
    time.sleep(2.5)  # the hook takes the job's start a second early
    step = (
        f"mkdir {tmp}/build.X && touch {tmp}/build.X/a {tmp}/log.txt {tmp}/systemd-private-x && "
        f"ln -s / {tmp}/to-root && python3 -c 'import socket; socket.socket(socket.AF_UNIX)"
        f'.bind("{tmp}/svc.sock")\''
    )
    result = job(runner, fakes, tmp, docker, step)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp.iterdir()) == [
        "before-the-job",
        "svc.sock",
        "systemd-private-abc",
        "systemd-private-x",
    ]
    assert Path("/").exists()  # the link went, not what it points to
    assert "removing " + str(tmp / "build.X") in result.stdout


def test_another_job_running_keeps_tmp(runner, fakes, docker, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    other = subprocess.Popen(["bash", "-c", "exec -a /opt/other/bin/Runner.Worker sleep 30"])
    try:
        time.sleep(0.2)
        result = job(runner, fakes, tmp, docker, f"touch {tmp}/mine")
    finally:
        other.kill()
        other.wait()
    assert result.returncode == 0, result.stderr
    assert (tmp / "mine").exists()
    assert "another job runs on this machine" in result.stdout


@pytest.mark.parametrize(
    "trouble",
    [
        "no-daemon",  # docker installed, its daemon down
        "docker-hangs",  # a daemon that never answers: bounded by STEP_TIMEOUT
        "no-runner-file",
        "garbage-state",
    ],
)
def test_the_hook_never_fails_the_job(trouble, runner, fakes, docker, tmp_path):
    env_extra = {"STEP_TIMEOUT": "2"}
    if trouble == "no-daemon":
        docker.write_text(json.dumps({"api": "1.45", "daemon": False, "containers": []}))
    elif trouble == "docker-hangs":
        (fakes[0] / "docker").write_text("#!/bin/sh\nexec sleep 60\n")
    elif trouble == "no-runner-file":
        (runner / ".runner").unlink()
    else:
        docker.write_text("{not json")
    started = time.monotonic()
    result = run_script(
        [str(runner / "bin" / "Runner.Worker")],
        fakes=fakes,
        env={
            "TMP_DIR": str(tmp_path / "missing"),
            "JOB_STEP": "",
            "FAKE_DOCKER_STATE": str(docker),
            **env_extra,
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 15


def test_outside_a_job_it_does_nothing(fakes, docker, tmp_path):
    result = run_script(["bash", str(HOOK)], fakes=fakes, env={"FAKE_DOCKER_STATE": str(docker)})
    assert result.returncode == 0
    assert "not run by a job" in result.stdout
    assert fakes[1].read_text() == ""


def test_dry_run_changes_nothing(runner, fakes, docker, tmp_path):
    label = label_of(RUNNER_FILE)
    state = json.loads(docker.read_text())
    state["containers"] = [container(1, "running", {label: ""})]
    docker.write_text(json.dumps(state))
    result = job(runner, fakes, tmp_path, docker, "", "--dry-run")
    assert result.returncode == 0
    assert containers(docker) == {"c1"}
    assert f"would run: docker rm --force {1:064x}" in result.stdout
    assert os.path.exists(tmp_path)
