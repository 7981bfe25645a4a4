"""Add the config's labels GitHub lacks to the runner, through the REST API: no re-registration.

Only labels the config owns are added, and nothing is ever removed. Two kinds are refused
rather than pushed, because GitHub's label would then claim what the VM is not:
GitHub's default labels (read-only: set by the runner itself from the OS and CPU it runs on)
and a ``kernel-X.Y`` label for another kernel than the VM's (a kernel-matrix job would run on
the wrong kernel).
"""

import pytest
from testinfra.host import Host

from runner_health import bpf_lsm
from runner_health.config import Settings
from runner_health.github import GitHub, GitHubError, runner_label_names
from runner_health.observe import read
from runner_health.steps import RemediationFailed, RemediationRefused, Steps

# GitHub's read-only default labels, by kind: the runner sets them at registration.
DEFAULT_LABELS = (
    frozenset({"self-hosted"}),
    frozenset({"linux", "windows", "macos"}),
    frozenset({"x64", "arm64", "arm"}),
)


def unaddable(label: str, shown: set[str], release: str) -> str | None:
    """Why ``label`` (missing at GitHub) must not be added, or None when it may."""
    kind = next((k for k in DEFAULT_LABELS if label.lower() in k), None)
    if kind is not None:
        seen = ", ".join(sorted(shown & kind)) or f"without any of {', '.join(sorted(kind))}"
        return f"config wants {label}, GitHub shows this runner as {seen}: fix runner.labels"
    version = bpf_lsm.kernel_version(label)
    if version is not None and not bpf_lsm.runs_kernel(release, version):
        return f"config wants {label}, this VM runs kernel {release}: fix runner.labels"
    return None


def sync(github: GitHub, target: Host, settings: Settings, steps: Steps) -> None:
    """Add the missing labels, all or none: refused if any of them may not be added."""
    name = settings.runner.name
    try:
        runner = github.runner(name)
    except GitHubError as exc:
        raise RemediationRefused(f"{exc}: the labels are left as they are") from None
    if runner is None:
        raise RemediationRefused(f"GitHub has no runner named {name!r}: see its registration")
    shown = runner_label_names(runner)
    missing = [label for label in settings.runner.labels if label.lower() not in shown]
    release = read(target, "uname -r").strip()
    refused = [why for label in missing if (why := unaddable(label, shown, release))]
    if refused:
        raise RemediationRefused("; ".join(refused))
    now = steps.call(
        lambda: github.add_runner_labels(runner["id"], missing),
        what=f"add labels {', '.join(missing)} to runner {name!r} (id {runner['id']}) at GitHub",
        why="the config has them, GitHub does not",
    )
    if now is not None and (still := {label.lower() for label in missing} - now):
        raise RemediationFailed(f"GitHub answered, but the runner still lacks {sorted(still)}")


@pytest.fixture
def sync_labels(github, target, settings, steps):
    return lambda: sync(github, target, settings, steps)
