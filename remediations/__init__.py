"""Remediations: one module per fix, each exporting pytest fixtures that return the fix.

A check names its fix with ``@pytest.mark.remediation("<fixture>")``. To add one, write a
module here with a fixture returning a zero-argument callable that makes its changes through
the ``steps`` fixture, and list the module below.

| fixture               | module          | heals                                  |
|-----------------------|-----------------|----------------------------------------|
| start_vm              | vm              | Multipass VM down/Unknown/unreachable  |
| sync_clock            | clock           | clock offset / time daemon unsynced    |
| free_disk             | disk            | low disk on / or the runner's _work    |
| reconfigure_runner    | registration    | missing, deleted or stale registration |
| sync_labels           | labels          | a config label missing at GitHub       |
| start_runner_service  | service         | runner service or listener not running |
| enable_runner_service | service         | runner unit not enabled at boot        |
| diagnose_offline      | online          | GitHub shows the runner offline        |
| enable_bpf_lsm        | bpf_lsm         | BPF LSM inactive (opt-in: reboots)     |
| reboot_when_required  | os_updates      | reboot pending (opt-in, idle only)     |
| reinstall_runner      | version         | a failed self-update (idle only)       |
| kill_hung_worker      | hung_job        | hung job's Worker (opt-in, job over)   |
"""

# service and registration first: the clock and online fixes build on their functions.
MODULES = [
    "remediations.service",
    "remediations.registration",
    "remediations.labels",
    "remediations.vm",
    "remediations.clock",
    "remediations.disk",
    "remediations.online",
    "remediations.bpf_lsm",
    "remediations.os_updates",
    "remediations.hung_job",
    "remediations.version",
]
