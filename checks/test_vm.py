"""The runner VM is running and answers (only when the target is a Multipass VM).

"Running" is not enough: after the Mac slept, Multipass may say Running while the VM answers
nothing (canonical/multipass#4532), and every check after this one would time out in turn.
So this check also takes the VM's facts for the other checks (``vm_facts``: the one
``multipass exec`` of a healthy pass) within ``[multipass] exec_timeout_seconds``; when the VM
doesn't answer, the checks that need it are "unknown" at once, saying why.
"""

import pytest

from runner_health import multipass, targets, vm_facts


@pytest.mark.remediation("start_vm")
def test_vm_is_running(settings, workstation, target, runner_install):
    name = settings.multipass_name
    if name is None:
        pytest.skip(f"the target {settings.target} is not a Multipass VM")
    bound = settings.multipass_exec_timeout_seconds
    try:
        state = multipass.state(workstation, name, timeout=bound)
    except multipass.DaemonDown as exc:
        raise AssertionError(f"multipassd does not answer: {exc}") from None
    lost = " (multipassd lost track of it: after the Mac slept?)" if state == "Unknown" else ""
    assert state == "Running", f"Multipass VM {name} is {state}{lost}"
    try:
        vm_facts.read(target, settings, runner_install, timeout=bound)
        why = None
    except targets.CommandTimeout:
        why = multipass.no_answer(bound)
    except targets.GarbledPrefetch:  # exec failed, or the VM answered garbage: which?
        why = multipass.unreachable(target, timeout=bound)
    assert why is None, f"Multipass VM {name} is Running but {why} (after the Mac slept?)"
