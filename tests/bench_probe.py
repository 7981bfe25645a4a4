"""`make bench`'s instruments, run where runner-health runs (on the host, or in the VM for the
local backend): as a pytest plugin (``-p tests.bench_probe`` or ``-p bench_probe``) it writes the
commands a run ran to $BENCH_COUNT; as a script it is the raw probe a healthy pass is measured
against: the same facts in one remote command, and one API call.

    python -m tests.bench_probe CONFIG [TARGET SSH_CONFIG]   # {"seconds": ..., "commands": ...}
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from runner_health import config, targets, vm_facts
from runner_health.github import GitHub
from runner_health.runner import RunnerInstall


def pytest_sessionfinish() -> None:
    if path := os.environ.get("BENCH_COUNT"):
        Path(path).write_text(str(targets._commands))


def probe(config_path: str, spec: str | None = None, ssh_config: str | None = None) -> dict:
    """One prefetch of what the checks read, and one request for the runner list."""
    settings = config.load(Path(config_path), target_override=spec)
    host = targets.target(settings.target, ssh_config=ssh_config)
    install = RunnerInstall(host, settings.runner.directory, settings.runner.user)
    github = GitHub(settings.github, config.resolve_token(settings))
    plain, root = vm_facts.commands(settings, install)
    started = time.monotonic()
    targets.prefetch(host, plain, root=root)
    github.runners()
    return {"seconds": time.monotonic() - started, "commands": targets._commands}


if __name__ == "__main__":
    print(json.dumps(probe(*sys.argv[1:])))
