"""The GRUB edit quotes the LSM list for every reader: the shell, sed, and update-grub."""

from __future__ import annotations

import subprocess

import pytest

from runner_health.bpf_lsm import fix_instructions, set_lsm_command

GRUB = """GRUB_DEFAULT=0
GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"
GRUB_CMDLINE_LINUX="console=ttyS0 lsm=old"
GRUB_TIMEOUT=0
"""
HOSTILE = [
    "lockdown,bpf",
    "a&b",  # sed: & is the whole match
    "a'b",  # ends a single-quoted shell word
    "a;touch pwned-semicolon",
    "$(touch pwned-subst)",
    "`touch pwned-backtick`",
    'a"; touch pwned-quote; "',  # ends GRUB_CMDLINE_LINUX's double quotes
    "a/b\\1\\n",  # sed's delimiter and escapes
]


def sh(command: str, cwd) -> str:
    return subprocess.run(
        ["/bin/sh", "-c", command], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("lsm", HOSTILE)
def test_sets_exactly_the_intended_line_and_runs_nothing_else(tmp_path, lsm):
    grub = tmp_path / "grub"
    grub.write_text(GRUB)
    sh(set_lsm_command(lsm, str(grub)), tmp_path)
    lines = grub.read_text().splitlines()
    changed = [line for line in lines if line not in GRUB.splitlines()]
    assert len(lines) == 4 and len(changed) == 1 and changed[0].startswith("GRUB_CMDLINE_LINUX=")
    # update-grub sources the file: the value must come back as the very same text.
    value = sh(f'. {grub}; printf %s "$GRUB_CMDLINE_LINUX"', tmp_path)
    assert value == f"console=ttyS0 lsm={lsm}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grub"]


def test_instructions_give_the_command_only_for_a_list_of_lsm_names():
    assert "lsm=lockdown,capability,bpf\"/' /etc/default/grub" in fix_instructions(
        "lockdown,capability,bpf"
    )
    for lsm in HOSTILE[1:]:
        text = fix_instructions(lsm)
        assert "sed" not in text and "set remediation.lsm to comma-separated LSM names" in text
