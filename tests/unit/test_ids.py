"""Migration ids are unique across processes and restarts (issue 9: every `mecmig migrate` was
`mig-1`, and ids started again when the controller restarted)."""

from __future__ import annotations

import re
import subprocess
import sys

from orchestration.ids import new_migration_id

PATTERN = re.compile(r"^mig-\d{8}-\d{6}-[0-9a-f]{10}$")


def test_ids_are_unique_and_readable() -> None:
    ids = {new_migration_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(PATTERN.match(i) for i in ids)


def test_ids_sort_by_start_time() -> None:
    assert new_migration_id(now=1_800_000_000).startswith("mig-20270115-080000-")
    assert new_migration_id(now=1_700_000_000) < new_migration_id(now=1_800_000_000)


def test_two_processes_do_not_repeat_an_id() -> None:
    code = "from orchestration.ids import new_migration_id as n; print(n())"
    ids = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(3)
    }
    assert len(ids) == 3 and all(PATTERN.match(i) for i in ids)
