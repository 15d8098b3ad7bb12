"""Remove what mecmig's agents left behind after a crash: only what is recognisably ours.

Ours are: containers under runc roots in /run/mecmig/runc, network namespaces named `mecmig-*`
(with their veths), and instance directories under /var/lib/mecmig/sites.
"""

from __future__ import annotations

import shutil

from ground.paths import RUN_DIR, STATE_DIR, criu_binary
from ground.runner import Runner, SubprocessRunner


def cleanup_migration_leftovers(runner: Runner | None = None) -> list[str]:
    """Delete our containers, namespaces and instance directories; say what was removed."""
    runner = runner or SubprocessRunner()
    done: list[str] = []
    roots = RUN_DIR / "runc"
    for root in sorted(roots.glob("*")) if roots.exists() else []:
        listed = runner.run(
            ["runc", "--root", str(root), "--criu", str(criu_binary()), "list", "-q"], check=False
        )
        for name in listed.stdout.split():
            runner.run(["runc", "--root", str(root), "delete", "--force", name], check=False)
            done.append(f"deleted container {name} ({root.name})")
        shutil.rmtree(root, ignore_errors=True)
    netns = runner.run(["ip", "netns", "list"], check=False).stdout.split("\n")
    for line in netns:
        name = line.split(" ")[0]
        if name.startswith("mecmig-"):
            runner.run(["ip", "netns", "del", name], check=False)
            done.append(f"deleted netns {name}")
    sites = STATE_DIR / "sites"
    if sites.exists():
        shutil.rmtree(sites, ignore_errors=True)
        done.append(f"removed {sites}")
    return done
