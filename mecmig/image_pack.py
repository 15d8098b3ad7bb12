"""`mecmig image pack`: an image of installed Debian packages, for machines without a registry.

A user with podman or docker exports or saves an image (`podman export`, `podman save --format
oci-dir`). Here no registry is reachable, so this builds one from what is installed: the files
of the named packages (`dpkg -L`), every shared library their programs and libraries load
(`ldd`), the dynamic loader, the top-level links of a merged /usr (/bin -> usr/bin...), and
/etc/passwd, /etc/group and /etc/nsswitch.conf (the accounts the packages' users are in). The
result is a rootfs tarball (`--out X.tar`); with `--oci DIR:TAG`, also an OCI image layout made
by umoci, whose config carries `--cmd`, `--user`, `--workdir` and `--env`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import stat
import tarfile
from collections.abc import Iterable
from pathlib import Path

from ground.runner import CommandError, Runner, SubprocessRunner

BASE_FILES = ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/localtime")
MERGED_USR = ("/bin", "/lib", "/lib64", "/sbin")
MAX_PACKAGES = 64


class PackError(Exception):
    """The image cannot be made (a package not installed, a tool missing), and why."""


def package_files(runner: Runner, packages: Iterable[str]) -> set[str]:
    files: set[str] = set()
    for pkg in packages:
        try:
            out = runner.run(["dpkg", "-L", pkg]).stdout
        except CommandError as exc:
            raise PackError(f"package {pkg!r} is not installed here: {exc}") from None
        files |= {line for line in out.splitlines() if line.startswith("/") and line != "/."}
    return {f for f in files if os.path.lexists(f)}


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def libraries(runner: Runner, files: Iterable[str]) -> set[str]:
    """The shared objects the ELF files among `files` load (and the links that name them)."""
    found: set[str] = set()
    for path in sorted(files):
        if not os.path.isfile(path) or os.path.islink(path) or not _is_elf(path):
            continue
        out = runner.run(["ldd", path], check=False).stdout
        for line in out.splitlines():
            parts = line.split()
            for token in parts:
                if token.startswith("/") and os.path.exists(token):
                    found.add(token)
                    found.add(os.path.realpath(token))
    return found


def _with_parents(paths: Iterable[str]) -> list[str]:
    out: set[str] = set()
    for p in paths:
        parts = Path(p).parts
        for i in range(2, len(parts) + 1):
            out.add(str(Path(*parts[:i])))
    return sorted(out)


def write_rootfs_tar(paths: Iterable[str], out: Path) -> int:
    """A tar of `paths` (with their parent directories), as they are on this host; its size."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in _with_parents(paths):
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode) and not os.path.islink(path):
                info = tar.gettarinfo(path, arcname=path.lstrip("/"))
                tar.addfile(info)
            elif stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                tar.add(path, arcname=path.lstrip("/"), recursive=False)
    return out.stat().st_size


def _walk(paths: Iterable[str]) -> Iterable[str]:
    """Each of `paths`, and what a directory among them holds (links not followed)."""
    for top in paths:
        if not os.path.lexists(top):
            raise PackError(f"{top}: no such file or directory")
        yield os.path.abspath(top)
        if os.path.isdir(top) and not os.path.islink(top):
            for d, dirs, names in os.walk(top):
                yield from (os.path.join(d, n) for n in (*dirs, *names))


def pack(
    runner: Runner,
    packages: list[str],
    out: Path,
    *,
    extra: Iterable[str] = (),
) -> tuple[int, int]:
    """Write the rootfs tarball; (files, bytes)."""
    files = package_files(runner, packages) | set(_walk(extra))
    files |= libraries(runner, files)
    files |= {p for p in (*BASE_FILES, *MERGED_USR) if os.path.lexists(p)}
    loader = [p for p in ("/lib64/ld-linux-x86-64.so.2",) if os.path.exists(p)]
    files |= {os.path.realpath(p) for p in loader}
    # a file under a merged-usr link is packed at its real place (/lib/x -> /usr/lib/x)
    real: set[str] = set()
    for f in files:
        head = "/" + Path(f).parts[1] if len(Path(f).parts) > 1 else f
        if head in MERGED_USR and f != head and os.path.islink(head):
            real.add(os.path.join(os.path.realpath(head), *Path(f).parts[2:]))
        else:
            real.add(f)
    size = write_rootfs_tar(sorted(real), out)
    return len(real), size


def make_oci(
    runner: Runner,
    tarball: Path,
    ref: str,
    *,
    cmd: list[str],
    user: str | None,
    workdir: str | None,
    env: list[str],
) -> None:
    """An OCI image layout `DIR:TAG` whose one layer is `tarball` (umoci)."""
    layout, _, tag = ref.rpartition(":")
    if not layout or not tag:
        raise PackError(f"--oci {ref!r}: give DIR:TAG")
    if not (Path(layout) / "oci-layout").exists():
        runner.run(["umoci", "init", "--layout", layout])
    runner.run(["umoci", "new", "--image", ref])
    runner.run(["umoci", "raw", "add-layer", "--image", ref, str(tarball)])
    argv = ["umoci", "config", "--image", ref]
    for c in cmd:
        argv += ["--config.cmd", c]
    if user:
        argv += ["--config.user", user]
    if workdir:
        argv += ["--config.workingdir", workdir]
    for e in env:
        argv += ["--config.env", e]
    runner.run(argv)
    runner.run(["umoci", "gc", "--layout", layout])


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "image",
        help="make an image of installed Debian packages (no registry needed)",
        description="Pack installed Debian packages, the libraries they load and the host's "
        "accounts into a rootfs tarball (--out), and optionally an OCI image layout (--oci "
        "DIR:TAG, made with umoci) whose config holds --cmd, --user, --workdir and --env. "
        "A scenario instance runs either with `image: PATH` (a layout as DIR:TAG). Exit 0 "
        "ok, 1 failed, 2 bad command line.",
    )
    p.add_argument("action", choices=["pack"], help="what to do (pack)")
    p.add_argument("packages", nargs="+", help="Debian packages to include (installed here)")
    p.add_argument("--out", type=Path, required=True, help="the rootfs tarball to write (.tar)")
    p.add_argument(
        "--file",
        action="append",
        default=[],
        help="a host file or directory (with what it holds) to add too, e.g. a package's "
        "configuration made by its install scripts (/etc/nginx/sites-enabled, /var/www/html)",
    )
    p.add_argument("--oci", help="also write an OCI image layout, as DIR:TAG")
    p.add_argument("--cmd", help="the image's command (with --oci), a shell-quoted string")
    p.add_argument("--user", help="the image's user (with --oci)")
    p.add_argument("--workdir", help="the image's working directory (with --oci)")
    p.add_argument("--env", action="append", default=[], help="NAME=value (with --oci)")


def image_command(args: argparse.Namespace) -> int:
    if len(args.packages) > MAX_PACKAGES:
        print(f"mecmig image: at most {MAX_PACKAGES} packages", flush=True)
        return 2
    if not str(args.out).endswith(".tar"):
        print("mecmig image: --out must end in .tar", flush=True)
        return 2
    cmd = shlex.split(args.cmd or "")
    if "" in cmd:  # umoci 0.4.7 drops them from --config.cmd (all but a last one)
        print(
            "mecmig image: --cmd: an empty argument ('') does not survive umoci's config; "
            "write that option another way (--logfile /dev/stdout)",
            flush=True,
        )
        return 2
    runner = SubprocessRunner()
    try:
        n, size = pack(runner, args.packages, args.out, extra=args.file)
        print(f"{args.out}: {n} files, {size / 2**20:.1f} MiB", flush=True)
        if args.oci:
            make_oci(
                runner,
                args.out,
                args.oci,
                cmd=cmd,
                user=args.user,
                workdir=args.workdir,
                env=args.env,
            )
            print(f"{args.oci}: OCI image layout", flush=True)
    except (PackError, CommandError, OSError) as exc:
        print(f"mecmig image: {exc}", flush=True)
        return 1
    return 0
