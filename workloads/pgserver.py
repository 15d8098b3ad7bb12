"""Debian's PostgreSQL 15 as a service instance: its stock configuration, a cluster of its own.

Run as the instance's user (postgres), with /var/lib/postgresql a state directory of the
instance (it moves with it): the first start makes the cluster there with Debian's own `initdb`
(trust authentication: the emulated network is the test's own), lets the instance's subnet in,
then becomes `postgres` with /etc/postgresql/15/main/postgresql.conf as Debian ships it, changed
only where a container needs it: listening on every address, no Unix socket and the external pid
file beside the cluster (both under /var/run, which a container does not have), no SSL (the
snakeoil key is the host's).

    /usr/bin/python3 /data/pgserver.py [--version 15] [--allow 10.0.0.0/24]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pgserver", description=__doc__)
    p.add_argument("--version", default="15")
    p.add_argument("--allow", default="0.0.0.0/0", help="clients let in (trust)")
    args = p.parse_args(argv)
    bin_dir = Path(f"/usr/lib/postgresql/{args.version}/bin")
    conf = Path(f"/etc/postgresql/{args.version}/main/postgresql.conf")
    data = Path(f"/var/lib/postgresql/{args.version}/main")
    hba = data / "pg_hba.conf"
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "--auth-local=trust", "--auth-host=trust",
             "-U", "postgres", "--encoding=UTF8", "--locale=C"],
            check=True,
        )  # fmt: skip
        with open(hba, "a") as f:
            f.write(f"host all all {args.allow} trust\n")
    sys.stdout.flush()
    os.execv(
        str(bin_dir / "postgres"),
        ["postgres", "-c", f"config_file={conf}", "-c", f"data_directory={data}",
         "-c", f"hba_file={hba}", "-c", "listen_addresses=*", "-c", "unix_socket_directories=",
         "-c", f"external_pid_file={data.parent}/main.pid", "-c", "ssl=off"],
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
