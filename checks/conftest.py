"""What the checks read on the VM, read in one round trip before the first check that needs it.

Each reading used to be its own ``multipass exec`` or ssh command (two dozen per healthy
pass). The readers' commands run together (``targets.prefetch``) and ``targets.run`` answers
each from there until any other command runs: a fix's step, or its own reading, means the
next check reads afresh (a rerun after a fix never sees the value from before it).
"""

import pytest

from runner_health import targets, vm_facts


@pytest.fixture(autouse=True)
def _vm_facts(request: pytest.FixtureRequest) -> None:
    item = request.node
    needs = {needed for m in item.iter_markers("needs") for needed in m.args}
    if "vm" not in needs or item.get_closest_marker("github"):
        return
    target = request.getfixturevalue("target")
    if targets.current_prefetch(target) is None:
        plain, root = vm_facts.commands(
            request.getfixturevalue("settings"), request.getfixturevalue("runner_install")
        )
        targets.prefetch(target, plain, root=root)
