"""Free disk with free_disk.sh, the same script users run by hand (sent on stdin, as the seed did)."""

import math
import shlex
from pathlib import Path

import pytest

FREE_DISK_SCRIPT = Path(__file__).with_name("free_disk.sh")


@pytest.fixture
def free_disk(settings, steps):
    def fix() -> None:
        directory = shlex.quote(settings.runner.directory)
        # Whole days, rounded up: never a file younger than the config allows.
        days = math.ceil(settings.remediation.tmp_max_age_days)
        steps.run(
            f"bash -s -- --runner-dir {directory} --tmp-max-age-days {days}",
            why=f"free Docker, APT, journal, /tmp and runner caches ({FREE_DISK_SCRIPT.name} on stdin)",
            stdin=FREE_DISK_SCRIPT.read_text(),
        )

    return fix
